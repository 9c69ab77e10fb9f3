/* The task endpoint calls (common/api_task.h) against a real
 * multica-fakeplane: a task queued on a registered runtime is claimed,
 * its token taken out of the JSON, started, watched and completed; the
 * exact request shapes in the journal; canned answers (faults) for what
 * the emulator does not produce on its own; the error conventions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/api.h"
#include "common/api_task.h"
#include "common/task.h"
#include "tests/support/fakeplane_proc.h"

#define TOKEN  "mul_0123456789abcdef0123456789abcdef01234567"
#define USER   "user-1"
#define WS1    "0c6e0000-0000-4000-8000-000000000001"
#define DAEMON "host-1"
#define AGENT  "a9e00000-0000-4000-8000-00000000a9e0"
#define T1     "7a5c0000-0000-4000-8000-0000000007a1"
#define T2     "7a5c0000-0000-4000-8000-0000000007a2"
#define RT_X   "77770000-0000-4000-8000-000000007777"
#define MISSING "99999999-9999-4999-8999-999999999999"

static const char seed[] =
	"{\"tokens\":{\"" TOKEN "\":\"" USER "\"},"
	" \"workspaces\":[{\"id\":\"" WS1 "\",\"name\":\"Alpha\",\"members\":[\"" USER "\"]}]}";

/* ---- fixture ---- */

static struct fp_proc fp;
static bool fp_running;
static struct mc_api *api;
static char runtime_id[40];

static void setup(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
	cr_assert_eq(fp_start(&fp, seed, NULL), 0, "cannot start multica-fakeplane");
	fp_running = true;
	struct mc_secret *s = mc_secret_new(TOKEN, strlen(TOKEN));
	cr_assert_not_null(s);
	struct mc_api_config cfg = {
		.server_url = fp.url, .token = s, .client_version = "multicad/test",
		.timeout_ms = 30000, .connect_timeout_ms = 2000,
	};
	api = mc_api_new(&cfg);
	mc_secret_free(s);
	cr_assert_not_null(api, "mc_api_new: %s", strerror(errno));
}

static void teardown(void)
{
	mc_api_free(api);
	api = NULL;
	if (fp_running)
		fp_stop(&fp);
	fp_running = false;
}

TestSuite(api_task, .init = setup, .fini = teardown, .timeout = 120);

/* Registers one claude runtime for WS1 and remembers its id. */
static void register_runtime(void)
{
	static const struct mc_reg_runtime rt = { "Claude (host)", "claude", "2.1.0", NULL };
	struct mc_register_request req = { WS1, DAEMON, "host", "multicad/test", 1, &rt, 0, NULL };
	struct mc_call *c = mc_call_register(api, &req);
	cr_assert_not_null(c);
	cr_assert_eq(mc_call_perform(c), 0, "%s", mc_call_error(c)->message);
	struct mc_runtime_list l;
	cr_assert_eq(mc_call_take_runtimes(c, &l), 0);
	cr_assert_eq(l.n, 1);
	strlcpy(runtime_id, l.v[0].id, sizeof runtime_id);
	mc_runtime_list_clear(&l);
	mc_call_free(c);
}

/* Queues a task on the runtime at the emulator; its id into id (40). */
static void queue_task(const char *task_id, const char *extra)
{
	char body[1024];
	snprintf(body, sizeof body,
		 "{\"id\":\"%s\",\"runtime_id\":\"%s\",\"workspace_id\":\"" WS1 "\","
		 "\"agent\":{\"id\":\"" AGENT "\",\"name\":\"Reviewer\"}%s}",
		 task_id, runtime_id, extra != NULL ? extra : "");
	char *out = NULL;
	long st = fp_http(&fp, "POST", "/_admin/tasks", body, NULL, &out);
	cr_assert_eq(st, 200, "POST /_admin/tasks: %ld %s", st, out ? out : "");
	free(out);
}

/* Runs a call, returns it (caller frees). */
static struct mc_call *run(struct mc_call *c)
{
	cr_assert_not_null(c, "constructor: %s", strerror(errno));
	mc_call_perform(c);
	return c;
}

static void run_ok(struct mc_call *c)
{
	run(c);
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	mc_call_free(c);
}

/* The body of the newest journal entry for method + path prefix, parsed
 * (caller deletes), or NULL. */
static cJSON *last_body(const char *method, const char *prefix)
{
	cJSON *j = fp_journal(&fp);
	cr_assert_not_null(j);
	cJSON *found = NULL, *e;
	cJSON_ArrayForEach(e, j) {
		const cJSON *m = cJSON_GetObjectItem(e, "method");
		const cJSON *p = cJSON_GetObjectItem(e, "path");
		if (cJSON_IsString(m) && cJSON_IsString(p) && strcmp(m->valuestring, method) == 0 &&
		    strncmp(p->valuestring, prefix, strlen(prefix)) == 0)
			found = cJSON_GetObjectItem(e, "body");
	}
	cJSON *r = NULL;
	if (cJSON_IsString(found))
		r = cJSON_Parse(found->valuestring);
	else if (found != NULL)
		r = cJSON_Duplicate(found, true);
	cJSON_Delete(j);
	return r;
}

static char *admin_task_status(const char *id)
{
	char path[128], *out = NULL;
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	cr_assert_eq(fp_http(&fp, "GET", path, NULL, NULL, &out), 200);
	cJSON *o = cJSON_Parse(out);
	free(out);
	cJSON *st = cJSON_GetObjectItem(o, "status");
	if (st == NULL)
		st = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "task"), "status");
	cr_assert(cJSON_IsString(st), "no status in /_admin/tasks/%s", id);
	char *r = strdup(st->valuestring);
	cJSON_Delete(o);
	return r;
}

static void expect_status(const char *id, const char *want)
{
	struct mc_call *c = run(mc_call_task_status(api, id));
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	cr_assert_str_eq(mc_call_task_status_value(c), want);
	cr_assert_eq(mc_task_status_terminal(want), mc_task_status_terminal(mc_call_task_status_value(c)));
	mc_call_free(c);
}

/* ---- the life of a task ---- */

Test(api_task, claim_start_status_complete)
{
	register_runtime();
	queue_task(T1, NULL);
	const char *ids[] = { runtime_id };
	struct mc_call *c = run(mc_call_claim_tasks(api, DAEMON, 1, ids, 4));
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	struct mc_claimed cl;
	cr_assert_eq(mc_call_take_claimed(c, &cl), 0);
	cr_assert_eq(cl.n, 1);
	cr_assert_str_eq(cl.v[0].id, T1);
	cr_assert_str_eq(cl.v[0].runtime_id, runtime_id);
	cr_assert_not_null(cl.v[0].token, "the emulator mints a token per task");
	cr_assert(mc_task_token_scoped(cl.v[0].token));
	cr_assert_null(cJSON_GetObjectItem(cl.v[0].task, "auth_token"));
	char *text = cJSON_PrintUnformatted(cl.v[0].task);
	cr_assert_null(strstr(text, "mat_"), "a token left in the task JSON");
	free(text);
	/* the claimed JSON is a task the decoder takes */
	struct mc_task t;
	char err[256];
	cr_assert_eq(mc_task_decode(cl.v[0].task, &t, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(t.agent_id, AGENT);
	mc_task_clear(&t);
	/* moved out: a second take gets nothing */
	struct mc_claimed again;
	cr_assert_eq(mc_call_take_claimed(c, &again), 0);
	cr_assert_eq(again.n, 0);
	mc_call_free(c);
	mc_claimed_clear(&cl);

	cJSON *req = last_body("POST", "/api/daemon/tasks/claim");
	cr_assert_not_null(req);
	cr_assert_str_eq(cJSON_GetObjectItem(req, "daemon_id")->valuestring, DAEMON);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(req, "runtime_ids")), 1);
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(req, "runtime_ids"), 0)->valuestring,
			 runtime_id);
	cr_assert_eq(cJSON_GetObjectItem(req, "max_tasks")->valueint, 4);
	cJSON_Delete(req);

	expect_status(T1, "dispatched");
	run_ok(mc_call_task_prepare_lease(api, runtime_id, T1));
	run_ok(mc_call_task_op(api, MC_TASK_OP_START, T1, NULL));
	expect_status(T1, "running");
	/* a second start is a 400 that names the request */
	c = run(mc_call_task_op(api, MC_TASK_OP_START, T1, NULL));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_HTTP);
	cr_assert_eq(mc_call_status(c), 400);
	cr_assert_str_eq(mc_call_error(c)->message,
			 "POST /api/daemon/tasks/" T1 "/start: 400 start task: no rows in result set");
	cr_assert_not(mc_api_error_is_transient(mc_call_error(c)));
	cr_assert_not(mc_call_task_not_found(c));
	mc_call_free(c);
	run_ok(mc_call_task_op(api, MC_TASK_OP_MESSAGES, T1,
			       "{\"messages\":[{\"seq\":1,\"type\":\"text\",\"content\":\"hi\"}]}"));
	/* session answers 204 No Content: still a success */
	c = run(mc_call_task_op(api, MC_TASK_OP_SESSION, T1, "{\"session_id\":\"s-1\"}"));
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	cr_assert_eq(mc_call_status(c), 204);
	cr_assert_eq(mc_call_task_op_of(c), MC_TASK_OP_SESSION);
	cr_assert_str_eq(mc_call_task_id(c), T1);
	mc_call_free(c);
	run_ok(mc_call_task_op(api, MC_TASK_OP_USAGE, T1,
			       "{\"usage\":[{\"provider\":\"claude\",\"model\":\"m\","
			       "\"input_tokens\":3,\"output_tokens\":4}]}"));
	run_ok(mc_call_task_op(api, MC_TASK_OP_COMPLETE, T1, "{\"output\":\"done\"}"));
	expect_status(T1, "completed");
	char *st = admin_task_status(T1);
	cr_assert_str_eq(st, "completed");
	free(st);
	/* a late complete is a 200 that changes nothing */
	run_ok(mc_call_task_op(api, MC_TASK_OP_COMPLETE, T1, "{\"output\":\"again\"}"));
	/* the body went out exactly as given */
	req = last_body("POST", "/api/daemon/tasks/" T1 "/complete");
	cr_assert_not_null(req);
	cr_assert_str_eq(cJSON_GetObjectItem(req, "output")->valuestring, "again");
	cJSON_Delete(req);
}

Test(api_task, legacy_claim_and_cancel)
{
	register_runtime();
	struct mc_call *c = run(mc_call_claim_runtime_task(api, runtime_id));
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	struct mc_claimed cl;
	cr_assert_eq(mc_call_take_claimed(c, &cl), 0);
	cr_assert_eq(cl.n, 0, "{\"task\":null} is no task");
	mc_call_free(c);
	queue_task(T2, NULL);
	c = run(mc_call_claim_runtime_task(api, runtime_id));
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	cr_assert_eq(mc_call_take_claimed(c, &cl), 0);
	cr_assert_eq(cl.n, 1);
	cr_assert_str_eq(cl.v[0].id, T2);
	cr_assert(mc_task_token_scoped(cl.v[0].token));
	mc_claimed_clear(&cl);
	mc_call_free(c);
	run_ok(mc_call_task_op(api, MC_TASK_OP_START, T2, NULL));
	cr_assert_eq(fp_http(&fp, "POST", "/_admin/tasks/" T2 "/cancel", NULL, NULL, NULL), 200);
	expect_status(T2, "cancelled");
	cr_assert(mc_task_status_terminal("cancelled"));
	run_ok(mc_call_task_op(api, MC_TASK_OP_CANCEL_ACK, T2, NULL));
	cJSON *req = last_body("POST", "/api/daemon/tasks/" T2 "/cancel-ack");
	cr_assert(cJSON_IsObject(req) && cJSON_GetArraySize(req) == 0, "NULL body sends {}");
	cJSON_Delete(req);
	/* deleted: the status call says "task not found" */
	cr_assert_eq(fp_http(&fp, "DELETE", "/_admin/tasks/" T2, NULL, NULL, NULL), 200);
	c = run(mc_call_task_status(api, T2));
	cr_assert_not(mc_call_ok(c));
	cr_assert_eq(mc_call_status(c), 404);
	cr_assert(mc_call_task_not_found(c), "%s", mc_call_error(c)->message);
	cr_assert_null(mc_call_task_status_value(c));
	mc_call_free(c);
}

/* ---- canned answers ---- */

static void fault(const char *method, const char *prefix, int status, const char *body)
{
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "method", method);
	cJSON_AddStringToObject(f, "path_prefix", prefix);
	cJSON_AddNumberToObject(f, "status", status);
	if (body != NULL)
		cJSON_AddStringToObject(f, "body", body);
	char *s = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	cr_assert_eq(fp_fault(&fp, s), 200, "fault %s", s);
	free(s);
}

#define CANNED_TASK(id, tok) \
	"{\"id\":\"" id "\",\"runtime_id\":\"" RT_X "\",\"agent_id\":\"" AGENT "\"," \
	"\"auth_token\":\"" tok "\",\"remote_mcp_daemon_token\":\"mdt_secret\"}"

Test(api_task, claim_takes_every_token)
{
	fault("POST", "/api/daemon/tasks/claim", 200,
	      "{\"tasks\":[" CANNED_TASK(T1, "mat_one") "," CANNED_TASK(T2, "mat_two") ","
	      "{\"id\":\"not-a-uuid\"}]}");
	const char *ids[] = { RT_X };
	struct mc_call *c = run(mc_call_claim_tasks(api, DAEMON, 1, ids, 3));
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	struct mc_claimed cl;
	cr_assert_eq(mc_call_take_claimed(c, &cl), 0);
	mc_call_free(c);
	cr_assert_eq(cl.n, 3);
	const char *want_tok[] = { "mat_one", "mat_two" };
	for (size_t i = 0; i < 2; i++) {
		cr_assert_str_eq(cl.v[i].id, i == 0 ? T1 : T2);
		cr_assert_str_eq(cl.v[i].runtime_id, RT_X);
		cr_assert_str_eq(mc_secret_open(cl.v[i].token), want_tok[i]);
		mc_secret_close(cl.v[i].token);
		cr_assert_null(cJSON_GetObjectItem(cl.v[i].task, "auth_token"));
		cr_assert_null(cJSON_GetObjectItem(cl.v[i].task, "remote_mcp_daemon_token"));
	}
	/* no usable id: still returned, for the caller to log */
	cr_assert_str_eq(cl.v[2].id, "");
	cr_assert_null(cl.v[2].token);
	mc_claimed_clear(&cl);
	mc_claimed_clear(&cl);
}

Test(api_task, claim_decode_errors_name_no_value)
{
	static const struct { const char *body, *want; } v[] = {
		{ "{\"tasks\":[" CANNED_TASK(T1, "mat_leak") ",7]}", "tasks[1]: expected object, got number" },
		{ "{\"tasks\":{}}", "tasks: expected array, got object" },
		{ "{}", "tasks: missing" },
		{ "[]", "expected an object, got array" },
		{ "{\"tasks\":[" CANNED_TASK(T1, "mat_leak") "", "invalid JSON at byte" },
	};
	const char *ids[] = { RT_X };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		fault("POST", "/api/daemon/tasks/claim", 200, v[i].body);
		struct mc_call *c = run(mc_call_claim_tasks(api, DAEMON, 1, ids, 3));
		const struct mc_api_error *e = mc_call_error(c);
		cr_assert_eq(e->kind, MC_API_ERR_DECODE, "%s", v[i].body);
		cr_assert(strstr(e->message, v[i].want) != NULL, "%s: %s", v[i].body, e->message);
		cr_assert(strncmp(e->message, "POST /api/daemon/tasks/claim: ", 30) == 0, "%s",
			  e->message);
		cr_assert_null(strstr(e->message, "mat_"), "%s", e->message);
		struct mc_claimed cl;
		cr_assert_eq(mc_call_take_claimed(c, &cl), -1);
		cr_assert_eq(errno, EINVAL);
		mc_call_free(c);
	}
	/* more than a claim may hold */
	char *big = malloc(64 * 200);
	cr_assert_not_null(big);
	size_t at = (size_t)snprintf(big, 64, "{\"tasks\":[");
	for (int i = 0; i <= MC_CLAIM_MAX_TASKS; i++)
		at += (size_t)snprintf(big + at, 64 * 200 - at, "%s{\"auth_token\":\"mat_%d\"}",
				       i ? "," : "", i);
	snprintf(big + at, 64 * 200 - at, "]}");
	fault("POST", "/api/daemon/tasks/claim", 200, big);
	free(big);
	struct mc_call *c = run(mc_call_claim_tasks(api, DAEMON, 1, ids, 3));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_DECODE);
	cr_assert(strstr(mc_call_error(c)->message, "tasks: 33 tasks, more than the 32") != NULL,
		  "%s", mc_call_error(c)->message);
	mc_call_free(c);
	/* legacy: {"task": 5} */
	fault("POST", "/api/daemon/runtimes/", 200, "{\"task\":5}");
	c = run(mc_call_claim_runtime_task(api, RT_X));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_DECODE);
	cr_assert(strstr(mc_call_error(c)->message, "task: expected object or null, got number"),
		  "%s", mc_call_error(c)->message);
	mc_call_free(c);
}

Test(api_task, http_errors_keep_the_conventions)
{
	fault("POST", "/api/daemon/tasks/" T1 "/complete", 500, "{\"error\":\"tx failed\"}");
	struct mc_call *c = run(mc_call_task_op(api, MC_TASK_OP_COMPLETE, T1, "{\"output\":\"x\"}"));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_HTTP);
	cr_assert_str_eq(mc_call_error(c)->message,
			 "POST /api/daemon/tasks/" T1 "/complete: 500 tx failed");
	cr_assert(mc_api_error_is_transient(mc_call_error(c)));
	mc_call_free(c);
	/* a 404 "not found" (no access) is not "task not found" */
	fault("GET", "/api/daemon/tasks/" T1 "/status", 404, "{\"error\":\"not found\"}");
	c = run(mc_call_task_status(api, T1));
	cr_assert_eq(mc_call_status(c), 404);
	cr_assert_not(mc_call_task_not_found(c));
	mc_call_free(c);
	fault("GET", "/api/daemon/tasks/" T1 "/status", 404, "{\"error\":\"Task Not Found\"}");
	c = run(mc_call_task_status(api, T1));
	cr_assert(mc_call_task_not_found(c));
	mc_call_free(c);
	/* the emulator's own answer for an unknown task */
	c = run(mc_call_task_status(api, MISSING));
	cr_assert(mc_call_task_not_found(c), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	/* a 2xx status answer without a status string */
	fault("GET", "/api/daemon/tasks/" T1 "/status", 200, "{\"status\":3}");
	c = run(mc_call_task_status(api, T1));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_DECODE);
	cr_assert_str_eq(mc_call_error(c)->message, "GET /api/daemon/tasks/" T1
			 "/status: status: expected string, got number");
	cr_assert_null(mc_call_task_status_value(c));
	mc_call_free(c);
}

Test(api_task, constructors_refuse_bad_input)
{
	const char *ids[] = { RT_X };
	const char *empty[] = { "" };
	errno = 0;
	cr_assert_null(mc_call_claim_tasks(api, DAEMON, 0, ids, 1));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mc_call_claim_tasks(api, "", 1, ids, 1));
	cr_assert_null(mc_call_claim_tasks(api, DAEMON, 1, ids, 0));
	cr_assert_null(mc_call_claim_tasks(api, DAEMON, 1, ids, MC_CLAIM_MAX_TASKS + 1));
	cr_assert_null(mc_call_claim_tasks(api, DAEMON, 1, empty, 1));
	cr_assert_null(mc_call_claim_runtime_task(api, ""));
	errno = 0;
	cr_assert_null(mc_call_task_op(api, MC_TASK_OP_START, "../../register", NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mc_call_task_op(api, MC_TASK_OP_COUNT, T1, NULL));
	cr_assert_null(mc_call_task_status(api, "x"));
	cr_assert_null(mc_call_task_prepare_lease(api, "x/y", T1));
	cr_assert_null(mc_call_task_prepare_lease(api, RT_X, "x"));
	cr_assert_str_eq(mc_task_op_name(MC_TASK_OP_CANCEL_ACK), "cancel-ack");
	cr_assert_str_eq(mc_task_op_name(MC_TASK_OP_START), "start");
	cr_assert_eq(fp_journal_count(&fp, NULL, "/api/daemon/tasks"), 0, "nothing was sent");
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(api_task, batch_claim_times_out_after_5s)
{
	/* the api's own timeout is 30 s; the claim's is 5 s */
	cr_assert_eq(fp_fault(&fp, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/tasks/claim\","
			      "\"delay_ms\":25000}"), 200);
	const char *ids[] = { RT_X };
	double t0 = now_s();
	struct mc_call *c = run(mc_call_claim_tasks(api, DAEMON, 1, ids, 1));
	double took = now_s() - t0;
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_TIMEOUT, "%s", mc_call_error(c)->message);
	cr_assert_geq(took, 4.9, "timed out after %.2f s", took);
	cr_assert_lt(took, 20.0, "timed out after %.2f s, not the claim's 5 s", took);
	mc_call_free(c);
}

Test(api_task, claim_answers_may_exceed_the_api_cap)
{
	/* 5 MiB: over the api's 4 MiB default, under MC_CLAIM_MAX_BODY. The
	 * filler is no JSON, so the whole of it was read and then refused. */
	cr_assert_eq(fp_fault(&fp, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/tasks/claim\","
			      "\"status\":200,\"body_size\":5242880}"), 200);
	const char *ids[] = { RT_X };
	struct mc_call *c = run(mc_call_claim_tasks(api, DAEMON, 1, ids, 1));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_DECODE, "%s", mc_call_error(c)->message);
	mc_call_free(c);
	/* the same answer on a status call hits the api's cap */
	cr_assert_eq(fp_fault(&fp, "{\"method\":\"GET\",\"path_prefix\":\"/api/daemon/tasks/\","
			      "\"status\":200,\"body_size\":5242880}"), 200);
	c = run(mc_call_task_status(api, T1));
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_TOO_LARGE, "%s", mc_call_error(c)->message);
	mc_call_free(c);
}
