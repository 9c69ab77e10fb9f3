/* The agents' local API with a switching identity (issue 11): the agent-api
 * runs as a "daemon" uid with CAP_SETUID, CAP_SETGID and CAP_KILL only (as
 * the unit gives multicad: no CAP_CHOWN, no DAC override), the task's
 * workspace has agent uid/gid 61960, and its git runs as that. What an
 * agent, another workspace's agent and the cache's maintenance then see.
 * Needs root (to be those uids); skipped otherwise. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "agentapi/git_run.h"
#include "agentapi/repocache.h"
#include "common/clock.h"
#include "common/identity.h"
#include "tests/support/agentapi_harness.h"
#include "tests/support/fakeplane_proc.h"

#define WS     "0198c3a2-7b4e-7c1d-9f3a-000000000001"
#define TASK   "0198c3a2-7b4e-7c1d-9f3a-1234567890ab"
#define TOK    "mat_task_one"
#define AGENT  61960                /* the workspace's agents: uid = gid */
#define OTHER  61961                /* another workspace's agents */
#define DAEMON 61962                /* the daemon (the agent-api) */
#define AGENT2 61963                /* the workspace's agents after a change */

static char root[128], ws_root[256], wd[512], url[600], bare[PATH_MAX], checkout[PATH_MAX];

/* A fixture shell command as root; asserts it succeeded. */
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "fixture failed: %s", cmd);
}

/* Runs "sh -c cmd" as uid = gid = id (no capabilities); its exit status. */
static int sh_as(long id, const char *cmd)
{
	fflush(NULL);
	pid_t p = fork();
	if (p == 0) {
		struct mc_identity who = { .sw = true, .uid = (uid_t)id, .gid = (gid_t)id,
					   .extra_gid = (gid_t)-1 };
		if (mc_identity_enter(&who) < 0 || chdir("/") < 0)
			_exit(120);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(121);
	}
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* errno of open(path, O_RDONLY) as uid = gid = id, 0 when it opened. */
static int open_errno_as(long id, const char *path)
{
	fflush(NULL);
	pid_t p = fork();
	if (p == 0) {
		struct mc_identity who = { .sw = true, .uid = (uid_t)id, .gid = (gid_t)id,
					   .extra_gid = (gid_t)-1 };
		if (mc_identity_enter(&who) < 0)
			_exit(255);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		_exit(fd >= 0 ? 0 : errno & 0xff);
	}
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A directory owned by the daemon, group gid, mode (what the worker
 * makes for a task: worker/workdir.c). */
static void dir_of(const char *path, long gid, mode_t mode)
{
	cr_assert(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s", path);
	cr_assert_eq(chown(path, DAEMON, (gid_t)gid), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

static void setup(void)
{
	if (geteuid() != 0)
		return;
	snprintf(root, sizeof root, "/tmp/mc-agentapi-ident-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	chmod(root, 0755);
	/* git clears GIT_CONFIG_COUNT for a local transport's upload-pack, so
	 * the source (root's, standing for the server's) is trusted here. */
	char cfg[256];
	snprintf(cfg, sizeof cfg, "%s/gitconfig", root);
	FILE *f = fopen(cfg, "w");
	cr_assert_not_null(f);
	fprintf(f, "[safe]\n\tdirectory = *\n");
	fclose(f);
	chmod(cfg, 0644);
	setenv("GIT_CONFIG_GLOBAL", cfg, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "t", 1);
	setenv("GIT_AUTHOR_EMAIL", "t@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "t", 1);
	setenv("GIT_COMMITTER_EMAIL", "t@example.com", 1);
	setenv("HOME", "/nonexistent", 1);
	/* The source: readable by everyone (it stands for the network). */
	sh("set -e; cd %s; git init -q -b main seed; cd seed; echo one > README;"
	   "git add README; git -c safe.directory='*' commit -q -m one;"
	   "git clone -q --bare . ../src.git; chmod -R a+rX ../src.git", root);
	snprintf(url, sizeof url, "file://%s/src.git", root);
	/* workspaces_root: the daemon's, 0711 (worker/workdir.c); the task's
	 * dirs: the daemon's, group AGENT, 02770. */
	snprintf(ws_root, sizeof ws_root, "%s/ws", root);
	dir_of(ws_root, DAEMON, 0711);
	snprintf(wd, sizeof wd, "%s/" WS, ws_root);
	dir_of(wd, AGENT, 02770);
	strlcat(wd, "/1234567890ab", sizeof wd);
	dir_of(wd, AGENT, 02770);
	strlcat(wd, "/workdir", sizeof wd);
	dir_of(wd, AGENT, 02770);
	char t[256];
	snprintf(t, sizeof t, "%s", root + 1);
	for (char *p = t; *p; p++)
		if (*p == '/')
			*p = '+';
	snprintf(bare, sizeof bare, "%s/.repos/" WS "/file+%s+src.git.git", ws_root, t);
	snprintf(checkout, sizeof checkout, "%s/src", wd);
}

static void teardown(void)
{
	if (root[0] != '\0') {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "rm -rf %s", root);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup of %s failed\n", root);
	}
}

TestSuite(agentapi_ident, .init = setup, .fini = teardown, .timeout = 180);

static void skip_unless_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: the agent-api switches to agent uids (issue 11)");
}

/* The bare's name ends in ".git" once (reference 3.1): find it. */
static void find_bare(void)
{
	struct stat st;
	if (stat(bare, &st) == 0)
		return;
	char alt[PATH_MAX];
	snprintf(alt, sizeof alt, "%s", bare);
	alt[strlen(alt) - 4] = '\0';
	if (stat(alt, &st) == 0)
		snprintf(bare, sizeof bare, "%s", alt);
}

/* The agent-api as DAEMON: a checkout for the task of workspace WS whose
 * agents are agent (0: the fallback, the daemon's own user), isolated or
 * a linked worktree. */
static void checkout_by(struct fp_proc *fp, long agent, bool isolated)
{
	cr_assert_eq(fp_start(fp, NULL, NULL), 0);
	char fault[2048];
	snprintf(fault, sizeof fault,
		 "{\"method\":\"GET\",\"path_prefix\":\"/api/daemon/workspaces/" WS "/repos\","
		 "\"status\":200,\"count\":-1,\"body\":\"{\\\"workspace_id\\\":\\\"" WS "\\\","
		 "\\\"repos\\\":[{\\\"url\\\":\\\"%s\\\"}],\\\"repos_version\\\":\\\"v1\\\"}\"}",
		 url);
	cr_assert_eq(fp_fault(fp, fault), 200);
	struct ah h;
	struct ah_opts o = { .server_url = fp->url, .token = "mul_daemon",
			     .workspaces_root = ws_root, .daemon_uid = DAEMON,
			     .daemon_gid = DAEMON };
	cr_assert_eq(ah_start(&h, &o), 0);
	cr_assert_eq(ah_task_running_as(&h, TASK, WS, "Code Reviewer", wd, TOK, 0, NULL, agent,
					agent, -1), 0);
	struct ah_checkout c = { .agent_name = "Code Reviewer", .retry_busy = true,
				 .checkout_mode = isolated ? "isolated" : "",
				 .task_id = TASK, .url = url, .workdir = wd, .workspace_id = WS };
	char *body = ah_checkout_body(&c);
	struct ah_resp r;
	ah_http(&h, "POST", "/repo/checkout", TOK, body, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cJSON *j = cJSON_Parse(r.body);
	cr_assert_not_null(j);
	cr_expect_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, checkout);
	cJSON_Delete(j);
	ah_resp_free(&r);
	free(body);
	cr_expect_eq(ah_stop(&h, 10000), 0);
	ah_free(&h);
	fp_stop(fp);
	find_bare();
}

static void checkout_as_agent(struct fp_proc *fp)
{
	checkout_by(fp, AGENT, false);
}

Test(agentapi_ident, git_runs_as_the_workspace_agents)
{
	skip_unless_root();
	struct fp_proc fp;
	checkout_as_agent(&fp);

	/* the checkout is the agent's */
	char p[PATH_MAX + 16];
	struct stat st;
	snprintf(p, sizeof p, "%s/README", checkout);
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	cr_expect_eq(st.st_uid, AGENT, "README owned by %u", (unsigned)st.st_uid);
	cr_assert_eq(stat(checkout, &st), 0);
	cr_expect_eq(st.st_uid, AGENT);

	/* the cache: .repos 0711 the daemon's; <ws> the daemon's, group AGENT,
	 * 02770; the bare group AGENT, shared with the group */
	snprintf(p, sizeof p, "%s/.repos", ws_root);
	cr_assert_eq(stat(p, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0711, "%o", st.st_mode & 07777);
	cr_expect_eq(st.st_uid, DAEMON);
	snprintf(p, sizeof p, "%s/.repos/" WS, ws_root);
	cr_assert_eq(stat(p, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 02770, "%o", st.st_mode & 07777);
	cr_expect_eq(st.st_uid, DAEMON);
	cr_expect_eq(st.st_gid, AGENT);
	cr_assert_eq(stat(bare, &st), 0, "%s", bare);
	cr_expect_eq(st.st_gid, AGENT);
	cr_expect_eq(st.st_uid, AGENT, "the agent's git made it");
	sh("test \"$(git --git-dir=%s -c safe.directory='*' config --get core.sharedRepository)\""
	   " = group", bare);
	sh("grep -qx .agent_context %s/info/exclude && grep -qx CLAUDE.md %s/info/exclude", bare,
	   bare);

	/* the agent can commit in its checkout: the worktree writes into the bare */
	char cmd[2 * PATH_MAX];
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; echo agent > agent.txt; git add agent.txt;"
		 "git commit -q -m 'by the agent'", checkout);
	cr_expect_eq(sh_as(AGENT, cmd), 0, "git commit as the agent");
	sh("git --git-dir=%s -c safe.directory='*' log --format=%%s "
	   "agent/code-reviewer/1234567890ab | grep -qx 'by the agent'", bare);

	/* another workspace's agent cannot reach either, even given the path */
	cr_expect_eq(open_errno_as(OTHER, bare), EACCES);
	cr_expect_eq(open_errno_as(OTHER, checkout), EACCES);
	snprintf(p, sizeof p, "%s/HEAD", bare);
	cr_expect_eq(open_errno_as(OTHER, p), EACCES);
	cr_expect_eq(open_errno_as(AGENT, p), 0, "the workspace's own agent can");
}

/* The maintenance, as the daemon after a restart (no task has said the
 * workspace's identity yet), evicts a cache made and written by the agent. */
Test(agentapi_ident, gc_evicts_a_cache_of_agent_objects)
{
	skip_unless_root();
	struct fp_proc fp;
	checkout_as_agent(&fp);
	char cmd[2 * PATH_MAX];
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; echo agent > agent.txt; git add agent.txt;"
		 "git commit -q -m 'by the agent'", checkout);
	cr_assert_eq(sh_as(AGENT, cmd), 0);
	sh("rm -rf %s", checkout); /* the task's dir goes (the worker's GC) */
	struct stat st;
	cr_assert_eq(stat(bare, &st), 0);

	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (ah_become_daemon(DAEMON, DAEMON) < 0)
			_exit(110);
		char err[256];
		struct mc_repocache *rc = mc_repocache_new(ws_root, err, sizeof err);
		if (rc == NULL)
			_exit(111);
		mc_repocache_gc(rc, mc_wall_ms() + 31LL * 24 * 3600 * 1000);
		mc_repocache_free(rc);
		_exit(0);
	}
	int wst;
	while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
		;
	cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "gc child: %d", wst);
	cr_expect_neq(stat(bare, &st), 0, "evicted: %s", bare);
	cr_expect_eq(errno, ENOENT);
}

/* An isolated checkout (git clone --local from the bare) as the agent. */
Test(agentapi_ident, isolated_checkout_is_the_agents)
{
	skip_unless_root();
	struct fp_proc fp;
	checkout_by(&fp, AGENT, true);
	char p[PATH_MAX + 16];
	struct stat st;
	snprintf(p, sizeof p, "%s/.git/config", checkout);
	cr_assert_eq(stat(p, &st), 0, "%s: an isolated clone", p);
	cr_expect_eq(st.st_uid, AGENT);
	char cmd[2 * PATH_MAX];
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; echo agent > agent.txt; git add agent.txt;"
		 "git commit -q -m 'by the agent'", checkout);
	cr_expect_eq(sh_as(AGENT, cmd), 0, "git commit as the agent");
	cr_expect_eq(open_errno_as(OTHER, checkout), EACCES);
}

/* A cache the daemon made before its agents were switched (an upgrade):
 * the first switched checkout adopts it for the group, as the agent. */
Test(agentapi_ident, a_cache_made_before_the_switch_is_adopted)
{
	skip_unless_root();
	struct fp_proc fp;
	checkout_by(&fp, 0, false);
	struct stat st;
	cr_assert_eq(stat(bare, &st), 0, "%s", bare);
	cr_assert_eq(st.st_uid, DAEMON, "the fallback: the daemon's git");
	sh("rm -rf %s", checkout);
	checkout_by(&fp, AGENT, false);
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/README", checkout);
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	cr_expect_eq(st.st_uid, AGENT);
	cr_assert_eq(stat(bare, &st), 0);
	cr_expect_eq(st.st_gid, AGENT);
	cr_expect_eq(st.st_mode & 02070, 02070, "%o", st.st_mode & 07777);
	sh("test \"$(git --git-dir=%s -c safe.directory='*' config --get core.sharedRepository)\""
	   " = group", bare);
	char cmd[2 * PATH_MAX];
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; echo agent > agent.txt; git add agent.txt;"
		 "git commit -q -m 'by the agent'", checkout);
	cr_expect_eq(sh_as(AGENT, cmd), 0, "git commit as the agent");
	cr_expect_eq(open_errno_as(OTHER, bare), EACCES);
}

/* A git as the agent that overruns its deadline is killed with its group
 * (the daemon has CAP_KILL for that), and one that cannot switch says so. */
Test(agentapi_ident, a_switched_git_is_bounded_and_its_failures_named)
{
	skip_unless_root();
	char bin[256], git[300], path[4096], marker[300];
	snprintf(bin, sizeof bin, "%s/bin", root);
	mkdir(bin, 0755);
	snprintf(git, sizeof git, "%s/git", bin);
	snprintf(marker, sizeof marker, "%s/marker", root);
	FILE *f = fopen(git, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\nid -u > %s/uid.$$ 2>/dev/null; (sleep 1; touch %s) & exec sleep 30\n",
		wd, marker);
	fclose(f);
	chmod(git, 0755);
	snprintf(path, sizeof path, "%s:%s", bin, getenv("PATH"));
	setenv("PATH", path, 1);
	struct mc_identity id = { .sw = true, .uid = AGENT, .gid = AGENT, .extra_gid = (gid_t)-1 };
	const char *argv[] = { "git", "fetch", NULL };
	struct mc_git_out o;
	char err[256];
	int64_t t0 = mc_now_ms();
	cr_assert_eq(mc_git_run_as(&id, argv, t0 + 300, &o, err, sizeof err), -1);
	cr_expect(o.timed_out, "%s", err);
	cr_expect_lt(mc_now_ms() - t0, 3000);
	mc_git_out_free(&o);
	usleep(1500 * 1000);
	struct stat st;
	cr_expect_neq(stat(marker, &st), 0, "a descendant outlived the deadline");
	char cmd[700];
	snprintf(cmd, sizeof cmd, "test \"$(cat %s/uid.*)\" = %d", wd, AGENT);
	cr_expect_eq(system(cmd), 0, "the fake git ran as the agent");

	struct mc_identity root_id = { .sw = true, .uid = 0, .gid = 0, .extra_gid = (gid_t)-1 };
	cr_assert_eq(mc_git_run_as(&root_id, argv, 0, &o, err, sizeof err), -1);
	cr_expect(strstr(err, "switch identity") != NULL, "%s", err);
	mc_git_out_free(&o);
}

/* The workspace's identity changes (agent_user to agent_uid_range, say):
 * the cache the former uid made is removed as it and cloned again as the
 * new one, whose checkout and commit then work. */
Test(agentapi_ident, a_cache_of_a_former_identity_is_made_again)
{
	skip_unless_root();
	struct fp_proc fp;
	checkout_by(&fp, AGENT, false);
	struct stat st;
	cr_assert_eq(stat(bare, &st), 0, "%s", bare);
	cr_assert_eq(st.st_uid, AGENT);
	sh("rm -rf %s", checkout);
	sh("chgrp %d %s/" WS " %s/" WS "/1234567890ab %s", AGENT2, ws_root, ws_root, wd);
	checkout_by(&fp, AGENT2, false);
	cr_assert_eq(stat(bare, &st), 0);
	cr_expect_eq(st.st_uid, AGENT2, "made again by the new uid: %u", (unsigned)st.st_uid);
	cr_expect_eq(st.st_gid, AGENT2);
	char cmd[2 * PATH_MAX];
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; echo agent > agent.txt; git add agent.txt;"
		 "git commit -q -m 'by the agent'", checkout);
	cr_expect_eq(sh_as(AGENT2, cmd), 0, "git commit as the new agent");
	cr_expect_eq(open_errno_as(AGENT, bare), EACCES, "the former uid is out");
}
