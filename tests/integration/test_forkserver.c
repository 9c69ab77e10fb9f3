/* The fork server (supervisor/forkserver.c), seen from outside with the
 * build's multicad against multica-fakeplane:
 *
 *  - tree: one child of the supervisor titled "multicad: forkserver" that
 *    holds only stdio and its socket, and neither the token nor any
 *    workspace id in its memory; every worker is the supervisor's child
 *    (ppid in /proc/PID/stat) and was made by the fork server (log);
 *  - a SIGKILLed worker is still cleaned up (rows offline) and respawned,
 *    again by the fork server;
 *  - a SIGKILLed fork server disturbs no running worker (same pids, rows
 *    beating), is restarted as a fresh process (no token in it either), and
 *    the next spawn goes through it;
 *  - a SIGSTOPped (stuck) fork server: the spawn times out, the fork server
 *    is killed and replaced, and the worker is forked directly meanwhile;
 *  - a fork server that dies between its clone and its answer leaves no
 *    unwatched worker and no zombie (test hook);
 *  - a SIGKILLed supervisor takes the fork server and every worker with it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#define HB_MS 500            /* heartbeat_interval of the default config */
#define READY_MS 15000       /* bound on a start-up to everything online */
#define FS_TITLE "multicad: forkserver"

TestSuite(forkserver, .timeout = 120, .fini = dfx_fini);

/* ---- fixture (tests/support/daemon_fixture.h) ---- */

/* n online rows in all and a worker for each of workspaces 1..n. */
static bool all_up(int n)
{
	bool up = dp_count_online(&FP, NULL) == n;
	for (int i = 1; i <= n && up; i++)
		up = dp_worker_pid(&D, WS[i]) != 0;
	return up;
}

/* Emulator with workspaces 1..n, daemon serving them (extra environment
 * env, NULL-terminated, or NULL), everything online. */
static void start_up(int n, const char *const *env)
{
	dfx_start_plane(n, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, n) };
	dfx_prepare_daemon(&c, NULL);
	D.extra_env = env;
	cr_assert_eq(dp_start(&D), 0);
	DFX_WAIT_UP(all_up(n), READY_MS,
		   "the daemon did not bring %d workspaces online with a worker each", n);
}

/* The live child of the supervisor titled FS_TITLE, or 0. */
static pid_t forkserver_pid(void)
{
	pid_t kids[64];
	size_t n = dp_children(&D, kids, 64);
	for (size_t i = 0; i < n && i < 64; i++) {
		char title[128];
		if (dp_proc_title(kids[i], title, sizeof title) == 0 && strcmp(title, FS_TITLE) == 0 &&
		    dp_pid_alive(kids[i]))
			return kids[i];
	}
	return 0;
}

static pid_t must_find_forkserver(void)
{
	pid_t fs = 0;
	cr_assert(DP_WAIT((fs = forkserver_pid()) != 0, 5000),
		  "no fork server process: no child of the supervisor %d is titled \"" FS_TITLE
		  "\"", (int)D.pid);
	return fs;
}

/* Whether needle is anywhere in the readable memory of pid (-1: cannot
 * read it at all). */
static int memory_holds(pid_t pid, const char *needle)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *maps = fopen(path, "re");
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	int mem = open(path, O_RDONLY | O_CLOEXEC);
	if (maps == NULL || mem < 0) {
		if (maps != NULL)
			fclose(maps);
		if (mem >= 0)
			close(mem);
		return -1;
	}
	size_t nl = strlen(needle), cap = 1 << 20;
	char *buf = malloc(cap + nl);
	char line[512];
	int found = 0, regions = 0;
	while (buf != NULL && !found && fgets(line, sizeof line, maps) != NULL) {
		unsigned long lo, hi;
		char perms[8];
		/* Not the sanitizers' shadow and reserved ranges (terabytes,
		 * nearly all untouched): nothing of ours is in a mapping that big. */
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
		    hi - lo > (256ul << 20) || strstr(line, "[vvar") != NULL ||
		    strstr(line, "[vsyscall]") != NULL)
			continue;
		size_t carry = 0;
		for (unsigned long at = lo; at < hi && !found;) {
			size_t want = hi - at < cap ? hi - at : cap;
			ssize_t r = pread(mem, buf + carry, want, (off_t)at);
			if (r <= 0)
				break;
			regions += at == lo;
			size_t have = carry + (size_t)r;
			found = memmem(buf, have, needle, nl) != NULL;
			carry = have < nl - 1 ? have : nl - 1;
			memmove(buf, buf + have - carry, carry);
			at += (unsigned long)r;
		}
	}
	free(buf);
	fclose(maps);
	close(mem);
	return regions == 0 ? -1 : found;
}

/* The fork server holds none of the supervisor's per-workspace state. */
static void expect_stateless(pid_t fs, const char *which)
{
	cr_expect_eq(memory_holds(fs, DP_TOKEN), 0, "the %s fork server's memory holds the token",
		     which);
	cr_expect_eq(memory_holds(fs, WS[1]), 0,
		     "the %s fork server's memory holds a workspace id", which);
	char *fds = dp_fd_list(fs);
	cr_assert_not_null(fds);
	cr_expect_eq(dp_fd_count(fs), 4, "the %s fork server has fds beyond stdio and its "
		     "socket: %s", which, fds);
	const char *const files[] = { D.state_dir, D.token_path, D.conf_path };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		cr_expect_null(strstr(fds, files[i]), "the %s fork server holds %s: %s", which,
			       files[i], fds);
	free(fds);
}

static int spawned(const char *how)
{
	return dp_log_count(&D, "msg=\"worker started\"", how, NULL, NULL);
}

/* Workspace i is killed and comes back: its rows offline first, then a
 * new worker (the supervisor's child) with its rows online. Returns it. */
static pid_t kill_and_respawn(int i)
{
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(i, rt);
	pid_t old = dp_worker_pid(&D, WS[i]);
	cr_assert_neq(old, 0);
	cr_assert_eq(kill(old, SIGKILL), 0);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt, "offline"), 3000),
		  "the killed worker's runtime %s is not offline", rt);
	pid_t now = 0;
	cr_assert(DP_WAIT((now = dp_worker_pid(&D, WS[i])) != 0 && now != old, 10000),
		  "workspace %d was not respawned", i);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt, "online"), 10000),
		  "the respawned worker did not bring %s back online", rt);
	cr_expect_eq(dp_proc_ppid(now), D.pid, "the respawned worker %d is not the supervisor's child",
		     (int)now);
	return now;
}

/* ---- tests ---- */

Test(forkserver, workers_are_the_supervisors_children_made_by_a_stateless_fork_server)
{
	start_up(2, NULL);
	pid_t fs = must_find_forkserver();
	cr_expect_eq(dp_proc_ppid(fs), D.pid, "the fork server is not the supervisor's child");
	for (int i = 1; i <= 2; i++) {
		pid_t w = dp_worker_pid(&D, WS[i]);
		cr_expect_eq(dp_proc_ppid(w), D.pid, "worker %d (pid %d) has ppid %d, not the supervisor "
			     "%d", i, (int)w, (int)dp_proc_ppid(w), (int)D.pid);
	}
	cr_expect_eq(spawned("spawn=forkserver"), 2, "not every worker came from the fork server");
	cr_expect_eq(spawned("spawn=direct"), 0);
	/* The scan itself works: a worker does hold its workspace id. */
	cr_assert_eq(memory_holds(dp_worker_pid(&D, WS[1]), WS[1]), 1,
		     "the memory scan finds no workspace id even in that workspace's worker");
	expect_stateless(fs, "first");
}

Test(forkserver, sigkilled_worker_is_cleaned_up_and_respawned_by_the_fork_server)
{
	start_up(2, NULL);
	pid_t fs = must_find_forkserver();
	pid_t other = dp_worker_pid(&D, WS[2]);
	kill_and_respawn(1);
	cr_expect_eq(spawned("spawn=forkserver"), 3, "the respawn did not go through the fork "
		     "server");
	cr_expect_eq(forkserver_pid(), fs, "the fork server changed");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), other, "the other worker was touched");
}

Test(forkserver, sigkilled_fork_server_disturbs_no_worker_and_its_successor_serves)
{
	start_up(2, NULL);
	pid_t fs = must_find_forkserver();
	pid_t w1 = dp_worker_pid(&D, WS[1]), w2 = dp_worker_pid(&D, WS[2]);
	char rt2[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt2);
	cr_assert_eq(kill(fs, SIGKILL), 0);
	int64_t wall0 = dp_wall_ms();
	pid_t fs2 = 0;
	cr_assert(DP_WAIT((fs2 = forkserver_pid()) != 0 && fs2 != fs, 5000),
		  "no new fork server after the old one was killed");
	cr_expect(dp_log_has(&D, "fork server exited", "signal 9", NULL, NULL));
	cr_expect(dp_log_has(&D, "fork server restarted", NULL, NULL, NULL));
	cr_expect(DP_WAIT(!dp_pid_alive(fs), 3000), "the killed fork server %d was not reaped",
		  (int)fs);
	cr_expect_eq(dp_proc_ppid(fs2), D.pid);
	dp_sleep_ms(4 * HB_MS);
	cr_expect_eq(dp_worker_pid(&D, WS[1]), w1, "worker 1 was disturbed");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), w2, "worker 2 was disturbed");
	cr_expect_eq(dp_log_count(&D, "worker exited", NULL, NULL, NULL), 0);
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	int beats = 0;
	int64_t gap = dp_j_heartbeat_gap(&j, rt2, wall0, dp_wall_ms(), &beats);
	dp_journal_free(&j);
	cr_expect_leq(gap, 3 * HB_MS, "worker 2's heartbeats paused %lld ms", (long long)gap);
	expect_stateless(fs2, "restarted");

	kill_and_respawn(1);
	cr_expect_eq(spawned("spawn=forkserver"), 3, "the respawn did not go through the "
		     "restarted fork server");
	cr_expect_eq(forkserver_pid(), fs2);
}

Test(forkserver, stopped_fork_server_times_out_is_replaced_and_the_spawn_falls_back)
{
	start_up(2, NULL);
	pid_t fs = must_find_forkserver();
	pid_t w2 = dp_worker_pid(&D, WS[2]);
	cr_assert_eq(kill(fs, SIGSTOP), 0);
	kill_and_respawn(1);
	cr_expect(dp_log_has(&D, "fork server lost", "no answer within", NULL, NULL),
		  "the log does not say the fork server was given up");
	cr_expect_eq(spawned("spawn=direct"), 1, "the respawn was not forked directly");
	cr_expect(DP_WAIT(!dp_pid_alive(fs), 3000), "the stuck fork server %d still exists",
		  (int)fs);
	pid_t fs2 = 0;
	cr_expect(DP_WAIT((fs2 = forkserver_pid()) != 0 && fs2 != fs, 5000),
		  "no new fork server after the stuck one");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), w2, "worker 2 was disturbed");
	/* And the next spawn goes through the new one. */
	kill_and_respawn(2);
	cr_expect_eq(spawned("spawn=forkserver"), 3);
}

#ifdef MC_TEST_HOOKS
Test(forkserver, fork_server_dying_between_clone_and_answer_leaves_no_unwatched_worker)
{
	static const char *const env[] = { "MC_TEST_FS_EXIT_AFTER_CLONE=3", NULL };
	start_up(2, env);
	pid_t fs = must_find_forkserver();
	kill_and_respawn(1); /* the third request: the fork server dies */
	cr_expect(dp_log_has(&D, "fork server lost", NULL, NULL, NULL));
	cr_expect(dp_log_has(&D, "killing a worker the lost fork server left unanswered", NULL,
			     NULL, NULL), "the unanswered worker was not found");
	cr_expect_eq(spawned("spawn=direct"), 1);
	pid_t fs2 = 0;
	cr_expect(DP_WAIT((fs2 = forkserver_pid()) != 0 && fs2 != fs, 5000),
		  "no new fork server after the lost one");
	/* Two workers, the new fork server, the link and the agent-api process:
	 * no stray, no zombie. */
	cr_expect(DP_WAIT(dp_children(&D, NULL, 0) == 5 && dp_count_zombies(&D) == 0, 5000),
		  "%zu children (want 5), %zu zombies", dp_children(&D, NULL, 0),
		  dp_count_zombies(&D));
}
#endif

Test(forkserver, sigkilled_supervisor_takes_the_fork_server_and_every_worker)
{
	start_up(2, NULL);
	pid_t fs = must_find_forkserver();
	pid_t w1 = dp_worker_pid(&D, WS[1]), w2 = dp_worker_pid(&D, WS[2]);
	cr_assert_eq(dp_signal(&D, SIGKILL), 0);
	cr_assert(dp_wait_exit(&D, 3000));
	cr_expect(DP_WAIT(!dp_pid_alive(fs), 3000), "the fork server outlived the supervisor");
	cr_expect(DP_WAIT(!dp_pid_alive(w1) && !dp_pid_alive(w2), 8000),
		  "workers outlived the supervisor");
	cr_expect(DP_WAIT(dp_group_pids(&D, NULL, 0) == 0, 8000),
		  "%zu processes of the daemon's tree outlived the supervisor",
		  dp_group_pids(&D, NULL, 0));
	cr_expect(DP_WAIT(dp_count_online(&FP, NULL) == 0, 5000), "rows still online");
}
