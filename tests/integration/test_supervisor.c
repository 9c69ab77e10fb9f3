/* The supervisor's crash isolation: the whole daemon (build's multicad)
 * against multica-fakeplane, asserting what the emulator's state and
 * journal show. Each test has its own emulator, daemon and temp dir
 * (tests/support/daemon_proc.h); intervals are short (heartbeat 500ms, ping
 * 200ms, liveness 1s) and every wait polls with a generous bound.
 *
 * Worker deaths (SIGKILL, SIGSTOP, mid-heartbeat), the supervisor's own
 * death, ledger leftovers of a host crash (and their failing DEREG),
 * reloads, shutdown with 50 workers, with a straggler that lingers, and
 * 200 crash/respawn cycles. Faults injected into workers and the server are in
 * test_supervisor_faults.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#define HB_MS 500            /* heartbeat_interval of the default config */
#define READY_MS 15000       /* bound on a start-up to everything online */

static char *FDS_BEFORE, *FDS_AFTER;  /* the crash-cycle test's fd listings */

static void suite_fini(void)
{
	free(FDS_BEFORE);
	free(FDS_AFTER);
	dfx_fini();
}

TestSuite(supervisor, .timeout = 90, .fini = suite_fini);

/* ---- fixture (tests/support/daemon_fixture.h) ---- */

static bool all_ready(int first, int last)
{
	for (int i = first; i <= last; i++)
		if (!dfx_ws_ready(i, 1))
			return false;
	return true;
}

static void wait_ready(int first, int last)
{
	DFX_WAIT_UP(all_ready(first, last), READY_MS,
		   "workspaces %d..%d did not all come up (a worker and one online row each)",
		   first, last);
}

/* Every online row of ws was heartbeated within the last window_ms: its
 * last_seen_at moves on between two looks window_ms apart. */
static bool online_rows_beating(const char *ws, int window_ms, int *n_online)
{
	struct dp_rt a[32], b[32];
	int na = dp_runtimes(&FP, ws, true, a, 32);
	dp_sleep_ms(window_ms);
	int nb = dp_runtimes(&FP, ws, true, b, 32);
	*n_online = nb;
	if (na < 0 || nb < 0)
		return false;
	for (int i = 0; i < nb && i < 32; i++) {
		bool advanced = true;
		for (int k = 0; k < na && k < 32; k++)
			if (strcmp(a[k].id, b[i].id) == 0 && b[i].last_seen_ms <= a[k].last_seen_ms)
				advanced = false;
		if (!advanced)
			return false;
	}
	return true;
}

/* ---- a worker dies ---- */

Test(supervisor, sigkill_one_of_three_workers_isolated_cleaned_up_and_respawned)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	/* A slow respawn keeps the dead worker's rows offline long enough to
	 * be seen by polling. */
	struct dp_config c = { .workspaces = "", .restart_backoff_min = "1500ms",
			       .restart_backoff_max = "3s" };
	char *list = dfx_ws_list(1, 3);
	c.workspaces = list;
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);

	pid_t pid[4];
	char rt[4][DP_ID_LEN + 1];
	for (int i = 1; i <= 3; i++) {
		pid[i] = dp_worker_pid(&D, WS[i]);
		dfx_runtime_of(i, rt[i]);
	}
	dp_sleep_ms(2 * HB_MS); /* the bystanders' heartbeats settle in */
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_geq(seq0, 0);
	int64_t kill_wall = dp_wall_ms(), t0 = dp_now_ms();
	cr_assert_eq(kill(pid[2], SIGKILL), 0);

	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt[2], "offline"), 1000),
		  "the dead worker's runtime %s is not offline within 1 s", rt[2]);
	cr_log_info("offline after %lld ms", (long long)(dp_now_ms() - t0));

	cr_assert(DP_WAIT(dp_worker_pid(&D, WS[2]) != 0 && dp_worker_pid(&D, WS[2]) != pid[2], 8000),
		  "workspace 2 was not respawned");
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt[2], "online"), 8000),
		  "the respawned worker did not bring %s back online", rt[2]);
	/* Some more beats of the bystanders after the respawn. */
	dp_sleep_ms(2 * HB_MS);
	int64_t end_wall = dp_wall_ms();

	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	int dereg = dp_j_count(&j, seq0, "POST", "/api/daemon/deregister", rt[2], 200);
	int reg = dp_j_count(&j, seq0, "POST", "/api/daemon/register", WS[2], 200);
	char ro_path[128];
	snprintf(ro_path, sizeof ro_path, "/api/daemon/runtimes/%s/recover-orphans", rt[2]);
	int ro = dp_j_count(&j, seq0, "POST", ro_path, NULL, 200);
	int other_reg = dp_j_count(&j, seq0, "POST", "/api/daemon/register", WS[1], 0) +
			dp_j_count(&j, seq0, "POST", "/api/daemon/register", WS[3], 0);
	int other_dereg = dp_j_count(&j, seq0, "POST", "/api/daemon/deregister", rt[1], 0) +
			  dp_j_count(&j, seq0, "POST", "/api/daemon/deregister", rt[3], 0);
	int beats[4];
	int64_t gap[4];
	for (int i = 1; i <= 3; i += 2)
		gap[i] = dp_j_heartbeat_gap(&j, rt[i], kill_wall - HB_MS, end_wall, &beats[i]);
	dp_journal_free(&j);

	cr_expect_eq(dereg, 1, "one DEREG of the dead worker's id, got %d", dereg);
	cr_expect_geq(reg, 1, "the respawned worker did not re-register");
	cr_expect_geq(ro, 1, "no recover-orphans for %s after the respawn", rt[2]);
	cr_expect_eq(other_reg, 0, "a bystander re-registered");
	cr_expect_eq(other_dereg, 0, "a bystander's runtime was deregistered");
	int64_t window = end_wall - kill_wall;
	for (int i = 1; i <= 3; i += 2) {
		cr_expect_eq(dp_worker_pid(&D, WS[i]), pid[i], "bystander %d got a new pid", i);
		cr_expect_leq(gap[i], 3 * HB_MS,
			      "bystander %d's heartbeats paused %lld ms around the crash", i,
			      (long long)gap[i]);
		cr_expect_geq(beats[i], (int)(window / HB_MS) - 2,
			      "bystander %d: %d beats in %lld ms", i, beats[i], (long long)window);
		cr_expect(dp_runtime_is(&FP, rt[i], "online"));
	}
	cr_expect(dp_log_has(&D, "worker exited", WS[2], "signal 9", NULL));
}

Test(supervisor, sigstopped_worker_killed_at_liveness_deadline_and_respawned)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 2);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 2);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	char rt1[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt1);
	long seq0 = dp_journal_last_seq(&FP);

	int64_t t0 = dp_now_ms();
	cr_assert_eq(kill(p1, SIGSTOP), 0);
	/* Nobody sends SIGCONT: the supervisor must SIGKILL it. */
	cr_assert(DP_WAIT(!dp_pid_alive(p1), 6000), "the stopped worker %d still exists", (int)p1);
	int64_t took = dp_now_ms() - t0;
	/* worker_liveness_timeout = 1s, pings every 200ms: not before ~800ms. */
	cr_expect_geq(took, 700, "killed after %lld ms, before the liveness deadline",
		      (long long)took);
	cr_expect_leq(took, 3500, "killed only after %lld ms", (long long)took);
	cr_expect(dp_log_has(&D, "killing worker", WS[1], "missed its liveness deadline", NULL),
		  "the log does not say why the worker was killed");

	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt1, 200) >= 1,
			  5000), "no DEREG of the stopped worker's runtime");
	cr_assert(DP_WAIT(dp_worker_pid(&D, WS[1]) != 0 && dp_worker_pid(&D, WS[1]) != p1, 8000),
		  "workspace 1 was not respawned");
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt1, "online"), 8000), "%s not back online", rt1);
	cr_expect_geq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[1], 200), 1);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "the other worker was touched");
	cr_expect_eq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[2], 0), 0);
}

/* ---- the supervisor dies ---- */

Test(supervisor, sigkill_supervisor_workers_deregister_and_exit_then_restart_converges)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t pid[4];
	char rt[4][DP_ID_LEN + 1];
	for (int i = 1; i <= 3; i++) {
		pid[i] = dp_worker_pid(&D, WS[i]);
		dfx_runtime_of(i, rt[i]);
	}
	long seq0 = dp_journal_last_seq(&FP);

	cr_assert_eq(dp_signal(&D, SIGKILL), 0);
	cr_assert(dp_wait_exit(&D, 2000));
	int64_t t0 = dp_now_ms();
	cr_assert(DP_WAIT(dp_count_online(&FP, NULL) == 0, 2500),
		  "%d rows still online %lld ms after the supervisor died",
		  dp_count_online(&FP, NULL), (long long)(dp_now_ms() - t0));
	cr_assert(DP_WAIT(!dp_pid_alive(pid[1]) && !dp_pid_alive(pid[2]) && !dp_pid_alive(pid[3]),
			  2500), "workers outlived their supervisor");
	dp_kill_leftovers(&D); /* reaps them (they came back to us) */
	cr_expect_eq(dp_group_pids(&D, NULL, 0), 0);
	for (int i = 1; i <= 3; i++)
		cr_expect_geq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt[i], 200),
			      1, "worker %d did not deregister %s", i, rt[i]);

	/* A new supervisor on the same state_dir. */
	cr_assert_eq(dp_start(&D), 0);
	wait_ready(1, 3);
	int n_online = -1;
	cr_assert(online_rows_beating(NULL, 3 * HB_MS, &n_online), "an online row is not heartbeated");
	cr_expect_eq(n_online, 3, "%d rows online, want exactly the 3 configured", n_online);
	for (int i = 1; i <= 3; i++) {
		cr_expect(dp_runtime_is(&FP, rt[i], "online"), "%s not online", rt[i]);
		cr_expect_eq(dp_count_online(&FP, WS[i]), 1);
	}
}

/* The same, restarted at once (a supervisor, or an operator, restarting it
 * right away) while the old workers' final DEREGs are still on their way
 * (a slow server: the emulator holds them 1.5 s). Those DEREGs name the
 * same ids the new workers get back from their REG (the server upserts),
 * so if they land after it they take the new workers' rows offline until
 * the next heartbeat: "never loses one that is online" demands that the new
 * supervisor's workers do not register before the old workers are gone. */
Test(supervisor, sigkill_supervisor_immediate_restart_old_workers_dereg_does_not_hit_new_rows)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	/* A long heartbeat: a row taken offline stays offline long enough to
	 * be seen. */
	struct dp_config c = { .workspaces = dfx_ws_list(1, 3), .heartbeat_interval = "5s" };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t old[4];
	char rt[4][DP_ID_LEN + 1];
	for (int i = 1; i <= 3; i++) {
		old[i] = dp_worker_pid(&D, WS[i]);
		dfx_runtime_of(i, rt[i]);
	}
	cr_assert_eq(fp_fault(&FP, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\","
				   "\"delay_ms\":1500,\"count\":3}"), 200);
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_eq(dp_signal(&D, SIGKILL), 0);
	cr_assert(dp_wait_exit(&D, 2000));
	cr_assert_eq(dp_start(&D), 0);

	/* The new workers registered... */
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[1], 200) >= 1 &&
			  dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[2], 200) >= 1 &&
			  dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[3], 200) >= 1,
			  READY_MS), "the new supervisor's workers did not register");
	cr_assert(DP_WAIT(dp_count_online(&FP, NULL) == 3, 5000));
	/* ...and from then on their rows stay online (the old DEREGs are due
	 * within 1.5 s; the next heartbeat only after 5 s). */
	int64_t t0 = dp_now_ms();
	int worst = 3;
	int64_t lost_at = -1;
	while (dp_now_ms() < t0 + 3000) {
		int n = dp_count_online(&FP, NULL);
		if (n < worst) {
			worst = n;
			lost_at = dp_now_ms() - t0;
		}
		dp_sleep_ms(50);
	}
	for (int i = 1; i <= 3; i++)
		cr_expect(!dp_pid_alive(old[i]), "old worker %d still alive", i);
	cr_expect_eq(worst, 3,
		     "only %d of 3 new rows online %lld ms after the new workers registered: the old "
		     "workers' DEREG landed after the new REG", worst, (long long)lost_at);
	cr_expect(DP_WAIT(dp_count_online(&FP, NULL) == 3, 8000), "the rows did not come back");
}

Test(supervisor, host_crash_ledger_leftovers_deregistered_on_next_start)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	char rt[4][DP_ID_LEN + 1];
	for (int i = 1; i <= 3; i++)
		dfx_runtime_of(i, rt[i]);
	cr_assert(DP_WAIT(dp_ledger_ids(&D, WS[3], NULL, 0) == 1, 3000),
		  "workspace 3's runtime is not in the ledger");
	long seq0 = dp_journal_last_seq(&FP);

	dp_kill_all(&D); /* supervisor and workers at once */
	dp_sleep_ms(700);
	cr_assert_eq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", NULL, 0), 0,
		     "somebody deregistered after kill -9 of everything");
	cr_assert_eq(dp_count_online(&FP, NULL), 3, "rows should stay online: nobody deregistered");

	/* Next start: workspace 3 is no longer listed. */
	char *list12 = dfx_ws_list(1, 2);
	c.workspaces = list12;
	cr_assert_eq(dp_write_config(&D, &c), 0);
	long seq1 = dp_journal_last_seq(&FP);
	cr_assert_eq(dp_start(&D), 0);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt[3], "offline"), 5000),
		  "the removed workspace's leftover %s is still online", rt[3]);
	cr_expect_geq(dp_journal_match(&FP, seq1, "POST", "/api/daemon/deregister", rt[3], 200), 1);
	wait_ready(1, 2);
	cr_assert(DP_WAIT(dp_ledger_ids(&D, WS[3], NULL, 0) < 0, 3000),
		  "workspace 3 is still in the ledger after its cleanup");
	int n_online = -1;
	cr_assert(online_rows_beating(NULL, 3 * HB_MS, &n_online), "an online row is not heartbeated");
	cr_expect_eq(n_online, 2);
	cr_expect(dp_runtime_is(&FP, rt[1], "online"));
	cr_expect(dp_runtime_is(&FP, rt[2], "online"));
	cr_expect(dp_runtime_is(&FP, rt[3], "offline"));
	cr_expect_eq(dp_worker_pid(&D, WS[3]), 0, "a worker serves the unlisted workspace");
	cr_expect_eq(dp_journal_match(&FP, seq1, "POST", "/api/daemon/register", WS[3], 0), 0);
}

/* ---- reload ---- */

static void snapshot_pids(int first, int last, pid_t *pid)
{
	for (int i = first; i <= last; i++) {
		pid[i] = dp_worker_pid(&D, WS[i]);
		cr_assert_neq(pid[i], 0);
	}
}

static void expect_same_pids(int first, int last, const pid_t *pid, int except)
{
	for (int i = first; i <= last; i++)
		if (i != except)
			cr_expect_eq(dp_worker_pid(&D, WS[i]), pid[i], "worker %d was restarted", i);
}

Test(supervisor, hup_adding_a_workspace_starts_only_its_worker)
{
	dfx_start_plane(4, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3), *list4 = dfx_ws_list(1, 4);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t pid[5];
	snapshot_pids(1, 3, pid);
	c.workspaces = list4;
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(dfx_ws_ready(4, 1), 8000), "the added workspace did not come up");
	dp_sleep_ms(HB_MS);
	expect_same_pids(1, 3, pid, 0);
	cr_expect(dp_log_has(&D, "configuration reloaded", NULL, NULL, NULL));
	cr_expect_eq(dp_count_online(&FP, NULL), 4);
}

Test(supervisor, hup_removing_a_workspace_takes_its_rows_offline_and_stops_its_worker)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3), *list12 = dfx_ws_list(1, 2);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t pid[4];
	snapshot_pids(1, 3, pid);
	char rt3[DP_ID_LEN + 1];
	dfx_runtime_of(3, rt3);
	long seq0 = dp_journal_last_seq(&FP);
	c.workspaces = list12;
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt3, "offline"), 5000), "%s still online", rt3);
	cr_assert(DP_WAIT(!dp_pid_alive(pid[3]) && dp_worker_pid(&D, WS[3]) == 0, 5000),
		  "the removed workspace's worker is still running");
	cr_expect_geq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt3, 200), 1);
	dp_sleep_ms(2 * HB_MS);
	cr_expect(dp_runtime_is(&FP, rt3, "offline"), "the removed workspace came back online");
	cr_expect_eq(dp_worker_pid(&D, WS[3]), 0);
	expect_same_pids(1, 2, pid, 0);
	cr_expect_eq(dp_count_online(&FP, NULL), 2);
}

Test(supervisor, hup_changing_a_workspace_restarts_only_its_worker)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t pid[4];
	snapshot_pids(1, 3, pid);
	char tail[256];
	snprintf(tail, sizeof tail,
		 "\n[workspace %s]\nprofile_command.a1111111-1111-4111-8111-111111111111 = /bin/true\n",
		 WS[2]);
	c.tail = tail;
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(dp_worker_pid(&D, WS[2]) != 0 && dp_worker_pid(&D, WS[2]) != pid[2], 8000),
		  "the changed workspace's worker was not restarted");
	pid_t p2 = dp_worker_pid(&D, WS[2]);
	cr_assert(DP_WAIT(dfx_ws_ready(2, 1), 8000));
	dp_sleep_ms(2 * HB_MS);
	expect_same_pids(1, 3, pid, 2);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "the changed worker restarted more than once");
	cr_expect_eq(dp_count_online(&FP, NULL), 3);
}

Test(supervisor, hup_burst_of_50_same_config_restarts_nothing)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t pid[4];
	snapshot_pids(1, 3, pid);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(dp_signal(&D, SIGHUP), 0);
	cr_assert(DP_WAIT(dp_log_has(&D, "configuration reloaded", NULL, NULL, NULL), 5000),
		  "no reload happened");
	dp_sleep_ms(4 * HB_MS);
	cr_assert(dp_alive(&D), "the supervisor died in a HUP burst (status 0x%x)", D.status);
	expect_same_pids(1, 3, pid, 0);
	int reloads = dp_log_count(&D, "configuration reloaded", NULL, NULL, NULL);
	cr_log_info("50 HUPs -> %d reloads", reloads);
	cr_expect_leq(reloads, 50);
	int n_online = -1;
	cr_expect(online_rows_beating(NULL, 3 * HB_MS, &n_online));
	cr_expect_eq(n_online, 3);
}

Test(supervisor, hup_with_broken_file_keeps_old_config_and_names_file_line_key)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3), *list12 = dfx_ws_list(1, 2);
	struct dp_config c = { .workspaces = list };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t pid[4];
	snapshot_pids(1, 3, pid);

	/* The broken file also drops workspace 3: nothing of it may apply. */
	c.workspaces = list12;
	c.daemon_extra = "bogus_key = 1\n";
	char *text = dp_config_text(&D, &c);
	cr_assert_not_null(text);
	int line = 1;
	for (const char *p = text; p < strstr(text, "bogus_key"); p++)
		line += *p == '\n';
	int rc = dp_write_config_text(&D, text);
	free(text);
	cr_assert_eq(rc, 0);
	cr_assert_eq(dp_signal(&D, SIGHUP), 0);
	cr_assert(DP_WAIT(dp_log_has(&D, "reload rejected", NULL, NULL, NULL), 5000),
		  "the broken reload was not reported");
	char where[400];
	snprintf(where, sizeof where, "%s:%d:", D.conf_path, line);
	cr_expect(dp_log_has(&D, "reload rejected", where, "bogus_key", NULL),
		  "the log does not name file:line (%s) and the key", where);
	dp_sleep_ms(3 * HB_MS);
	cr_assert(dp_alive(&D));
	expect_same_pids(1, 3, pid, 0);
	cr_expect_eq(dp_count_online(&FP, NULL), 3, "the old configuration is not in force");
	cr_expect_eq(dp_log_count(&D, "configuration reloaded", NULL, NULL, NULL), 0);
}

/* ---- shutdown ---- */

/* Under ASan every worker runs a LeakSanitizer check as it exits (a second
 * or more of CPU each, 50 at once on 2 cores), so the workers' exits, not
 * the supervisor, set the pace there: that build gets extra slack. */
#ifdef MC_SANITIZE
#define EXIT_SLACK_MS 10000
#else
#define EXIT_SLACK_MS 0
#endif

Test(supervisor, sigterm_with_50_workers_everything_offline_exit_0_in_time)
{
	dfx_start_plane(50, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 50);
	struct dp_config c = { .workspaces = list, .stop_timeout = "3s",
			       .heartbeat_interval = "1s" };
	dfx_start_daemon(&c, NULL);
	cr_assert(DP_WAIT((dp_count_online(&FP, NULL) == 50 &&
			   dp_count_children_titled(&D, "multicad: worker ") == 50) || !dp_alive(&D),
			  40000) && dp_alive(&D),
		  "50 workspaces did not come up: %d online, %zu workers",
		  dp_count_online(&FP, NULL), dp_count_children_titled(&D, "multicad: worker "));
	int64_t t0 = dp_now_ms();
	cr_assert_eq(dp_signal(&D, SIGTERM), 0);
	bool exited = dp_wait_exit(&D, 3000 + 2000 + EXIT_SLACK_MS);
	int64_t took = dp_now_ms() - t0;
	cr_assert(exited, "the supervisor did not exit within stop_timeout + 2 s (+%d ms slack)",
		  EXIT_SLACK_MS);
	cr_log_info("SIGTERM with 50 workers: exit after %lld ms", (long long)took);
	cr_expect(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 0,
		  "exit status 0x%x, want a clean exit 0", D.status);
	cr_expect_eq(dp_count_online(&FP, NULL), 0, "rows left online after the shutdown");
	cr_expect_eq(dp_group_pids(&D, NULL, 0), 0, "processes outlived the supervisor");
}

Test(supervisor, sigterm_with_a_hung_worker_kills_it_at_stop_timeout_and_deregisters_it)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	/* A long liveness timeout: the hung worker is still "running" when the
	 * shutdown starts. */
	struct dp_config c = { .workspaces = dfx_ws_list(1, 3), .stop_timeout = "2s",
			       .worker_liveness_timeout = "30s" };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 3);
	pid_t p2 = dp_worker_pid(&D, WS[2]);
	char rt2[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt2);
	cr_assert(DP_WAIT(dp_ledger_ids(&D, WS[2], NULL, 0) == 1, 3000));
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_eq(kill(p2, SIGSTOP), 0);
	dp_sleep_ms(100);

	int64_t t0 = dp_now_ms();
	cr_assert_eq(dp_signal(&D, SIGTERM), 0);
	bool exited = dp_wait_exit(&D, 2000 + 2000);
	int64_t took = dp_now_ms() - t0;
	cr_assert(exited, "the supervisor did not exit within stop_timeout + 2 s");
	cr_log_info("SIGTERM with a hung worker: exit after %lld ms", (long long)took);
	cr_expect_geq(took, 1500, "exited after %lld ms: did it wait for the hung worker?",
		      (long long)took);
	cr_expect(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 0, "exit status 0x%x", D.status);
	cr_expect(dp_runtime_is(&FP, rt2, "offline"), "the hung worker's runtime is still online");
	cr_expect_geq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 200), 1);
	cr_expect_eq(dp_count_online(&FP, NULL), 0);
	cr_expect_eq(dp_group_pids(&D, NULL, 0), 0, "processes outlived the supervisor");
	cr_expect(dp_log_has(&D, "did not stop in time", WS[2], NULL, NULL));
	cr_expect_lt(dp_ledger_ids(&D, WS[2], NULL, 0), 0, "the ledger still holds its ids");
}

/* ---- crash loops leak nothing ---- */

static bool quiet(pid_t bystander)
{
	/* Two workers, the fork server, the link and the agent-api process. */
	return dp_children(&D, NULL, 0) == 5 && dp_worker_pid(&D, WS[1]) != 0 &&
	       dp_worker_pid(&D, WS[2]) == bystander && dp_count_zombies(&D) == 0;
}

Test(supervisor, crash_respawn_200_cycles_fds_children_stable_no_zombies)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 2);
	/* Five quick crashes park the workspace (failed), whose retry then
	 * doubles per life up to 16 x restart_backoff_max: the shortest
	 * backoff (10 ms) keeps 200 cycles well within the suite's timeout. */
	struct dp_config c = { .workspaces = list, .restart_backoff_min = "10ms",
			       .restart_backoff_max = "10ms" };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 2);
	pid_t bystander = dp_worker_pid(&D, WS[2]);
	cr_assert(DP_WAIT(quiet(bystander), 5000));
	/* Steady: the same count on three looks in a row. */
	int fd0 = -1;
	cr_assert(DP_WAIT(({
		int a = dp_fd_count(D.pid);
		dp_sleep_ms(100);
		int b = dp_fd_count(D.pid);
		dp_sleep_ms(100);
		fd0 = dp_fd_count(D.pid);
		a == b && b == fd0 && fd0 > 0 && quiet(bystander);
	}), 5000), "the supervisor's fd count does not settle");
	FDS_BEFORE = dp_fd_list(D.pid);
	size_t kids0 = dp_children(&D, NULL, 0);

	int64_t t0 = dp_now_ms();
	for (int i = 0; i < 200; i++) {
		pid_t p = 0;
		cr_assert(DP_WAIT((p = dp_worker_pid(&D, WS[1])) != 0, 8000),
			  "cycle %d: no worker for workspace 1", i);
		kill(p, SIGKILL);
		cr_assert(DP_WAIT(dp_worker_pid(&D, WS[1]) != 0 && dp_worker_pid(&D, WS[1]) != p, 8000),
			  "cycle %d: workspace 1 was not respawned", i);
	}
	cr_log_info("200 crash/respawn cycles in %lld ms", (long long)(dp_now_ms() - t0));

	cr_assert(DP_WAIT(quiet(bystander), 10000),
		  "not quiet after the cycles: %zu children, %zu zombies", dp_children(&D, NULL, 0),
		  dp_count_zombies(&D));
	if (!DP_WAIT(dp_fd_count(D.pid) == fd0, 5000)) {
		FDS_AFTER = dp_fd_list(D.pid);
		cr_expect_fail("supervisor fds: %d before, %d after\nbefore: %s\nafter:  %s", fd0,
			       dp_fd_count(D.pid), FDS_BEFORE ? FDS_BEFORE : "?",
			       FDS_AFTER ? FDS_AFTER : "?");
	}
	cr_expect_eq(dp_children(&D, NULL, 0), kids0);
	cr_expect_eq(dp_count_zombies(&D), 0);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), bystander, "the bystander was restarted");
	cr_expect_geq(dp_log_count(&D, "worker exited", WS[1], NULL, NULL), 200);
	cr_expect(DP_WAIT(dfx_ws_ready(1, 1), 10000), "workspace 1 did not settle online");
	cr_expect(dp_alive(&D));
}

/* ---- a dead worker's requests still in flight ---- */

#define HB_SLOW "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/heartbeat\"," \
		"\"delay_ms\":450,\"count\":-1}"

/* What the journal says about id's DEREGs and beats after after_seq. */
struct late_view {
	long first_dereg;        /* seq of the first DEREG of id, -1: none */
	long last_beat;          /* seq of the last heartbeat of id, -1: none */
	long dereg_after_beat;   /* seq of a DEREG of id after last_beat, -1: none */
};

static struct late_view late_view(long after_seq, const char *id)
{
	struct late_view v = { -1, -1, -1 };
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	for (size_t i = 0; i < j.n; i++) {
		const struct dp_req *q = &j.v[i];
		if (q->seq <= after_seq || strstr(q->body, id) == NULL)
			continue;
		if (strcmp(q->path, "/api/daemon/heartbeat") == 0) {
			v.last_beat = q->seq;
			v.dereg_after_beat = -1;
		} else if (strcmp(q->path, "/api/daemon/deregister") == 0) {
			if (v.first_dereg < 0)
				v.first_dereg = q->seq;
			if (v.last_beat >= 0 && v.dereg_after_beat < 0)
				v.dereg_after_beat = q->seq;
		}
	}
	dp_journal_free(&j);
	return v;
}

/* The wall time of the last heartbeat of id answered after after_seq (0:
 * none), and its seq. */
static int64_t last_beat_at(long after_seq, const char *id, long *seq)
{
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	int64_t t = 0;
	for (size_t i = 0; i < j.n; i++)
		if (j.v[i].seq > after_seq && strcmp(j.v[i].path, "/api/daemon/heartbeat") == 0 &&
		    strstr(j.v[i].body, id) != NULL) {
			t = j.v[i].time_ms;
			*seq = j.v[i].seq;
		}
	dp_journal_free(&j);
	return t;
}

/* Heartbeats take 450 ms at the server. The worker is killed mid-beat and
 * its workspace removed: the cleanup DEREG lands first, the beat after it
 * brings the row back online. A second DEREG, http_timeout after the
 * death, takes it down for good. */
Test(supervisor, killed_mid_beat_then_removed_late_beat_is_followed_by_a_confirming_dereg)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2) }; /* http_timeout 2s */
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 2);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	char rt2[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt2);
	long seq_f = dp_journal_last_seq(&FP);
	int64_t fault_wall = dp_wall_ms();
	cr_assert_eq(fp_fault(&FP, HB_SLOW), 200);

	/* A slowed beat lands at T (sent after the fault: T >= fault + 450);
	 * the next leaves about T + 50 and lands about T + 500: kill at T + 200. */
	long seen = seq_f;
	int64_t kill_at = 0, until = dp_now_ms() + 10000;
	while (kill_at == 0 && dp_now_ms() < until) {
		long s = seen;
		int64_t t = last_beat_at(seen, rt2, &s);
		if (s > seen) {
			seen = s;
			if (t >= fault_wall + 450 && t + 200 - dp_wall_ms() >= 40)
				kill_at = t + 200;
		}
		dp_sleep_ms(10);
	}
	cr_assert_gt(kill_at, 0, "no slowed heartbeat of %s to time the kill by", rt2);
	dp_sleep_ms((long)(kill_at - dp_wall_ms()));
	long seq_k = dp_journal_last_seq(&FP);
	cr_assert_eq(kill(p2, SIGKILL), 0);
	c.workspaces = dfx_ws_list(1, 1);
	cr_assert_eq(dp_reload(&D, &c), 0);

	struct late_view v;
	cr_assert(DP_WAIT((v = late_view(seq_k, rt2)).first_dereg >= 0 && v.last_beat >= 0, 5000),
		  "no DEREG (%ld) or no late beat (%ld) of %s", v.first_dereg, v.last_beat, rt2);
	cr_assert_gt(v.last_beat, v.first_dereg,
		     "the kill did not catch a beat in flight (DEREG seq %ld, last beat %ld)",
		     v.first_dereg, v.last_beat);
	bool confirmed = DP_WAIT((v = late_view(seq_k, rt2)).dereg_after_beat >= 0 &&
				 dp_runtime_is(&FP, rt2, "offline"), 8000);
	cr_assert(confirmed, "the row the late beat (seq %ld) brought back is not deregistered "
		  "again (%s)", v.last_beat, dp_runtime_is(&FP, rt2, "online") ? "online" : "offline");
	dp_sleep_ms(2000);
	cr_expect(dp_runtime_is(&FP, rt2, "offline"), "%s came back online", rt2);
	cr_expect(DP_WAIT(dp_ledger_ids(&D, WS[2], NULL, 0) < 0, 3000), "the ledger file stays");
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1, "the other worker was touched");
	cr_expect_eq(dp_count_online(&FP, NULL), 1);
}

/* ---- shutdown with a straggler that does not go away ---- */

#define DEREG_HANG "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
		   "\"delay_ms\":20000,\"count\":-1}"

/* Reaps the ptrace-seized p as its tracer, which hands its exit to its
 * parent; kills it first if it still runs after 3 s or sits in a stop. */
static void release_tracee(pid_t p)
{
	int64_t until = dp_now_ms() + 3000;
	for (;;) {
		int st = 0;
		pid_t r = waitpid(p, &st, __WALL | WNOHANG);
		if (r < 0 || (r == p && (WIFEXITED(st) || WIFSIGNALED(st))))
			return;
		if (r == p || dp_now_ms() >= until) {
			kill(p, SIGKILL);
			until = dp_now_ms() + 3000;
		}
		dp_sleep_ms(10);
	}
}

/* At stop_timeout a worker whose cleanup DEREG hangs at the server is
 * given up (the final DEREG covers it) and freed while its helper still
 * runs; a straggler that is not gone after SIGKILL (uninterruptible sleep
 * in real life; here a zombie only its tracer, the test, can see) holds
 * the shutdown. The helper's exit must not reach the freed worker (ASan
 * would report a use after free). */
Test(supervisor, shutdown_helper_outliving_its_freed_worker_while_a_straggler_lingers)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2), .stop_timeout = "1s",
			       .http_timeout = "2s" };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 2);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	cr_assert_eq(fp_fault(&FP, DEREG_HANG), 200);
	if (ptrace(PTRACE_SEIZE, p2, NULL, NULL) < 0)
		cr_skip_test("cannot ptrace the worker: %s", strerror(errno));
	cr_assert_eq(kill(p1, SIGKILL), 0);
	bool helper = DP_WAIT(dp_count_children_titled(&D, "multicad: cleanup") >= 1, 3000);
	/* Stop: worker 2's own DEREG hangs, so it is killed at stop_timeout;
	 * worker 1's helper times out about 1 s later. */
	int rc = helper ? dp_signal(&D, SIGTERM) : -1;
	bool helper_done = rc == 0 &&
			   DP_WAIT(dp_count_children_titled(&D, "multicad: cleanup") == 0, 6000);
	dp_sleep_ms(300);
	release_tracee(p2);
	cr_assert(helper, "no cleanup helper for the dead worker");
	cr_assert(helper_done, "the hanging cleanup helper did not end");
	cr_assert(dp_wait_exit(&D, 8000), "the supervisor did not exit");
	cr_expect(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 0, "exit status 0x%x", D.status);
	cr_expect(!dp_log_has(&D, "AddressSanitizer", NULL, NULL, NULL), "ASan report in the log");
	cr_expect_eq(dp_group_pids(&D, NULL, 0), 0, "processes outlived the supervisor");
	cr_expect_eq(dp_ledger_ids(&D, WS[1], NULL, 0), 1, "the ledger lost workspace 1's ids");
}

/* ---- leftovers of a previous run whose DEREG fails ---- */

#define DEREG_503_X4 "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
		     "\"status\":503,\"count\":4}"

/* A killed supervisor left workspace 2's ids; the next run no longer
 * serves it, and its first DEREGs fail: the orphan cleanup is retried with
 * backoff (no reload or membership answer needed) until it goes through. */
Test(supervisor, orphan_leftovers_whose_dereg_fails_are_retried_until_offline)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2) };
	dfx_start_daemon(&c, NULL);
	wait_ready(1, 2);
	char rt2[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt2);
	cr_assert(DP_WAIT(dp_ledger_ids(&D, WS[2], NULL, 0) == 1, 3000));
	dp_kill_all(&D);
	cr_assert(dp_runtime_is(&FP, rt2, "online"));

	cr_assert_eq(fp_fault(&FP, DEREG_503_X4), 200);
	long seq0 = dp_journal_last_seq(&FP);
	c.workspaces = dfx_ws_list(1, 1);
	cr_assert_eq(dp_write_config(&D, &c), 0);
	cr_assert_eq(dp_start(&D), 0);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 503) >= 1,
			  5000), "the leftover's first DEREG did not fail");
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt2, "offline"), 15000),
		  "the leftover %s stays online after its DEREG failed", rt2);
	cr_expect_geq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 200), 1);
	cr_expect(DP_WAIT(dp_ledger_ids(&D, WS[2], NULL, 0) < 0, 3000), "the ledger file stays");
	wait_ready(1, 1);
	dp_sleep_ms(2 * HB_MS);
	cr_expect(dp_runtime_is(&FP, rt2, "offline"));
	cr_expect_eq(dp_count_online(&FP, NULL), 1);
}
