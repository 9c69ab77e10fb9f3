/* multica-fakeplane: task rows, their state changes and their logs
 * (state.h "task rows"). */
#include "tests/fakeplane/state.h"

#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sodium.h>

#include "tests/fakeplane/render.h"

static const char *const op_names[FP_OP_COUNT] = {
	[FP_OP_CLAIM] = "claim",
	[FP_OP_START] = "start",
	[FP_OP_STATUS] = "status",
	[FP_OP_PROGRESS] = "progress",
	[FP_OP_MESSAGES] = "messages",
	[FP_OP_SESSION] = "session",
	[FP_OP_USAGE] = "usage",
	[FP_OP_COMPLETE] = "complete",
	[FP_OP_FAIL] = "fail",
	[FP_OP_CANCEL_ACK] = "cancel-ack",
	[FP_OP_PREPARE_LEASE] = "prepare-lease",
	[FP_OP_WAIT_LOCAL_DIR] = "wait-local-directory",
	[FP_OP_RECOVER] = "recover-orphans",
};

const char *fp_task_op_name(enum fp_task_op op)
{
	return op < FP_OP_COUNT ? op_names[op] : "?";
}

struct fp_task *fp_task_new(void)
{
	struct fp_task *t = fp_xcalloc(1, sizeof *t);
	t->attempt = 1;
	t->max_attempts = 3;
	t->extra = fp_json_object();
	t->tokens = fp_json_array();
	t->messages = fp_json_array();
	t->progress = fp_json_array();
	t->sessions = fp_json_array();
	t->usage = fp_json_array();
	t->calls = fp_json_array();
	return t;
}

void fp_task_free(struct fp_task *t)
{
	if (t == NULL)
		return;
	free(t->issue_id);
	free(t->status);
	free(t->failure_reason);
	free(t->error);
	free(t->session_id);
	free(t->work_dir);
	free(t->fixed_token);
	free(t->auth_token);
	cJSON_Delete(t->result);
	cJSON_Delete(t->extra);
	cJSON_Delete(t->tokens);
	cJSON_Delete(t->messages);
	cJSON_Delete(t->progress);
	cJSON_Delete(t->sessions);
	cJSON_Delete(t->usage);
	cJSON_Delete(t->calls);
	free(t);
}

bool fp_task_status_terminal(const char *s)
{
	return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
	       strcmp(s, "cancelled") == 0;
}

void fp_task_set_status(struct fp_task *t, const char *status, int64_t now_ms)
{
	fp_replace_str(&t->status, fp_xstrdup(status));
	if (fp_task_status_terminal(status))
		t->completed_ms = now_ms;
}

void fp_task_record(struct fp_task *t, enum fp_task_op op, cJSON *body, unsigned status,
		    int64_t now_ms)
{
	cJSON *c = fp_json_object();
	fp_json_add_str(c, "op", fp_task_op_name(op));
	fp_json_add_time(c, "time", now_ms);
	fp_json_add(c, "body", body ? body : cJSON_CreateNull());
	fp_json_add(c, "status", cJSON_CreateNumber(status));
	fp_json_append(t->calls, c);
	if (op < FP_OP_COUNT)
		t->counts[op]++;
}

const char *fp_task_workspace(struct fp_state *st, const struct fp_task *t)
{
	if (t->workspace_id[0] != '\0')
		return t->workspace_id;
	struct fp_runtime *r = fp_state_runtime(st, t->runtime_id);
	return r ? r->workspace_id : NULL;
}

bool fp_task_claimable(const struct fp_state *st, const struct fp_task *t, int64_t now_ms)
{
	if (strcmp(t->status, "queued") == 0)
		return true;
	/* A claim answer the daemon never got (Q:816-874): handed out again. */
	return strcmp(t->status, "dispatched") == 0 && t->started_ms == 0 &&
	       now_ms - t->dispatched_ms >= st->redeliver_after_ms && t->lease_ms < now_ms;
}

/* Allocates "mat_" + 48 hex digits. */
static char *fresh_token(void)
{
	unsigned char raw[24];
	char hex[2 * sizeof raw + 1];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
	return fp_xasprintf("mat_%s", hex);
}

void fp_task_dispatch(struct fp_state *st, struct fp_task *t, int64_t now_ms)
{
	fp_task_set_status(t, "dispatched", now_ms);
	t->dispatched_ms = now_ms;
	t->lease_ms = now_ms + st->lease_ms;
	if (t->workspace_id[0] == '\0') {
		const char *ws = fp_task_workspace(st, t);
		if (ws != NULL)
			strlcpy(t->workspace_id, ws, sizeof t->workspace_id);
	}
	char *tok = t->fixed_token ? fp_xstrdup(t->fixed_token) : fresh_token();
	fp_replace_str(&t->auth_token, t->token_omitted ? NULL : tok);
	if (t->token_omitted)
		free(tok);
	fp_json_append(t->tokens, t->auth_token ? cJSON_CreateString(t->auth_token)
						: cJSON_CreateNull());
}

static bool same_key(const cJSON *a, const cJSON *b, const char *key)
{
	const char *x = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, key));
	const char *y = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, key));
	return strcmp(x ? x : "", y ? y : "") == 0;
}

void fp_task_usage_upsert(struct fp_task *t, cJSON *row)
{
	int i = 0;
	for (cJSON *u = t->usage->child; u != NULL; u = u->next, i++) {
		if (same_key(u, row, "provider") && same_key(u, row, "model")) {
			cJSON_ReplaceItemInArray(t->usage, i, row);
			return;
		}
	}
	fp_json_append(t->usage, row);
}
