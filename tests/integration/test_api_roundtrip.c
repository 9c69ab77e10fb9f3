/* The API client against the emulator (multica-fakeplane): every endpoint
 * in blocking and multi mode, the exact requests, every error class, ETag,
 * keep-alive. A small raw socket server checks the exact request headers
 * and the responses the emulator cannot produce (redirects, a body without
 * Content-Length). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/api.h"
#include "tests/support/fakeplane_proc.h"

#define TOKEN   "mul_0123456789abcdef0123456789abcdef01234567"
#define USER    "user-1"
#define WS1     "0c6e0000-0000-4000-8000-000000000001"
#define WS2     "0c6e0000-0000-4000-8000-000000000002"
#define WS_X    "0c6e0000-0000-4000-8000-0000000000ff" /* not ours */
#define P1      "11111111-1111-4111-8111-111111111111"
#define P2      "22222222-2222-4222-8222-222222222222"
#define P3      "33333333-3333-4333-8333-333333333333"
#define MISSING "99999999-9999-4999-8999-999999999999"

static const char seed[] =
	"{\"tokens\":{\"" TOKEN "\":\"" USER "\",\"mul_other\":\"user-2\"},"
	" \"workspaces\":["
	"  {\"id\":\"" WS1 "\",\"name\":\"Alpha\",\"members\":[\"" USER "\"]},"
	"  {\"id\":\"" WS2 "\",\"name\":\"Beta\",\"members\":[\"" USER "\"]},"
	"  {\"id\":\"" WS_X "\",\"name\":\"Other\",\"members\":[\"user-2\"]}],"
	" \"profiles\":["
	"  {\"id\":\"" P1 "\",\"workspace_id\":\"" WS1 "\",\"display_name\":\"Company Codex\","
	"   \"protocol_family\":\"codex\",\"command_name\":\"company-codex\","
	"   \"fixed_args\":[\"--profile\",\"fast\"],\"visibility\":\"workspace\",\"enabled\":true},"
	"  {\"id\":\"" P2 "\",\"workspace_id\":\"" WS1 "\",\"display_name\":\"My Claude\","
	"   \"protocol_family\":\"claude\",\"command_name\":\"my-claude\","
	"   \"fixed_args\":[],\"visibility\":\"workspace\",\"enabled\":true},"
	"  {\"id\":\"" P3 "\",\"workspace_id\":\"" WS1 "\",\"display_name\":\"Off\","
	"   \"protocol_family\":\"claude\",\"command_name\":\"off\","
	"   \"fixed_args\":[],\"visibility\":\"workspace\",\"enabled\":false}]}";

/* ---- fixture ---- */

static struct fp_proc fp;
static bool fp_running;
static struct mc_api *api;

static struct mc_api *new_api(const char *url, const char *token, long timeout_ms,
			      size_t max_body)
{
	struct mc_secret *s = mc_secret_new(token, strlen(token));
	cr_assert_not_null(s);
	struct mc_api_config cfg = {
		.server_url = url, .token = s, .client_version = "multicad/test",
		.timeout_ms = timeout_ms, .connect_timeout_ms = 2000, .max_body = max_body,
	};
	struct mc_api *a = mc_api_new(&cfg);
	mc_secret_free(s);
	cr_assert_not_null(a, "mc_api_new: %s", strerror(errno));
	return a;
}

static void setup(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
	cr_assert_eq(fp_start(&fp, seed, NULL), 0, "cannot start multica-fakeplane");
	fp_running = true;
	api = new_api(fp.url, TOKEN, 5000, 0);
}

static void teardown(void)
{
	mc_api_free(api);
	api = NULL;
	if (fp_running)
		fp_stop(&fp);
	fp_running = false;
	mc_api_global_cleanup();
}

TestSuite(roundtrip, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(errors, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(client, .init = setup, .fini = teardown, .timeout = 30);

/* ---- running calls in either mode ---- */

enum mode { BLOCKING, MULTI };

static void mark_done(struct mc_call *call, void *arg)
{
	(void)call;
	*(int *)arg += 1;
}

/* Drives multi until *done reaches want (or 15 s pass). */
static void drive(CURLM *multi, const int *done, int want)
{
	for (int i = 0; i < 1500 && *done < want; i++) {
		int running = 0;
		cr_assert_eq(curl_multi_perform(multi, &running), CURLM_OK);
		mc_multi_dispatch(multi);
		if (*done >= want)
			break;
		cr_assert_eq(curl_multi_poll(multi, NULL, 0, 10, NULL), CURLM_OK);
	}
	cr_assert_geq(*done, want, "multi transfers did not finish");
}

/* Runs call to completion in mode; the done callback must run exactly
 * once either way. Returns mc_call_ok. */
static bool run(struct mc_call *call, enum mode m)
{
	cr_assert_not_null(call);
	int done = 0;
	mc_call_set_done(call, mark_done, &done);
	cr_assert_eq(mc_call_arg(call), &done);
	if (m == BLOCKING) {
		int rc = mc_call_perform(call);
		cr_assert_eq(rc == 0, mc_call_ok(call));
	} else {
		CURLM *multi = curl_multi_init();
		cr_assert_not_null(multi);
		cr_assert_eq(mc_call_start(call, multi), 0);
		drive(multi, &done, 1);
		curl_multi_cleanup(multi);
	}
	cr_assert_eq(done, 1, "done callback ran %d times", done);
	return mc_call_ok(call);
}

static const struct mc_api_error *run_err(struct mc_call *call, enum mode m)
{
	cr_assert_not(run(call, m), "call unexpectedly succeeded");
	return mc_call_error(call);
}

#define BOTH_MODES(suite, name)                                     \
	static void name##_body(enum mode m);                        \
	Test(suite, name##_blocking) { name##_body(BLOCKING); }      \
	Test(suite, name##_multi) { name##_body(MULTI); }            \
	static void name##_body(enum mode m)

/* ---- journal helpers ---- */

static void journal_clear(void)
{
	cr_assert_eq(fp_http(&fp, "DELETE", "/_admin/journal", NULL, NULL, NULL), 200);
}

/* The journal entries as an array (caller deletes). */
static cJSON *journal(void)
{
	cJSON *j = fp_journal(&fp);
	cr_assert_not_null(j);
	if (cJSON_IsObject(j)) { /* tolerate {"journal":[...]} or {"entries":[...]} */
		cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(j, "journal");
		if (a == NULL)
			a = cJSON_DetachItemFromObjectCaseSensitive(j, "entries");
		cJSON_Delete(j);
		j = a;
	}
	cr_assert(cJSON_IsArray(j), "journal must be an array");
	return j;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsString(v), "journal field %s", key);
	return v->valuestring;
}

/* Checks entry i of the journal and returns its parsed body (caller
 * deletes; NULL for an empty body). */
static cJSON *journal_entry(const cJSON *j, int i, const char *method, const char *path,
			    long status)
{
	const cJSON *e = cJSON_GetArrayItem(j, i);
	cr_assert_not_null(e, "no journal entry %d", i);
	cr_assert_str_eq(jstr(e, "method"), method, "entry %d", i);
	cr_assert_str_eq(jstr(e, "path"), path, "entry %d", i);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
	cr_assert(cJSON_IsNumber(st));
	cr_assert_eq((long)st->valuedouble, status, "entry %d status", i);
	const char *body = jstr(e, "body");
	if (body[0] == '\0')
		return NULL;
	cJSON *b = cJSON_Parse(body);
	cr_assert_not_null(b, "entry %d body is not JSON: %s", i, body);
	return b;
}

static int n_members(const cJSON *o)
{
	return cJSON_GetArraySize(o);
}

static void assert_member_str(const cJSON *o, const char *key, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsString(v), "%s must be a string", key);
	cr_assert_str_eq(v->valuestring, want, "%s", key);
}

static void fault(const char *json)
{
	long st = fp_fault(&fp, json);
	cr_assert(st >= 200 && st < 300, "fault refused (%ld): %s", st, json);
}

/* ---- a register that gives two runtimes (built-in claude, custom P1) ---- */

static const struct mc_reg_runtime reg_rts[] = {
	{ .name = "Claude (build-7)", .type = "claude", .version = "2.1.0", .profile_id = NULL },
	{ .name = "Company Codex (build-7)", .type = "codex", .version = "", .profile_id = P1 },
};
static const struct mc_reg_failed reg_failed[] = {
	{ .profile_id = P2, .command_name = "my-claude",
	  .reason = "command not found on PATH: my-claude" },
};
static const struct mc_register_request reg_req = {
	.workspace_id = WS1, .daemon_id = "daemon-test-1", .device_name = "build-7",
	.cli_version = "multicad/test", .n_runtimes = 2, .runtimes = reg_rts,
	.n_failed = 1, .failed = reg_failed,
};

/* Registers reg_req (blocking) and returns the runtimes. */
static struct mc_runtime_list register_two(void)
{
	struct mc_call *c = mc_call_register(api, &reg_req);
	cr_assert(run(c, BLOCKING), "%s", mc_call_error(c)->message);
	struct mc_runtime_list l;
	cr_assert_eq(mc_call_take_runtimes(c, &l), 0);
	mc_call_free(c);
	cr_assert_eq(l.n, 2);
	return l;
}

/* ---- round trips ---- */

BOTH_MODES(roundtrip, list_workspaces)
{
	journal_clear();
	struct mc_call *c = mc_call_list_workspaces(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert_eq(mc_call_endpoint(c), MC_EP_LIST_WORKSPACES);
	cr_assert_eq(mc_call_status(c), 200);
	cr_assert_not(mc_call_not_modified(c));
	cr_assert_gt(mc_call_elapsed_us(c), 0);
	struct mc_workspace_list l;
	cr_assert_eq(mc_call_take_workspaces(c, &l), 0);
	mc_call_free(c);
	cr_assert_eq(l.n, 2, "only the member workspaces");
	cr_assert_str_eq(l.v[0].id, WS1);
	cr_assert_str_eq(l.v[0].name, "Alpha");
	cr_assert_str_eq(l.v[1].id, WS2);
	cr_assert_str_eq(l.v[1].name, "Beta");
	mc_workspace_list_clear(&l);

	cJSON *j = journal();
	cr_assert_eq(cJSON_GetArraySize(j), 1);
	cr_assert_null(journal_entry(j, 0, "GET", "/api/daemon/workspaces", 200));
	cJSON_Delete(j);
}

BOTH_MODES(roundtrip, runtime_profiles)
{
	journal_clear();
	struct mc_call *c = mc_call_runtime_profiles(api, WS1);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	struct mc_profile_list l;
	cr_assert_eq(mc_call_take_profiles(c, &l), 0);
	mc_call_free(c);
	cr_assert_eq(l.n, 2, "enabled profiles only");
	cr_assert_str_eq(l.v[0].id, P1);
	cr_assert_str_eq(l.v[0].workspace_id, WS1);
	cr_assert_str_eq(l.v[0].display_name, "Company Codex");
	cr_assert_str_eq(l.v[0].protocol_family, "codex");
	cr_assert_str_eq(l.v[0].command_name, "company-codex");
	cr_assert_str_eq(l.v[0].visibility, "workspace");
	cr_assert(l.v[0].enabled);
	cr_assert_eq(l.v[0].n_fixed_args, 2);
	cr_assert_str_eq(l.v[0].fixed_args[0], "--profile");
	cr_assert_str_eq(l.v[0].fixed_args[1], "fast");
	cr_assert_str_eq(l.v[1].id, P2);
	cr_assert_eq(l.v[1].n_fixed_args, 0);
	mc_profile_list_clear(&l);

	cJSON *j = journal();
	cr_assert_null(journal_entry(j, 0, "GET",
				     "/api/daemon/workspaces/" WS1 "/runtime-profiles", 200));
	cJSON_Delete(j);
}

BOTH_MODES(roundtrip, register_heartbeat_recover_deregister_renew)
{
	journal_clear();
	struct mc_call *c = mc_call_register(api, &reg_req);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	struct mc_runtime_list rts;
	cr_assert_eq(mc_call_take_runtimes(c, &rts), 0);
	mc_call_free(c);
	cr_assert_eq(rts.n, 2);
	cr_assert_str_eq(rts.v[0].provider, "claude");
	cr_assert_null(rts.v[0].profile_id);
	cr_assert_str_eq(rts.v[0].status, "online");
	cr_assert_str_eq(rts.v[1].provider, "codex");
	cr_assert_str_eq(rts.v[1].profile_id, P1);
	cr_assert_str_neq(rts.v[0].id, rts.v[1].id);
	char *st = fp_runtime_status(&fp, rts.v[1].id);
	cr_assert_str_eq(st, "online");
	free(st);

	c = mc_call_heartbeat(api, rts.v[0].id);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert_str_eq(mc_call_runtime_id(c), rts.v[0].id);
	mc_call_free(c);

	char task[512];
	snprintf(task, sizeof task,
		 "{\"id\":\"77777777-7777-4777-8777-777777777777\",\"runtime_id\":\"%s\","
		 "\"status\":\"running\"}", rts.v[0].id);
	long ts = fp_http(&fp, "POST", "/_admin/tasks", task, NULL, NULL);
	cr_assert(ts >= 200 && ts < 300, "add task: %ld", ts);
	c = mc_call_recover_orphans(api, rts.v[0].id);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert_str_eq(mc_call_runtime_id(c), rts.v[0].id);
	cr_assert_eq(mc_call_orphaned(c), 1);
	cr_assert_geq(mc_call_retried(c), 0);
	mc_call_free(c);

	const char *ids[] = { rts.v[0].id, rts.v[1].id };
	c = mc_call_deregister(api, 2, ids);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	for (int i = 0; i < 2; i++) {
		st = fp_runtime_status(&fp, ids[i]);
		cr_assert_str_eq(st, "offline");
		free(st);
	}

	c = mc_call_renew_token(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert_eq(mc_call_status(c), 200);
	mc_call_free(c);

	/* What the emulator saw, request by request. */
	cJSON *j = journal();
	cr_assert_eq(cJSON_GetArraySize(j), 5);
	cJSON *b = journal_entry(j, 0, "POST", "/api/daemon/register", 200);
	cr_assert_eq(n_members(b), 8);
	assert_member_str(b, "workspace_id", WS1);
	assert_member_str(b, "daemon_id", "daemon-test-1");
	assert_member_str(b, "device_name", "build-7");
	assert_member_str(b, "cli_version", "multicad/test");
	assert_member_str(b, "launched_by", "");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b, "legacy_daemon_ids")));
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(b, "runtimes");
	cr_assert_eq(cJSON_GetArraySize(arr), 2);
	cr_assert_eq(n_members(cJSON_GetArrayItem(arr, 0)), 4);
	assert_member_str(cJSON_GetArrayItem(arr, 0), "status", "online");
	assert_member_str(cJSON_GetArrayItem(arr, 1), "profile_id", P1);
	arr = cJSON_GetObjectItemCaseSensitive(b, "failed_profiles");
	cr_assert_eq(cJSON_GetArraySize(arr), 1);
	assert_member_str(cJSON_GetArrayItem(arr, 0), "profile_id", P2);
	cJSON_Delete(b);

	b = journal_entry(j, 1, "POST", "/api/daemon/heartbeat", 200);
	cr_assert_eq(n_members(b), 2);
	assert_member_str(b, "runtime_id", ids[0]);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "supports_batch_import")));
	cJSON_Delete(b);

	char path[160];
	snprintf(path, sizeof path, "/api/daemon/runtimes/%s/recover-orphans", ids[0]);
	b = journal_entry(j, 2, "POST", path, 200);
	cr_assert(cJSON_IsObject(b));
	cr_assert_eq(n_members(b), 0);
	cJSON_Delete(b);

	b = journal_entry(j, 3, "POST", "/api/daemon/deregister", 200);
	cr_assert_eq(n_members(b), 1);
	arr = cJSON_GetObjectItemCaseSensitive(b, "runtime_ids");
	cr_assert_eq(cJSON_GetArraySize(arr), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(arr, 0)->valuestring, ids[0]);
	cr_assert_str_eq(cJSON_GetArrayItem(arr, 1)->valuestring, ids[1]);
	cJSON_Delete(b);

	b = journal_entry(j, 4, "POST", "/api/tokens/current/renew", 200);
	cr_assert(cJSON_IsObject(b));
	cr_assert_eq(n_members(b), 0);
	cJSON_Delete(b);
	cJSON_Delete(j);
	mc_runtime_list_clear(&rts);
}

BOTH_MODES(roundtrip, etag_304_returns_the_cached_list)
{
	struct mc_call *c = mc_call_list_workspaces(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert_not(mc_call_not_modified(c));
	mc_call_free(c);

	journal_clear();
	c = mc_call_list_workspaces(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert(mc_call_not_modified(c), "If-None-Match sent, 304 answered");
	cr_assert_eq(mc_call_status(c), 304);
	struct mc_workspace_list l;
	cr_assert_eq(mc_call_take_workspaces(c, &l), 0);
	mc_call_free(c);
	cr_assert_eq(l.n, 2);
	cr_assert_str_eq(l.v[0].id, WS1);
	cr_assert_str_eq(l.v[1].name, "Beta");
	mc_workspace_list_clear(&l);
	cJSON *j = journal();
	cr_assert_null(journal_entry(j, 0, "GET", "/api/daemon/workspaces", 304));
	cJSON_Delete(j);

	/* The list changes: a full answer again, and a new cache. */
	long st = fp_http(&fp, "POST", "/_admin/workspaces",
			  "{\"id\":\"0c6e0000-0000-4000-8000-000000000003\",\"name\":\"Gamma\","
			  "\"members\":[\"" USER "\"]}", NULL, NULL);
	cr_assert(st >= 200 && st < 300, "add workspace: %ld", st);
	c = mc_call_list_workspaces(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert_not(mc_call_not_modified(c));
	cr_assert_eq(mc_call_take_workspaces(c, &l), 0);
	cr_assert_eq(l.n, 3);
	mc_workspace_list_clear(&l);
	mc_call_free(c);
	c = mc_call_list_workspaces(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	cr_assert(mc_call_not_modified(c));
	cr_assert_eq(mc_call_take_workspaces(c, &l), 0);
	cr_assert_eq(l.n, 3);
	mc_workspace_list_clear(&l);
	mc_call_free(c);
}

/* ---- error classes ---- */

BOTH_MODES(errors, wrong_token_is_401)
{
	struct mc_api *bad = new_api(fp.url, "mul_wrongwrongwrong", 5000, 0);
	struct mc_call *c = mc_call_list_workspaces(bad);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_HTTP);
	cr_assert_eq(e->status, 401);
	cr_assert_str_eq(e->message, "GET /api/daemon/workspaces: 401 invalid token");
	cr_assert_not(mc_api_error_is_transient(e));
	cr_assert_null(strstr(e->message, "mul_wrong"));
	mc_call_free(c);

	/* Rotating the token fixes it. */
	struct mc_secret *good = mc_secret_new(TOKEN, strlen(TOKEN));
	cr_assert_eq(mc_api_set_token(bad, good), 0);
	mc_secret_free(good);
	c = mc_call_list_workspaces(bad);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	mc_api_free(bad);
}

BOTH_MODES(errors, http_500)
{
	fault("{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/heartbeat\",\"status\":500,"
	      "\"body\":{\"error\":\"heartbeat failed\"}}");
	struct mc_call *c = mc_call_heartbeat(api, MISSING);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_HTTP);
	cr_assert_eq(e->status, 500);
	cr_assert_str_eq(e->message, "POST /api/daemon/heartbeat: 500 heartbeat failed");
	cr_assert(mc_api_error_is_transient(e));
	mc_call_free(c);
}

BOTH_MODES(errors, heartbeat_runtime_not_found)
{
	/* The emulator's own answer for a missing row ... */
	struct mc_call *c = mc_call_heartbeat(api, MISSING);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	cr_assert_eq(e->status, 404);
	cr_assert_str_eq(mc_call_runtime_id(c), MISSING);
	cr_assert_not(mc_api_error_is_transient(e));
	mc_call_free(c);

	/* ... and an injected one for a live row, in another case. */
	struct mc_runtime_list rts = register_two();
	fault("{\"path_prefix\":\"/api/daemon/heartbeat\",\"status\":404,"
	      "\"body\":{\"error\":\"Runtime Not Found\"}}");
	c = mc_call_heartbeat(api, rts.v[0].id);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	mc_call_free(c);

	/* A 404 that is an access denial is not "gone". */
	fault("{\"path_prefix\":\"/api/daemon/heartbeat\",\"status\":404,"
	      "\"body\":{\"error\":\"not found\"}}");
	c = mc_call_heartbeat(api, rts.v[0].id);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_HTTP);
	mc_call_free(c);

	/* A 200 ack saying runtime_gone. */
	fault("{\"path_prefix\":\"/api/daemon/heartbeat\",\"status\":200,"
	      "\"body\":{\"status\":\"ok\",\"runtime_gone\":true}}");
	c = mc_call_heartbeat(api, rts.v[0].id);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	cr_assert_eq(e->status, 200);
	mc_call_free(c);
	mc_runtime_list_clear(&rts);
}

BOTH_MODES(errors, timeout)
{
	struct mc_api *fast = new_api(fp.url, TOKEN, 300, 0);
	fault("{\"path_prefix\":\"/api/daemon/workspaces/\",\"delay_ms\":3000}");
	struct mc_call *c = mc_call_runtime_profiles(fast, WS1);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_TIMEOUT, "%s: %s", mc_api_error_kind_name(e->kind),
		     e->message);
	cr_assert(mc_api_error_is_transient(e));
	cr_assert_lt(mc_call_elapsed_us(c), 2500000);
	cr_assert_not_null(strstr(e->message, "GET /api/daemon/workspaces/" WS1 "/runtime-profiles: "));
	mc_call_free(c);
	mc_api_free(fast);

	/* The same through a per-call limit on the default api. */
	fault("{\"path_prefix\":\"/api/daemon/workspaces/\",\"delay_ms\":3000}");
	c = mc_call_runtime_profiles(api, WS1);
	mc_call_set_timeout(c, 300);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_TIMEOUT, "%s", e->message);
	cr_assert_lt(mc_call_elapsed_us(c), 2500000);
	mc_call_free(c);
}

BOTH_MODES(errors, malformed_profiles)
{
	fault("{\"path_prefix\":\"/api/daemon/workspaces/\",\"status\":200,"
	      "\"body\":\"{\\\"runtime_profiles\\\": [\"}");
	struct mc_call *c = mc_call_runtime_profiles(api, WS1);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_DECODE);
	cr_assert_eq(e->status, 200);
	cr_assert_not_null(strstr(e->message, "runtime-profiles: invalid JSON"), "%s", e->message);
	struct mc_profile_list l;
	cr_assert_eq(mc_call_take_profiles(c, &l), -1);
	cr_assert_eq(errno, EINVAL);
	mc_call_free(c);

	fault("{\"path_prefix\":\"/api/daemon/workspaces/\",\"status\":200,"
	      "\"body\":{\"runtime_profiles\":[{\"id\":\"p\",\"enabled\":true,"
	      "\"display_name\":\"n\",\"fixed_args\":[\"a\",7]}]}}");
	c = mc_call_runtime_profiles(api, WS1);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_DECODE);
	cr_assert_str_eq(e->message, "GET /api/daemon/workspaces/" WS1 "/runtime-profiles: "
				     "runtime_profiles[0].fixed_args[1]: expected string, got number");
	mc_call_free(c);

	fault("{\"path_prefix\":\"/api/daemon/workspaces/\",\"status\":200,"
	      "\"body\":{\"runtime_profiles\":{}}}");
	c = mc_call_runtime_profiles(api, WS1);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(e->message, "runtime_profiles: expected array"), "%s", e->message);
	mc_call_free(c);
}

BOTH_MODES(errors, malformed_register)
{
	fault("{\"path_prefix\":\"/api/daemon/register\",\"status\":200,\"body\":\"<html>\"}");
	struct mc_call *c = mc_call_register(api, &reg_req);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(e->message, "POST /api/daemon/register: invalid JSON"),
			   "%s", e->message);
	mc_call_free(c);

	/* One runtime back for two sent. */
	fault("{\"path_prefix\":\"/api/daemon/register\",\"status\":200,"
	      "\"body\":{\"runtimes\":[{\"id\":\"r\",\"name\":\"n\",\"provider\":\"p\","
	      "\"status\":\"online\"}]}}");
	c = mc_call_register(api, &reg_req);
	e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(e->message, "runtimes: expected 2 entries"), "%s", e->message);
	struct mc_runtime_list l;
	cr_assert_eq(mc_call_take_runtimes(c, &l), -1);
	mc_call_free(c);
}

BOTH_MODES(errors, oversized_body)
{
	struct mc_api *small = new_api(fp.url, TOKEN, 5000, 1024);
	fault("{\"path_prefix\":\"/api/daemon/workspaces\",\"status\":200,\"body_size\":65536}");
	struct mc_call *c = mc_call_list_workspaces(small);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_TOO_LARGE, "%s", e->message);
	cr_assert_not_null(strstr(e->message, "1024"), "%s", e->message);
	mc_call_free(c);
	/* Under the cap all is well. */
	c = mc_call_list_workspaces(small);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	mc_api_free(small);
}

BOTH_MODES(errors, connection_reset)
{
	fault("{\"path_prefix\":\"/api/daemon/heartbeat\",\"reset\":true}");
	struct mc_call *c = mc_call_heartbeat(api, MISSING);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_TRANSPORT, "%s: %s", mc_api_error_kind_name(e->kind),
		     e->message);
	cr_assert_eq(e->status, 0);
	cr_assert(mc_api_error_is_transient(e));
	cr_assert_not_null(strstr(e->message, "POST /api/daemon/heartbeat: "));
	mc_call_free(c);
	/* The next call reconnects. */
	c = mc_call_list_workspaces(api);
	cr_assert(run(c, m), "%s", mc_call_error(c)->message);
	mc_call_free(c);
}

BOTH_MODES(errors, connection_refused)
{
	char url[64];
	snprintf(url, sizeof url, "%s", fp.url);
	fp_stop(&fp);
	fp_running = false;
	struct mc_api *gone = new_api(url, TOKEN, 5000, 0);
	struct mc_call *c = mc_call_list_workspaces(gone);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_eq(e->kind, MC_API_ERR_TRANSPORT);
	cr_assert_eq(e->status, 0);
	cr_assert_not_null(strstr(e->message, "GET /api/daemon/workspaces: "));
	mc_call_free(c);
	mc_api_free(gone);
}

BOTH_MODES(errors, token_never_in_messages)
{
	fault("{\"path_prefix\":\"/api/daemon/heartbeat\",\"status\":500,"
	      "\"body\":{\"error\":\"bad header: Bearer " TOKEN " (" TOKEN ")\"}}");
	struct mc_call *c = mc_call_heartbeat(api, MISSING);
	const struct mc_api_error *e = run_err(c, m);
	cr_assert_null(strstr(e->message, TOKEN), "%s", e->message);
	cr_assert_null(strstr(e->message, "0123456789abcdef"), "%s", e->message);
	cr_assert_str_eq(e->message, "POST /api/daemon/heartbeat: 500 bad header: Bearer "
				     "[redacted] ([redacted])");
	mc_call_free(c);

	fault("{\"path_prefix\":\"/api/daemon/heartbeat\",\"status\":502,"
	      "\"body\":\"proxy saw Authorization: Bearer " TOKEN "\"}");
	c = mc_call_heartbeat(api, MISSING);
	e = run_err(c, m);
	cr_assert_null(strstr(e->message, TOKEN), "%s", e->message);
	mc_call_free(c);
}

/* ---- client behaviour ---- */

Test(client, keep_alive_reuses_one_connection)
{
	long total_new = 0;
	for (int i = 0; i < 12; i++) {
		struct mc_call *c = i % 3 == 0 ? mc_call_list_workspaces(api)
				  : mc_call_heartbeat(api, MISSING);
		run(c, i % 2 == 0 ? BLOCKING : MULTI);
		cr_assert_neq(mc_call_error(c)->kind, MC_API_ERR_TRANSPORT,
			      "%s", mc_call_error(c)->message);
		long n = mc_call_num_connects(c);
		cr_assert_geq(n, 0);
		if (i == 0)
			cr_assert_eq(n, 1, "the first call connects");
		total_new += n;
		mc_call_free(c);
	}
	cr_assert_eq(total_new, 1, "12 calls, blocking and multi, one connection");

	/* close_idle drops it: the next call connects again. */
	mc_api_close_idle(api);
	struct mc_call *c = mc_call_list_workspaces(api);
	cr_assert(run(c, MULTI));
	cr_assert_eq(mc_call_num_connects(c), 1);
	mc_call_free(c);
	c = mc_call_list_workspaces(api);
	cr_assert(run(c, BLOCKING));
	cr_assert_eq(mc_call_num_connects(c), 0);
	mc_call_free(c);
}

/* Chains: each finished call frees itself; the first one also starts a
 * renew from inside its callback. */
struct chain {
	CURLM *multi;
	int done;
	int ok;
	bool chained;
};

static void chain_done(struct mc_call *call, void *arg)
{
	struct chain *ch = arg;
	ch->done++;
	ch->ok += mc_call_ok(call);
	if (!ch->chained) {
		ch->chained = true;
		struct mc_call *next = mc_call_renew_token(api);
		cr_assert_not_null(next);
		mc_call_set_done(next, chain_done, ch);
		cr_assert_eq(mc_call_start(next, ch->multi), 0);
	}
	mc_call_free(call);
}

Test(client, multi_concurrent_and_callbacks_free_and_start)
{
	struct mc_runtime_list rts = register_two();
	struct chain ch = { .multi = curl_multi_init() };
	cr_assert_not_null(ch.multi);
	struct mc_call *calls[4] = {
		mc_call_heartbeat(api, rts.v[0].id), mc_call_heartbeat(api, rts.v[1].id),
		mc_call_runtime_profiles(api, WS1), mc_call_list_workspaces(api),
	};
	for (int i = 0; i < 4; i++) {
		cr_assert_not_null(calls[i]);
		mc_call_set_done(calls[i], chain_done, &ch);
		cr_assert_eq(mc_call_start(calls[i], ch.multi), 0);
	}
	cr_assert_eq(mc_call_start(calls[0], ch.multi), -1, "already running");
	cr_assert_eq(errno, EBUSY);
	drive(ch.multi, &ch.done, 5);
	cr_assert_eq(ch.done, 5);
	cr_assert_eq(ch.ok, 5);
	curl_multi_cleanup(ch.multi);
	mc_runtime_list_clear(&rts);
}

Test(client, free_while_running_and_close_idle_in_flight)
{
	fault("{\"path_prefix\":\"/api/daemon/workspaces\",\"delay_ms\":2000}");
	CURLM *multi = curl_multi_init();
	struct mc_call *slow = mc_call_list_workspaces(api);
	cr_assert_eq(mc_call_start(slow, multi), 0);
	int running = 0;
	for (int i = 0; i < 5; i++) {
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
	cr_assert_eq(running, 1);
	mc_api_close_idle(api); /* in flight: deferred until it finishes */
	mc_call_free(slow);     /* removed from the multi first */
	curl_multi_perform(multi, &running);
	cr_assert_eq(running, 0);
	cr_assert_eq(mc_multi_dispatch(multi), 0);
	curl_multi_cleanup(multi);

	struct mc_call *c = mc_call_heartbeat(api, MISSING);
	run(c, BLOCKING);
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	cr_assert_eq(mc_call_num_connects(c), 1, "the pool was dropped");
	mc_call_free(c);
}

Test(client, foreign_transfers_are_left_alone)
{
	CURLM *multi = curl_multi_init();
	CURL *foreign = curl_easy_init();
	char url[128];
	snprintf(url, sizeof url, "%s/_admin/state", fp.url);
	curl_easy_setopt(foreign, CURLOPT_URL, url);
	curl_easy_setopt(foreign, CURLOPT_WRITEFUNCTION, NULL);
	FILE *devnull = fopen("/dev/null", "w");
	curl_easy_setopt(foreign, CURLOPT_WRITEDATA, devnull);
	static int not_a_call = 42;
	curl_easy_setopt(foreign, CURLOPT_PRIVATE, (void *)&not_a_call);
	curl_multi_add_handle(multi, foreign);
	struct mc_call *c = mc_call_list_workspaces(api);
	int done = 0;
	mc_call_set_done(c, mark_done, &done);
	cr_assert_eq(mc_call_start(c, multi), 0);
	drive(multi, &done, 1);
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	/* The foreign easy is still in the multi: removing it succeeds once. */
	for (int i = 0; i < 200; i++) {
		int running = 0;
		curl_multi_perform(multi, &running);
		if (running == 0)
			break;
		curl_multi_poll(multi, NULL, 0, 10, NULL);
	}
	cr_assert_eq(mc_multi_dispatch(multi), 0);
	cr_assert_eq(curl_multi_remove_handle(multi, foreign), CURLM_OK);
	curl_easy_cleanup(foreign);
	fclose(devnull);
	mc_call_free(c);
	curl_multi_cleanup(multi);
}

Test(client, take_is_a_move_and_checks_the_endpoint)
{
	struct mc_call *c = mc_call_runtime_profiles(api, WS1);
	cr_assert(run(c, BLOCKING));
	struct mc_workspace_list w;
	struct mc_runtime_list r;
	errno = 0;
	cr_assert_eq(mc_call_take_workspaces(c, &w), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_call_take_runtimes(c, &r), -1);
	cr_assert_eq(mc_call_orphaned(c), -1);
	struct mc_profile_list p;
	cr_assert_eq(mc_call_take_profiles(c, &p), 0);
	cr_assert_eq(p.n, 2);
	cr_assert_eq(mc_call_take_profiles(c, &p), -1, "moved out already");
	mc_call_free(c);
	c = NULL;
	/* The list outlives the call. */
	cr_assert_str_eq(p.v[0].id, P1);
	mc_profile_list_clear(&p);

	/* A finished call can run again. */
	c = mc_call_runtime_profiles(api, WS2);
	cr_assert(run(c, BLOCKING));
	cr_assert(run(c, MULTI));
	cr_assert_eq(mc_call_take_profiles(c, &p), 0);
	cr_assert_eq(p.n, 0);
	mc_call_free(c);
	mc_call_free(NULL);
}

Test(client, constructors_validate)
{
	errno = 0;
	cr_assert_null(mc_call_runtime_profiles(api, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mc_call_runtime_profiles(api, ""));
	cr_assert_null(mc_call_heartbeat(api, ""));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mc_call_heartbeat(api, NULL));
	cr_assert_null(mc_call_recover_orphans(api, ""));
	cr_assert_null(mc_call_deregister(api, 0, NULL));
	cr_assert_eq(errno, EINVAL);
	struct mc_register_request empty = { .workspace_id = WS1, .daemon_id = "d" };
	cr_assert_null(mc_call_register(api, &empty));
	cr_assert_eq(errno, EINVAL);

	/* An odd id is escaped into one path segment. */
	journal_clear();
	struct mc_call *c = mc_call_runtime_profiles(api, "../x y");
	const struct mc_api_error *e = run_err(c, BLOCKING);
	cr_assert_eq(e->kind, MC_API_ERR_HTTP);
	cr_assert_eq(e->status, 404);
	static const char want[] = "GET /api/daemon/workspaces/..%2Fx%20y/runtime-profiles: 404 ";
	cr_assert_eq(strncmp(e->message, want, sizeof want - 1), 0, "%s", e->message);
	mc_call_free(c);
}

Test(client, bad_server_urls)
{
	struct mc_secret *s = mc_secret_new("t", 1);
	static const char *const bad[] = {
		"ftp://127.0.0.1", "127.0.0.1:8080", "http://127.0.0.1/api",
		"http://user:pw@127.0.0.1", "http://127.0.0.1?x=1", "http://127.0.0.1/#f",
		"http://", "", "file:///etc/passwd",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct mc_api_config cfg = { .server_url = bad[i], .token = s };
		errno = 0;
		cr_assert_null(mc_api_new(&cfg), "accepted %s", bad[i]);
		cr_assert_eq(errno, EINVAL, "%s", bad[i]);
	}
	static const char *const good[] = {
		"http://127.0.0.1:8080", "http://127.0.0.1:8080/", "https://multica.example.com",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct mc_api_config cfg = { .server_url = good[i], .token = s };
		struct mc_api *a = mc_api_new(&cfg);
		cr_assert_not_null(a, "refused %s", good[i]);
		mc_api_free(a);
	}
	struct mc_api_config cfg = { .server_url = "http://127.0.0.1", .token = NULL };
	cr_assert_null(mc_api_new(&cfg));

	/* Nothing that could inject a header line. */
	struct mc_secret *crlf = mc_secret_new("tok\r\nX-Evil: 1", 15);
	struct mc_secret *empty = mc_secret_new("", 0);
	cfg.token = crlf;
	errno = 0;
	cr_assert_null(mc_api_new(&cfg));
	cr_assert_eq(errno, EINVAL);
	cfg.token = empty;
	cr_assert_null(mc_api_new(&cfg));
	cfg.token = s;
	cfg.client_version = "multicad/1\r\nX-Evil: 1";
	cr_assert_null(mc_api_new(&cfg));
	cfg.client_version = "multicad/1 (linux)";
	struct mc_api *a = mc_api_new(&cfg);
	cr_assert_not_null(a);
	errno = 0;
	cr_assert_eq(mc_api_set_token(a, crlf), -1);
	cr_assert_eq(errno, EINVAL);
	mc_api_free(a);
	mc_secret_free(crlf);
	mc_secret_free(empty);
	mc_secret_free(s);
}

/* ---- raw server: exact headers, and answers the emulator cannot give ---- */

#define RAW_MAX_REQ 4

struct raw_server {
	int lfd;
	int port;
	char url[64];
	pthread_t thread;
	int n_answers;
	const char *answers[RAW_MAX_REQ]; /* full HTTP responses, one per connection */
	char *requests[RAW_MAX_REQ];      /* what each connection sent (malloc'd) */
};

/* Reads one request (headers + Content-Length body) from fd. */
static char *read_request(int fd)
{
	size_t cap = 65536, len = 0;
	char *buf = calloc(1, cap + 1);
	size_t need = 0;
	while (len < cap) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end == NULL)
			continue;
		if (need == 0) {
			size_t body = 0;
			char *cl = strcasestr(buf, "\r\nContent-Length:");
			if (cl != NULL && cl < end)
				body = strtoul(cl + 17, NULL, 10);
			need = (size_t)(end + 4 - buf) + body;
		}
		if (len >= need)
			break;
	}
	return buf;
}

static void write_all(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len > 0) {
		/* the client may hang up early (body cap): no SIGPIPE */
		ssize_t w = send(fd, s, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

static void *raw_main(void *arg)
{
	struct raw_server *rs = arg;
	for (int i = 0; i < rs->n_answers; i++) {
		int fd = accept(rs->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		rs->requests[i] = read_request(fd);
		write_all(fd, rs->answers[i]);
		close(fd); /* one request per connection: answers say Connection: close */
	}
	return NULL;
}

/* A raw server on addr (a loopback address, e.g. "127.0.0.2"). */
static void raw_start_at(struct raw_server *rs, const char *addr, int n,
			 const char *const *answers)
{
	memset(rs, 0, sizeof *rs);
	rs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(rs->lfd, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	cr_assert_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	cr_assert_eq(bind(rs->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(listen(rs->lfd, 4), 0);
	socklen_t sl = sizeof sin;
	cr_assert_eq(getsockname(rs->lfd, (struct sockaddr *)&sin, &sl), 0);
	rs->port = ntohs(sin.sin_port);
	snprintf(rs->url, sizeof rs->url, "http://%s:%d", addr, rs->port);
	rs->n_answers = n;
	for (int i = 0; i < n; i++)
		rs->answers[i] = answers[i];
	cr_assert_eq(pthread_create(&rs->thread, NULL, raw_main, rs), 0);
}

static void raw_start(struct raw_server *rs, int n, const char *const *answers)
{
	raw_start_at(rs, "127.0.0.1", n, answers);
}

/* Stops the server thread; the captured requests stay until raw_free. */
static void raw_stop(struct raw_server *rs)
{
	shutdown(rs->lfd, SHUT_RDWR);
	pthread_join(rs->thread, NULL);
	close(rs->lfd);
}

static void raw_free(struct raw_server *rs)
{
	for (int i = 0; i < RAW_MAX_REQ; i++) {
		free(rs->requests[i]);
		rs->requests[i] = NULL;
	}
}

/* Value of header name in a raw request (static buffer), or NULL. */
static const char *header(const char *req, const char *name)
{
	static char val[512];
	char pat[64];
	snprintf(pat, sizeof pat, "\r\n%s:", name);
	const char *p = strcasestr(req, pat);
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, "\r\n");
	if (n >= sizeof val)
		n = sizeof val - 1;
	memcpy(val, p, n);
	val[n] = '\0';
	return val;
}

static void raw_setup(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
}

TestSuite(raw, .init = raw_setup, .fini = mc_api_global_cleanup, .timeout = 30);

Test(raw, exact_request_headers)
{
	static const char *const answers[] = {
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: W/\"abc\"\r\n"
		"Connection: close\r\nContent-Length: 2\r\n\r\n[]",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}",
		"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n",
	};
	struct raw_server rs;
	raw_start(&rs, 3, answers);
	struct mc_api *a = new_api(rs.url, TOKEN, 5000, 0);
	struct mc_call *c = mc_call_list_workspaces(a);
	cr_assert(run(c, BLOCKING), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	c = mc_call_heartbeat(a, "rt-1");
	cr_assert(run(c, MULTI), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	c = mc_call_list_workspaces(a);
	cr_assert(run(c, BLOCKING), "%s", mc_call_error(c)->message);
	cr_assert(mc_call_not_modified(c));
	mc_call_free(c);
	mc_api_free(a);
	raw_stop(&rs);

	const char *get = rs.requests[0];
	cr_assert_not_null(get);
	cr_assert_eq(strncmp(get, "GET /api/daemon/workspaces HTTP/1.1\r\n", 37), 0, "%s", get);
	cr_assert_str_eq(header(get, "Authorization"), "Bearer " TOKEN);
	cr_assert_str_eq(header(get, "X-Client-Platform"), "daemon");
	cr_assert_str_eq(header(get, "X-Client-Version"), "multicad/test");
	cr_assert_str_eq(header(get, "X-Client-OS"), "linux");
	cr_assert_str_eq(header(get, "User-Agent"), "multicad/" MC_VERSION);
	/* Exactly what the executor handles (api.h): the server shapes claimed
	 * tasks by it. */
	cr_assert_str_eq(header(get, "X-Client-Capabilities"), "coalesced-comments-v1");
	cr_assert_null(header(get, "Content-Type"), "no Content-Type on a GET");
	cr_assert_null(header(get, "If-None-Match"), "no ETag yet");

	const char *post = rs.requests[1];
	cr_assert_not_null(post);
	cr_assert_eq(strncmp(post, "POST /api/daemon/heartbeat HTTP/1.1\r\n", 37), 0, "%s", post);
	cr_assert_str_eq(header(post, "Authorization"), "Bearer " TOKEN);
	cr_assert_str_eq(header(post, "Content-Type"), "application/json");
	cr_assert_str_eq(header(post, "X-Client-Platform"), "daemon");
	cr_assert_str_eq(header(post, "X-Client-OS"), "linux");
	cr_assert_str_eq(header(post, "X-Client-Capabilities"), "coalesced-comments-v1");
	cr_assert_null(header(post, "Expect"));
	const char *body = strstr(post, "\r\n\r\n") + 4;
	cr_assert_str_eq(body, "{\"runtime_id\":\"rt-1\",\"supports_batch_import\":true}");

	cr_assert_str_eq(header(rs.requests[2], "If-None-Match"), "W/\"abc\"");
	raw_free(&rs);
}

Test(raw, redirect_is_transport_and_not_followed)
{
	static const char *const answers[] = {
		"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
		"Connection: close\r\nContent-Length: 0\r\n\r\n",
	};
	struct raw_server rs;
	raw_start(&rs, 1, answers);
	struct mc_api *a = new_api(rs.url, TOKEN, 5000, 0);
	struct mc_call *c = mc_call_renew_token(a);
	const struct mc_api_error *e = run_err(c, BLOCKING);
	cr_assert_eq(e->kind, MC_API_ERR_TRANSPORT);
	cr_assert_eq(e->status, 302);
	cr_assert_str_eq(e->message, "POST /api/tokens/current/renew: unexpected redirect (status 302)");
	mc_call_free(c);
	mc_api_free(a);
	raw_stop(&rs);
	raw_free(&rs);
}

Test(raw, not_modified_without_cache)
{
	static const char *const answers[] = {
		"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n",
	};
	struct raw_server rs;
	raw_start(&rs, 1, answers);
	struct mc_api *a = new_api(rs.url, TOKEN, 5000, 0);
	struct mc_call *c = mc_call_list_workspaces(a);
	const struct mc_api_error *e = run_err(c, MULTI);
	cr_assert_eq(e->kind, MC_API_ERR_HTTP);
	cr_assert_eq(e->status, 304);
	cr_assert_str_eq(e->message, "GET /api/daemon/workspaces: 304 without a cached workspace list");
	mc_call_free(c);
	mc_api_free(a);
	raw_stop(&rs);
	raw_free(&rs);
}

Test(raw, body_without_length_over_the_cap)
{
	static char answer[8192];
	int n = snprintf(answer, sizeof answer, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[");
	memset(answer + n, ' ', 5000);
	answer[n + 5000] = ']';
	answer[n + 5001] = '\0';
	static const char *answers[1];
	answers[0] = answer;
	struct raw_server rs;
	raw_start(&rs, 1, answers);
	struct mc_api *a = new_api(rs.url, TOKEN, 5000, 4096);
	struct mc_call *c = mc_call_list_workspaces(a);
	const struct mc_api_error *e = run_err(c, BLOCKING);
	cr_assert_eq(e->kind, MC_API_ERR_TOO_LARGE, "%s", e->message);
	cr_assert_str_eq(e->message,
			 "GET /api/daemon/workspaces: response body larger than the 4096-byte limit");
	mc_call_free(c);
	mc_api_free(a);
	raw_stop(&rs);
	raw_free(&rs);
}

Test(raw, decode_error_on_deregister_body_is_ignored)
{
	static const char *const answers[] = {
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n\r\nnot json!",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	};
	struct raw_server rs;
	raw_start(&rs, 2, answers);
	struct mc_api *a = new_api(rs.url, TOKEN, 5000, 0);
	const char *ids[] = { "r1" };
	struct mc_call *c = mc_call_deregister(a, 1, ids);
	cr_assert(run(c, BLOCKING), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	c = mc_call_renew_token(a);
	cr_assert(run(c, BLOCKING), "%s", mc_call_error(c)->message);
	mc_call_free(c);
	mc_api_free(a);
	raw_stop(&rs);
	raw_free(&rs);
}

/* The environment's proxy settings count, no_proxy included: a host the
 * operator excluded never goes through the proxy (with the token). The
 * "server" sits on 127.0.0.2, which is not in the built-in loopback list;
 * the "proxy" answers 502 to whatever reaches it. */
static void proxy_case(const char *no_proxy_var, const char *no_proxy, bool want_direct)
{
	static const char *const ok[] = {
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		"Connection: close\r\nContent-Length: 2\r\n\r\n[]",
	};
	static const char *const bad_gateway[] = {
		"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	};
	struct raw_server server, proxy;
	raw_start_at(&server, "127.0.0.2", 1, ok);
	raw_start(&proxy, 1, bad_gateway);
	setenv("http_proxy", proxy.url, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	if (no_proxy_var != NULL)
		setenv(no_proxy_var, no_proxy, 1);
	struct mc_api *a = new_api(server.url, TOKEN, 3000, 0);
	struct mc_call *c = mc_call_list_workspaces(a);
	cr_assert_not_null(c);
	mc_call_perform(c);
	bool ok_answer = mc_call_ok(c);
	mc_call_free(c);
	mc_api_free(a);
	raw_stop(&server);
	raw_stop(&proxy);
	if (want_direct) {
		cr_expect(ok_answer, "%s=%s: the request did not reach the server directly",
			  no_proxy_var, no_proxy);
		cr_expect_not_null(server.requests[0], "the server saw nothing");
		cr_expect_null(proxy.requests[0], "the proxy saw the request");
	} else {
		cr_expect(!ok_answer, "the proxy was bypassed");
		cr_expect_not_null(proxy.requests[0], "the proxy saw nothing");
		cr_expect_null(server.requests[0], "the server was reached directly");
	}
	raw_free(&server);
	raw_free(&proxy);
}

Test(raw, no_proxy_from_the_environment_is_honoured)
{
	proxy_case(NULL, NULL, false);             /* the proxy is used... */
	proxy_case("no_proxy", "127.0.0.2", true); /* ...unless the host is excluded */
	proxy_case("NO_PROXY", "example.org,127.0.0.2", true);
	proxy_case("no_proxy", "*", true);
}
