/* What an operator sees of the daemon from outside, with the build's
 * multicad against multica-fakeplane:
 *  - titles: /proc/PID/cmdline of the supervisor, the fork server (the
 *    first one and a restarted one), every worker and a cleanup helper is
 *    exactly the title (INTERFACE.md "Process titles")
 *    and one NUL, started from a deep path with a large environment, with a
 *    title longer than the original argv, and with one that fills it exactly;
 *  - cli: --help and --version of multicad and multicactl, and multicad -t
 *    reporting every problem of a file, each with file, line and key;
 *  - lock: a second multicad on the same state_dir exits with an error naming
 *    the lock and touches nothing of the running one's ledger. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#define READY_MS 15000       /* bound on a start-up to everything online */
#define RUN_MS 15000         /* bound on a multicad that should exit by itself */
#define DEREG_HANG "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
		   "\"delay_ms\":20000,\"count\":-1}"

extern char **environ;

static char SHORT_CONF[32];          /* a config file with a short path, or "" */
static char *LIST;                   /* the workspaces = value in use (the fixture's) */

static void suite_fini(void)
{
	dfx_fini();
	if (SHORT_CONF[0] != '\0')
		unlink(SHORT_CONF);
	SHORT_CONF[0] = '\0';
}

TestSuite(titles, .timeout = 120, .fini = suite_fini);
TestSuite(cli, .timeout = 60, .fini = suite_fini);
TestSuite(lock, .timeout = 90, .fini = suite_fini);

/* ---- fixture (tests/support/daemon_fixture.h) ---- */

/* The emulator with workspaces 1..n, and dp_init and the config for them
 * (the daemon not started yet: each test sets how it runs). */
static void prepare_daemon(int n)
{
	dfx_start_plane(n, NULL, NULL, NULL);
	LIST = dfx_ws_list(1, n);
	struct dp_config c = { .workspaces = LIST };
	dfx_prepare_daemon(&c, NULL);
}

/* Every workspace 1..n online and n + 3 children (the workers, the fork
 * server, the link and the agent-api process): found without titles, so that a broken title fails the
 * title assertions, not this wait. */
static void wait_up(int n)
{
	DFX_WAIT_UP(dp_count_online(&FP, NULL) == n && dp_children(&D, NULL, 0) == (size_t)n + 3,
		   READY_MS, "the daemon did not bring %d workspaces online with one worker each",
		   n);
}

/* ---- /proc ---- */

/* All of /proc/PID/cmdline into buf (n bytes at most); its length, or -1. */
static ssize_t cmdline(pid_t pid, char *buf, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len < n) {
		ssize_t r = read(fd, buf + len, n - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	return (ssize_t)len;
}

/* The bytes as C escapes, for a failure message (static buffer). */
static const char *escaped(const char *b, ssize_t n)
{
	static char out[8192];
	size_t k = 0;
	for (ssize_t i = 0; i < n && k + 5 < sizeof out; i++) {
		unsigned char c = (unsigned char)b[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[k++] = (char)c;
		else
			k += (size_t)snprintf(out + k, sizeof out - k, "\\%o", c);
	}
	out[k] = '\0';
	return out;
}

/* /proc/PID/cmdline is exactly title and one NUL. */
static void assert_cmdline(pid_t pid, const char *title)
{
	char buf[8192];
	ssize_t n = cmdline(pid, buf, sizeof buf);
	size_t want = strlen(title) + 1;
	cr_assert(n == (ssize_t)want && memcmp(buf, title, want) == 0,
		  "pid %d: cmdline is \"%s\" (%zd bytes); want \"%s\\0\" (%zu bytes)", (int)pid,
		  escaped(buf, n), n, title, want);
}

static void assert_comm(pid_t pid, const char *comm)
{
	char path[64], buf[64] = "";
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	char *got = fgets(buf, sizeof buf, f);
	fclose(f);
	cr_assert_not_null(got);
	buf[strcspn(buf, "\n")] = '\0';
	cr_assert(strcmp(buf, comm) == 0, "pid %d: comm is \"%s\", want \"%s\"", (int)pid, buf, comm);
}

/* The supervisor's child whose cmdline starts with prefix, or 0. */
static pid_t child_with_prefix(const char *prefix)
{
	pid_t kids[16];
	size_t n = dp_children(&D, kids, 16);
	for (size_t i = 0; i < n && i < 16; i++) {
		char buf[512];
		ssize_t len = cmdline(kids[i], buf, sizeof buf);
		if (len > 0 && (size_t)len >= strlen(prefix) &&
		    memcmp(buf, prefix, strlen(prefix)) == 0 && dp_pid_alive(kids[i]))
			return kids[i];
	}
	return 0;
}

static void assert_forkserver_title(void)
{
	pid_t fs = child_with_prefix("multicad: forkserver");
	cr_assert_neq(fs, 0, "no child's cmdline starts with \"multicad: forkserver\"");
	assert_cmdline(fs, "multicad: forkserver");
	assert_comm(fs, "mc-forkserver");
}

static void assert_link_title(void)
{
	/* Counted among the children from its fork; titled a moment later. */
	pid_t l = 0;
	cr_assert(DP_WAIT((l = child_with_prefix("multicad: link")) != 0, 5000),
		  "no child's cmdline starts with \"multicad: link\"");
	assert_cmdline(l, "multicad: link");
	assert_comm(l, "mc-link");
}

static void assert_agentapi_title(void)
{
	pid_t a = 0;
	cr_assert(DP_WAIT((a = child_with_prefix("multicad: agent-api")) != 0, 5000),
		  "no child's cmdline starts with \"multicad: agent-api\"");
	assert_cmdline(a, "multicad: agent-api");
	assert_comm(a, "mc-agentapi");
}

/* The supervisor, the fork server, the link, the agent-api process and the n workers
 * (workspaces 1..n) have clean titles. */
static void assert_all_titles(int n)
{
	assert_cmdline(D.pid, "multicad: supervisor");
	assert_comm(D.pid, "multicad");
	assert_forkserver_title();
	assert_link_title();
	assert_agentapi_title();
	for (int i = 1; i <= n; i++) {
		char title[128];
		snprintf(title, sizeof title, "multicad: worker %s", WS[i]);
		pid_t w = child_with_prefix(title);
		cr_assert_neq(w, 0, "no child's cmdline starts with \"%s\"", title);
		assert_cmdline(w, title);
		assert_comm(w, "mc-worker");
		cr_assert_eq(dp_worker_pid(&D, WS[i]), w, "the fixture finds worker %d by its title", i);
	}
}

/* ---- titles ---- */

/* The case: a binary in a deep directory (argv[0] far longer than
 * any title, arguments after it) and a large environment. Also the cleanup
 * helper's title, kept alive by a server that never answers its DEREG. */
Test(titles, deep_binary_path_and_large_environment)
{
	prepare_daemon(2);
	char deep[1024];
	strlcpy(deep, D.dir, sizeof deep);
	while (strlen(deep) < 300) {
		strlcat(deep, "/a-directory-name-that-makes-argv-0-long", sizeof deep);
		cr_assert(mkdir(deep, 0700) == 0, "%s: %s", deep, strerror(errno));
	}
	char bin[1100];
	snprintf(bin, sizeof bin, "%s/multicad", deep);
	cr_assert_eq(symlink(MULTICAD_BIN, bin), 0, "%s: %s", bin, strerror(errno));
	static char pad[4][1200];
	for (int i = 0; i < 4; i++) {
		int k = snprintf(pad[i], sizeof pad[i], "MC_TITLES_PAD%d=", i);
		memset(pad[i] + k, 'x', sizeof pad[i] - (size_t)k - 1);
		pad[i][sizeof pad[i] - 1] = '\0';
	}
	const char *env[] = { pad[0], pad[1], pad[2], pad[3], NULL };
	D.exec_path = bin;
	D.extra_env = env;
	cr_assert_eq(dp_start(&D), 0);
	wait_up(2);
	assert_all_titles(2);

	pid_t w1 = dp_worker_pid(&D, WS[1]);
	cr_assert_eq(fp_fault(&FP, DEREG_HANG), 200);
	cr_assert_eq(kill(w1, SIGKILL), 0);
	char title[128];
	snprintf(title, sizeof title, "multicad: cleanup %s", WS[1]);
	pid_t h = 0;
	cr_assert(DP_WAIT((h = child_with_prefix("multicad: cleanup")) != 0, 5000),
		  "no cleanup helper for the killed worker");
	assert_cmdline(h, title);
	assert_comm(h, "mc-cleanup");

	/* A restarted fork server is multicad executed anew: its title too. */
	pid_t fs = child_with_prefix("multicad: forkserver");
	cr_assert_neq(fs, 0);
	cr_assert_eq(kill(fs, SIGKILL), 0);
	pid_t fs2 = 0;
	cr_assert(DP_WAIT((fs2 = child_with_prefix("multicad: forkserver")) != 0 && fs2 != fs, 5000),
		  "the killed fork server was not restarted");
	assert_forkserver_title();
}

/* Writes the daemon's config to a file with a short path (mkstemp in /tmp),
 * so that the argv area can be smaller than a title. */
static void short_conf(void)
{
	strlcpy(SHORT_CONF, "/tmp/XXXXXX", sizeof SHORT_CONF);
	int fd = mkstemp(SHORT_CONF);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	struct dp_config c = { .server_url = FP.url, .workspaces = LIST };
	char *text = dp_config_text(&D, &c);
	cr_assert_not_null(text);
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	free(text);
	close(fd);
	cr_assert_eq(w, (ssize_t)len);
	D.conf_arg = SHORT_CONF;
}

/* argv is "m", "-c", "/tmp/XXXXXX": 17 bytes, shorter than every title, so
 * each title continues into the environment strings. */
Test(titles, title_longer_than_the_argv_area)
{
	prepare_daemon(2);
	short_conf();
	D.argv0 = "m";
	cr_assert_eq(dp_start(&D), 0);
	wait_up(2);
	assert_all_titles(2);
}

/* argv is "mcad1", "-c", "/tmp/XXXXXX": 21 bytes, exactly
 * "multicad: supervisor" and its NUL (the workers' titles are longer). */
Test(titles, title_exactly_filling_the_argv_area)
{
	prepare_daemon(1);
	short_conf();
	D.argv0 = "mcad1";
	cr_assert_eq(strlen(D.argv0) + 1 + 3 + strlen(SHORT_CONF) + 1, strlen("multicad: supervisor") + 1);
	cr_assert_eq(dp_start(&D), 0);
	wait_up(1);
	assert_all_titles(1);
}

/* ---- running a command to completion ---- */

struct run {
	int status;
	char *out, *err;        /* malloc'd */
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return strdup("");
	char *text = NULL;
	size_t len = 0;
	ssize_t n = getdelim(&text, &len, '\0', f);
	fclose(f);
	if (n < 0) {
		free(text);
		return strdup("");
	}
	return text;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs bin with argv (argv[0] included) to its end, stdout and stderr to
 * files in dir; fails the test if it runs longer than RUN_MS. */
static void run(struct run *r, const char *dir, const char *bin, const char *const *argv)
{
	char out[400], err[400];
	snprintf(out, sizeof out, "%s/run.out", dir);
	snprintf(err, sizeof err, "%s/run.err", dir);
	int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(fo >= 0 && fe >= 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(127);
		execve(bin, (char *const *)argv, environ);
		_exit(127);
	}
	close(fo);
	close(fe);
	pid_t got = 0;
	int st = 0;
	bool done = DP_WAIT((got = waitpid(pid, &st, WNOHANG)) == pid, RUN_MS);
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	cr_assert(done, "%s did not exit within %d ms", bin, RUN_MS);
	r->status = st;
	r->out = slurp(out);
	r->err = slurp(err);
	/* a sanitizer report of the child, where ctest looks for one */
	if (strstr(r->err, "ERROR: LeakSanitizer") != NULL ||
	    strstr(r->err, "ERROR: AddressSanitizer") != NULL || strstr(r->err, "runtime error:") != NULL)
		fprintf(stderr, "---- %s stderr ----\n%s---- end ----\n", bin, r->err);
}

static int exit_code(const struct run *r)
{
	return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : 128 + WTERMSIG(r->status);
}

/* ---- cli ---- */

static void assert_help(const char *bin, const char *opt, const char *name)
{
	struct run r;
	run(&r, D.dir, bin, (const char *const[]){ bin, opt, NULL });
	char start[64];
	snprintf(start, sizeof start, "usage: %s ", name);
	size_t n = strlen(r.out);
	bool ok = exit_code(&r) == 0 && strncmp(r.out, start, strlen(start)) == 0 &&
		  n > 0 && r.out[n - 1] == '\n' && r.err[0] == '\0';
	char out[2048];
	strlcpy(out, r.out, sizeof out);
	char err[512];
	strlcpy(err, r.err, sizeof err);
	run_free(&r);
	cr_assert(ok, "%s %s: exit %d, stdout \"%s\", stderr \"%s\"; want exit 0 and the usage "
		  "on stdout, ending in a newline", name, opt, exit_code(&r), out, err);
}

static void assert_version(const char *bin, const char *opt, const char *name)
{
	struct run r;
	run(&r, D.dir, bin, (const char *const[]){ bin, opt, NULL });
	char want[64];
	snprintf(want, sizeof want, "%s %s\n", name, MC_VERSION);
	bool ok = exit_code(&r) == 0 && strcmp(r.out, want) == 0;
	char got[256], err[256];
	strlcpy(got, r.out, sizeof got);
	strlcpy(err, r.err, sizeof err);
	int code = exit_code(&r);
	run_free(&r);
	cr_assert(ok, "%s %s: exit %d, stdout \"%s\", stderr \"%s\"", name, opt, code, got, err);
}

Test(cli, help_and_version_long_and_short)
{
	cr_assert_eq(dp_init(&D, NULL, NULL, NULL), 0);
	char ctl[512];
	strlcpy(ctl, MULTICAD_BIN, sizeof ctl);
	char *dir = dirname(ctl);
	char ctl_bin[600];
	snprintf(ctl_bin, sizeof ctl_bin, "%s/multicactl", dir);
	const char *opts_help[] = { "--help", "-h" }, *opts_version[] = { "--version", "-V" };
	for (int i = 0; i < 2; i++) {
		assert_help(MULTICAD_BIN, opts_help[i], "multicad");
		assert_version(MULTICAD_BIN, opts_version[i], "multicad");
		if (access(ctl_bin, X_OK) == 0) {
			assert_help(ctl_bin, opts_help[i], "multicactl");
			assert_version(ctl_bin, opts_version[i], "multicactl");
		}
	}
}

/* Five mistakes in the file and a token file of mode 0644: multicad -t
 * names each, with its line and key, one per line, then exits 1. */
Test(cli, check_reports_every_problem)
{
	cr_assert_eq(dp_init(&D, NULL, NULL, NULL), 0);
	cr_assert_eq(chmod(D.token_path, 0644), 0);
	char text[2048];
	snprintf(text, sizeof text,
		 "[daemon]\n"                                   /* 1 */
		 "server_url = ftp://example.com\n"             /* 2 */
		 "token_file = %s\n"                            /* 3 */
		 "heartbeat_interval = 15x\n"                   /* 4 */
		 "no_such_key = 1\n"                            /* 5 */
		 "heartbeat_interval = 10s\n"                   /* 6 */
		 "state_dir = %s\n"                             /* 7 */
		 "[providers]\n"                                /* 8 */
		 "Claude = claude\n"                            /* 9 */
		 "[no such section]\n"                          /* 10 */
		 "ignored = in a rejected section\n",           /* 11 */
		 D.token_path, D.state_dir);
	cr_assert_eq(dp_write_config_text(&D, text), 0);
	struct run r;
	run(&r, D.dir, MULTICAD_BIN, (const char *const[]){ MULTICAD_BIN, "-t", "-c", D.conf_path, NULL });
	static const struct {
		unsigned line;
		const char *rest;
	} want[] = {
		{ 2, "server_url: \"ftp://example.com\" must start with http:// or https://" },
		{ 3, "token_file: " },
		{ 4, "heartbeat_interval: \"15x\" is not a duration" },
		{ 5, "unknown key \"no_such_key\" in [daemon]" },
		{ 6, "heartbeat_interval: duplicate key (first set on line 4)" },
		{ 9, "provider \"Claude\": names are" },
		{ 10, "unknown section [no such section]" },
	};
	size_t n_want = sizeof want / sizeof want[0];
	char err[4096];
	strlcpy(err, r.err, sizeof err);
	int code = exit_code(&r);
	run_free(&r);
	cr_assert_eq(code, 1, "exit %d; stderr:\n%s", code, err);
	size_t k = 0;
	for (char *line = err, *nl; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		cr_assert_not_null(nl, "the last line ends in a newline:\n%s", err);
		*nl = '\0';
		char prefix[400];
		snprintf(prefix, sizeof prefix, "%s:", D.conf_path);
		if (strncmp(line, prefix, strlen(prefix)) != 0)
			continue; /* the summary */
		cr_assert_lt(k, n_want, "more problems than expected: %s", line);
		char start[1024];
		snprintf(start, sizeof start, "%s:%u: %s", D.conf_path, want[k].line, want[k].rest);
		cr_assert_eq(strncmp(line, start, strlen(start)), 0, "problem %zu:\n got: %s\nwant: %s...",
			     k + 1, line, start);
		k++;
	}
	cr_assert_eq(k, n_want, "%zu problems reported, want %zu", k, n_want);
}

/* A valid file whose [providers] names a family multicad runs no tasks
 * for: -t accepts it and says that entry will never register. */
Test(cli, check_names_providers_that_never_register)
{
	cr_assert_eq(dp_init(&D, NULL, NULL, NULL), 0);
	char text[1024];
	snprintf(text, sizeof text,
		 "[daemon]\nserver_url = http://127.0.0.1:1\ntoken_file = %s\nstate_dir = %s\n"
		 "agent_api_listen = 127.0.0.1:0\n"
		 "daemon_id = host-1\nworkspaces = all\n[providers]\nclaude = claude\n"
		 "opencode = opencode\n", D.token_path, D.state_dir);
	cr_assert_eq(dp_write_config_text(&D, text), 0);
	struct run r;
	run(&r, D.dir, MULTICAD_BIN, (const char *const[]){ MULTICAD_BIN, "-t", "-c", D.conf_path, NULL });
	char err[4096];
	strlcpy(err, r.err, sizeof err);
	int code = exit_code(&r);
	run_free(&r);
	cr_assert_eq(code, 0, "exit %d; stderr:\n%s", code, err);
	cr_assert(strstr(err, "[providers] opencode: multicad has no task backend") != NULL &&
		  strstr(err, "it will never register") != NULL, "stderr:\n%s", err);
	cr_assert(strstr(err, "[providers] claude:") == NULL, "claude runs: %s", err);
}

/* ---- lock ---- */

/* Regular file path holds exactly text. */
static bool file_is(const char *path, const char *text)
{
	char *got = slurp(path);
	bool eq = strcmp(got, text) == 0;
	free(got);
	return eq;
}

/* A second multicad started by mistake on the same state_dir: exits 1 with
 * an error naming the lock, and leaves the running one's ledger alone (its
 * in-flight <ws>.tmp included: before the fix it loaded the ledger, removing
 * *.tmp, and only then found the lock taken). */
Test(lock, second_instance_exits_and_touches_nothing)
{
	prepare_daemon(1);
	cr_assert_eq(dp_start(&D), 0);
	wait_up(1);
	char ledger[400], tmp[450], bad[450];
	snprintf(ledger, sizeof ledger, "%s/ledger/%s", D.state_dir, WS[1]);
	cr_assert(DP_WAIT(access(ledger, F_OK) == 0, 5000), "no ledger file for workspace 1");
	char *before = slurp(ledger);
	/* An in-flight write of the running daemon, and a file a loading ledger
	 * would rename to .bad. */
	snprintf(tmp, sizeof tmp, "%s/ledger/%s.tmp", D.state_dir, WS[2]);
	snprintf(bad, sizeof bad, "%s/ledger/not-a-uuid", D.state_dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	fd = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	pid_t w = child_with_prefix("multicad: worker ");

	struct run r;
	run(&r, D.dir, MULTICAD_BIN, (const char *const[]){ MULTICAD_BIN, "-c", D.conf_path, NULL });
	int code = exit_code(&r);
	char err[2048];
	strlcpy(err, r.err, sizeof err);
	run_free(&r);
	char lock[400];
	snprintf(lock, sizeof lock, "%s/multicad.pid", D.state_dir);
	cr_expect_eq(code, 1, "the second multicad exited %d; stderr:\n%s", code, err);
	cr_expect_not_null(strstr(err, lock), "the error names the lock %s:\n%s", lock, err);
	cr_expect_eq(access(tmp, F_OK), 0, "the running daemon's in-flight %s was removed", tmp);
	cr_expect_eq(access(bad, F_OK), 0, "%s was renamed", bad);
	cr_expect(file_is(ledger, before), "the ledger file of workspace 1 changed");
	free(before);
	char *pid_text = slurp(lock);
	long locked = strtol(pid_text, NULL, 10);
	free(pid_text);
	cr_expect_eq(locked, (long)D.pid, "the lock no longer names the running supervisor");
	cr_expect(dp_alive(&D), "the running supervisor died");
	cr_expect_eq(child_with_prefix("multicad: worker "), w, "the running worker changed");
	cr_expect_eq(dp_count_online(&FP, NULL), 1);
}
