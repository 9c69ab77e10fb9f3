/* multica-fakeplane: the task endpoints (reference/multica-task-execution.md
 * sections 2 and 7) and the task admin API, through raw HTTP. Each test
 * starts its own emulator (fixture), so they run in parallel. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "tests/support/fakeplane_proc.h"

#define WS_A "11111111-1111-4111-8111-111111111111"
#define WS_X "33333333-3333-4333-8333-333333333333"   /* u1 is no member */
#define R1 "cccccccc-0000-4000-8000-000000000001"     /* WS_A, d1, claude */
#define R2 "cccccccc-0000-4000-8000-000000000002"     /* WS_A, d1, codex */
#define R3 "cccccccc-0000-4000-8000-000000000003"     /* WS_A, d2 */
#define RX "cccccccc-0000-4000-8000-000000000004"     /* WS_X, d1 */
#define AGENT "aaaaaaaa-1111-4111-8111-000000000001"
#define NOPE "99999999-9999-4999-8999-999999999999"

static const char SEED[] =
	"{ \"tokens\": { \"tok-u1\": \"u1\", \"tok-u2\": \"u2\" },"
	"  \"workspaces\": ["
	"    { \"id\": \"" WS_A "\", \"name\": \"Alpha\", \"members\": [\"u1\", \"u2\"] },"
	"    { \"id\": \"" WS_X "\", \"name\": \"Other\", \"members\": [\"u2\"] } ],"
	"  \"runtimes\": ["
	"    { \"id\": \"" R1 "\", \"workspace_id\": \"" WS_A "\", \"daemon_id\": \"d1\","
	"      \"provider\": \"claude\", \"status\": \"online\" },"
	"    { \"id\": \"" R2 "\", \"workspace_id\": \"" WS_A "\", \"daemon_id\": \"d1\","
	"      \"provider\": \"codex\", \"status\": \"online\" },"
	"    { \"id\": \"" R3 "\", \"workspace_id\": \"" WS_A "\", \"daemon_id\": \"d2\","
	"      \"provider\": \"claude\", \"status\": \"online\" },"
	"    { \"id\": \"" RX "\", \"workspace_id\": \"" WS_X "\", \"daemon_id\": \"d1\","
	"      \"provider\": \"claude\", \"status\": \"online\" } ] }";

static const char *const AUTH[] = { "Authorization: Bearer tok-u1", NULL };

static struct fp_proc fp;

static void setup(void)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0, "fakeplane did not start");
}

static void teardown(void)
{
	if (fp.pid > 0)
		fp_stop(&fp);
}

TestSuite(fp_tasks, .init = setup, .fini = teardown, .timeout = 60.0);
TestSuite(fp_tasks_redeliver, .fini = teardown, .timeout = 60.0);

/* ---- helpers ---- */

/* Sends a request, asserts the status, returns the parsed body (NULL when
 * it is not JSON); the caller cJSON_Delete()s. */
static cJSON *call(const char *method, const char *path, const char *body,
		   const char *const *hdrs, long want)
{
	char *text = NULL;
	long st = fp_http(&fp, method, path, body, hdrs, &text);
	cr_assert_eq(st, want, "%s %s: status %ld, want %ld, body %s", method, path, st, want,
		     text ? text : "(none)");
	cJSON *j = text ? cJSON_Parse(text) : NULL;
	free(text);
	return j;
}

/* Asserts the status and that the body is exactly {"error":msg}. */
static void call_error(const char *method, const char *path, const char *body, long want,
		       const char *msg)
{
	cJSON *j = call(method, path, body, AUTH, want);
	cr_assert_not_null(j, "%s %s: error body is not JSON", method, path);
	cr_assert_eq(cJSON_GetArraySize(j), 1);
	const char *got = cJSON_GetStringValue(cJSON_GetObjectItem(j, "error"));
	cr_assert_not_null(got);
	cr_assert_str_eq(got, msg, "%s %s", method, path);
	cJSON_Delete(j);
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);
	if (cJSON_IsNull(v))
		return "(null)";
	return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);
	cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
	return v->valuedouble;
}

/* "/api/daemon/tasks/ID/OP" in a rotating static buffer. */
static const char *tpath(const char *id, const char *op)
{
	static char bufs[4][256];
	static int k;
	char *b = bufs[k++ % 4];
	snprintf(b, sizeof bufs[0], "/api/daemon/tasks/%s/%s", id, op);
	return b;
}

/* Queues a task for AGENT on runtime rt with extra JSON members (may be
 * ""); copies its id into id. */
static void add_task(const char *rt, const char *extra, char id[64])
{
	size_t n = strlen(extra) + 512;
	char *body = malloc(n);
	cr_assert_not_null(body);
	snprintf(body, n,
		 "{\"runtime_id\":\"%s\",\"agent\":{\"id\":\"" AGENT "\",\"name\":\"Ada\","
		 "\"instructions\":\"be brief\",\"custom_env\":{\"K\":\"v\"},"
		 "\"custom_args\":[\"--x\"],\"model\":\"m1\"}%s%s}",
		 rt, extra[0] ? "," : "", extra);
	cJSON *t = call("POST", "/_admin/tasks", body, NULL, 200);
	free(body);
	cr_assert_str_eq(str(t, "status"), "queued");
	snprintf(id, 64, "%s", str(t, "id"));
	cJSON_Delete(t);
}

/* A batch claim by daemon d for the runtime ids (a JSON array text). */
static cJSON *claim(const char *d, const char *rts, int max)
{
	size_t n = strlen(rts) + 256;
	char *body = malloc(n);
	cr_assert_not_null(body);
	snprintf(body, n, "{\"daemon_id\":\"%s\",\"runtime_ids\":%s,\"max_tasks\":%d}",
		 d, rts, max);
	cJSON *o = call("POST", "/api/daemon/tasks/claim", body, AUTH, 200);
	free(body);
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(o, "tasks")));
	return o;
}

static int claim_count(const char *d, const char *rts, int max)
{
	cJSON *o = claim(d, rts, max);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, "tasks"));
	cJSON_Delete(o);
	return n;
}

/* GET /_admin/tasks/{id}. */
static cJSON *detail(const char *id)
{
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	return call("GET", path, NULL, NULL, 200);
}

/* The status the daemon sees. */
static void assert_task_status(const char *id, const char *want)
{
	cJSON *o = call("GET", tpath(id, "status"), NULL, AUTH, 200);
	cr_assert_str_eq(str(o, "status"), want, "task %s", id);
	cr_assert_eq(cJSON_GetArraySize(o), 1);
	cJSON_Delete(o);
}

static void post_ok(const char *id, const char *op, const char *body)
{
	cJSON *o = call("POST", tpath(id, op), body, AUTH, 200);
	cr_assert_str_eq(str(o, "status"), "ok", "%s", op);
	cJSON_Delete(o);
}

/* POSTs a terminal call; asserts 200 and the row status answered. */
static void terminal(const char *id, const char *op, const char *body, const char *want)
{
	cJSON *o = call("POST", tpath(id, op), body, AUTH, 200);
	cr_assert_str_eq(str(o, "status"), want, "%s answered %s", op, str(o, "status"));
	cr_assert_str_eq(str(o, "id"), id);
	cJSON_Delete(o);
}

/* Claims exactly the one queued task of R1 and starts it. */
static void claim_one(const char *id, bool start)
{
	cJSON *o = claim("d1", "[\"" R1 "\"]", 1);
	cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tasks"), 0);
	cr_assert_not_null(t);
	cr_assert_str_eq(str(t, "id"), id);
	cJSON_Delete(o);
	if (start)
		terminal(id, "start", "{}", "running");
}

/* The ops of the task's call log, joined by ",". */
static void call_ops(const cJSON *d, char *out, size_t n)
{
	out[0] = '\0';
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(d, "calls")) {
		if (out[0] != '\0')
			strlcat(out, ",", n);
		strlcat(out, str(c, "op"), n);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- claim ---- */

Test(fp_tasks, claim_validation_table)
{
	char id[64];
	add_task(R1, "", id);
	const char *p = "/api/daemon/tasks/claim";
	call_error("POST", p, "{nope", 400, "invalid request body");
	call_error("POST", p, "{\"daemon_id\":7}", 400, "invalid request body");
	call_error("POST", p, "{\"daemon_id\":\"d1\",\"runtime_ids\":\"x\"}", 400,
		   "invalid request body");
	call_error("POST", p, "{\"daemon_id\":\"d1\",\"max_tasks\":1.5}", 400,
		   "invalid request body");
	call_error("POST", p, "{\"daemon_id\":\"d1\",\"max_tasks\":\"2\"}", 400,
		   "invalid request body");
	call_error("POST", p, "{\"daemon_id\":\"\"}", 400, "daemon_id is required");
	call_error("POST", p, "{\"daemon_id\":\"  \",\"max_tasks\":-1}", 400,
		   "daemon_id is required");
	call_error("POST", p, "{\"daemon_id\":\"d1\",\"max_tasks\":-1}", 400,
		   "max_tasks must not be negative");
	cJSON *o = call("POST", p, "{\"daemon_id\":\"d1\",\"runtime_ids\":[\"" R1 "\"]}",
			AUTH, 200);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "tasks")), 0, "max_tasks 0");
	cJSON_Delete(o);
	cr_assert_eq(claim_count("d1", "[\"" R1 "\"]", 0), 0);
	cJSON *none = call("POST", p, "{}", NULL, 401);
	cJSON_Delete(none);
	assert_task_status(id, "queued");
	/* The alias claims as well. */
	o = call("POST", "/api/daemon/claim",
		 "{\"daemon_id\":\"d1\",\"runtime_ids\":[\"" R1 "\"],\"max_tasks\":1}", AUTH, 200);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "tasks")), 1);
	cJSON_Delete(o);
	assert_task_status(id, "dispatched");
}

Test(fp_tasks, claim_dispatches_with_fresh_tokens)
{
	char ids[3][64];
	add_task(R1, "\"issue_id\":\"i-1\",\"trigger_comment_id\":\"c-1\","
		 "\"repos\":[{\"url\":\"https://x/r.git\"}]", ids[0]);
	add_task(R2, "\"chat_session_id\":\"s-1\",\"chat_message\":\"hi\"", ids[1]);
	add_task(R1, "\"prior_session_id\":\"ps\",\"prior_work_dir\":\"/w\"", ids[2]);
	cJSON *o = claim("d1", "[\"" R2 "\",\"" R1 "\"]", 10);
	cJSON *tasks = cJSON_GetObjectItem(o, "tasks");
	cr_assert_eq(cJSON_GetArraySize(tasks), 3);
	const char *tokens[3];
	for (int i = 0; i < 3; i++) {
		cJSON *t = cJSON_GetArrayItem(tasks, i);
		cr_assert_str_eq(str(t, "id"), ids[i], "creation order");
		cr_assert_str_eq(str(t, "status"), "dispatched");
		cr_assert_str_eq(str(t, "agent_id"), AGENT);
		cr_assert_str_eq(str(t, "workspace_id"), WS_A);
		tokens[i] = str(t, "auth_token");
		cr_assert(strncmp(tokens[i], "mat_", 4) == 0 && strlen(tokens[i]) > 20,
			  "token %s", tokens[i]);
		cJSON *dc = cJSON_GetObjectItem(t, "delivered_comment_ids");
		cr_assert(cJSON_IsArray(dc) && cJSON_GetArraySize(dc) == 0);
		cJSON *agent = cJSON_GetObjectItem(t, "agent");
		cr_assert_str_eq(str(agent, "name"), "Ada");
		cr_assert_str_eq(str(agent, "instructions"), "be brief");
		cr_assert_str_eq(str(agent, "model"), "m1");
		cr_assert_str_eq(str(cJSON_GetObjectItem(agent, "custom_env"), "K"), "v");
		cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(agent, "custom_args")), 1);
	}
	cr_assert_str_neq(tokens[0], tokens[1]);
	cr_assert_str_neq(tokens[1], tokens[2]);
	cr_assert_str_neq(tokens[0], tokens[2]);
	cJSON *t0 = cJSON_GetArrayItem(tasks, 0), *t1 = cJSON_GetArrayItem(tasks, 1);
	cJSON *t2 = cJSON_GetArrayItem(tasks, 2);
	cr_assert_str_eq(str(t0, "issue_id"), "i-1");
	cr_assert_str_eq(str(t0, "trigger_comment_id"), "c-1");
	cr_assert_str_eq(str(cJSON_GetArrayItem(cJSON_GetObjectItem(t0, "repos"), 0), "url"),
			 "https://x/r.git");
	cr_assert_str_eq(str(t1, "runtime_id"), R2);
	cr_assert_str_eq(str(t1, "chat_message"), "hi");
	cr_assert_str_eq(str(t1, "issue_id"), "");
	cr_assert_str_eq(str(t2, "prior_session_id"), "ps");
	cr_assert_str_eq(str(t2, "prior_work_dir"), "/w");
	/* The admin view keeps the token it issued, for MULTICA_TOKEN checks. */
	cJSON *d = detail(ids[1]);
	cr_assert_str_eq(str(d, "status"), "dispatched");
	cr_assert_str_eq(str(d, "auth_token"), tokens[1]);
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "tokens"), 0)->valuestring,
			 tokens[1]);
	cr_assert_str_neq(str(d, "prepare_lease_expires_at"), "(null)");
	cJSON_Delete(d);
	cJSON_Delete(o);
	cr_assert_eq(claim_count("d1", "[\"" R1 "\",\"" R2 "\"]", 10), 0, "claimed twice");
}

Test(fp_tasks, claim_caps_at_max_tasks_and_32)
{
	char id[64];
	for (int i = 0; i < 40; i++)
		add_task(R1, "", id);
	cr_assert_eq(claim_count("d1", "[\"" R1 "\"]", 5), 5);
	cr_assert_eq(claim_count("d1", "[\"" R1 "\"]", 100), 32);
	cr_assert_eq(claim_count("d1", "[\"" R1 "\"]", 100), 3);
	cJSON *s = fp_state(&fp);
	int dispatched = 0;
	cJSON *t;
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(s, "tasks"))
		dispatched += strcmp(str(t, "status"), "dispatched") == 0;
	cr_assert_eq(dispatched, 40);
	cJSON_Delete(s);
}

Test(fp_tasks, claim_skips_other_daemons_and_foreign_runtimes)
{
	char mine[64], other_daemon[64], foreign[64], unlisted[64];
	add_task(R3, "", other_daemon);
	add_task(RX, "", foreign);
	add_task(R2, "", unlisted);
	add_task(R1, "", mine);
	cJSON *o = claim("d1", "[\"" R3 "\",\"" RX "\",\"" NOPE "\",\"junk\",null,\"" R1 "\"]", 10);
	cJSON *tasks = cJSON_GetObjectItem(o, "tasks");
	cr_assert_eq(cJSON_GetArraySize(tasks), 1);
	cr_assert_str_eq(str(cJSON_GetArrayItem(tasks, 0), "id"), mine);
	cJSON_Delete(o);
	assert_task_status(other_daemon, "queued");
	assert_task_status(unlisted, "queued");
	cJSON *d = detail(foreign);
	cr_assert_str_eq(str(d, "status"), "queued");
	cJSON_Delete(d);
	cr_assert_eq(claim_count("d2", "[\"" R3 "\"]", 10), 1, "its own daemon claims it");
}

Test(fp_tasks, claim_reads_every_listed_runtime)
{
	/* A host with many workspaces lists many runtime ids in one claim. */
	char id[64];
	add_task(R1, "", id);
	size_t cap = 400 * 40 + 256;
	char *rts = malloc(cap);
	cr_assert_not_null(rts);
	strlcpy(rts, "[", cap);
	for (int i = 0; i < 400; i++) {
		char one[48];
		snprintf(one, sizeof one, "\"dddddddd-0000-4000-8000-%012d\",", i);
		strlcat(rts, one, cap);
	}
	strlcat(rts, "\"" R1 "\"]", cap);
	cJSON *o = claim("d1", rts, 4);
	free(rts);
	cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tasks"), 0);
	cr_assert_not_null(t, "the last listed runtime was not read");
	cr_assert_str_eq(str(t, "id"), id);
	cJSON_Delete(o);
}

Test(fp_tasks, legacy_claim)
{
	const char *p = "/api/daemon/runtimes/" R1 "/tasks/claim";
	cJSON *o = call("POST", p, "{}", AUTH, 200);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "task")), "no task: null");
	cJSON_Delete(o);
	char a[64], b[64];
	add_task(R1, "", a);
	add_task(R1, "", b);
	o = call("POST", p, "{}", AUTH, 200);
	cJSON *t = cJSON_GetObjectItem(o, "task");
	cr_assert_str_eq(str(t, "id"), a);
	cr_assert_str_eq(str(t, "status"), "dispatched");
	cr_assert(strncmp(str(t, "auth_token"), "mat_", 4) == 0);
	cJSON_Delete(o);
	assert_task_status(b, "queued");
	call_error("POST", "/api/daemon/runtimes/nope/tasks/claim", "{}", 400,
		   "invalid runtime_id");
	call_error("POST", "/api/daemon/runtimes/" NOPE "/tasks/claim", "{}", 404,
		   "runtime not found");
	call_error("POST", "/api/daemon/runtimes/" RX "/tasks/claim", "{}", 404, "not found");
}

/* ---- transitions ---- */

Test(fp_tasks, start_complete_and_late_calls)
{
	char id[64], ops[512];
	add_task(R1, "", id);
	call_error("POST", tpath(id, "start"), "{}", 400, "start task: no rows in result set");
	claim_one(id, true);
	call_error("POST", tpath(id, "start"), "{}", 400, "start task: no rows in result set");
	assert_task_status(id, "running");
	terminal(id, "complete", "{\"output\":\"done\",\"session_id\":\"s1\",\"work_dir\":\"/w\"}",
		 "completed");
	assert_task_status(id, "completed");
	/* Late and duplicate calls: 200 with the row as it is. */
	terminal(id, "complete", "{\"output\":\"again\"}", "completed");
	terminal(id, "fail", "{\"error\":\"late\"}", "completed");
	call_error("POST", tpath(id, "complete"), "[1", 400, "invalid request body");
	cJSON *d = detail(id);
	cr_assert_str_eq(str(cJSON_GetObjectItem(d, "result"), "output"), "done");
	cr_assert_str_eq(str(d, "session_id"), "s1");
	cr_assert_str_eq(str(d, "work_dir"), "/w");
	cr_assert_str_eq(str(d, "error"), "(null)");
	cr_assert_str_neq(str(d, "completed_at"), "(null)");
	call_ops(d, ops, sizeof ops);
	cr_assert_str_eq(ops, "start,claim,start,start,status,complete,status,complete,fail,"
			 "complete");
	cJSON *counts = cJSON_GetObjectItem(d, "counts");
	cr_assert_eq(num(counts, "complete"), 3);
	cr_assert_eq(num(counts, "fail"), 1);
	cr_assert_eq(num(counts, "start"), 3);
	cJSON *calls = cJSON_GetObjectItem(d, "calls");
	cJSON *first_complete = cJSON_GetArrayItem(calls, 5);
	cr_assert_eq(num(first_complete, "status"), 200);
	cr_assert_str_eq(str(cJSON_GetObjectItem(first_complete, "body"), "output"), "done");
	cr_assert_eq(num(cJSON_GetArrayItem(calls, 3), "status"), 400, "the refused start");
	cJSON_Delete(d);
	/* /_admin/state shows the counters as well. */
	cJSON *s = fp_state(&fp);
	cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "tasks"), 0);
	cr_assert_eq(num(cJSON_GetObjectItem(row, "counts"), "complete"), 3);
	cr_assert_eq(num(cJSON_GetObjectItem(row, "counts"), "cancel-ack"), 0);
	cJSON_Delete(s);
}

Test(fp_tasks, complete_on_dispatched_is_a_noop_fail_is_not)
{
	char id[64];
	add_task(R1, "", id);
	claim_one(id, false);
	terminal(id, "complete", "{\"output\":\"x\"}", "dispatched");
	assert_task_status(id, "dispatched");
	terminal(id, "fail", "{\"error\":\"boom\"}", "failed");
	cJSON *d = detail(id);
	cr_assert_str_eq(str(d, "failure_reason"), "agent_error", "default reason");
	cr_assert_str_eq(str(d, "error"), "boom");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(d, "result")));
	cJSON_Delete(d);
}

Test(fp_tasks, fail_from_running_then_idempotent)
{
	char id[64];
	add_task(R1, "", id);
	claim_one(id, true);
	terminal(id, "fail", "{\"error\":\"slow\",\"failure_reason\":\"timeout\","
		 "\"session_id\":\"s9\"}", "failed");
	terminal(id, "fail", "{\"error\":\"other\",\"failure_reason\":\"agent_error\"}", "failed");
	terminal(id, "complete", "{\"output\":\"late\"}", "failed");
	cJSON *d = detail(id);
	cr_assert_str_eq(str(d, "failure_reason"), "timeout");
	cr_assert_str_eq(str(d, "error"), "slow");
	cr_assert_str_eq(str(d, "session_id"), "s9");
	cr_assert_eq(num(cJSON_GetObjectItem(d, "counts"), "fail"), 2);
	cJSON_Delete(d);
}

Test(fp_tasks, task_access_errors_and_delete)
{
	char id[64], foreign[64];
	add_task(R1, "", id);
	add_task(RX, "", foreign);
	call_error("GET", tpath("nope", "status"), NULL, 400, "invalid task_id");
	call_error("GET", tpath(NOPE, "status"), NULL, 404, "task not found");
	call_error("POST", tpath(NOPE, "complete"), "{}", 404, "task not found");
	call_error("GET", tpath(foreign, "status"), NULL, 404, "not found");
	claim_one(id, true);
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	cJSON_Delete(call("DELETE", path, NULL, NULL, 200));
	call_error("GET", tpath(id, "status"), NULL, 404, "task not found");
	call_error("POST", tpath(id, "complete"), "{\"output\":\"\"}", 404, "task not found");
	call_error("POST", tpath(id, "cancel-ack"), "{}", 404, "task not found");
	cJSON_Delete(call("GET", path, NULL, NULL, 404));
	cJSON_Delete(call("DELETE", path, NULL, NULL, 404));
}

Test(fp_tasks, cancel_then_cancel_ack)
{
	char id[64], done[64], path[128];
	add_task(R1, "", id);
	claim_one(id, true);
	snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", id);
	cJSON *o = call("POST", path, NULL, NULL, 200);
	cr_assert_str_eq(str(o, "status"), "cancelled");
	cJSON_Delete(o);
	assert_task_status(id, "cancelled");
	terminal(id, "complete", "{\"output\":\"late\"}", "cancelled");
	terminal(id, "fail", "{\"error\":\"late\"}", "cancelled");
	post_ok(id, "cancel-ack", "{\"error_message\":\"stopped\",\"failure_reason\":\"cancelled\"}");
	post_ok(id, "cancel-ack", "{\"error_message\":\"second\"}");
	post_ok(id, "cancel-ack", "not json");   /* decode errors are ignored */
	cJSON *d = detail(id);
	cr_assert_str_eq(str(d, "error"), "stopped", "only an empty column is filled");
	cr_assert_str_eq(str(d, "failure_reason"), "cancelled");
	cr_assert_eq(num(cJSON_GetObjectItem(d, "counts"), "cancel-ack"), 3);
	cJSON_Delete(d);
	/* A completed task is not cancelled any more. */
	add_task(R1, "", done);
	claim_one(done, true);
	terminal(done, "complete", "{\"output\":\"\"}", "completed");
	snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", done);
	o = call("POST", path, NULL, NULL, 200);
	cr_assert_str_eq(str(o, "status"), "completed");
	cJSON_Delete(o);
}

Test(fp_tasks, patch_simulates_the_sweeper)
{
	char id[64], path[128];
	add_task(R1, "", id);
	claim_one(id, true);
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	cJSON *o = call("PATCH", path, "{\"status\":\"failed\",\"failure_reason\":\"timeout\"}",
			NULL, 200);
	cr_assert_str_eq(str(o, "status"), "failed");
	cr_assert_str_neq(str(o, "completed_at"), "(null)");
	cJSON_Delete(o);
	cJSON_Delete(call("PATCH", path, "{\"status\":\"bogus\"}", NULL, 400));
	cJSON_Delete(call("PATCH", path, "{\"nope\":1}", NULL, 400));
	assert_task_status(id, "failed");
	terminal(id, "complete", "{\"output\":\"x\"}", "failed");
	o = call("GET", "/_admin/tasks", NULL, NULL, 200);
	cr_assert_eq(cJSON_GetArraySize(o), 1);
	cr_assert_str_eq(str(cJSON_GetArrayItem(o, 0), "failure_reason"), "timeout");
	cJSON_Delete(o);
}

/* ---- what the daemon sends while a task runs ---- */

Test(fp_tasks, messages_progress_session_usage_recorded)
{
	char id[64], ops[512];
	add_task(R1, "", id);
	post_ok(NOPE, "messages", "{\"messages\":[]}");   /* before any access check */
	call_error("POST", tpath(NOPE, "messages"), "{\"messages\":[{\"seq\":1}]}", 404,
		   "task not found");
	call_error("POST", tpath(id, "messages"), "{\"messages\":[{\"seq\":\"1\"}]}", 400,
		   "invalid request body");
	call_error("POST", tpath(NOPE, "progress"), "{\"step\":\"x\"}", 400,
		   "invalid request body");
	claim_one(id, true);
	post_ok(id, "messages",
		"{\"messages\":[{\"seq\":1,\"type\":\"text\",\"content\":\"a\\u0000b\"},"
		"{\"seq\":2,\"type\":\"tool_use\",\"tool\":\"Bash\",\"input\":{\"cmd\":\"ls\"}},"
		"{\"seq\":3,\"type\":\"tool_result\",\"output\":\"bad \xff" " byte\"}]}");
	post_ok(id, "messages", "{\"messages\":[{\"seq\":4,\"type\":\"text\",\"content\":\"z\"}]}");
	post_ok(id, "progress", "{\"summary\":\"half\",\"step\":1,\"total\":2}");
	call_error("POST", tpath(id, "session"), "{}", 400, "session_id or work_dir required");
	call_error("POST", tpath(id, "session"), "{\"session_id\":1}", 400,
		   "invalid request body");
	cJSON_Delete(call("POST", tpath(id, "session"), "{\"session_id\":\"sess-1\"}", AUTH, 204));
	post_ok(id, "usage", "{\"usage\":[{\"provider\":\"Anthropic\",\"model\":\"m\","
		"\"input_tokens\":1,\"output_tokens\":2,\"cost_usd_ticks\":0}]}");
	post_ok(id, "usage", "{\"usage\":[{\"provider\":\"anthropic\",\"model\":\"m\","
		"\"input_tokens\":10,\"output_tokens\":20,\"cost_usd_ticks\":5},"
		"{\"provider\":\"\",\"model\":\"n\",\"input_tokens\":3}]}");
	call_error("POST", tpath(id, "usage"), "{\"usage\":[{\"input_tokens\":\"x\"}]}", 400,
		   "invalid request body");

	cJSON *d = detail(id);
	cJSON *msgs = cJSON_GetObjectItem(d, "messages");
	cr_assert_eq(cJSON_GetArraySize(msgs), 4);
	cJSON *m0 = cJSON_GetArrayItem(msgs, 0), *m1 = cJSON_GetArrayItem(msgs, 1);
	cr_assert_eq(num(m0, "seq"), 1);
	cr_assert_str_eq(str(m0, "content"), "ab", "NUL stripped, the rest kept");
	cr_assert_str_eq(str(m1, "tool"), "Bash");
	cr_assert_str_eq(str(cJSON_GetObjectItem(m1, "input"), "cmd"), "ls");
	cr_assert_str_eq(str(cJSON_GetArrayItem(msgs, 2), "output"), "bad \xef\xbf\xbd byte");
	cr_assert_eq(num(cJSON_GetArrayItem(msgs, 3), "seq"), 4);
	cr_assert_str_eq(str(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "progress"), 0), "summary"),
			 "half");
	cJSON *sess = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "sessions"), 0);
	cr_assert_str_eq(str(sess, "session_id"), "sess-1");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(sess, "applied")));
	cr_assert_str_eq(str(d, "session_id"), "sess-1");
	cJSON *usage = cJSON_GetObjectItem(d, "usage");
	cr_assert_eq(cJSON_GetArraySize(usage), 2, "upserted by provider+model");
	cJSON *u0 = cJSON_GetArrayItem(usage, 0), *u1 = cJSON_GetArrayItem(usage, 1);
	cr_assert_str_eq(str(u0, "provider"), "anthropic");
	cr_assert_eq(num(u0, "input_tokens"), 10);
	cr_assert_eq(num(u0, "cost_usd_ticks"), 5);
	cr_assert_str_eq(str(u1, "provider"), "claude", "empty provider: the runtime's");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(u1, "cost_usd_ticks")));
	call_ops(d, ops, sizeof ops);
	cr_assert_str_eq(ops, "claim,start,messages,messages,progress,session,session,session,"
			 "usage,usage,usage");
	cJSON_Delete(d);
	/* Late messages for a terminal task are still taken. */
	terminal(id, "complete", "{\"output\":\"\"}", "completed");
	post_ok(id, "messages", "{\"messages\":[{\"seq\":5,\"type\":\"text\",\"content\":\"late\"}]}");
	d = detail(id);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "messages")), 5);
	cJSON_Delete(d);
}

Test(fp_tasks, huge_task_fields_reach_the_claim)
{
	size_t n = 3u << 20;   /* larger than a daemon request may be */
	char *big = malloc(n + 64);
	cr_assert_not_null(big);
	memcpy(big, "\"chat_message\":\"", 16);
	memset(big + 16, 'q', n);
	memcpy(big + 16 + n, "\"", 2);
	char id[64];
	add_task(R2, big, id);
	free(big);
	cJSON *o = claim("d1", "[\"" R2 "\"]", 1);
	cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tasks"), 0);
	cr_assert_eq(strlen(str(t, "chat_message")), n);
	cJSON_Delete(o);
}

Test(fp_tasks, prepare_lease_and_wait_local_directory)
{
	char id[64];
	add_task(R1, "", id);
	char p[256];
	snprintf(p, sizeof p, "/api/daemon/runtimes/%s/tasks/%s/prepare-lease", R1, id);
	call_error("POST", p, "{}", 400, "extend task prepare lease: no rows in result set");
	claim_one(id, false);
	cJSON *o = call("POST", p, "{}", AUTH, 200);
	cr_assert_str_eq(str(o, "id"), id);
	cJSON_Delete(o);
	char wrong[256];
	snprintf(wrong, sizeof wrong, "/api/daemon/runtimes/%s/tasks/%s/prepare-lease", R2, id);
	call_error("POST", wrong, "{}", 404, "task not found");
	snprintf(wrong, sizeof wrong, "/api/daemon/runtimes/%s/tasks/nope/prepare-lease", R1);
	call_error("POST", wrong, "{}", 400, "invalid task_id");
	terminal(id, "wait-local-directory", "{\"reason\":\"busy\"}", "waiting_local_directory");
	call_error("POST", tpath(id, "wait-local-directory"), "{}", 400,
		   "mark task waiting_local_directory: no rows in result set");
	terminal(id, "start", "{}", "running");
	call_error("POST", p, "{}", 400, "extend task prepare lease: no rows in result set");
	cJSON *d = detail(id);
	cr_assert_str_eq(str(d, "prepare_lease_expires_at"), "(null)");
	/* Refused ones count too: before the claim, the wrong runtime, after start. */
	cr_assert_eq(num(cJSON_GetObjectItem(d, "counts"), "prepare-lease"), 4);
	cJSON_Delete(d);
}

Test(fp_tasks, recover_orphans_fails_in_flight_tasks)
{
	char queued[64], dispatched[64], running[64], done[64], other[64];
	add_task(R1, "", done);
	claim_one(done, true);
	terminal(done, "complete", "{\"output\":\"\"}", "completed");
	add_task(R1, "", running);
	claim_one(running, true);
	add_task(R1, "", dispatched);
	claim_one(dispatched, false);
	add_task(R1, "", queued);
	add_task(R2, "", other);
	cr_assert_eq(claim_count("d1", "[\"" R2 "\"]", 1), 1);
	cJSON *o = call("POST", "/api/daemon/runtimes/" R1 "/recover-orphans", "{}", AUTH, 200);
	cr_assert_eq(num(o, "orphaned"), 2);
	cJSON_Delete(o);
	assert_task_status(done, "completed");
	assert_task_status(running, "failed");
	assert_task_status(dispatched, "failed");
	assert_task_status(queued, "queued");
	assert_task_status(other, "dispatched");
	cJSON *d = detail(running);
	cr_assert_str_eq(str(d, "failure_reason"), "runtime_recovery");
	cr_assert_str_eq(str(d, "error"), "daemon restarted while task was in flight");
	char ops[256];
	call_ops(d, ops, sizeof ops);
	cr_assert_str_eq(ops, "claim,start,recover-orphans,status");
	cJSON_Delete(d);
	terminal(running, "complete", "{\"output\":\"\"}", "failed");
}

Test(fp_tasks, fault_on_complete_seen_by_client_and_journal)
{
	char id[64], fault[512];
	add_task(R1, "", id);
	claim_one(id, true);
	snprintf(fault, sizeof fault,
		 "{\"method\":\"POST\",\"path_prefix\":\"%s\",\"status\":502,"
		 "\"body\":\"{\\\"error\\\":\\\"bad gateway\\\"}\",\"count\":2}",
		 tpath(id, "complete"));
	cr_assert_eq(fp_fault(&fp, fault), 200);
	const char *body = "{\"output\":\"ok\"}";
	cJSON_Delete(call("POST", tpath(id, "complete"), body, AUTH, 502));
	assert_task_status(id, "running");
	cJSON_Delete(call("POST", tpath(id, "complete"), body, AUTH, 502));
	terminal(id, "complete", body, "completed");
	/* A fault on the status poll does not touch the row either. */
	snprintf(fault, sizeof fault, "{\"path_prefix\":\"%s\",\"status\":500,\"count\":1}",
		 tpath(id, "status"));
	cr_assert_eq(fp_fault(&fp, fault), 200);
	cJSON_Delete(call("GET", tpath(id, "status"), NULL, AUTH, 500));
	assert_task_status(id, "completed");
	cJSON *d = detail(id);
	cr_assert_eq(num(cJSON_GetObjectItem(d, "counts"), "complete"), 1,
		     "faulted calls never reach the row");
	int completes = 0, faulted = 0;
	cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(d, "journal")) {
		if (strstr(str(e, "path"), "/complete") == NULL)
			continue;
		completes++;
		faulted += cJSON_IsTrue(cJSON_GetObjectItem(e, "fault"));
		cr_assert_eq(num(e, "status"), completes <= 2 ? 502 : 200);
	}
	cr_assert_eq(completes, 3);
	cr_assert_eq(faulted, 2);
	cJSON_Delete(d);
}

Test(fp_tasks, old_admin_form_still_works)
{
	cJSON *o = call("POST", "/_admin/tasks",
			"{\"id\":\"bbbbbbbb-0000-4000-8000-000000000001\",\"runtime_id\":\"" R1 "\","
			"\"status\":\"running\"}", NULL, 200);
	cr_assert_str_eq(str(o, "status"), "running");
	cr_assert_str_eq(str(o, "agent_id"), "(null)");
	cJSON_Delete(o);
	cJSON_Delete(call("POST", "/_admin/tasks",
			  "{\"id\":\"bbbbbbbb-0000-4000-8000-000000000001\",\"runtime_id\":\"" R1
			  "\"}", NULL, 409));
	cJSON_Delete(call("POST", "/_admin/tasks", "{\"status\":\"queued\"}", NULL, 400));
	cJSON_Delete(call("POST", "/_admin/tasks",
			  "{\"runtime_id\":\"" R1 "\",\"status\":\"odd\"}", NULL, 400));
	cJSON_Delete(call("POST", "/_admin/tasks",
			  "{\"runtime_id\":\"" R1 "\",\"agent\":{\"name\":\"x\"}}", NULL, 400));
	assert_task_status("bbbbbbbb-0000-4000-8000-000000000001", "running");
	terminal("bbbbbbbb-0000-4000-8000-000000000001", "complete", "{\"output\":\"\"}",
		 "completed");
}

/* ---- re-delivery of a claim whose answer was lost ---- */

Test(fp_tasks_redeliver, stale_dispatched_task_is_claimed_again)
{
	static const char *const args[] = { "--redeliver-after", "1500ms", "--prepare-lease",
					    "200ms", NULL };
	cr_assert_eq(fp_start(&fp, SEED, args), 0, "fakeplane did not start");
	char id[64], started[64];
	add_task(R1, "", id);
	add_task(R2, "", started);
	int64_t before = now_ms();   /* the dispatch comes after this */
	cJSON *o = claim("d1", "[\"" R1 "\",\"" R2 "\"]", 5);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "tasks")), 2);
	char *tok1 = strdup(str(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tasks"), 0),
				"auth_token"));
	cJSON_Delete(o);
	terminal(started, "start", "{}", "running");
	cr_assert_eq(claim_count("d1", "[\"" R1 "\",\"" R2 "\"]", 5), 0, "not yet stale");
	/* Wait for the window; a broken emulator never re-delivers. */
	cJSON *t = NULL;
	while (t == NULL && now_ms() - before < 20000) {
		sleep_ms(100);
		o = claim("d1", "[\"" R1 "\",\"" R2 "\"]", 5);
		cJSON *tasks = cJSON_GetObjectItem(o, "tasks");
		cr_assert_leq(cJSON_GetArraySize(tasks), 1, "a started task is never re-delivered");
		t = cJSON_DetachItemFromArray(tasks, 0);
		cJSON_Delete(o);
	}
	cr_assert_not_null(t, "never re-delivered");
	cr_assert_geq(now_ms() - before, 1500, "re-delivered before the window");
	cr_assert_str_eq(str(t, "id"), id);
	cr_assert_str_eq(str(t, "status"), "dispatched");
	cr_assert(strncmp(str(t, "auth_token"), "mat_", 4) == 0);
	cr_assert_str_neq(str(t, "auth_token"), tok1, "a fresh token");
	cJSON *d = detail(id);
	cJSON *toks = cJSON_GetObjectItem(d, "tokens");
	cr_assert_eq(cJSON_GetArraySize(toks), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(toks, 1)->valuestring, str(t, "auth_token"));
	cr_assert_eq(num(cJSON_GetObjectItem(d, "counts"), "claim"), 2);
	cJSON_Delete(d);
	cJSON_Delete(t);
	free(tok1);
	assert_task_status(started, "running");
}

/* ---- the workspace's repositories (issue 15) ---- */

Test(fp_tasks, repos_set_by_admin_are_what_the_daemon_reads)
{
	const char *path = "/api/daemon/workspaces/" WS_A "/repos";
	cJSON *j = call("GET", path, NULL, AUTH, 200);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "repos")), 0);
	char *v0 = strdup(str(j, "repos_version"));
	cJSON_Delete(j);
	cJSON_Delete(call("POST", "/_admin/repos/" WS_A,
			  "{\"repos\":[{\"url\":\"file:///tmp/a.git\",\"description\":\"A\"},"
			  "{\"url\":\"file:///tmp/b.git\"}]}", NULL, 200));
	j = call("GET", path, NULL, AUTH, 200);
	cJSON *repos = cJSON_GetObjectItem(j, "repos");
	cr_assert_eq(cJSON_GetArraySize(repos), 2);
	cr_assert_str_eq(str(cJSON_GetArrayItem(repos, 0), "url"), "file:///tmp/a.git");
	cr_assert_str_neq(str(j, "repos_version"), v0, "the version changes with the list");
	cJSON_Delete(j);
	free(v0);
	call_error("POST", "/_admin/repos/" WS_A, "{\"repos\":[{}]}", 400,
		   "repos: expected [{url, description?}]");
	call_error("POST", "/_admin/repos/" NOPE, "{\"repos\":[]}", 404, "not found");
}
