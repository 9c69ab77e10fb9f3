/* The agent-api process against a client that sends what the multica CLI
 * sends (reference multica-local-api.md 2.3, 4): every row of the check
 * table, /health, /shutdown, 404/405, with a stub repo cache
 * (tests/support/repocache_stub.c) and the fakeplane answering the
 * workspace repo list through canned faults. */
#include <criterion/criterion.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "tests/support/agentapi_harness.h"
#include "tests/support/fakeplane_proc.h"

#define WS    "0198c3a2-7b4e-7c1d-9f3a-000000000001"
#define WS2   "0198c3a2-7b4e-7c1d-9f3a-000000000002"
#define TASK  "0198c3a2-7b4e-7c1d-9f3a-1234567890ab"
#define TASK2 "0198c3a2-7b4e-7c1d-9f3a-1234567890cd"
#define TOK   "mat_task_one"
#define TOK2  "mat_task_two"
#define REPO  "https://github.com/org/my-repo.git"

static struct fp_proc fp;
static struct ah h;
static char root[128], wd1[512], wd2[512];

static void mkdirs(const char *p)
{
	char tmp[PATH_MAX];
	strlcpy(tmp, p, sizeof tmp);
	for (char *s = tmp + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(tmp, 0700);
			*s = '/';
		}
	mkdir(tmp, 0700);
}

/* The server's repo list for WS: urls joined as repos[]. */
static void serve_repos(const char *const *urls, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "workspace_id", WS);
	cJSON *arr = cJSON_AddArrayToObject(o, "repos");
	for (size_t i = 0; i < n; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "url", urls[i]);
		cJSON_AddItemToArray(arr, r);
	}
	cJSON_AddStringToObject(o, "repos_version", "v1");
	cJSON_AddItemToObject(o, "settings", cJSON_CreateObject());
	char *body = cJSON_PrintUnformatted(o);
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "method", "GET");
	cJSON_AddStringToObject(f, "path_prefix", "/api/daemon/workspaces/" WS "/repos");
	cJSON_AddNumberToObject(f, "status", 200);
	cJSON_AddStringToObject(f, "body", body);
	cJSON_AddNumberToObject(f, "count", -1);
	char *fj = cJSON_PrintUnformatted(f);
	fp_http(&fp, "DELETE", "/_admin/faults", NULL, NULL, NULL);
	cr_assert_eq(fp_fault(&fp, fj), 200);
	free(fj);
	free(body);
	cJSON_Delete(f);
	cJSON_Delete(o);
}

static void start(bool with_root)
{
	cr_assert_eq(fp_start(&fp, NULL, NULL), 0);
	strlcpy(root, "/tmp/mc-agentapi-XXXXXX", sizeof root);
	cr_assert_not_null(mkdtemp(root));
	snprintf(wd1, sizeof wd1, "%s/" WS "/1234567890ab/workdir", root);
	snprintf(wd2, sizeof wd2, "%s/" WS "/1234567890cd/workdir", root);
	mkdirs(wd1);
	mkdirs(wd2);
	struct ah_opts o = { .server_url = fp.url, .token = "mul_daemon_token",
			     .workspaces_root = with_root ? root : NULL };
	cr_assert_eq(ah_start(&h, &o), 0);
	struct mc_task_repo repos[2] = { { .url = REPO, .ref = "feature-x" },
					 { .url = "https://github.com/org/task-only.git" } };
	cr_assert_eq(ah_task_running(&h, TASK, WS, "Code Reviewer", wd1, TOK, 2, repos), 0);
	cr_assert_eq(ah_task_running(&h, TASK2, WS, "Other", wd2, TOK2, 0, NULL), 0);
	const char *urls[] = { REPO, "https://x/slow.git", "https://x/busy.git",
			       "https://x/nosync.git", "https://x/fail.git" };
	serve_repos(urls, 5);
}

static void setup(void) { start(true); }

static void teardown(void)
{
	ah_free(&h);
	fp_stop(&fp);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
}

/* POST /repo/checkout as the CLI sends it. */
static void checkout(const char *bearer, const struct ah_checkout *c, struct ah_resp *r)
{
	char *body = ah_checkout_body(c);
	ah_http(&h, "POST", "/repo/checkout", bearer, body, r);
	free(body);
}

static struct ah_checkout co1(void)
{
	return (struct ah_checkout){ .agent_name = "Code Reviewer", .retry_busy = true,
				     .task_id = TASK, .url = REPO, .workdir = wd1,
				     .workspace_id = WS };
}

static void expect_error(const struct ah_resp *r, long status, const char *text)
{
	cr_expect_eq(r->status, status, "status %ld, want %ld (%s)", r->status, status, r->body);
	char want[1024];
	snprintf(want, sizeof want, "%s\n", text);
	cr_expect_str_eq(r->body, want);
	cr_expect_str_eq(r->content_type, "text/plain; charset=utf-8");
	cr_expect_str_eq(r->nosniff, "nosniff");
}

static void expect_row(const char *bearer, const struct ah_checkout *c, long status,
		       const char *text)
{
	struct ah_resp r;
	checkout(bearer, c, &r);
	expect_error(&r, status, text);
	ah_resp_free(&r);
}

TestSuite(agentapi, .init = setup, .fini = teardown, .timeout = 60);

Test(agentapi, health_fields_and_types)
{
	struct ah_resp r;
	ah_http(&h, "GET", "/health", NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_expect_str_eq(r.content_type, "application/json");
	size_t n = strlen(r.body);
	cr_assert(n > 0 && r.body[n - 1] == '\n', "trailing newline");
	cJSON *o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	cr_expect_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "running");
	cr_expect_eq(cJSON_GetObjectItem(o, "pid")->valueint, (int)getpid());
	cr_expect_str_eq(cJSON_GetObjectItem(o, "os")->valuestring, "linux");
	const char *up = cJSON_GetObjectItem(o, "uptime")->valuestring;
	cr_expect(up[strlen(up) - 1] == 's', "uptime %s", up);
	cJSON *prof = cJSON_GetObjectItem(o, "profile");
	cr_expect(cJSON_IsString(prof) && prof->valuestring[0] == '\0');
	cr_expect_str_eq(cJSON_GetObjectItem(o, "daemon_id")->valuestring, "test-daemon");
	cr_expect_str_eq(cJSON_GetObjectItem(o, "device_name")->valuestring, "testhost");
	cr_expect_str_eq(cJSON_GetObjectItem(o, "server_url")->valuestring, fp.url);
	cr_expect_str_eq(cJSON_GetObjectItem(o, "cli_version")->valuestring, "multicad/test");
	cr_expect_eq(cJSON_GetObjectItem(o, "active_task_count")->valueint, 2);
	cr_expect_eq(cJSON_GetObjectItem(o, "running_task_count")->valueint, 2);
	cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(o, "resource_wait_task_count")));
	cr_expect(cJSON_IsArray(cJSON_GetObjectItem(o, "agents")));
	cJSON *ws = cJSON_GetObjectItem(o, "workspaces");
	cr_assert(cJSON_IsArray(ws) && cJSON_GetArraySize(ws) == 1);
	cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ws, 0), "id")->valuestring, WS);
	cJSON_Delete(o);
	ah_resp_free(&r);
	/* any method is answered */
	ah_http(&h, "POST", "/health", NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	ah_resp_free(&r);
}

Test(agentapi, routes_shutdown_refused)
{
	struct ah_resp r;
	ah_http(&h, "GET", "/nope", NULL, NULL, &r);
	expect_error(&r, 404, "404 page not found");
	ah_resp_free(&r);
	ah_http(&h, "GET", "/shutdown", NULL, NULL, &r);
	expect_error(&r, 405, "method not allowed");
	ah_resp_free(&r);
	ah_http(&h, "POST", "/shutdown", NULL, NULL, &r);
	cr_expect_eq(r.status, 403);
	cr_expect(strstr(r.body, "systemctl stop multicad") != NULL, "%s", r.body);
	ah_resp_free(&r);
	ah_http(&h, "GET", "/repo/checkout", TOK, NULL, &r);
	expect_error(&r, 405, "method not allowed");
	ah_resp_free(&r);
	/* still alive: the refused shutdown did nothing */
	cr_expect_geq(ah_ping(&h, 5, 2000), 0);
}

Test(agentapi, check_table_rows_2_to_9)
{
	struct ah_checkout c = co1();
	const char *cred = "repo checkout requires an active task credential";
	expect_row(NULL, &c, 401, cred);
	expect_row("mat_unknown", &c, 401, cred);
	struct ah_resp r;
	ah_http(&h, "POST", "/repo/checkout", TOK, "{\"url\":", &r);
	cr_expect_eq(r.status, 400);
	cr_expect(strncmp(r.body, "invalid request body: ", 22) == 0, "%s", r.body);
	ah_resp_free(&r);
	ah_http(&h, "POST", "/repo/checkout", TOK, "{\"retry_busy\":\"yes\"}", &r);
	cr_expect_eq(r.status, 400);
	cr_expect(strncmp(r.body, "invalid request body: ", 22) == 0, "%s", r.body);
	ah_resp_free(&r);
	c.url = "  ";
	expect_row(TOK, &c, 400, "url is required");
	c = co1();
	c.workspace_id = "";
	expect_row(TOK, &c, 400, "workspace_id is required");
	c = co1();
	c.workdir = "";
	expect_row(TOK, &c, 400, "workdir is required");
	c = co1();
	c.checkout_mode = "shared";
	expect_row(TOK, &c, 400, "invalid checkout_mode");
	const char *ctx = "repo checkout task context does not match the active task";
	c = co1();
	c.task_id = TASK2;
	expect_row(TOK, &c, 403, ctx);
	c = co1();
	c.task_id = "";
	expect_row(TOK, &c, 403, ctx);
	c = co1();
	c.workspace_id = WS2;
	expect_row(TOK, &c, 403, ctx);
	const char *own = "repo checkout workdir is not owned by the active task";
	c = co1();
	c.workdir = wd2; /* another task's */
	expect_row(TOK, &c, 403, own);
	char esc[PATH_MAX + 8], link[PATH_MAX + 8], missing[PATH_MAX + 8];
	snprintf(esc, sizeof esc, "%s/..", wd1);
	c.workdir = esc;
	expect_row(TOK, &c, 403, own);
	snprintf(link, sizeof link, "%s/escape", wd1);
	cr_assert_eq(symlink(wd2, link), 0);
	c.workdir = link; /* inside by name, outside after symlinks */
	expect_row(TOK, &c, 403, own);
	snprintf(missing, sizeof missing, "%s/does-not-exist", wd1);
	c.workdir = missing;
	expect_row(TOK, &c, 403, own);
}

Test(agentapi, body_too_large)
{
	size_t n = 2u * 1024 * 1024;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	struct ah_resp r;
	ah_http(&h, "POST", "/repo/checkout", TOK, big, &r);
	cr_expect_eq(r.status, 413, "%ld %s", r.status, r.body);
	ah_resp_free(&r);
	free(big);
}

Test(agentapi, success_and_ref_selection)
{
	struct ah_checkout c = co1();
	c.agent_name = "Someone Else"; /* ignored: the token's name is used */
	struct ah_resp r;
	checkout(TOK, &c, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_expect_str_eq(r.content_type, "application/json");
	cJSON *o = cJSON_Parse(r.body);
	char want[PATH_MAX + 16];
	char real[PATH_MAX];
	cr_assert_not_null(realpath(wd1, real));
	snprintf(want, sizeof want, "%s/my-repo", real);
	cr_expect_str_eq(cJSON_GetObjectItem(o, "path")->valuestring, want);
	cr_expect_str_eq(cJSON_GetObjectItem(o, "branch_name")->valuestring,
			 "agent/stub/1234567890ab");
	cJSON_Delete(o);
	ah_resp_free(&r);
	char f[PATH_MAX + 32], got[128] = "";
	snprintf(f, sizeof f, "%s/.stub_ref", want);
	FILE *fpr = fopen(f, "r");
	cr_assert_not_null(fpr);
	cr_assert_not_null(fgets(got, sizeof got, fpr));
	fclose(fpr);
	cr_expect_str_eq(got, "default:feature-x"); /* the task's repos[].ref */
	c.ref = " v2 "; /* explicit, trimmed, wins */
	c.checkout_mode = "isolated";
	checkout(TOK, &c, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	ah_resp_free(&r);
	fpr = fopen(f, "r");
	cr_assert_not_null(fgets(got, sizeof got, fpr));
	fclose(fpr);
	cr_expect_str_eq(got, "ref:v2 isolated");
	/* a repo the task does not name: the remote's default */
	c = co1();
	c.url = "https://x/slow.git";
	c.url = REPO;
	c.task_id = TASK2;
	c.workdir = wd2;
	checkout(TOK2, &c, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	ah_resp_free(&r);
	snprintf(want, sizeof want, "%s/my-repo/.stub_ref", wd2);
	fpr = fopen(want, "r");
	cr_assert_not_null(fpr);
	cr_assert_not_null(fgets(got, sizeof got, fpr));
	fclose(fpr);
	cr_expect_str_eq(got, "remote-default");
	/* one refresh per checkout */
	cr_expect_eq(fp_journal_count(&fp, "GET", "/api/daemon/workspaces/" WS "/repos"), 3);
}

Test(agentapi, readiness_rows_11_12)
{
	struct ah_checkout c = co1();
	c.url = "https://github.com/org/unknown.git";
	expect_row(TOK, &c, 400, "repo is not configured for this workspace");
	c.url = "https://github.com/org/task-only.git"; /* the task's list allows it */
	struct ah_resp r;
	checkout(TOK, &c, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	ah_resp_free(&r);
	c.url = "https://x/nosync.git";
	expect_row(TOK, &c, 500, "repo is configured but not synced: stub clone failed");
	c.url = "https://x/fail.git";
	expect_row(TOK, &c, 500, "create worktree: stub failure");
	c.url = "https://x/busy.git";
	checkout(TOK, &c, &r);
	expect_error(&r, 503, "repository is busy with another operation; retry later");
	cr_expect_str_eq(r.retryable, "repo-busy");
	cr_expect_str_eq(r.retry_after, "2");
	ah_resp_free(&r);
	/* the server fails the refresh */
	fp_http(&fp, "DELETE", "/_admin/faults", NULL, NULL, NULL);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/workspaces/\",\"status\":500,"
			      "\"body\":\"{\\\"error\\\":\\\"boom\\\"}\",\"count\":-1}"), 200);
	c.url = REPO;
	checkout(TOK, &c, &r);
	cr_expect_eq(r.status, 500);
	cr_expect(strncmp(r.body, "refresh workspace repos: ", 25) == 0, "%s", r.body);
	ah_resp_free(&r);
}

Test(agentapi, ended_task_gets_401)
{
	struct ah_checkout c = co1();
	struct ah_resp r;
	checkout(TOK, &c, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	ah_resp_free(&r);
	cr_assert_eq(ah_task_ended(&h, TASK), 0);
	expect_row(TOK, &c, 401, "repo checkout requires an active task credential");
	ah_http(&h, "GET", "/health", NULL, NULL, &r);
	cJSON *o = cJSON_Parse(r.body);
	cr_expect_eq(cJSON_GetObjectItem(o, "running_task_count")->valueint, 1);
	cJSON_Delete(o);
	ah_resp_free(&r);
}

struct slow_arg {
	struct ah_resp r;
};

static void *slow_checkout(void *p)
{
	struct slow_arg *a = p;
	struct ah_checkout c = co1();
	c.url = "https://x/slow.git";
	checkout(TOK, &c, &a->r);
	return NULL;
}

Test(agentapi, health_answers_while_a_checkout_is_slow)
{
	struct slow_arg a;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, slow_checkout, &a), 0);
	usleep(300 * 1000); /* the checkout is in the stub's 2 s sleep */
	struct ah_resp r;
	ah_http(&h, "GET", "/health", NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_lt(r.seconds, 0.5, "health took %.3f s", r.seconds);
	ah_resp_free(&r);
	cr_expect_geq(ah_ping(&h, 9, 500), 0); /* and the IPC loop answers */
	pthread_join(t, NULL);
	cr_expect_eq(a.r.status, 200, "%s", a.r.body);
	ah_resp_free(&a.r);
}

Test(agentapi, status_frames_and_stop)
{
	ah_pump(&h, 6000);
	cr_expect_geq(h.n_status, 1);
	cr_expect_eq(h.status.repo_cache_bytes, 4242);
	cr_expect_eq(h.status.checkouts_running, 0);
	cr_expect_eq(ah_stop(&h, 5000), 0);
	cr_expect(h.stopped);
}

static void setup_noroot(void) { start(false); }

Test(agentapi_noroot, no_repo_cache, .init = setup_noroot, .fini = teardown, .timeout = 60)
{
	struct ah_checkout c = co1();
	expect_row(TOK, &c, 500, "repo cache not initialized");
}

/* The agent runs before the worker's report of it reaches the local API
 * (TASK_STATE after the spawn, then AGENT_TASK): a first request a few
 * hundred ms early waits for its task instead of a 401. */
struct early { struct ah_resp r; struct ah_checkout c; };

static void *early_checkout(void *arg)
{
	struct early *e = arg;
	checkout("mat_task_late", &e->c, &e->r);
	return NULL;
}

Test(agentapi, a_request_ahead_of_its_task_waits_for_it)
{
	char wd3[512];
	snprintf(wd3, sizeof wd3, "%s/" WS "/1234567890ef/workdir", root);
	mkdirs(wd3);
	struct early e = { .c = { .agent_name = "Late", .retry_busy = true,
				  .task_id = "0198c3a2-7b4e-7c1d-9f3a-1234567890ef", .url = REPO,
				  .workdir = wd3, .workspace_id = WS } };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, early_checkout, &e), 0);
	usleep(300 * 1000);
	cr_assert_eq(ah_task_running(&h, "0198c3a2-7b4e-7c1d-9f3a-1234567890ef", WS, "Late", wd3,
				     "mat_task_late", 0, NULL), 0);
	pthread_join(th, NULL);
	cr_expect_eq(e.r.status, 200, "%ld %s", e.r.status, e.r.body);
	ah_resp_free(&e.r);
}
