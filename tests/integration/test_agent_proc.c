/* Agent processes for real: the fake claude and codex CLIs
 * (tests/agents) spawned through agent_proc and driven through their
 * backend by a small poll loop, as the worker's executor does. What a
 * user would see: the messages, the one result, no process left behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../unit/backend_capture.h"
#include "common/clock.h"
#include "worker/agent_proc.h"

struct run {
	struct cap cap;          /* first: the capture callbacks cast ctx to it */
	struct mc_agent *a;
	struct mc_backend_session *s;
	const struct mc_backend_ops *ops;
	long n_msgs, n_lines, n_truncated;
	bool finished;
	enum mc_end_cause cause;
	char dir[64];
	char *envp[16];
	int n_env;
};

static struct run R;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* as in the worker */
	/* Orphaned grandchildren come back to us and are reaped by agent_proc,
	 * as they come back to the daemon's supervisor. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	memset(&R, 0, sizeof R);
	snprintf(R.dir, sizeof R.dir, "/tmp/mc-agentproc-XXXXXX");
	cr_assert_not_null(mkdtemp(R.dir));
}

static void teardown(void)
{
	mc_backend_session_free(R.s);
	mc_agent_free(R.a);
	for (int i = 0; i < R.n_env; i++)
		free(R.envp[i]);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", R.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", R.dir);
}

TestSuite(agent_proc, .init = setup, .fini = teardown, .timeout = 120);

static int sink_write(void *ctx, const char *d, size_t n)
{
	return mc_agent_write(((struct run *)ctx)->a, d, n);
}

static void sink_close(void *ctx)
{
	mc_agent_close_stdin(((struct run *)ctx)->a);
}

static void sink_message(void *ctx, const struct mc_backend_msg *m)
{
	struct run *r = ctx;
	r->n_msgs++; /* the sink counts all and keeps the first CAP_MSGS: it drops the rest */
	cap_message(ctx, m);
}

static void on_line(void *ctx, char *line, size_t len, bool truncated)
{
	struct run *r = ctx;
	r->n_lines++;
	if (truncated)
		r->n_truncated++;
	if (r->s != NULL)
		mc_backend_session_line(r->s, line, len, truncated);
}

static void add_env(const char *kv)
{
	cr_assert_lt(R.n_env, 15);
	R.envp[R.n_env++] = strdup(kv);
	R.envp[R.n_env] = NULL;
}

/* Spawns the fake of ops's family in mode, with its backend session. */
static void start(const struct mc_backend_ops *ops, const char *mode, const char *resume)
{
	char kv[256];
	add_env("PATH=/usr/bin:/bin");
	snprintf(kv, sizeof kv, "HOME=%s", R.dir);
	add_env(kv);
	snprintf(kv, sizeof kv, "FAKE_AGENT_MODE=%s", mode);
	add_env(kv);
	add_env("MULTICA_TOKEN=mat_test_token");
	R.ops = ops;
	const char *bin = strcmp(ops->family, "claude") == 0 ? FAKE_CLAUDE_BIN : FAKE_CODEX_BIN;
	struct mc_backend_opts o = { .prompt = "say hi", .resume_id = resume, .cwd = R.dir,
				     .resume_fallback_notice = "(new session)" };
	struct mc_argv argv = { 0 };
	cr_assert_eq(ops->build_argv(bin, NULL, 0, &o, &argv), 0);
	struct mc_agent_spec spec = { .path = bin, .argv = argv.v, .envp = R.envp, .cwd = R.dir };
	char err[256];
	R.a = mc_agent_spawn(&spec, err, sizeof err);
	mc_argv_free(&argv);
	cr_assert_not_null(R.a, "spawn: %s", err);
	struct mc_backend_sink sink = cap_sink(&R.cap);
	sink.ctx = &R;
	sink.write = sink_write;
	sink.close_stdin = sink_close;
	sink.message = sink_message;
	R.s = mc_backend_session_new(ops, &o, &sink);
	cr_assert_not_null(R.s);
	mc_backend_session_start(R.s);
}

/* One poll + service round, at most max_ms. */
static void step(int max_ms)
{
	struct curl_waitfd w[8];
	struct pollfd p[8];
	unsigned n = mc_agent_waitfds(R.a, w, 8);
	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = w[i].fd,
					.events = (short)((w[i].events & CURL_WAIT_POLLIN ? POLLIN : 0) |
							  (w[i].events & CURL_WAIT_POLLOUT ? POLLOUT : 0)) };
	mc_ms_t now = mc_now_ms();
	mc_ms_t d = mc_agent_next_deadline(R.a);
	int t = max_ms;
	if (d >= 0 && d - now < t)
		t = d - now > 0 ? (int)(d - now) : 0;
	poll(p, n, t);
	mc_agent_service(R.a, mc_now_ms(), on_line, &R);
	if (mc_agent_done(R.a) && !R.finished) {
		R.finished = true;
		int st = 0;
		bool ex = mc_agent_exited(R.a, &st);
		struct mc_backend_end e = { .cause = R.cause, .exited = ex, .wstatus = st,
					    .stderr_tail = mc_agent_stderr_tail(R.a) };
		if (R.s != NULL)
			mc_backend_session_finish(R.s, &e);
	}
}

/* Drives until cond or the bound (generous: a busy host is not a bug). */
static bool drive_until(bool (*cond)(void), mc_ms_t bound_ms)
{
	mc_ms_t end = mc_now_ms() + bound_ms;
	while (!cond() && mc_now_ms() < end)
		step(100);
	return cond();
}

static bool is_finished(void)
{
	return R.finished;
}

static bool has_session(void)
{
	return R.cap.n_sids > 0;
}

static void run_to_end(void)
{
	cr_assert(drive_until(is_finished, 30000), "the agent did not end");
	cr_assert_eq(R.cap.n_results, 1);
}

static int exit_code(void)
{
	int st = -1;
	cr_assert(mc_agent_exited(R.a, &st));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* Live (non-zombie) members of process group pgid, from /proc. */
static int group_members(pid_t pgid)
{
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t k = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[k] = '\0';
		char *rp = strrchr(buf, ')');
		char st;
		long ppid, pgrp;
		if (rp != NULL && sscanf(rp + 1, " %c %ld %ld", &st, &ppid, &pgrp) == 3 &&
		    pgrp == pgid && st != 'Z')
			n++;
	}
	if (d != NULL)
		closedir(d);
	return n;
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d != NULL && readdir(d) != NULL)
		n++;
	if (d != NULL)
		closedir(d);
	return n;
}

Test(agent_proc, claude_text_run)
{
	int fds_before = count_fds();
	start(&mc_backend_claude, "text", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED, "%s", R.cap.err);
	cr_assert_str_eq(R.cap.out, "hi from fake claude");
	cr_assert_eq(R.cap.n_msgs, 1);
	cr_assert_str_eq(R.cap.msgs[0].text, "hi from fake claude");
	cr_assert_eq(R.cap.n_sids, 1);
	cr_assert_str_eq(R.cap.sid, R.cap.sids[0], "init and result carry the same session id");
	cr_assert_eq(R.cap.n_usage, 1);
	cr_assert_str_eq(R.cap.usage[0].model, "claude-fake-model");
	cr_assert_eq(R.cap.usage[0].u.input, 22);
	cr_assert_eq(R.cap.usage[0].u.cache_read, 5);
	cr_assert_eq(exit_code(), 0);
	cr_assert_str_eq(mc_agent_stderr_tail(R.a), "");
	mc_backend_session_free(R.s);
	mc_agent_free(R.a);
	R.s = NULL;
	R.a = NULL;
	cr_assert_eq(count_fds(), fds_before, "no fd left open");
}

Test(agent_proc, claude_tool_run_with_control_request)
{
	start(&mc_backend_claude, "tool", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED, "%s", R.cap.err);
	cr_assert_eq(R.cap.n_msgs, 4);
	cr_assert_eq(R.cap.msgs[1].type, MC_MSG_TOOL_USE);
	cr_assert_str_eq(R.cap.msgs[1].tool, "Bash");
	cr_assert_eq(R.cap.msgs[2].type, MC_MSG_TOOL_RESULT);
	cr_assert_str_eq(R.cap.msgs[2].tool, "Bash");
	cr_assert_str_eq(R.cap.msgs[2].text, "hello");
	cr_assert_str_eq(R.cap.out, "The command printed hello. Done.");
	cr_assert(R.cap.r.tool_ran);
}

Test(agent_proc, codex_tool_run_with_approval)
{
	start(&mc_backend_codex, "tool", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED, "%s", R.cap.err);
	cr_assert_eq(R.cap.n_msgs, 3, "the subagent's message is not ours");
	cr_assert_str_eq(R.cap.msgs[0].tool, "exec_command");
	cr_assert_str_eq(R.cap.msgs[1].text, "hello\n");
	cr_assert_str_eq(R.cap.out, "The command printed hello. Done.");
	cr_assert_eq(R.cap.n_sids, 1);
	cr_assert_str_eq(R.cap.sid, R.cap.sids[0]);
	cr_assert_eq(R.cap.usage[0].u.input, 22);
	cr_assert_eq(R.cap.usage[0].u.output, 10);
	cr_assert_eq(exit_code(), 0);
}

Test(agent_proc, codex_resume_rejected_falls_back_to_a_fresh_thread)
{
	start(&mc_backend_codex, "resume_reject", "0000-old");
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED, "%s", R.cap.err);
	cr_assert_str_eq(R.cap.out, "hi from fake codex");
	cr_assert_str_neq(R.cap.sid, "0000-old");
	cr_assert_str_neq(R.cap.sid, "");
}

Test(agent_proc, codex_resume_accepted_keeps_the_thread)
{
	start(&mc_backend_codex, "text", "0000-old");
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED);
	cr_assert_str_eq(R.cap.sid, "0000-old");
	cr_assert_eq(R.cap.usage[0].u.output, 10, "only this run's tokens");
}

Test(agent_proc, claude_resume_rejected)
{
	start(&mc_backend_claude, "resume_reject", "5e5e5e5e-0000-4000-8000-000000000001");
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_FAILED);
	cr_assert(R.cap.r.resume_rejected);
	cr_assert_str_eq(R.cap.sid, "");
	cr_assert(strstr(R.cap.err, "claude stderr: No conversation found with session ID") != NULL,
		  "%s", R.cap.err);
}

Test(agent_proc, claude_error_result)
{
	start(&mc_backend_claude, "error", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(R.cap.err, "Failed to authenticate. API Error: 401 fake 401 for testing");
	cr_assert_eq(exit_code(), 1);
}

Test(agent_proc, codex_error_turn)
{
	start(&mc_backend_codex, "error", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_FAILED);
	cr_assert(strstr(R.cap.err, "401 Unauthorized") != NULL, "%s", R.cap.err);
}

Test(agent_proc, crashes)
{
	start(&mc_backend_claude, "crash", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(R.cap.err, "claude exited with error: exit status 3");
	cr_assert_eq(R.cap.n_msgs, 1, "what it said before crashing is kept");
	teardown();
	setup();
	start(&mc_backend_codex, "crash", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(R.cap.err, "codex app-server exited during the turn (exit status 3)");
}

Test(agent_proc, exec_failure_is_named)
{
	char *argv[] = { "claude", NULL };
	char *envp[] = { NULL };
	struct mc_agent_spec spec = { .path = "/nonexistent/claude", .argv = argv, .envp = envp };
	char err[256];
	int fds = count_fds();
	errno = 0;
	cr_assert_null(mc_agent_spawn(&spec, err, sizeof err));
	cr_assert_eq(errno, ENOENT);
	cr_assert_str_eq(err, "exec /nonexistent/claude: No such file or directory");
	spec.path = FAKE_CLAUDE_BIN;
	spec.cwd = "/nonexistent-dir";
	cr_assert_null(mc_agent_spawn(&spec, err, sizeof err));
	cr_assert_str_eq(err, "chdir /nonexistent-dir: No such file or directory");
	char plain[128];
	snprintf(plain, sizeof plain, "%s/not-executable", R.dir);
	int pf = open(plain, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	cr_assert_geq(pf, 0);
	close(pf);
	spec.path = plain;
	spec.cwd = NULL;
	cr_assert_null(mc_agent_spawn(&spec, err, sizeof err));
	cr_assert_eq(errno, EACCES, "%s", err);
	cr_assert_eq(count_fds(), fds, "a failed spawn leaves no fd");
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "and no child");
}

static bool has_two_members(void)
{
	return group_members(mc_agent_pid(R.a)) >= 2;
}

Test(agent_proc, TestClaudeCancellation_SIGTERMToTheGroup)
{
	start(&mc_backend_claude, "hang", NULL);
	cr_assert(drive_until(has_session, 20000), "no init line");
	pid_t pgid = mc_agent_pid(R.a);
	cr_assert_eq(getpgid(pgid), pgid, "the agent leads its own group");
	cr_assert_eq(getsid(pgid), pgid, "and its own session");
	R.cause = MC_END_CANCEL;
	mc_agent_stop(R.a, 10000, mc_now_ms());
	run_to_end();
	cr_assert_not(mc_agent_killed(R.a), "SIGTERM was enough");
	cr_assert_eq(exit_code(), -SIGTERM);
	cr_assert_eq(R.cap.r.status, MC_RESULT_ABORTED);
	cr_assert_eq(kill(-pgid, 0), -1);
	cr_assert_eq(errno, ESRCH);
}

Test(agent_proc, TestCodexTimeoutReapsDetachedStdioDescendant)
{
	start(&mc_backend_codex, "grandchild", NULL);
	cr_assert(drive_until(has_two_members, 20000), "no grandchild appeared");
	pid_t pgid = mc_agent_pid(R.a);
	R.cause = MC_END_CANCEL;
	mc_ms_t t0 = mc_now_ms();
	mc_agent_stop(R.a, 500, t0);
	run_to_end();
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert(mc_agent_killed(R.a), "the grandchild needed SIGKILL");
	cr_assert_geq(took, 450, "SIGKILL waited for the grace (%lld ms)", (long long)took);
	cr_assert_lt(took, 10000);
	cr_assert_eq(group_members(pgid), 0, "nothing of the group is left");
	/* (A zombie of the group may wait for init, which reaps late on some
	 * hosts: live members are what count.) */
	cr_assert_eq(R.cap.r.status, MC_RESULT_ABORTED);
}

Test(agent_proc, huge_line_is_cut_with_bounded_memory)
{
	start(&mc_backend_claude, "huge_line", NULL);
	run_to_end();
	cr_assert_eq(R.n_truncated, 1);
	cr_assert_leq(mc_agent_linebuf_peak(R.a), MC_AGENT_LINE_MAX + 1);
	cr_assert_leq(mc_agent_linebuf_cap(R.a), MC_LINEBUF_KEEP, "the buffer shrank back");
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED, "%s", R.cap.err);
	cr_assert_eq(R.cap.n_msgs, 1, "the cut line is skipped, the next one read");
	cr_assert_str_eq(R.cap.msgs[0].text, "after the huge line");
	cr_assert_eq(mc_backend_session_bad_lines(R.s), 1);
}

Test(agent_proc, codex_huge_line)
{
	start(&mc_backend_codex, "huge_line", NULL);
	run_to_end();
	cr_assert_eq(R.n_truncated, 1);
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED, "%s", R.cap.err);
	cr_assert_str_eq(R.cap.out, "hi from fake codex");
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static bool flood_for_a_while(void)
{
	return R.n_msgs >= 20000;
}

/* agent_proc keeps one partial line and the backend emits each message
 * at once: a flood costs the sink (here it counts and drops; in the
 * executor the message batcher caps it). */
Test(agent_proc, flood_does_not_grow_memory)
{
	start(&mc_backend_claude, "flood", NULL);
	cr_assert(drive_until(has_session, 20000));
	long before = rss_kib();
	cr_assert(drive_until(flood_for_a_while, 60000), "only %ld messages", R.n_msgs);
	long grew = rss_kib() - before;
	cr_assert_leq(mc_agent_linebuf_peak(R.a), 16384, "lines are short: no big buffer");
#ifndef MC_SANITIZE
	cr_assert_lt(grew, 8 * 1024, "RSS grew by %ld KiB during the flood", grew);
#else
	(void)grew;
#endif
	R.cause = MC_END_CANCEL;
	mc_agent_stop(R.a, 2000, mc_now_ms());
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_ABORTED);
}

Test(agent_proc, bad_bytes_reach_the_sink_without_nul)
{
	start(&mc_backend_claude, "bad_bytes", NULL);
	run_to_end();
	cr_assert_eq(R.cap.r.status, MC_RESULT_COMPLETED);
	cr_assert_eq(R.cap.n_msgs, 1);
	cr_assert_str_eq(R.cap.msgs[0].text, "bad \xff\xfe bytes and NUL",
			 "NUL gone; invalid UTF-8 is left for the executor to repair");
	cr_assert_eq(R.cap.msgs[0].text_len, strlen("bad \xff\xfe bytes and NUL"));
	cr_assert_str_eq(R.cap.out, "done \xc3( end");
}

Test(agent_proc, record_shows_argv_cwd_and_exact_environment)
{
	char rec[128], kv[200];
	snprintf(rec, sizeof rec, "%s/record.txt", R.dir);
	snprintf(kv, sizeof kv, "FAKE_AGENT_RECORD=%s", rec);
	add_env(kv);
	/* an fd without CLOEXEC in the parent must not reach the agent */
	int leak = open("/dev/null", O_RDONLY);
	cr_assert_geq(leak, 0);
	start(&mc_backend_claude, "hang", NULL);
	close(leak);
	cr_assert(drive_until(has_session, 20000));
	char fdpath[64];
	snprintf(fdpath, sizeof fdpath, "/proc/%d/fd", (int)mc_agent_pid(R.a));
	DIR *d = opendir(fdpath);
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	cr_assert_eq(n, 3, "the agent has stdin, stdout, stderr and nothing else (%d)", n);
	FILE *f = fopen(rec, "r");
	cr_assert_not_null(f);
	char line[4096];
	int n_env = 0, n_argv = 0;
	bool token = false, cwd = false, stream = false;
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "env\t", 4) == 0) {
			n_env++;
			token |= strcmp(line + 4, "MULTICA_TOKEN=mat_test_token") == 0;
		} else if (strncmp(line, "argv\t", 5) == 0) {
			n_argv++;
			stream |= strcmp(line + 5, "stream-json") == 0;
		} else if (strncmp(line, "cwd\t", 4) == 0) {
			char real[4096];
			cwd = realpath(R.dir, real) != NULL && strcmp(line + 4, real) == 0;
		}
	}
	fclose(f);
	cr_assert(token);
	cr_assert(cwd, "the agent runs in its work dir");
	cr_assert(stream);
	cr_assert_eq(n_argv, 11);
	cr_assert_eq(n_env, R.n_env, "nothing of the parent's environment is inherited");
	R.cause = MC_END_CANCEL;
	mc_agent_stop(R.a, 0, mc_now_ms());
	run_to_end();
	cr_assert(mc_agent_killed(R.a), "grace 0 is an immediate SIGKILL");
}

Test(agent_proc, stdin_queue_is_bounded_and_never_blocks)
{
	start(&mc_backend_claude, "hang", NULL);
	cr_assert(drive_until(has_session, 20000));
	/* the fake reads nothing more: the pipe fills, the queue holds the rest */
	static char big[1024 * 1024];
	memset(big, 'x', sizeof big);
	mc_ms_t t0 = mc_now_ms();
	cr_assert_eq(mc_agent_write(R.a, big, sizeof big), 0);
	cr_assert_lt(mc_now_ms() - t0, 1000, "the write did not block");
	cr_assert_gt(mc_agent_stdin_pending(R.a), 0);
	errno = 0;
	for (int i = 0; i < 32 && errno != ENOBUFS; i++)
		mc_agent_write(R.a, big, sizeof big);
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_leq(mc_agent_stdin_pending(R.a), MC_AGENT_STDIN_MAX);
	R.cause = MC_END_CANCEL;
	mc_agent_stop(R.a, 5000, mc_now_ms());
	cr_assert_eq(mc_agent_stdin_pending(R.a), 0, "a stop drops the queue");
	run_to_end();
}

static bool five_msgs(void)
{
	return R.cap.n_msgs >= 5;
}

Test(agent_proc, slow_agent_streams_line_by_line)
{
	add_env("FAKE_AGENT_DELAY_MS=100");
	start(&mc_backend_codex, "slow", NULL);
	mc_ms_t t0 = mc_now_ms();
	cr_assert(drive_until(five_msgs, 20000));
	cr_assert_geq(mc_now_ms() - t0, 400, "lines arrive as printed, not at the end");
	run_to_end();
	cr_assert_str_eq(R.cap.out, "slow line 5");
}

/* A plain program through agent_proc alone (no backend). */
static void spawn_sh(const char *script)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct mc_agent_spec spec = { .path = "/bin/sh", .argv = argv, .envp = envp };
	char err[256];
	R.a = mc_agent_spawn(&spec, err, sizeof err);
	cr_assert_not_null(R.a, "%s", err);
}

Test(agent_proc, stderr_tail_keeps_the_last_2048_bytes)
{
	spawn_sh("i=0; while [ $i -lt 400 ]; do printf 'line %03d of stderr\\n' $i >&2; i=$((i+1)); done;"
		 " printf 'THE END' >&2; echo out");
	cr_assert(drive_until(is_finished, 30000));
	const char *t = mc_agent_stderr_tail(R.a);
	cr_assert_leq(strlen(t), MC_AGENT_STDERR_TAIL);
	cr_assert_geq(strlen(t), MC_AGENT_STDERR_TAIL - 3);
	size_t n = strlen(t);
	cr_assert_str_eq(t + n - 7, "THE END");
	cr_assert(strstr(t, "line 399 of stderr") != NULL);
	cr_assert_null(strstr(t, "line 001 of stderr"));
	cr_assert_eq(R.n_lines, 1, "stdout is separate");
}

static bool leader_exited(void)
{
	return mc_agent_exited(R.a, NULL);
}

Test(agent_proc, not_done_while_the_group_lingers)
{
	/* the leader exits at once; its background child keeps the group
	 * (and, here, not stdout: it is redirected) */
	spawn_sh("sleep 60 >/dev/null 2>&1 </dev/null & echo started");
	pid_t pgid = mc_agent_pid(R.a);
	cr_assert(drive_until(leader_exited, 30000));
	int st;
	mc_agent_exited(R.a, &st);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mc_ms_t until = mc_now_ms() + 600;
	while (mc_now_ms() < until)
		step(100);
	cr_assert_not(mc_agent_done(R.a), "a live member keeps the agent running");
	cr_assert(mc_agent_group_alive(R.a));
	cr_assert_eq(group_members(pgid), 1);
	mc_agent_stop(R.a, 2000, mc_now_ms());
	cr_assert(drive_until(is_finished, 30000));
	cr_assert_eq(group_members(pgid), 0);
	cr_assert_not(mc_agent_killed(R.a), "sleep dies of SIGTERM");
}
