#include "tests/fakeplane/tasks.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakeplane/jsonin.h"
#include "tests/fakeplane/render.h"
#include "tests/fakeplane/sanitize.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/util.h"
#include "tests/fakeplane/ws.h"

#define NO_ROWS ": no rows in result set"

/* ---- helpers ---- */

static void reply_ok(struct fp_reply *out)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "status", "ok");
	fp_reply_json(out, 200, o);
}

static bool status_is(const struct fp_task *t, const char *a, const char *b, const char *c)
{
	return strcmp(t->status, a) == 0 || (b && strcmp(t->status, b) == 0) ||
	       (c && strcmp(t->status, c) == 0);
}

/* Allocates the request body as JSON for the call log: the parsed value,
 * the raw text as a string when it is not JSON, NULL when empty. */
static cJSON *body_for_log(const struct fp_request *rq)
{
	if (rq->body_len == 0)
		return NULL;
	cJSON *j = fp_in_parse(rq);
	if (j == NULL)
		j = cJSON_CreateString(rq->body);
	if (j == NULL)
		abort();   /* out of memory */
	return j;
}

/* Writes what was answered to the task's call log. */
static void record(struct fp_task *t, enum fp_task_op op, const struct fp_request *rq,
		   const struct fp_reply *out)
{
	fp_task_record(t, op, body_for_log(rq), out->status, fp_now_ms());
}

/* Task access (H:118-148): 400 "invalid task_id" for a non-UUID, 404
 * "task not found" when absent or of no known workspace, 404 "not found"
 * when the user is no member of it. Returns the row or NULL after the
 * error. */
static struct fp_task *task_access(struct fp_app *app, const char *user, const char *id,
				   struct fp_reply *out)
{
	char canon[FP_UUID_LEN + 1];
	if (id == NULL || fp_uuid_canon(id, canon) < 0) {
		fp_reply_error(out, 400, "invalid task_id");
		return NULL;
	}
	struct fp_task *t = fp_state_task(app->st, canon);
	const char *ws = t ? fp_task_workspace(app->st, t) : NULL;
	if (ws == NULL) {
		fp_reply_error(out, 404, "task not found");
		return NULL;
	}
	if (!fp_state_is_member(app->st, ws, user)) {
		fp_reply_error(out, 404, "not found");
		return NULL;
	}
	return t;
}

static void reply_task(struct fp_reply *out, const struct fp_task *t)
{
	fp_reply_json(out, 200, fp_render_task_daemon(t));
}

/* ---- claims (2.1, 2.2) ---- */

static bool blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

/* Allocates the listed runtimes a claim may take tasks from: known, in a
 * workspace of user, and of this daemon (or of none); *n gets how many. */
static struct fp_runtime **claim_runtimes(struct fp_app *app, const char *user,
					  const char *daemon_id, const cJSON *ids, size_t *n)
{
	struct fp_runtime **ok = fp_xcalloc((size_t)cJSON_GetArraySize(ids) + 1, sizeof *ok);
	const cJSON *e;
	*n = 0;
	cJSON_ArrayForEach(e, ids) {
		char canon[FP_UUID_LEN + 1];
		if (!cJSON_IsString(e) || fp_uuid_canon(e->valuestring, canon) < 0)
			continue;
		struct fp_runtime *r = fp_state_runtime(app->st, canon);
		if (r == NULL || !fp_state_is_member(app->st, r->workspace_id, user) ||
		    (r->daemon_id[0] != '\0' && strcmp(r->daemon_id, daemon_id) != 0))
			continue;
		ok[(*n)++] = r;
	}
	return ok;
}

static bool listed(const struct fp_task *t, struct fp_runtime *const *rts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rts[i]->id, t->runtime_id) == 0)
			return true;
	return false;
}

/* Dispatches up to max claimable rows of the runtimes rts[0..n), in
 * creation order; returns the claimed Task objects. */
static cJSON *claim_rows(struct fp_app *app, struct fp_runtime *const *rts, size_t n,
			 long long max)
{
	cJSON *tasks = fp_json_array();
	int64_t now = fp_now_ms();
	long long got = 0;
	for (size_t i = 0; i < app->st->tasks.len && got < max; i++) {
		struct fp_task *t = app->st->tasks.items[i];
		if (!listed(t, rts, n) || !fp_task_claimable(app->st, t, now))
			continue;
		fp_task_dispatch(app->st, t, now);
		fp_task_record(t, FP_OP_CLAIM, NULL, 200, now);
		fp_json_append(tasks, fp_render_task_claimed(t));
		got++;
	}
	return tasks;
}

static void h_claim(struct fp_app *app, const struct fp_request *rq, const char *user,
		    const char *param, struct fp_reply *out)
{
	static const struct fp_in_field fields[] = {
		{ "daemon_id", FP_IN_STR }, { "runtime_ids", FP_IN_ARRAY },
		{ "max_tasks", FP_IN_INT }, { NULL, FP_IN_STR },
	};
	cJSON *doc = fp_in_parse(rq);
	if (doc == NULL || !fp_in_fields_ok(doc, fields) ||
	    !fp_in_array_ok(doc, "runtime_ids", fp_in_elem_string)) {
		fp_reply_error(out, 400, "invalid request body");
	} else if (blank(fp_in_str(doc, "daemon_id"))) {
		fp_reply_error(out, 400, "daemon_id is required");
	} else if (fp_in_int(doc, "max_tasks") < 0) {
		fp_reply_error(out, 400, "max_tasks must not be negative");
	} else {
		long long max = fp_in_int(doc, "max_tasks");
		size_t n;
		struct fp_runtime **rts = claim_runtimes(app, user, fp_in_str(doc, "daemon_id"),
							 cJSON_GetObjectItem(doc, "runtime_ids"),
							 &n);
		cJSON *o = fp_json_object();
		fp_json_add(o, "tasks", claim_rows(app, rts, max > 0 ? n : 0,
						   max < FP_CLAIM_CAP ? max : FP_CLAIM_CAP));
		free(rts);
		fp_reply_json(out, 200, o);
	}
	cJSON_Delete(doc);
}

static void h_claim_legacy(struct fp_app *app, const struct fp_request *rq, const char *user,
			   const char *param, struct fp_reply *out)
{
	struct fp_runtime *r = fp_api_runtime_access(app, user, param, "invalid runtime_id", out);
	if (r == NULL)
		return;
	cJSON *tasks = claim_rows(app, &r, 1, 1);
	cJSON *o = fp_json_object();
	cJSON *first = cJSON_DetachItemFromArray(tasks, 0);
	fp_json_add(o, "task", first ? first : cJSON_CreateNull());
	cJSON_Delete(tasks);
	fp_reply_json(out, 200, o);
}

/* ---- preparing (2.3, 2.5) and start (2.6) ---- */

static void h_prepare_lease(struct fp_app *app, const struct fp_request *rq, const char *user,
			    const char *param, struct fp_reply *out)
{
	/* /api/daemon/runtimes/{rid}/tasks/{tid}/prepare-lease: param is tid. */
	char buf[1024];
	char *segs[8];
	if (fp_path_split(rq->path, buf, sizeof buf, segs, 8) != 7) {
		fp_reply_error(out, 404, "not found");
		return;
	}
	struct fp_runtime *r = fp_api_runtime_access(app, user, segs[3], "invalid runtime_id", out);
	struct fp_task *t = r ? task_access(app, user, param, out) : NULL;
	if (t == NULL)
		return;
	const char *ws = fp_task_workspace(app->st, t);
	if (strcmp(t->runtime_id, r->id) != 0 || strcmp(ws, r->workspace_id) != 0) {
		fp_reply_error(out, 404, "task not found");
	} else if (status_is(t, "dispatched", "waiting_local_directory", NULL) &&
		   t->started_ms == 0) {
		t->lease_ms = fp_now_ms() + app->st->lease_ms;
		reply_task(out, t);
	} else {
		fp_reply_error(out, 400, "extend task prepare lease" NO_ROWS);
	}
	record(t, FP_OP_PREPARE_LEASE, rq, out);
}

static void h_wait_local_dir(struct fp_app *app, const struct fp_request *rq, const char *user,
			     const char *param, struct fp_reply *out)
{
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	if (strcmp(t->status, "dispatched") == 0) {
		int64_t now = fp_now_ms();
		fp_task_set_status(t, "waiting_local_directory", now);
		t->lease_ms = now + app->st->lease_ms;
		reply_task(out, t);
	} else {
		fp_reply_error(out, 400, "mark task waiting_local_directory" NO_ROWS);
	}
	record(t, FP_OP_WAIT_LOCAL_DIR, rq, out);
}

static void h_start(struct fp_app *app, const struct fp_request *rq, const char *user,
		    const char *param, struct fp_reply *out)
{
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	if (status_is(t, "dispatched", "waiting_local_directory", NULL)) {
		int64_t now = fp_now_ms();
		fp_task_set_status(t, "running", now);
		t->started_ms = now;
		t->lease_ms = 0;
		reply_task(out, t);
	} else {
		fp_reply_error(out, 400, "start task" NO_ROWS);
	}
	record(t, FP_OP_START, rq, out);
}

/* ---- while it runs (2.7-2.11) ---- */

static void h_status(struct fp_app *app, const struct fp_request *rq, const char *user,
		     const char *param, struct fp_reply *out)
{
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "status", t->status);
	fp_reply_json(out, 200, o);
	record(t, FP_OP_STATUS, rq, out);
}

static void h_progress(struct fp_app *app, const struct fp_request *rq, const char *user,
		       const char *param, struct fp_reply *out)
{
	static const struct fp_in_field fields[] = {
		{ "summary", FP_IN_STR }, { "step", FP_IN_INT }, { "total", FP_IN_INT },
		{ NULL, FP_IN_STR },
	};
	/* Decoded before the access check (H:3585-3609). */
	cJSON *doc = fp_in_parse(rq);
	struct fp_task *t = NULL;
	if (doc == NULL || !fp_in_fields_ok(doc, fields))
		fp_reply_error(out, 400, "invalid request body");
	else if ((t = task_access(app, user, param, out)) != NULL)
		reply_ok(out);
	if (t != NULL) {
		fp_json_repair_utf8(doc);
		fp_json_append(t->progress, doc);
		doc = NULL;
		record(t, FP_OP_PROGRESS, rq, out);
	}
	cJSON_Delete(doc);
}

static bool message_ok(const cJSON *m)
{
	static const struct fp_in_field fields[] = {
		{ "seq", FP_IN_INT }, { "type", FP_IN_STR }, { "tool", FP_IN_STR },
		{ "content", FP_IN_STR }, { "input", FP_IN_OBJECT }, { "output", FP_IN_STR },
		{ NULL, FP_IN_STR },
	};
	return cJSON_IsObject(m) && fp_in_fields_ok(m, fields);
}

/* Appends the batch to the task's log, sanitized; records a summary call
 * (the bodies are in the log already). */
static void store_messages(struct fp_task *t, cJSON *list, const struct fp_reply *out)
{
	int n = 0;
	cJSON *m;
	while ((m = cJSON_DetachItemFromArray(list, 0)) != NULL) {
		fp_json_repair_utf8(m);
		fp_json_append(t->messages, m);
		n++;
	}
	cJSON *summary = fp_json_object();
	fp_json_add(summary, "count", cJSON_CreateNumber(n));
	fp_task_record(t, FP_OP_MESSAGES, summary, out->status, fp_now_ms());
}

static void h_messages(struct fp_app *app, const struct fp_request *rq, const char *user,
		       const char *param, struct fp_reply *out)
{
	static const struct fp_in_field fields[] = {
		{ "messages", FP_IN_ARRAY }, { NULL, FP_IN_STR },
	};
	/* NULs go before parsing: cJSON would cut a string at one. */
	size_t len;
	char *clean = fp_strip_nul(rq->body, rq->body_len, &len);
	cJSON *doc = cJSON_ParseWithLengthOpts(clean, len, NULL, false);
	free(clean);
	cJSON *list = cJSON_GetObjectItem(doc, "messages");
	struct fp_task *t;
	if (doc == NULL || !fp_in_fields_ok(doc, fields) ||
	    !fp_in_array_ok(doc, "messages", message_ok))
		fp_reply_error(out, 400, "invalid request body");
	else if (cJSON_GetArraySize(list) == 0)
		reply_ok(out);   /* before any access check (H:4463-4593) */
	else if ((t = task_access(app, user, param, out)) != NULL) {
		reply_ok(out);
		store_messages(t, list, out);
	}
	cJSON_Delete(doc);
}

/* Pins what the body names where the SQL would (Q:1183-1204). Returns
 * whether it did. */
static bool pin_session(struct fp_task *t, const char *session_id, const char *work_dir)
{
	bool open = status_is(t, "dispatched", "running", NULL) ||
		    (strcmp(t->status, "cancelled") == 0 && t->session_id == NULL);
	if (!open)
		return false;
	if (session_id[0] != '\0')
		fp_replace_str(&t->session_id, fp_xstrdup(session_id));
	if (work_dir[0] != '\0')
		fp_replace_str(&t->work_dir, fp_xstrdup(work_dir));
	return true;
}

static void h_session(struct fp_app *app, const struct fp_request *rq, const char *user,
		      const char *param, struct fp_reply *out)
{
	static const struct fp_in_field fields[] = {
		{ "session_id", FP_IN_STR }, { "work_dir", FP_IN_STR }, { NULL, FP_IN_STR },
	};
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	cJSON *doc = fp_in_parse(rq);
	const char *sid = fp_in_str(doc, "session_id"), *wd = fp_in_str(doc, "work_dir");
	if (doc == NULL || !fp_in_fields_ok(doc, fields)) {
		fp_reply_error(out, 400, "invalid request body");
	} else if (sid[0] == '\0' && wd[0] == '\0') {
		fp_reply_error(out, 400, "session_id or work_dir required");
	} else {
		cJSON *s = fp_json_object();
		fp_json_add_str(s, "session_id", sid);
		fp_json_add_str(s, "work_dir", wd);
		fp_json_add(s, "applied", cJSON_CreateBool(pin_session(t, sid, wd)));
		fp_json_append(t->sessions, s);
		fp_reply_raw(out, 204, NULL, 0);
	}
	record(t, FP_OP_SESSION, rq, out);
	cJSON_Delete(doc);
}

static bool usage_ok(const cJSON *u)
{
	static const struct fp_in_field fields[] = {
		{ "provider", FP_IN_STR }, { "model", FP_IN_STR }, { "input_tokens", FP_IN_INT },
		{ "output_tokens", FP_IN_INT }, { "cache_read_tokens", FP_IN_INT },
		{ "cache_write_tokens", FP_IN_INT }, { "cost_usd_ticks", FP_IN_INT },
		{ NULL, FP_IN_STR },
	};
	return cJSON_IsObject(u) && fp_in_fields_ok(u, fields);
}

/* Allocates the stored usage row (H:4275-4347): provider lower-cased or
 * the runtime's, ints, cost_usd_ticks <= 0 as null. */
static cJSON *usage_row(struct fp_app *app, const struct fp_task *t, const cJSON *u)
{
	static const char *const ints[] = {
		"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
	};
	cJSON *row = fp_json_object();
	char *provider = fp_in_lowerdup(fp_in_str(u, "provider"));
	struct fp_runtime *r = fp_state_runtime(app->st, t->runtime_id);
	if (provider[0] == '\0' && r != NULL)
		fp_replace_str(&provider, fp_xstrdup(r->provider));
	fp_json_add_str(row, "provider", provider);
	free(provider);
	fp_json_add_str(row, "model", fp_in_str(u, "model"));
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		fp_json_add(row, ints[i], cJSON_CreateNumber((double)fp_in_int(u, ints[i])));
	long long cost = fp_in_int(u, "cost_usd_ticks");
	fp_json_add(row, "cost_usd_ticks",
		    cost > 0 ? cJSON_CreateNumber((double)cost) : cJSON_CreateNull());
	return row;
}

static void h_usage(struct fp_app *app, const struct fp_request *rq, const char *user,
		    const char *param, struct fp_reply *out)
{
	static const struct fp_in_field fields[] = {
		{ "usage", FP_IN_ARRAY }, { NULL, FP_IN_STR },
	};
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	cJSON *doc = fp_in_parse(rq);
	if (doc == NULL || !fp_in_fields_ok(doc, fields) ||
	    !fp_in_array_ok(doc, "usage", usage_ok)) {
		fp_reply_error(out, 400, "invalid request body");
	} else {
		const cJSON *u;
		cJSON_ArrayForEach(u, cJSON_GetObjectItem(doc, "usage"))
			fp_task_usage_upsert(t, usage_row(app, t, u));
		reply_ok(out);
	}
	record(t, FP_OP_USAGE, rq, out);
	cJSON_Delete(doc);
}

/* ---- the end (2.12-2.14) ---- */

static const struct fp_in_field terminal_fields[] = {
	{ "output", FP_IN_STR }, { "error", FP_IN_STR }, { "failure_reason", FP_IN_STR },
	{ "branch_name", FP_IN_STR }, { "session_id", FP_IN_STR }, { "work_dir", FP_IN_STR },
	{ "durable_work_dir", FP_IN_STR }, { "pr_url", FP_IN_STR },
	{ "retired_session_id", FP_IN_STR }, { "session_rollout_missing", FP_IN_BOOL },
	{ NULL, FP_IN_STR },
};

/* session_id / work_dir of a terminal body: set when given; a missing
 * rollout clears the session. */
static void terminal_session(struct fp_task *t, const cJSON *doc)
{
	const char *sid = fp_in_str(doc, "session_id"), *wd = fp_in_str(doc, "work_dir");
	if (sid[0] != '\0')
		fp_replace_str(&t->session_id, fp_xstrdup(sid));
	if (wd[0] != '\0')
		fp_replace_str(&t->work_dir, fp_xstrdup(wd));
	if (cJSON_IsTrue(cJSON_GetObjectItem(doc, "session_rollout_missing")))
		fp_replace_str(&t->session_id, NULL);
}

static void h_complete(struct fp_app *app, const struct fp_request *rq, const char *user,
		       const char *param, struct fp_reply *out)
{
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	cJSON *doc = fp_in_parse(rq);
	if (!cJSON_IsObject(doc) || !fp_in_fields_ok(doc, terminal_fields)) {
		fp_reply_error(out, 400, "invalid request body");
	} else {
		/* Only a running row completes; any other is a late or
		 * duplicate call: 200 with the row as it is (S:3981-3993). */
		if (strcmp(t->status, "running") == 0) {
			fp_task_set_status(t, "completed", fp_now_ms());
			fp_json_repair_utf8(doc);
			cJSON_Delete(t->result);
			t->result = cJSON_Duplicate(doc, true);
			terminal_session(t, doc);
			/* A successor may be claimable (ST:6153-6175). */
			fp_ws_push_task(app->st->ws, t->runtime_id, NULL);
		}
		reply_task(out, t);
	}
	record(t, FP_OP_COMPLETE, rq, out);
	cJSON_Delete(doc);
}

static void h_fail(struct fp_app *app, const struct fp_request *rq, const char *user,
		   const char *param, struct fp_reply *out)
{
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	cJSON *doc = fp_in_parse(rq);
	if (!cJSON_IsObject(doc) || !fp_in_fields_ok(doc, terminal_fields)) {
		fp_reply_error(out, 400, "invalid request body");
	} else {
		if (status_is(t, "dispatched", "running", "waiting_local_directory")) {
			const char *reason = fp_in_str(doc, "failure_reason");
			fp_task_set_status(t, "failed", fp_now_ms());
			fp_replace_str(&t->error, fp_utf8_repair(fp_in_str(doc, "error")));
			fp_replace_str(&t->failure_reason,
				       fp_xstrdup(reason[0] ? reason : "agent_error"));
			t->lease_ms = 0;
			terminal_session(t, doc);
			fp_ws_push_task(app->st->ws, t->runtime_id, NULL);
		}
		reply_task(out, t);   /* terminal already: unchanged (S:4563-4571) */
	}
	record(t, FP_OP_FAIL, rq, out);
	cJSON_Delete(doc);
}

static void h_cancel_ack(struct fp_app *app, const struct fp_request *rq, const char *user,
			 const char *param, struct fp_reply *out)
{
	struct fp_task *t = task_access(app, user, param, out);
	if (t == NULL)
		return;
	/* Decode errors are ignored; each field only fills an empty column
	 * of a cancelled row (H:4616-4694). */
	cJSON *doc = fp_in_parse(rq);
	if (strcmp(t->status, "cancelled") == 0) {
		const char *msg = fp_in_str(doc, "error_message");
		const char *reason = fp_in_str(doc, "failure_reason");
		if (msg[0] != '\0' && t->error == NULL)
			t->error = fp_utf8_repair(msg);
		if (reason[0] != '\0' && t->failure_reason == NULL)
			t->failure_reason = fp_xstrdup(reason);
	}
	cJSON_Delete(doc);
	reply_ok(out);
	record(t, FP_OP_CANCEL_ACK, rq, out);
}

const struct fp_route fp_task_routes[] = {
	{ "POST", "/api/daemon/tasks/claim", h_claim },
	{ "POST", "/api/daemon/claim", h_claim },
	{ "POST", "/api/daemon/runtimes/*/tasks/claim", h_claim_legacy },
	{ "POST", "/api/daemon/runtimes/*/tasks/*/prepare-lease", h_prepare_lease },
	{ "POST", "/api/daemon/tasks/*/wait-local-directory", h_wait_local_dir },
	{ "POST", "/api/daemon/tasks/*/start", h_start },
	{ "GET", "/api/daemon/tasks/*/status", h_status },
	{ "POST", "/api/daemon/tasks/*/progress", h_progress },
	{ "POST", "/api/daemon/tasks/*/messages", h_messages },
	{ "POST", "/api/daemon/tasks/*/session", h_session },
	{ "POST", "/api/daemon/tasks/*/usage", h_usage },
	{ "POST", "/api/daemon/tasks/*/complete", h_complete },
	{ "POST", "/api/daemon/tasks/*/fail", h_fail },
	{ "POST", "/api/daemon/tasks/*/cancel-ack", h_cancel_ack },
};

const size_t fp_task_nroutes = sizeof fp_task_routes / sizeof fp_task_routes[0];
