/* The agent-api process in the whole daemon (supervisor/agentapi_proc.c):
 * up and titled, in status, respawned after SIGKILL on the same port, gone
 * with agent_api_listen = off, and a busy port failing the start. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"
#include "tests/support/fp_tasks.h"

#define READY_MS 15000
#define TITLE "multicad: agent-api"

TestSuite(agentapi_daemon, .timeout = 120, .fini = dfx_fini);

static cJSON *status(void)
{
	char *reply = NULL;
	cr_assert_eq(dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000), 0, "no status reply");
	cJSON *j = cJSON_Parse(reply);
	cr_assert(j != NULL, "status is not JSON: %s", reply);
	free(reply);
	return j;
}

/* The live child of the supervisor titled TITLE, or 0. */
static pid_t agentapi_pid(void)
{
	pid_t kids[64];
	size_t n = dp_children(&D, kids, 64);
	for (size_t i = 0; i < n && i < 64; i++) {
		char title[128];
		if (dp_proc_title(kids[i], title, sizeof title) == 0 && strcmp(title, TITLE) == 0 &&
		    dp_pid_alive(kids[i]))
			return kids[i];
	}
	return 0;
}

/* status.agent_api.<key> as a number (-1: null or absent). */
static double aapi_num(const char *key)
{
	cJSON *s = status();
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "agent_api"), key);
	double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	cJSON_Delete(s);
	return d;
}

static void aapi_str(const char *key, char *out, size_t n)
{
	cJSON *s = status();
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "agent_api"), key);
	snprintf(out, n, "%s", cJSON_IsString(v) ? v->valuestring : "(none)");
	cJSON_Delete(s);
}

static int port_of(const char *listen)
{
	const char *c = strrchr(listen, ':');
	return c != NULL ? (int)strtol(c + 1, NULL, 10) : -1;
}

static bool connects(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void start(const char *listen)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 1), .agent_api_listen = listen };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
}

Test(agentapi_daemon, up_titled_in_status_and_respawned_on_the_same_port)
{
	start(NULL); /* 127.0.0.1:0 */
	pid_t a = 0;
	DFX_WAIT_UP((a = agentapi_pid()) != 0, READY_MS, "no child titled \"" TITLE "\"");
	char listen[64], state[32];
	aapi_str("listen", listen, sizeof listen);
	int port = port_of(listen);
	cr_assert(strncmp(listen, "127.0.0.1:", 10) == 0 && port > 0, "listen: %s", listen);
	cr_assert(connects(port), "nothing accepts on %s", listen);
	DFX_WAIT_UP((aapi_str("state", state, sizeof state), strcmp(state, "running") == 0),
		    READY_MS, "agent_api.state is %s", state);
	cr_assert_eq((pid_t)aapi_num("pid"), a);
	cr_assert_eq(aapi_num("restarts"), 0);

	cr_assert_eq(kill(a, SIGKILL), 0);
	pid_t b = 0;
	DFX_WAIT_UP((b = agentapi_pid()) != 0 && b != a, READY_MS, "not respawned after SIGKILL");
	DFX_WAIT_UP(aapi_num("restarts") == 1, READY_MS, "restarts not counted");
	char again[64];
	aapi_str("listen", again, sizeof again);
	cr_assert_str_eq(again, listen, "the same socket after a respawn");
	cr_assert(connects(port));
	cr_assert_eq(dp_count_zombies(&D), 0);
	cr_assert(dp_stop(&D, 10000), "the daemon did not stop cleanly");
	cr_assert(!connects(port), "the port is closed with the daemon");
}

Test(agentapi_daemon, off_means_no_process_and_no_port)
{
	start("off");
	char listen[64], state[32];
	aapi_str("listen", listen, sizeof listen);
	aapi_str("state", state, sizeof state);
	cr_assert_str_eq(listen, "off");
	cr_assert_str_eq(state, "off");
	cr_assert_eq(aapi_num("pid"), -1);
	usleep(500000);
	cr_assert_eq(agentapi_pid(), 0, "an agent-api process with agent_api_listen = off");
}

Test(agentapi_daemon, a_busy_port_fails_the_start_naming_the_key)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	char listen_v[32], want[96];
	snprintf(listen_v, sizeof listen_v, "127.0.0.1:%d", ntohs(sa.sin_port));
	snprintf(want, sizeof want, "cannot listen on %s: Address already in use (agent_api_listen)",
		 listen_v);
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 1), .agent_api_listen = listen_v };
	dfx_start_daemon(&c, NULL);
	cr_assert(dp_wait_exit(&D, 10000), "the daemon did not exit on a busy port");
	cr_assert(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 1, "status %d", D.status);
	cr_assert(dp_log_has(&D, want, NULL, NULL, NULL), "the log does not say \"%s\"", want);
	cr_assert_eq(dp_count_online(&FP, NULL), 0, "a workspace started before the bind");
	close(fd);
}

/* ---- a task's agent checks a repository out (issue 15, end to end) ---- */

static int run_cmd(const char *const *argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A bare repository with one commit on main, made at test time. */
static void make_repo(const char *dir, char *url, size_t n)
{
	char bare[512], work[512];
	snprintf(bare, sizeof bare, "%s/remote.git", dir);
	snprintf(work, sizeof work, "%s/seed", dir);
	cr_assert_eq(run_cmd((const char *const[]){ "git", "init", "-q", "--bare", "-b", "main", bare, NULL }), 0);
	cr_assert_eq(run_cmd((const char *const[]){ "git", "init", "-q", "-b", "main", work, NULL }), 0);
	cr_assert_eq(run_cmd((const char *const[]){ "git", "-C", work, "-c", "user.name=T", "-c",
					   "user.email=t@example.com", "commit", "-q", "--allow-empty",
					   "-m", "first", NULL }), 0);
	cr_assert_eq(run_cmd((const char *const[]){ "git", "-C", work, "push", "-q", bare, "main", NULL }), 0);
	snprintf(url, n, "file://%s", bare);
}

Test(agentapi_daemon, an_agent_checks_out_a_workspace_repo_and_commits_in_it)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	char url[600], body[800], out[600];
	struct dp_config c = { .workspaces = dfx_ws_list(1, 1) };
	static char providers[600];
	snprintf(providers, sizeof providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	c.providers = providers;
	c.daemon_extra = "task_poll_interval = 300ms\n";
	dfx_prepare_daemon(&c, NULL);
	make_repo(D.dir, url, sizeof url);
	snprintf(body, sizeof body, "{\"repos\":[{\"url\":\"%s\",\"description\":\"the code\"}]}", url);
	char path[128];
	snprintf(path, sizeof path, "/_admin/repos/%s", WS[1]);
	cr_assert_eq(dfx_admin("POST", path, body), 200);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, READY_MS);

	char rid[DP_ID_LEN + 1], id[40], env[1600];
	dfx_runtime_of(1, rid);
	snprintf(out, sizeof out, "%s/checkout.out", D.dir);
	snprintf(env, sizeof env,
		 "\"FAKE_AGENT_MODE\":\"checkout\",\"FAKE_AGENT_REPO_URL\":\"%s\","
		 "\"FAKE_AGENT_CHECKOUT_OUT\":\"%s\"", url, out);
	fpt_queue(&FP, rid, env, "", id);
	cr_assert(fpt_wait_status(&FP, id, "completed", 60000, NULL), "the checkout task failed");
	FILE *f = fopen(out, "r");
	cr_assert_not_null(f, "the agent wrote no checkout result");
	char text[4096] = "";
	size_t k = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[k] = '\0';
	cr_assert(strstr(text, "status\t200\n") != NULL, "checkout answer: %s", text);
	cr_assert(strstr(text, "commit\t0\n") != NULL, "the commit in the checkout failed: %s", text);
	char want[700];
	snprintf(want, sizeof want, "path\t%s/work/%s/", D.state_dir, WS[1]);
	cr_assert(strstr(text, want) != NULL, "not in the task's work dir: %s", text);
	cr_assert(strstr(text, "\"branch_name\":\"agent/agent-smith/") != NULL, "%s", text);
	/* And /health answers on the same port, as `multica daemon status` asks. */
	char listen[64];
	aapi_str("listen", listen, sizeof listen);
	cr_assert_gt(port_of(listen), 0);
	cr_assert(connects(port_of(listen)), "nothing listens on the agents' port");
}

/* Issue 11 end to end: with agent_uid_range the supervisor tells the
 * agent-api the workspace's identity, and the cache and the checkout are
 * made by that uid's git (root only: the daemon switches uids). */
Test(agentapi_daemon, with_agent_uids_the_checkout_is_made_as_the_agent)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: agents run as other uids (issue 11)");
	dfx_start_plane(1, NULL, NULL, NULL);
	char url[600], body[800], out[600];
	struct dp_config c = { .workspaces = dfx_ws_list(1, 1) };
	/* The agent (another uid) must reach the fake CLI: the build dir may
	 * sit under a 0700 directory (CI clones into mktemp -d). */
	static char bindir[] = "/tmp/mc-fakebin-XXXXXX";
	cr_assert_not_null(mkdtemp(bindir));
	chmod(bindir, 0755);
	char cp[1400];
	snprintf(cp, sizeof cp, "cp %s %s/fake_claude && chmod 0755 %s/fake_claude",
		 FAKE_CLAUDE_BIN, bindir, bindir);
	cr_assert_eq(system(cp), 0);
	static char providers[600];
	snprintf(providers, sizeof providers, "claude = %s/fake_claude\n", bindir);
	c.providers = providers;
	c.daemon_extra = "task_poll_interval = 300ms\nagent_uid_range = 61970-61979\n";
	dfx_prepare_daemon(&c, NULL);
	/* the source stands for the server's: readable and trusted by anyone */
	char cfg[600];
	snprintf(cfg, sizeof cfg, "%s/gitconfig", D.dir);
	FILE *g = fopen(cfg, "w");
	cr_assert_not_null(g);
	fprintf(g, "[safe]\n\tdirectory = *\n");
	fclose(g);
	chmod(cfg, 0644);
	setenv("GIT_CONFIG_GLOBAL", cfg, 1);
	make_repo(D.dir, url, sizeof url);
	chmod(D.dir, 0755);
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "chmod -R a+rX %s/remote.git", D.dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(body, sizeof body, "{\"repos\":[{\"url\":\"%s\",\"description\":\"the code\"}]}", url);
	char path[128];
	snprintf(path, sizeof path, "/_admin/repos/%s", WS[1]);
	cr_assert_eq(dfx_admin("POST", path, body), 200);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, READY_MS);

	char rid[DP_ID_LEN + 1], id[40], env[1600];
	dfx_runtime_of(1, rid);
	snprintf(out, sizeof out, "%s/out", D.dir);
	mkdir(out, 0700);
	chmod(out, 01777); /* the agent (another uid) writes its result here */
	snprintf(out, sizeof out, "%s/out/checkout.out", D.dir);
	snprintf(env, sizeof env,
		 "\"FAKE_AGENT_MODE\":\"checkout\",\"FAKE_AGENT_REPO_URL\":\"%s\","
		 "\"FAKE_AGENT_CHECKOUT_OUT\":\"%s\"", url, out);
	fpt_queue(&FP, rid, env, "", id);
	bool done = fpt_wait_status(&FP, id, "completed", 60000, NULL);
	FILE *f = fopen(out, "r");
	char text[4096] = "";
	size_t k = f != NULL ? fread(text, 1, sizeof text - 1, f) : 0;
	if (f != NULL)
		fclose(f);
	text[k] = '\0';
	cr_assert(done, "the checkout task failed: %s", text);
	cr_assert_neq(k, 0, "the agent wrote no checkout result");
	cr_assert(strstr(text, "status\t200\n") != NULL, "checkout answer: %s", text);
	cr_assert(strstr(text, "commit\t0\n") != NULL, "the commit in the checkout failed: %s", text);
	/* the workspace's cache: the daemon's dir in the agent's group, the
	 * bare made by the agent uid */
	snprintf(cmd, sizeof cmd,
		 "set -e; d=%s/work/.repos/%s; test \"$(stat -c %%a:%%u $d)\" = 2770:0;"
		 "g=$(stat -c %%g $d); test $g -ge 61970 -a $g -le 61979;"
		 "b=$(ls -d $d/*.git | head -1); u=$(stat -c %%u $b); test $u -ge 61970 -a $u -le 61979;"
		 "test \"$(git --git-dir=$b config --get core.sharedRepository)\" = group",
		 D.state_dir, WS[1]);
	cr_assert_eq(system(cmd), 0, "the cache is not the agent's: %s", cmd);
	snprintf(cp, sizeof cp, "rm -rf %s", bindir);
	cr_expect_eq(system(cp), 0);
}
