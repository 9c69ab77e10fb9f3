/* The repository cache and checkout engine (agentapi/repocache.h) against
 * git repositories made at test time (bare remotes fed from a scratch
 * clone, file:// URLs). Twins of multica's repocache tests are named
 * after them; the mc_bug_* tests fail on multica's behaviour. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

#include "agentapi/git_run.h"
#include "agentapi/repocache.h"
#include "common/clock.h"

static char tmp[256];
static struct mc_repocache *rc;
static const char *WS = "ws1";
static const char *TASK = "0198c3a2-7b4e-7c1d-9f3a-1234567890ab";

/* Runs a shell fixture command (tests only); asserts it succeeded. */
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "fixture failed: %s", cmd);
}

static void sh_out(char *out, size_t n, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	size_t k = fread(out, 1, n - 1, p);
	out[k] = '\0';
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

static bool exists(const char *fmt, ...)
{
	char p[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	struct stat st;
	return lstat(p, &st) == 0;
}

/* A bare remote <tmp>/remotes/<name> with a commit on branch, as a URL. */
static void make_remote(const char *name, const char *branch, char *url, size_t n)
{
	sh("set -e; d=%s/remotes/%s; mkdir -p $d; git init -q --bare -b %s $d;"
	   "s=%s/scratch/%s; rm -rf $s; git clone -q $d $s 2>/dev/null; cd $s;"
	   "git checkout -q -b %s; echo one > README; git add README; git commit -q -m one;"
	   "git push -q origin %s",
	   tmp, name, branch, tmp, name, branch, branch);
	snprintf(url, n, "file://%s/remotes/%s", tmp, name);
}

/* A new commit on branch of remote name; its sha into sha. */
static void push_commit(const char *name, const char *branch, char *sha, size_t n)
{
	sh("set -e; cd %s/scratch/%s; git checkout -q %s; echo x >> README; git commit -q -am more;"
	   "git push -q origin %s",
	   tmp, name, branch, branch);
	sh_out(sha, n, "git -C %s/scratch/%s rev-parse HEAD", tmp, name);
}

/* The bare cache of remote name (the rule of reference 3.1). */
static const char *bare_of(const char *name)
{
	static char out[1024];
	char t[256];
	snprintf(t, sizeof(t), "%s", tmp + 1);
	for (char *p = t; *p; p++)
		if (*p == '/')
			*p = '+';
	snprintf(out, sizeof(out), "%s/root/.repos/%s/file+%s+remotes+%s.git", tmp, WS, t, name);
	return out;
}

static void setup(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/mc-repocache-XXXXXX");
	cr_assert(mkdtemp(tmp));
	char p[512];
	snprintf(p, sizeof(p), "%s/home", tmp);
	mkdir(p, 0700);
	setenv("HOME", p, 1);
	snprintf(p, sizeof(p), "%s/home/gitconfig", tmp);
	FILE *f = fopen(p, "w");
	cr_assert(f);
	fprintf(f, "[protocol \"file\"]\n\tallow = always\n[advice]\n\tdetachedHead = false\n");
	fclose(f);
	setenv("GIT_CONFIG_GLOBAL", p, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "t", 1);
	setenv("GIT_AUTHOR_EMAIL", "t@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "t", 1);
	setenv("GIT_COMMITTER_EMAIL", "t@example.com", 1);
	snprintf(p, sizeof(p), "%s/root", tmp);
	char err[512];
	rc = mc_repocache_new(p, err, sizeof(err));
	cr_assert(rc, "%s", err);
}

static void teardown(void)
{
	mc_repocache_free(rc);
	rc = NULL;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
}

static void sync1(const char *url)
{
	char err[512];
	const char *urls[] = {url};
	cr_assert_eq(mc_repocache_sync(rc, WS, 1, urls, mc_now_ms() + 60000, err, sizeof(err)), 0,
		     "%s", err);
}

/* A workdir <tmp>/wd/<name>, resolved. */
static void workdir(const char *name, char *out, size_t n)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/wd/%s", tmp, name);
	sh("mkdir -p %s", p);
	cr_assert(realpath(p, out) && strlen(out) < n);
}

static enum mc_checkout_outcome co(const char *url, const char *wd, const char *ref, bool iso,
				   struct mc_checkout_res *res, char *err, size_t n)
{
	struct mc_checkout_req q = {
		.workspace_id = WS, .url = url, .ref = ref, .workdir = wd, .task_id = TASK,
		.agent_name = "Code Reviewer", .isolated = iso, .deadline_ms = mc_now_ms() + 60000,
	};
	return mc_repocache_checkout(rc, &q, res, err, n);
}

TestSuite(repocache, .init = setup, .fini = teardown, .timeout = 120);

/* ---- names ---- */

Test(repocache, TestBareDirName)
{
	/* The bare name is internal to repocache; its effect is the path. */
	char n[256];
	mc_repo_name("https://github.com/org/my-repo.git", n, sizeof(n));
	cr_assert_str_eq(n, "my-repo");
	mc_repo_name("git@host:org/repo", n, sizeof(n));
	cr_assert_str_eq(n, "repo");
	mc_repo_name("", n, sizeof(n));
	cr_assert_str_eq(n, "repo");
	mc_repo_name("https://h/x/..", n, sizeof(n));
	cr_assert_str_eq(n, "repo");
}

Test(repocache, TestCreateWorktree_branch_name)
{
	char b[256];
	mc_repo_branch_name("Code Reviewer", TASK, b, sizeof(b));
	cr_assert_str_eq(b, "agent/code-reviewer/1234567890ab");
	mc_repo_branch_name("  !!  ", "ab-cd", b, sizeof(b));
	cr_assert_str_eq(b, "agent/agent/abcd");
	mc_repo_branch_name("A very long agent name that goes on and on", TASK, b, sizeof(b));
	cr_assert_str_eq(b, "agent/a-very-long-agent-name-that-go/1234567890ab");
}

Test(repocache, TestBranchNameDistinctForSharedUUIDv7Prefix)
{
	char a[256], b[256];
	mc_repo_branch_name("x", "0198c3a2-7b4e-7c1d-9f3a-000000000001", a, sizeof(a));
	mc_repo_branch_name("x", "0198c3a2-7b4e-7c1d-9f3a-000000000002", b, sizeof(b));
	cr_assert_str_neq(a, b);
}

/* ---- git runner ---- */

static const char *env_get(char **env, const char *key)
{
	size_t n = strlen(key);
	const char *found = NULL;
	int count = 0;
	for (size_t i = 0; env[i]; i++)
		if (!strncmp(env[i], key, n) && env[i][n] == '=') {
			found = found ? found : env[i] + n + 1;
			count++;
		}
	cr_assert_leq(count, 1, "%s appears %d times", key, count);
	return found;
}

Test(repocache, TestGitEnv)
{
	char *base[] = {"PATH=/usr/bin", "GIT_TERMINAL_PROMPT=1", "PATH=/evil", NULL};
	char **env = mc_git_env(base);
	cr_assert(env);
	cr_assert_str_eq(env_get(env, "PATH"), "/usr/bin");
	cr_assert_str_eq(env_get(env, "GIT_TERMINAL_PROMPT"), "0");
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_COUNT"), "1");
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_KEY_0"), "safe.directory");
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_VALUE_0"), "*");
	mc_git_env_free(env);
}

Test(repocache, TestGitEnvPreservesExistingConfig)
{
	char *base[] = {"GIT_CONFIG_COUNT=2", "GIT_CONFIG_KEY_0=a.b", "GIT_CONFIG_VALUE_0=1",
			"GIT_CONFIG_KEY_1=c.d", "GIT_CONFIG_VALUE_1=2", "GIT_CONFIG_COUNT=9", NULL};
	char **env = mc_git_env(base);
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_COUNT"), "3");
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_KEY_0"), "a.b");
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_KEY_1"), "c.d");
	cr_assert_str_eq(env_get(env, "GIT_CONFIG_KEY_2"), "safe.directory");
	mc_git_env_free(env);
}

/* A fake git first in PATH: body is its shell script. */
static void fake_git(const char *body)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/fakebin", tmp);
	mkdir(p, 0755);
	char f[600];
	snprintf(f, sizeof(f), "%s/git", p);
	FILE *fp = fopen(f, "w");
	cr_assert(fp);
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	fclose(fp);
	chmod(f, 0755);
	char path[1024];
	snprintf(path, sizeof(path), "%s:%s", p, getenv("PATH"));
	setenv("PATH", path, 1);
}

Test(repocache, TestRunGitOutputTimesOut)
{
	fake_git("exec sleep 30");
	const char *argv[] = {"git", "status", NULL};
	struct mc_git_out o;
	char err[256];
	int64_t t0 = mc_now_ms();
	cr_assert_eq(mc_git_run(argv, t0 + 300, &o, err, sizeof(err)), -1);
	cr_assert(o.timed_out);
	cr_assert(strstr(err, "git command timed out after"), "%s", err);
	cr_assert_lt(mc_now_ms() - t0, 3000);
	mc_git_out_free(&o);
}

Test(repocache, CancelsRunningGitProcessTree)
{
	char body[512];
	snprintf(body, sizeof(body), "(sleep 1; touch %s/marker) & sleep 30", tmp);
	fake_git(body);
	const char *argv[] = {"git", "fetch", NULL};
	char err[256];
	cr_assert_eq(mc_git_run(argv, mc_now_ms() + 200, NULL, err, sizeof(err)), -1);
	usleep(1500 * 1000);
	cr_assert(!exists("%s/marker", tmp), "a git descendant outlived the deadline");
}

Test(repocache, git_output_captured_and_bounded)
{
	fake_git("head -c 200000 /dev/zero | tr '\\000' a; echo oops >&2; exit 3");
	const char *argv[] = {"git", "x", NULL};
	struct mc_git_out o;
	char err[256], d[512];
	cr_assert_eq(mc_git_run(argv, 0, &o, err, sizeof(err)), 1);
	cr_assert_eq(o.status, 3);
	cr_assert_eq(o.out_len, MC_GIT_OUT_MAX);
	cr_assert_str_eq(o.err, "oops\n");
	mc_git_describe(argv, &o, d, sizeof(d));
	cr_assert_str_eq(d, "git x: oops: exit status 3");
	mc_git_out_free(&o);
}

/* ---- sync ---- */

Test(repocache, TestSyncAndLookup)
{
	char url[512], e[512];
	make_remote("app", "main", url, sizeof(url));
	cr_assert(!mc_repocache_has(rc, WS, url));
	sync1(url);
	cr_assert(mc_repocache_has(rc, WS, url));
	mc_repocache_last_error(rc, WS, url, e, sizeof(e));
	cr_assert_str_eq(e, "");
	cr_assert_gt(mc_repocache_disk_bytes(rc), 0);
}

Test(repocache, TestSyncFetchesExisting)
{
	char url[512], sha[64], got[64];
	make_remote("app", "main", url, sizeof(url));
	sync1(url);
	push_commit("app", "main", sha, sizeof(sha));
	int64_t f0 = mc_repocache_fetch_count(rc);
	sync1(url); /* fresh: not fetched */
	cr_assert_eq(mc_repocache_fetch_count(rc), f0);
	mc_repocache_set_fresh_ms(rc, 0); /* stale */
	sync1(url);
	cr_assert_eq(mc_repocache_fetch_count(rc), f0 + 1);
	sh_out(got, sizeof(got), "git -C %s rev-parse refs/remotes/origin/main", bare_of("app"));
	cr_assert_str_eq(got, sha);
}

Test(repocache, mc_bug_failed_clone_is_retried)
{
	char url[512], e[512];
	snprintf(url, sizeof(url), "file://%s/remotes/late", tmp);
	const char *urls[] = {url};
	cr_assert_eq(mc_repocache_sync(rc, WS, 1, urls, mc_now_ms() + 30000, e, sizeof(e)), -1);
	cr_assert(!mc_repocache_has(rc, WS, url));
	mc_repocache_last_error(rc, WS, url, e, sizeof(e));
	cr_assert(strstr(e, "git clone --bare"), "%s", e);
	make_remote("late", "main", url, sizeof(url));
	sync1(url);
	cr_assert(mc_repocache_has(rc, WS, url));
	mc_repocache_last_error(rc, WS, url, e, sizeof(e));
	cr_assert_str_eq(e, "");
}

/* ---- checkout ---- */

Test(repocache, TestCreateWorktree)
{
	char url[512], wd[512], err[512];
	struct mc_checkout_res res;
	make_remote("my-repo", "main", url, sizeof(url));
	sync1(url);
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, NULL, false, &res, err, sizeof(err)), MC_CO_OK, "%s", err);
	char want[600];
	snprintf(want, sizeof(want), "%s/my-repo", wd);
	cr_assert_str_eq(res.path, want);
	cr_assert_str_eq(res.branch, "agent/code-reviewer/1234567890ab");
	struct stat st;
	char g[700];
	snprintf(g, sizeof(g), "%s/.git", want);
	cr_assert_eq(lstat(g, &st), 0);
	cr_assert(S_ISREG(st.st_mode), "linked worktree: .git is a file");
	cr_assert(exists("%s/README", res.path));
	/* the agent can commit in it */
	sh("cd %s && echo y > f && git add f && git commit -q -m f", res.path);
}

Test(repocache, TestCreateWorktreeNotCached)
{
	char err[512], wd[512];
	struct mc_checkout_res res;
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co("file:///nowhere/x", wd, NULL, false, &res, err, sizeof(err)), MC_CO_ERROR);
	cr_assert(strstr(err, "repo not found in cache: file:///nowhere/x (workspace: ws1)"), "%s",
		  err);
}

Test(repocache, TestCreateWorktreeWithIsolatedGitMetadata)
{
	char url[512], wd[512], err[512], v[256];
	struct mc_checkout_res res;
	make_remote("iso", "main", url, sizeof(url));
	sync1(url);
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, NULL, true, &res, err, sizeof(err)), MC_CO_OK, "%s", err);
	struct stat st;
	char g[PATH_MAX + 8];
	snprintf(g, sizeof(g), "%s/.git", res.path);
	cr_assert(lstat(g, &st) == 0 && S_ISDIR(st.st_mode));
	sh_out(v, sizeof(v), "git -C %s config --get multica.checkout-mode", res.path);
	cr_assert_str_eq(v, "isolated");
	sh_out(v, sizeof(v), "git -C %s config --get remote.origin.url", res.path);
	cr_assert_str_eq(v, url);
	cr_assert_str_eq(res.branch, "agent/code-reviewer/1234567890ab");
	/* TestCreateWorktreeReusesIsolatedGitMetadata: sticky without the flag */
	struct mc_checkout_res r2;
	cr_assert_eq(co(url, wd, NULL, false, &r2, err, sizeof(err)), MC_CO_OK, "%s", err);
	cr_assert_str_eq(r2.path, res.path);
	cr_assert(lstat(g, &st) == 0 && S_ISDIR(st.st_mode));
}

Test(repocache, TestCreateWorktree_refs)
{
	char url[512], wd[512], err[512], sha[64], got[64];
	struct mc_checkout_res res;
	make_remote("refs", "main", url, sizeof(url));
	sh("cd %s/scratch/refs && git checkout -q -b feature && echo f > F && git add F &&"
	   "git commit -q -m f && git push -q origin feature && git tag v1 && git push -q origin v1",
	   tmp);
	sh_out(sha, sizeof(sha), "git -C %s/scratch/refs rev-parse HEAD", tmp);
	sync1(url);
	const char *refs[] = {"feature", "v1", sha};
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "r%d", i);
		workdir(name, wd, sizeof(wd));
		cr_assert_eq(co(url, wd, refs[i], false, &res, err, sizeof(err)), MC_CO_OK, "%s %s",
			     refs[i], err);
		sh_out(got, sizeof(got), "git -C %s rev-parse HEAD", res.path);
		cr_assert_str_eq(got, sha, "ref %s", refs[i]);
	}
	workdir("bad", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, "nope", false, &res, err, sizeof(err)), MC_CO_ERROR);
	cr_assert(strstr(err, "cannot resolve requested ref \"nope\" in repo cache at "), "%s", err);
	cr_assert(!exists("%s/refs", wd), "no checkout made");
}

Test(repocache, default_branch_fallback_single_branch)
{
	char url[512], wd[512], err[512], got[64], sha[64];
	struct mc_checkout_res res;
	make_remote("trunk", "trunk", url, sizeof(url));
	sh_out(sha, sizeof(sha), "git -C %s/scratch/trunk rev-parse HEAD", tmp);
	sync1(url);
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, NULL, false, &res, err, sizeof(err)), MC_CO_OK, "%s", err);
	sh_out(got, sizeof(got), "git -C %s rev-parse HEAD", res.path);
	cr_assert_str_eq(got, sha);
}

Test(repocache, TestGitFetchRefreshesOriginHeadAfterDefaultChange)
{
	char url[512], wd[512], err[512], got[64], sha[64];
	struct mc_checkout_res res;
	make_remote("dflt", "main", url, sizeof(url));
	sync1(url);
	sh("cd %s/scratch/dflt && git checkout -q -b dev && echo d > D && git add D &&"
	   "git commit -q -m d && git push -q origin dev &&"
	   "git -C %s/remotes/dflt symbolic-ref HEAD refs/heads/dev", tmp, tmp);
	sh_out(sha, sizeof(sha), "git -C %s/scratch/dflt rev-parse HEAD", tmp);
	mc_repocache_set_fresh_ms(rc, 0);
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, NULL, false, &res, err, sizeof(err)), MC_CO_OK, "%s", err);
	sh_out(got, sizeof(got), "git -C %s rev-parse HEAD", res.path);
	cr_assert_str_eq(got, sha);
}

Test(repocache, branch_collision_suffix)
{
	char url[512], wd1[512], wd2[512], err[512];
	struct mc_checkout_res r1, r2;
	make_remote("col", "main", url, sizeof(url));
	sync1(url);
	workdir("a", wd1, sizeof(wd1));
	workdir("b", wd2, sizeof(wd2));
	cr_assert_eq(co(url, wd1, NULL, false, &r1, err, sizeof(err)), MC_CO_OK, "%s", err);
	cr_assert_eq(co(url, wd2, NULL, false, &r2, err, sizeof(err)), MC_CO_OK, "%s", err);
	cr_assert_str_eq(r1.branch, "agent/code-reviewer/1234567890ab");
	cr_assert(!strncmp(r2.branch, "agent/code-reviewer/1234567890ab-", 33), "%s", r2.branch);
}

Test(repocache, TestCreateWorktreePathCollisionDoesNotLeakBranch)
{
	char url[512], wd[512], err[512], out[512];
	struct mc_checkout_res res;
	make_remote("pc", "main", url, sizeof(url));
	sync1(url);
	workdir("t1", wd, sizeof(wd));
	sh("mkdir -p %s/pc && echo mine > %s/pc/keep", wd, wd);
	cr_assert_eq(co(url, wd, NULL, false, &res, err, sizeof(err)), MC_CO_OK, "%s", err);
	cr_assert(strstr(res.path, "/pc-2"), "%s", res.path);
	cr_assert(exists("%s/pc/keep", wd));
	sh_out(out, sizeof(out), "git -C %s for-each-ref refs/heads/agent/ | wc -l", bare_of("pc"));
	cr_assert_str_eq(out, "1");
}

/* multica's reuse path runs reset --hard and clean -fd. */
Test(repocache, mc_bug_second_checkout_keeps_uncommitted_work)
{
	char url[512], wd[512], err[512], v[256];
	struct mc_checkout_res r1, r2;
	make_remote("keep", "main", url, sizeof(url));
	sync1(url);
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, NULL, false, &r1, err, sizeof(err)), MC_CO_OK, "%s", err);
	sh("cd %s && echo changed > README && echo new > untracked.txt", r1.path);
	cr_assert_eq(co(url, wd, NULL, false, &r2, err, sizeof(err)), MC_CO_OK, "%s", err);
	cr_assert_str_eq(r2.path, r1.path);
	cr_assert_str_eq(r2.branch, r1.branch);
	sh_out(v, sizeof(v), "cat %s/README", r1.path);
	cr_assert_str_eq(v, "changed");
	cr_assert(exists("%s/untracked.txt", r1.path));
	/* isolated too */
	char wd2[512];
	workdir("t2", wd2, sizeof(wd2));
	cr_assert_eq(co(url, wd2, NULL, true, &r1, err, sizeof(err)), MC_CO_OK, "%s", err);
	sh("cd %s && echo changed > README", r1.path);
	cr_assert_eq(co(url, wd2, NULL, true, &r2, err, sizeof(err)), MC_CO_OK, "%s", err);
	sh_out(v, sizeof(v), "cat %s/README", r1.path);
	cr_assert_str_eq(v, "changed");
}

/* multica maps org1/api and org2/api to one <workdir>/api. */
Test(repocache, mc_bug_same_basename_distinct_paths)
{
	char u1[512], u2[512], wd[512], err[512], v[256];
	struct mc_checkout_res r1, r2;
	make_remote("org1/api", "main", u1, sizeof(u1));
	make_remote("org2/api", "main", u2, sizeof(u2));
	sh("cd %s/scratch/org2/api && echo two > TWO && git add TWO && git commit -q -m two &&"
	   "git push -q origin main", tmp);
	sync1(u1);
	sync1(u2);
	workdir("t1", wd, sizeof(wd));
	for (int iso = 0; iso < 2; iso++) {
		char w[600];
		snprintf(w, sizeof(w), "%s/m%d", wd, iso);
		sh("mkdir -p %s", w);
		cr_assert_eq(co(u1, w, NULL, iso, &r1, err, sizeof(err)), MC_CO_OK, "%s", err);
		sh("echo wip > %s/wip", r1.path);
		cr_assert_eq(co(u2, w, NULL, iso, &r2, err, sizeof(err)), MC_CO_OK, "%s", err);
		cr_assert_str_neq(r1.path, r2.path);
		cr_assert(exists("%s/wip", r1.path), "first checkout untouched");
		cr_assert(!exists("%s/TWO", r1.path));
		cr_assert(exists("%s/TWO", r2.path));
		if (iso) {
			sh_out(v, sizeof(v), "git -C %s config --get remote.origin.url", r1.path);
			cr_assert_str_eq(v, u1);
		}
	}
}

/* ---- concurrency ---- */

struct job {
	const char *url;
	char wd[512];
	enum mc_checkout_outcome out;
	long lock_wait_ms;
	char err[512];
	struct mc_checkout_res res;
	char task[64];
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	struct mc_checkout_req q = {
		.workspace_id = WS, .url = j->url, .workdir = j->wd, .task_id = j->task,
		.agent_name = "bot", .lock_wait_ms = j->lock_wait_ms,
		.deadline_ms = mc_now_ms() + 60000,
	};
	j->out = mc_repocache_checkout(rc, &q, &j->res, j->err, sizeof(j->err));
	return NULL;
}

Test(repocache, concurrent_checkouts_one_fetch)
{
	char url[512];
	make_remote("conc", "main", url, sizeof(url));
	sync1(url);
	mc_repocache_set_fresh_ms(rc, 0);
	sync1(url); /* the cache is now stale for the default window below */
	mc_repocache_set_fresh_ms(rc, 30000);
	struct job j[2];
	memset(j, 0, sizeof(j));
	pthread_t t[2];
	int64_t f0 = mc_repocache_fetch_count(rc);
	for (int i = 0; i < 2; i++) {
		j[i].url = url;
		snprintf(j[i].task, sizeof(j[i].task), "task-%d", i);
		char n[8];
		snprintf(n, sizeof(n), "c%d", i);
		workdir(n, j[i].wd, sizeof(j[i].wd));
		pthread_create(&t[i], NULL, run_job, &j[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(j[i].out, MC_CO_OK, "%s", j[i].err);
	}
	cr_assert_leq(mc_repocache_fetch_count(rc) - f0, 1);
	cr_assert_eq(mc_repocache_checkouts_running(rc), 0);
}

struct syncjob {
	const char *url;
	int rc;
};

static void *run_sync(void *arg)
{
	struct syncjob *s = arg;
	char e[512];
	const char *urls[] = {s->url};
	s->rc = mc_repocache_sync(rc, WS, 1, urls, mc_now_ms() + 60000, e, sizeof(e));
	return NULL;
}

Test(repocache, TestCreateWorktreeContextReturnsBusyAfterBoundedLockWait)
{
	char url[512];
	make_remote("busy", "main", url, sizeof(url));
	sync1(url);
	char real[512], body[700];
	sh_out(real, sizeof(real), "command -v git");
	snprintf(body, sizeof(body), "case \" $* \" in *\" fetch \"*) sleep 2;; esac\nexec %s \"$@\"",
		 real);
	fake_git(body);
	mc_repocache_set_fresh_ms(rc, 0);
	struct syncjob s = {.url = url};
	pthread_t t;
	pthread_create(&t, NULL, run_sync, &s);
	usleep(500 * 1000);
	struct job j;
	memset(&j, 0, sizeof(j));
	j.url = url;
	j.lock_wait_ms = 200;
	snprintf(j.task, sizeof(j.task), "t");
	workdir("b", j.wd, sizeof(j.wd));
	int64_t t0 = mc_now_ms();
	run_job(&j);
	cr_assert_eq(j.out, MC_CO_BUSY, "%d %s", j.out, j.err);
	cr_assert_lt(mc_now_ms() - t0, 1500);
	cr_assert_str_eq(j.err, "repository is busy with another operation; retry later");
	pthread_join(t, NULL);
	cr_assert_eq(s.rc, 0);
}

/* ---- gc ---- */

Test(repocache, gc_stale_branches_and_ttl)
{
	char url[512], wd[512], err[512], out[256];
	struct mc_checkout_res res;
	make_remote("gc", "main", url, sizeof(url));
	sync1(url);
	workdir("t1", wd, sizeof(wd));
	cr_assert_eq(co(url, wd, NULL, false, &res, err, sizeof(err)), MC_CO_OK, "%s", err);
	char bare[700];
	snprintf(bare, sizeof(bare), "%s", bare_of("gc"));
	int64_t now = mc_wall_ms(), month = 31LL * 24 * 3600 * 1000;
	/* a live worktree keeps its branch and its cache, even 31 days on */
	mc_repocache_gc(rc, now + month);
	sh_out(out, sizeof(out), "git -C %s for-each-ref refs/heads/agent/ | wc -l", bare);
	cr_assert_str_eq(out, "1");
	cr_assert(exists("%s/HEAD", bare));
	int64_t bytes = mc_repocache_disk_bytes(rc);
	cr_assert_gt(bytes, 0);
	/* the task dir goes: the branch is stale */
	sh("rm -rf %s", wd);
	mc_repocache_gc(rc, now);
	sh_out(out, sizeof(out), "git -C %s for-each-ref refs/heads/agent/ | wc -l", bare);
	cr_assert_str_eq(out, "0");
	cr_assert(exists("%s/HEAD", bare), "used recently: kept");
	mc_repocache_gc(rc, now + month);
	cr_assert(!exists("%s", bare), "unused for 30 days: evicted");
	cr_assert(!mc_repocache_has(rc, WS, url));
	cr_assert_lt(mc_repocache_disk_bytes(rc), bytes);
	sync1(url); /* and it comes back */
	cr_assert(mc_repocache_has(rc, WS, url));
}
