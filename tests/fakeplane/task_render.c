/* multica-fakeplane: task rows -> JSON (render.h "Task views"). */
#include "tests/fakeplane/render.h"

#include <stdlib.h>

/* Adds or replaces obj[key]; takes ownership of item. */
static void set_field(cJSON *obj, const char *key, cJSON *item)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	fp_json_add(obj, key, item);
}

static void set_str(cJSON *obj, const char *key, const char *value)
{
	set_field(obj, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
}

static cJSON *dup(const cJSON *j)
{
	cJSON *d = j ? cJSON_Duplicate(j, true) : cJSON_CreateNull();
	if (d == NULL)
		abort();   /* out of memory */
	return d;
}

/* The identity every view starts with. */
static void identity(cJSON *o, const struct fp_task *t)
{
	set_str(o, "id", t->id);
	set_str(o, "agent_id", t->agent_id[0] ? t->agent_id : NULL);
	set_str(o, "runtime_id", t->runtime_id);
	set_str(o, "workspace_id", t->workspace_id[0] ? t->workspace_id : NULL);
	set_str(o, "issue_id", t->issue_id ? t->issue_id : "");
	set_str(o, "status", t->status);
}

static void times(cJSON *o, const struct fp_task *t)
{
	fp_json_add_time(o, "created_at", t->created_ms);
	fp_json_add_time(o, "dispatched_at", t->dispatched_ms);
	fp_json_add_time(o, "started_at", t->started_ms);
	fp_json_add_time(o, "completed_at", t->completed_ms);
}

static void outcome(cJSON *o, const struct fp_task *t)
{
	fp_json_add_str(o, "failure_reason", t->failure_reason);
	fp_json_add_str(o, "error", t->error);
	fp_json_add_str(o, "session_id", t->session_id);
	fp_json_add_str(o, "work_dir", t->work_dir);
	fp_json_add(o, "attempt", cJSON_CreateNumber((double)t->attempt));
	fp_json_add(o, "max_attempts", cJSON_CreateNumber((double)t->max_attempts));
}

cJSON *fp_render_task(const struct fp_task *t)
{
	cJSON *o = fp_json_object();
	identity(o, t);
	outcome(o, t);
	times(o, t);
	fp_json_add_time(o, "prepare_lease_expires_at", t->lease_ms);
	fp_json_add_str(o, "auth_token", t->auth_token);
	cJSON *counts = fp_json_object();
	for (int op = 0; op < FP_OP_COUNT; op++)
		fp_json_add(counts, fp_task_op_name(op), cJSON_CreateNumber(t->counts[op]));
	fp_json_add(o, "counts", counts);
	return o;
}

cJSON *fp_render_task_detail(const struct fp_task *t)
{
	cJSON *o = fp_render_task(t);
	fp_json_add(o, "fields", dup(t->extra));
	fp_json_add(o, "result", dup(t->result));
	fp_json_add(o, "tokens", dup(t->tokens));
	fp_json_add(o, "messages", dup(t->messages));
	fp_json_add(o, "progress", dup(t->progress));
	fp_json_add(o, "sessions", dup(t->sessions));
	fp_json_add(o, "usage", dup(t->usage));
	fp_json_add(o, "calls", dup(t->calls));
	return o;
}

cJSON *fp_render_task_daemon(const struct fp_task *t)
{
	cJSON *o = fp_json_object();
	identity(o, t);
	outcome(o, t);
	fp_json_add(o, "result", dup(t->result));
	times(o, t);
	return o;
}

cJSON *fp_render_task_claimed(const struct fp_task *t)
{
	cJSON *o = dup(t->extra);
	identity(o, t);
	if (t->auth_token != NULL)
		set_str(o, "auth_token", t->auth_token);
	if (cJSON_GetObjectItemCaseSensitive(o, "delivered_comment_ids") == NULL)
		fp_json_add(o, "delivered_comment_ids", fp_json_array());
	set_field(o, "attempt", cJSON_CreateNumber((double)t->attempt));
	set_field(o, "max_attempts", cJSON_CreateNumber((double)t->max_attempts));
	cJSON_DeleteItemFromObjectCaseSensitive(o, "created_at");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "dispatched_at");
	fp_json_add_time(o, "created_at", t->created_ms);
	fp_json_add_time(o, "dispatched_at", t->dispatched_ms);
	return o;
}
