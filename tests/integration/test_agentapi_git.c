/* The agent-api process with the real repo cache (agentapi/repocache.c):
 * a bare repository made here, served by file:// URL, checked out into a
 * task's work dir through POST /repo/checkout as the multica CLI sends it. */
#include <criterion/criterion.h>

#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "tests/support/agentapi_harness.h"
#include "tests/support/fakeplane_proc.h"

#define WS   "0198c3a2-7b4e-7c1d-9f3a-000000000001"
#define TASK "0198c3a2-7b4e-7c1d-9f3a-1234567890ab"
#define TOK  "mat_task_one"

extern char **environ;

static int run(const char *const *argv)
{
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_bare(const char *dir, char *url, size_t url_size)
{
	char seed[512], bare[512];
	snprintf(seed, sizeof seed, "%s/seed", dir);
	snprintf(bare, sizeof bare, "%s/src.git", dir);
	const char *init[] = { "git", "init", "-q", "-b", "main", seed, NULL };
	const char *commit[] = { "git", "-C", seed, "-c", "user.name=t", "-c", "user.email=t@t",
				 "commit", "-q", "--allow-empty", "-m", "initial", NULL };
	const char *clone[] = { "git", "clone", "-q", "--bare", seed, bare, NULL };
	cr_assert_eq(run(init), 0);
	cr_assert_eq(run(commit), 0);
	cr_assert_eq(run(clone), 0);
	snprintf(url, url_size, "file://%s", bare);
}

Test(agentapi_git, happy_path_linked_worktree, .timeout = 120)
{
	char root[128] = "/tmp/mc-agentapi-git-XXXXXX", home[256], wd[512], url[600];
	cr_assert_not_null(mkdtemp(root));
	snprintf(home, sizeof home, "%s/home", root);
	mkdir(home, 0700);
	setenv("HOME", home, 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	make_bare(root, url, sizeof url);
	char ws_root[256];
	snprintf(ws_root, sizeof ws_root, "%s/ws", root);
	mkdir(ws_root, 0700);
	snprintf(wd, sizeof wd, "%s/ws/" WS, root);
	mkdir(wd, 0700);
	strlcat(wd, "/1234567890ab", sizeof wd);
	mkdir(wd, 0700);
	strlcat(wd, "/workdir", sizeof wd);
	mkdir(wd, 0700);

	struct fp_proc fp;
	cr_assert_eq(fp_start(&fp, NULL, NULL), 0);
	char fault[2048];
	snprintf(fault, sizeof fault,
		 "{\"method\":\"GET\",\"path_prefix\":\"/api/daemon/workspaces/" WS "/repos\","
		 "\"status\":200,\"count\":-1,\"body\":\"{\\\"workspace_id\\\":\\\"" WS "\\\","
		 "\\\"repos\\\":[{\\\"url\\\":\\\"%s\\\"}],\\\"repos_version\\\":\\\"v1\\\"}\"}",
		 url);
	cr_assert_eq(fp_fault(&fp, fault), 200);

	struct ah h;
	struct ah_opts o = { .server_url = fp.url, .token = "mul_daemon", .workspaces_root = ws_root };
	cr_assert_eq(ah_start(&h, &o), 0);
	cr_assert_eq(ah_task_running(&h, TASK, WS, "Code Reviewer", wd, TOK, 0, NULL), 0);
	struct ah_checkout c = { .agent_name = "Code Reviewer", .retry_busy = true,
				 .task_id = TASK, .url = url, .workdir = wd, .workspace_id = WS };
	char *body = ah_checkout_body(&c);
	struct ah_resp r;
	ah_http(&h, "POST", "/repo/checkout", TOK, body, &r);
	cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
	cJSON *j = cJSON_Parse(r.body);
	char real[PATH_MAX], want[PATH_MAX + 8];
	cr_assert_not_null(realpath(wd, real));
	snprintf(want, sizeof want, "%s/src", real);
	if (j != NULL) {
		cr_expect_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, want);
		cr_expect_str_eq(cJSON_GetObjectItem(j, "branch_name")->valuestring,
				 "agent/code-reviewer/1234567890ab");
	}
	cJSON_Delete(j);
	strlcat(want, "/.git", sizeof want);
	struct stat st;
	cr_expect_eq(stat(want, &st), 0, "%s exists", want);
	ah_resp_free(&r);
	free(body);
	cr_expect_eq(ah_stop(&h, 10000), 0);
	ah_free(&h);
	fp_stop(&fp);
	const char *rm[] = { "rm", "-rf", root, NULL };
	run(rm);
}
