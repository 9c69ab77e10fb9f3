/* libFuzzer target: a claimed task, from the server's answer to the worker.
 * The first byte picks the decoder, the rest is the body:
 *   0  mc_task_parse (a task object as the executor decodes it)
 *   1  a batch claim answer {"tasks":[...]}
 *   2  a legacy claim answer {"task":...}
 *   3  a task status answer {"status":"..."}
 * Claim answers run through the call's own decoder (mci_task_decode, what
 * api_run.c runs on a 2xx) and mc_call_take_claimed; every task claimed
 * then takes the production path: a TASK frame from the link
 * (mc_ipc_send_task), peeked and re-slotted by the supervisor
 * (mc_ipc_peek_task, mc_ipc_forward_task), parsed by the worker
 * (mc_ipc_parse_task) and decoded (mc_task_decode).
 * Properties: no crash, no leak; a failed decode names a reason; a claimed
 * task keeps no secret in its JSON and its ids are UUIDs or ""; the IPC path
 * delivers the same task and token; a decoded task has UUID ids, the key of
 * its id and the kind its fields say. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "common/api.h"
#include "common/api_int.h"
#include "common/api_task.h"
#include "common/secret.h"
#include "common/task.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "ipc/task_msgs.h"

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			abort();        \
	} while (0)

#define RT_ID "2b7f4c1e-0d6a-4e83-9f1c-5a9e3b2d7c10"
#define DAEMON_ID "fuzz-host"

static void check_key(const struct mc_task *t)
{
	char want[MC_TASK_KEY_LEN + 1];
	size_t n = MC_TASK_KEY_LEN;
	want[n] = '\0';
	for (size_t i = strlen(t->id); i > 0 && n > 0; i--)
		if (t->id[i - 1] != '-')
			want[--n] = (char)tolower((unsigned char)t->id[i - 1]);
	CHECK(n == 0 && strcmp(want, t->key) == 0);
}

/* What every decoded task must look like. */
static void check_task(const struct mc_task *t)
{
	CHECK(mc_task_is_uuid(t->id) && mc_task_is_uuid(t->agent_id));
	CHECK(mc_task_is_uuid(t->runtime_id) && mc_task_is_uuid(t->workspace_id));
	check_key(t);
	const char *strs[] = { t->issue_id, t->agent_name, t->agent_instructions, t->model,
			       t->thinking_level, t->prior_session_id, t->prior_work_dir,
			       t->trigger_comment_id, t->chat_session_id, t->chat_message,
			       t->workspace_context, t->regenerate_quick_actions_for };
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		CHECK(strs[i] != NULL);
	enum mc_task_kind k = t->chat_session_id[0] ? MC_TASK_CHAT
			      : t->trigger_comment_id[0] ? MC_TASK_COMMENT : MC_TASK_ASSIGNMENT;
	CHECK(t->kind == k);
	for (size_t i = 0; i < t->n_custom_env; i++)
		CHECK(t->custom_env[i].key[0] != '\0' && t->custom_env[i].value != NULL);
	for (size_t i = 0; i < t->n_custom_args; i++)
		CHECK(t->custom_args[i] != NULL);
	for (size_t i = 0; i < t->n_coalesced; i++)
		CHECK(t->coalesced[i].content != NULL && t->coalesced[i].id != NULL);
}

static void decode_text(const char *body, size_t len)
{
	struct mc_task t;
	char err[256] = "";
	if (mc_task_parse(body, len, &t, err, sizeof err) == 0) {
		check_task(&t);
		mc_task_clear(&t);
	} else {
		CHECK(err[0] != '\0');
	}
}

/* The one frame queued on w, as a reader would hand it out. */
static struct mc_ipc_frame queued_frame(const struct mc_ipc_writer *w)
{
	uint16_t type = 0;
	uint32_t len = 0;
	CHECK(w->tail - w->head >= MC_IPC_HEADER_SIZE);
	CHECK(mc_ipc_header_decode(w->buf + w->head, mc_ipc_type_ok_for_worker, &type, &len) == 0);
	CHECK(type == MC_IPC_TASK && w->tail - w->head == MC_IPC_HEADER_SIZE + len);
	return (struct mc_ipc_frame){ type, len, w->buf + w->head + MC_IPC_HEADER_SIZE };
}

/* The same JSON as the receiver will see it: printed alike (a number
 * cJSON cannot print, such as 1e999, goes as null either way). */
static bool same_json(const cJSON *a, const cJSON *b)
{
	char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
	CHECK(x != NULL && y != NULL);
	bool same = strcmp(x, y) == 0;
	free(x);
	free(y);
	return same;
}

static bool same_token(struct mc_secret *a, struct mc_secret *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL || mc_secret_len(a) == 0) && (b == NULL || mc_secret_len(b) == 0);
	return mc_secret_equal(a, b);
}

/* The worker's end: the frame the supervisor forwarded. */
static void worker_side(const struct mc_claimed_task *c, const struct mc_ipc_frame *f, int slot)
{
	char err[256] = "";
	int got_slot = -2;
	cJSON *task = NULL;
	struct mc_secret *tok = NULL;
	CHECK(mc_ipc_parse_task(f, &got_slot, &task, &tok, err, sizeof err) == 0);
	CHECK(got_slot == slot);
	CHECK(same_json(task, c->task));
	CHECK(same_token(tok, c->token));
	struct mc_task t;
	if (mc_task_decode(task, &t, err, sizeof err) == 0) {
		check_task(&t);
		CHECK(strcmp(t.id, c->id) == 0 && strcmp(t.runtime_id, c->runtime_id) == 0);
		mc_task_clear(&t);
	} else {
		CHECK(err[0] != '\0');
	}
	cJSON_Delete(task);
	mc_secret_free(tok);
}

/* Link -> supervisor -> worker, as in production. */
static void ipc_path(const struct mc_claimed_task *c, int slot)
{
	struct mc_ipc_writer link, sup;
	mc_ipc_writer_init(&link);
	mc_ipc_writer_init(&sup);
	if (mc_ipc_send_task(&link, -1, c->token, c->task) == 0) {
		struct mc_ipc_frame f = queued_frame(&link);
		char id[40], rid[40], err[256] = "";
		int s = -2;
		/* A task with usable ids is peekable; the rest is failed by id
		 * or logged by the link before it would be sent. */
		int rc = mc_ipc_peek_task(&f, id, rid, &s, err, sizeof err);
		if (c->id[0] && c->runtime_id[0]) {
			CHECK(rc == 0 && s == -1);
			CHECK(strcmp(id, c->id) == 0 && strcmp(rid, c->runtime_id) == 0);
			CHECK(mc_ipc_forward_task(&sup, &f, slot) == 0);
			struct mc_ipc_frame g = queued_frame(&sup);
			worker_side(c, &g, slot);
		} else {
			CHECK(rc < 0 && err[0] != '\0');
		}
	}
	mc_ipc_writer_free(&link);
	mc_ipc_writer_free(&sup);
}

/* A claimed task: no secret left in its JSON, ids as promised. */
static void check_claimed(const struct mc_claimed_task *c)
{
	CHECK(cJSON_IsObject(c->task));
	CHECK(cJSON_GetObjectItemCaseSensitive(c->task, "auth_token") == NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(c->task, "remote_mcp_daemon_token") == NULL);
	CHECK(c->id[0] == '\0' || mc_task_is_uuid(c->id));
	CHECK(c->runtime_id[0] == '\0' || mc_task_is_uuid(c->runtime_id));
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(c->task, "id");
	if (c->id[0])
		CHECK(cJSON_IsString(id) && strcmp(id->valuestring, c->id) == 0);
	mc_task_token_scoped(c->token);
}

static struct mc_api *api;
static struct mc_call *calls[3]; /* batch claim, legacy claim, status */

static void setup(void)
{
	if (api != NULL)
		return;
	CHECK(mc_api_global_init() == 0);
	struct mc_secret *tok = mc_secret_new("mdt_fuzz", 8);
	struct mc_api_config cfg = { .server_url = "http://127.0.0.1:9", .token = tok,
				     .client_version = "multicad/fuzz" };
	api = mc_api_new(&cfg);
	mc_secret_free(tok);
	const char *ids[] = { RT_ID };
	calls[0] = mc_call_claim_tasks(api, DAEMON_ID, 1, ids, MC_CLAIM_MAX_TASKS);
	calls[1] = mc_call_claim_runtime_task(api, RT_ID);
	calls[2] = mc_call_task_status(api, "6f0b3a52-8c1d-4e7a-b2f9-0d4c6e8a1b37");
	CHECK(api != NULL && calls[0] != NULL && calls[1] != NULL && calls[2] != NULL);
}

/* Runs the call's decoder on body as if the server had answered 200. */
static int answer(struct mc_call *c, const char *body, size_t len)
{
	struct mc_api_error derr;
	mci_task_reset(c);
	memset(&c->err, 0, sizeof c->err);
	int rc = mci_task_decode(c, body, len, &derr);
	if (rc < 0) {
		CHECK(derr.kind == MC_API_ERR_DECODE && derr.message[0] != '\0');
		CHECK(c->claimed.n == 0 && c->claimed.v == NULL);
		c->err = derr;
	}
	c->state = CALL_DONE;
	return rc;
}

static void claim(struct mc_call *c, const char *body, size_t len, int slot, bool legacy)
{
	struct mc_claimed got = { 0 };
	int rc = answer(c, body, len);
	if (mc_call_take_claimed(c, &got) < 0) {
		CHECK(rc < 0);
		return;
	}
	CHECK(rc == 0);
	CHECK(got.n <= (legacy ? 1u : (size_t)MC_CLAIM_MAX_TASKS));
	for (size_t i = 0; i < got.n; i++) {
		check_claimed(&got.v[i]);
		ipc_path(&got.v[i], slot);
	}
	/* Taken once: a second take finds nothing. */
	struct mc_claimed again = { 0 };
	CHECK(mc_call_take_claimed(c, &again) == 0 && again.n == 0);
	mc_claimed_clear(&got);
}

static void status(struct mc_call *c, const char *body, size_t len)
{
	int rc = answer(c, body, len);
	const char *v = mc_call_task_status_value(c);
	CHECK(rc == 0 ? v != NULL && v[0] != '\0' : v == NULL);
	if (v != NULL)
		mc_task_status_terminal(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	setup();
	unsigned sel = data[0];
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	int slot = (int)(sel / 4) % 64;
	switch (sel % 4) {
	case 0:
		decode_text(body, len);
		break;
	case 1:
		claim(calls[0], body, len, slot, false);
		break;
	case 2:
		claim(calls[1], body, len, slot, true);
		break;
	default:
		status(calls[2], body, len);
		break;
	}
	return 0;
}
