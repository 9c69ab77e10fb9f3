/* The supervisor under injected faults: the whole daemon (build's
 * multicad, configured with -DMC_TEST_HOOKS=ON so that a
 * `[workspace <uuid>] test_fault = ...` line takes effect) against
 * multica-fakeplane, whose admin API injects server faults.
 *
 * A worker dying between its REG response and its report (once, and in a
 * parked crash loop), workers that break the IPC protocol (garbage, an
 * oversized frame, silence, floods of valid frames), a server that fails
 * or refuses (403) the dead worker's cleanup, and a workspace the token
 * may not use (exit 78, parked in config-error: retried slowly, at once on
 * a reload or a token file change). See test_supervisor.c for the
 * fixture's conventions. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#define HB_MS 500
#define READY_MS 15000

#define PROF1 "a1111111-1111-4111-8111-111111111111"
#define DEREG_503 "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
		  "\"status\":503,\"count\":-1}"

TestSuite(supervisor_faults, .timeout = 90, .fini = dfx_fini);

/* test_fault lines take effect only in -DMC_TEST_HOOKS=ON builds. */
#ifdef MC_TEST_HOOKS
#define NEED_HOOKS() ((void)0)
#else
#define NEED_HOOKS() cr_skip_test("needs a build configured with -DMC_TEST_HOOKS=ON")
#endif

/* ---- a worker dies between the REG response and its report ---- */

/* Same sets of ids (order aside). */
static bool same_set(char (*a)[DP_ID_LEN + 1], int na, const struct dp_rt *b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++) {
		bool found = false;
		for (int k = 0; k < nb && !found; k++)
			found = strcmp(a[i], b[k].id) == 0;
		if (!found)
			return false;
	}
	return true;
}

Test(supervisor_faults, exit_after_register_then_reload_without_fault_leaves_nothing_unowned)
{
	NEED_HOOKS();
	char profiles[512];
	snprintf(profiles, sizeof profiles,
		 "[{\"id\":\"" PROF1 "\",\"workspace_id\":\"%s\",\"display_name\":\"Team\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"my-claude\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true}]",
		 "5e000000-0000-4000-8000-000000000001");
	dfx_start_plane(2, NULL, profiles, NULL);
	char *list = dfx_ws_list(1, 2);
	char tail[256];
	snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = exit_after_register\n", WS[1]);
	struct dp_config c = { .workspaces = list, .tail = tail, .restart_backoff_min = "300ms" };
	const char *clis[] = { "claude", "my-claude", NULL };
	dfx_start_daemon(&c, clis);

	/* The first life registers (rows online at the server) and dies
	 * before it reports: the ledger never hears of those ids. */
	cr_assert(DP_WAIT(dp_log_has(&D, "worker exited", WS[1], "exited with status 99", NULL),
			  READY_MS), "the faulty worker did not die after its REG");
	cr_assert_geq(dp_journal_match(&FP, 0, "POST", "/api/daemon/register", WS[1], 200), 1);
	dfx_wait_ws_ready(2, 1, READY_MS);
	pid_t p2 = dp_worker_pid(&D, WS[2]);

	/* Reload without the fault. */
	c.tail = NULL;
	long seq_h = dp_journal_last_seq(&FP);
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq_h, "POST", "/api/daemon/register", WS[1], 200) >= 1
			  && dp_ledger_ids(&D, WS[1], NULL, 0) == 2 && dfx_ws_ready(1, 2), READY_MS),
		  "workspace 1 did not converge after the reload (ledger %d ids, %d online)",
		  dp_ledger_ids(&D, WS[1], NULL, 0), dp_count_online(&FP, WS[1]));

	/* Converged: what is online is exactly what a worker holds, and all
	 * of it is heartbeated. */
	dp_sleep_ms(3 * HB_MS);
	struct dp_rt before[16], after[16];
	int nb = dp_runtimes(&FP, WS[1], true, before, 16);
	dp_sleep_ms(3 * HB_MS);
	int na = dp_runtimes(&FP, WS[1], true, after, 16);
	char ledger[16][DP_ID_LEN + 1];
	int nl = dp_ledger_ids(&D, WS[1], ledger, 16);
	cr_expect_eq(na, 2, "%d online rows for workspace 1, want the built-in and the profile", na);
	cr_expect(same_set(ledger, nl, after, na),
		  "online rows of workspace 1 differ from what its worker reported (%d vs %d)", na, nl);
	for (int i = 0; i < na; i++)
		for (int k = 0; k < nb; k++)
			if (strcmp(after[i].id, before[k].id) == 0)
				cr_expect_gt(after[i].last_seen_ms, before[k].last_seen_ms,
					     "online row %s is not heartbeated", after[i].id);
	cr_expect_eq(dp_runtimes(&FP, WS[1], false, NULL, 0), 2, "extra rows were created");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "the other worker was touched");
}

/* ---- workers that break the protocol ---- */

static void ipc_fault(const char *fault, const char *reason)
{
	NEED_HOOKS();
	dfx_start_plane(3, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 3);
	char tail[256];
	snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = %s\n", WS[2], fault);
	struct dp_config c = { .workspaces = list, .tail = tail };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(3, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p3 = dp_worker_pid(&D, WS[3]);
	char rt1[DP_ID_LEN + 1], rt3[DP_ID_LEN + 1], rt2[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt1);
	dfx_runtime_of(3, rt3);
	int64_t t0_wall = dp_wall_ms();

	cr_assert(DP_WAIT(dp_log_has(&D, "killing worker", WS[2], reason, NULL), 8000),
		  "the supervisor did not kill the %s worker (reason \"%s\")", fault, reason);
	cr_assert(DP_WAIT(dp_runtime_id(&FP, WS[2], "claude", NULL, rt2), 5000),
		  "the faulty worker never registered");
	/* Its rows go offline: one DEREG of its ids (before the respawn
	 * registers them again; the fault repeats in every life). */
	cr_assert(DP_WAIT(dp_journal_match(&FP, 0, "POST", "/api/daemon/deregister", rt2, 200) >= 1,
			  8000), "no DEREG of the killed worker's runtime %s", rt2);
	cr_expect(dp_log_has(&D, "worker exited", WS[2], "signal 9", NULL));

	dp_sleep_ms(3 * HB_MS);
	int64_t end_wall = dp_wall_ms();
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1, "worker 1 was touched");
	cr_expect_eq(dp_worker_pid(&D, WS[3]), p3, "worker 3 was touched");
	cr_expect(dp_runtime_is(&FP, rt1, "online"));
	cr_expect(dp_runtime_is(&FP, rt3, "online"));
	cr_expect_eq(dp_log_count(&D, "killing worker", WS[1], NULL, NULL), 0);
	cr_expect_eq(dp_log_count(&D, "killing worker", WS[3], NULL, NULL), 0);
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	int beats1, beats3;
	int64_t gap1 = dp_j_heartbeat_gap(&j, rt1, t0_wall, end_wall, &beats1);
	int64_t gap3 = dp_j_heartbeat_gap(&j, rt3, t0_wall, end_wall, &beats3);
	int other_dereg = dp_j_count(&j, 0, "POST", "/api/daemon/deregister", rt1, 0) +
			  dp_j_count(&j, 0, "POST", "/api/daemon/deregister", rt3, 0);
	dp_journal_free(&j);
	cr_expect_leq(gap1, 3 * HB_MS, "worker 1's heartbeats paused %lld ms", (long long)gap1);
	cr_expect_leq(gap3, 3 * HB_MS, "worker 3's heartbeats paused %lld ms", (long long)gap3);
	cr_expect_eq(other_dereg, 0, "a healthy worker's runtime was deregistered");
}

Test(supervisor_faults, worker_sending_garbage_is_killed_alone_and_cleaned_up)
{
	ipc_fault("ipc_garbage", "malformed frame from worker");
}

Test(supervisor_faults, worker_sending_oversized_frame_is_killed_alone_and_cleaned_up)
{
	ipc_fault("ipc_oversize", "oversized frame from worker");
}

Test(supervisor_faults, silent_worker_is_killed_alone_at_liveness_deadline_and_cleaned_up)
{
	ipc_fault("ipc_silent", "missed its liveness deadline");
}

/* ---- the server fails the cleanup ---- */

Test(supervisor_faults, cleanup_retried_while_server_down_respawn_waits_then_converges)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	char *list = dfx_ws_list(1, 2);
	struct dp_config c = { .workspaces = list, .restart_backoff_min = "100ms",
			       .restart_backoff_max = "400ms" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	char rt1[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt1);

	cr_assert_eq(fp_fault(&FP, DEREG_503), 200);
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_eq(kill(p1, SIGKILL), 0);

	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt1, 503) >= 3,
			  8000), "the failed cleanup was not retried (%d attempts)",
		  dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt1, 0));
	int n1 = dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt1, 0);
	cr_expect_eq(dp_worker_pid(&D, WS[1]), 0, "a worker was respawned before its cleanup");
	dp_sleep_ms(1500);
	int n2 = dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt1, 0);
	cr_expect_gt(n2, n1, "the cleanup stopped retrying (%d then %d attempts)", n1, n2);
	cr_expect_eq(dp_worker_pid(&D, WS[1]), 0, "a worker was respawned before its cleanup");
	cr_expect_eq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[1], 0), 0,
		     "workspace 1 registered while its cleanup was pending");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "the other worker was touched");
	cr_log_info("%d cleanup attempts while the server failed them", n2);

	long seq1 = dp_journal_last_seq(&FP);
	cr_assert_eq(dfx_admin("DELETE", "/_admin/faults", NULL), 200);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq1, "POST", "/api/daemon/deregister", rt1, 200) >= 1,
			  5000), "the cleanup did not succeed once the server was back");
	cr_assert(DP_WAIT(dp_worker_pid(&D, WS[1]) != 0 && dp_worker_pid(&D, WS[1]) != p1, 8000),
		  "workspace 1 was not respawned after its cleanup");
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt1, "online"), 8000), "%s not online again", rt1);

	/* Order: the successful DEREG, then the new worker's REG. */
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	long dereg_ok = 0, first_reg = 0;
	for (size_t i = 0; i < j.n; i++) {
		const struct dp_req *q = &j.v[i];
		if (q->seq <= seq0)
			continue;
		if (!dereg_ok && strcmp(q->path, "/api/daemon/deregister") == 0 && q->status == 200 &&
		    strstr(q->body, rt1) != NULL)
			dereg_ok = q->seq;
		if (!first_reg && strcmp(q->path, "/api/daemon/register") == 0 &&
		    strstr(q->body, WS[1]) != NULL)
			first_reg = q->seq;
	}
	dp_journal_free(&j);
	cr_expect(dereg_ok > 0 && first_reg > dereg_ok,
		  "REG (seq %ld) before the cleanup finished (seq %ld)", first_reg, dereg_ok);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "the other worker was touched");
	int n_online = dp_count_online(&FP, NULL);
	cr_expect_eq(n_online, 2);
}

Test(supervisor_faults, hup_removing_workspace_while_server_refuses_dereg_converges_later)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 3), .restart_backoff_min = "100ms",
			       .restart_backoff_max = "400ms" };
	dfx_start_daemon(&c, NULL);
	for (int i = 1; i <= 3; i++)
		dfx_wait_ws_ready(i, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	pid_t p3 = dp_worker_pid(&D, WS[3]);
	char rt3[DP_ID_LEN + 1];
	dfx_runtime_of(3, rt3);
	cr_assert_eq(fp_fault(&FP, DEREG_503), 200);
	long seq0 = dp_journal_last_seq(&FP);

	c.workspaces = dfx_ws_list(1, 2);
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(!dp_pid_alive(p3), 8000), "the removed workspace's worker did not stop");
	/* Its rows could not go offline: the ledger must still hold them, and
	 * the supervisor keeps trying. */
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt3, 503) >= 3,
			  8000), "the refused DEREG of the removed workspace is not retried");
	cr_expect(dp_runtime_is(&FP, rt3, "online"));
	cr_expect_eq(dp_ledger_ids(&D, WS[3], NULL, 0), 1,
		     "the ledger forgot ids that are still online at the server");
	cr_expect_eq(dp_worker_pid(&D, WS[3]), 0);

	long seq1 = dp_journal_last_seq(&FP);
	cr_assert_eq(dfx_admin("DELETE", "/_admin/faults", NULL), 200);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt3, "offline"), 8000),
		  "the removed workspace's runtime %s stays online after the server came back", rt3);
	cr_expect_geq(dp_journal_match(&FP, seq1, "POST", "/api/daemon/deregister", rt3, 200), 1);
	cr_expect(DP_WAIT(dp_ledger_ids(&D, WS[3], NULL, 0) < 0, 3000));
	dp_sleep_ms(2 * HB_MS);
	cr_expect(dp_runtime_is(&FP, rt3, "offline"));
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2);
	cr_expect_eq(dp_count_online(&FP, NULL), 2);
}

Test(supervisor_faults, sigterm_while_server_refuses_dereg_bounded_ledger_kept_next_start_cleans)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2), .stop_timeout = "2s" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	char rt1[DP_ID_LEN + 1], rt2[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt1);
	dfx_runtime_of(2, rt2);
	cr_assert_eq(fp_fault(&FP, DEREG_503), 200);

	int64_t t0 = dp_now_ms();
	cr_assert_eq(dp_signal(&D, SIGTERM), 0);
	bool exited = dp_wait_exit(&D, 2000 + 2000);
	int64_t took = dp_now_ms() - t0;
	cr_assert(exited, "the supervisor did not exit within stop_timeout + 2 s with the server down");
	cr_log_info("SIGTERM with the server refusing DEREG: exit after %lld ms", (long long)took);
	cr_expect(WIFEXITED(D.status), "status 0x%x", D.status);
	cr_expect_eq(dp_group_pids(&D, NULL, 0), 0, "processes outlived the supervisor");
	cr_expect_eq(dp_ledger_ids(&D, WS[1], NULL, 0), 1, "the ledger lost workspace 1's ids");
	cr_expect_eq(dp_ledger_ids(&D, WS[2], NULL, 0), 1, "the ledger lost workspace 2's ids");
	cr_expect(dp_runtime_is(&FP, rt1, "online"));

	/* The server is back; the next start no longer serves workspace 2. */
	cr_assert_eq(dfx_admin("DELETE", "/_admin/faults", NULL), 200);
	c.workspaces = dfx_ws_list(1, 1);
	cr_assert_eq(dp_write_config(&D, &c), 0);
	cr_assert_eq(dp_start(&D), 0);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt2, "offline"), 8000),
		  "workspace 2's leftover %s stays online", rt2);
	dfx_wait_ws_ready(1, 1, READY_MS);
	cr_expect(DP_WAIT(dp_ledger_ids(&D, WS[2], NULL, 0) < 0, 3000));
	dp_sleep_ms(2 * HB_MS);
	cr_expect(dp_runtime_is(&FP, rt1, "online"));
	cr_expect(dp_runtime_is(&FP, rt2, "offline"));
	cr_expect_eq(dp_count_online(&FP, NULL), 1);
}

#define DEREG_SLOW_ONCE "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
			"\"delay_ms\":3000,\"count\":1}"

/* The seq of the first (or last) request after after_seq matching method,
 * path prefix and body_has; -1 when there is none. */
static long find_seq(bool last, long after_seq, const char *method, const char *path,
		     const char *body_has)
{
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	long seq = -1;
	for (size_t i = 0; i < j.n && (last || seq < 0); i++)
		if (j.v[i].seq > after_seq && strcmp(j.v[i].method, method) == 0 &&
		    strncmp(j.v[i].path, path, strlen(path)) == 0 &&
		    strstr(j.v[i].body, body_has) != NULL)
			seq = j.v[i].seq;
	dp_journal_free(&j);
	return seq;
}

/* A previous run left workspace 2's ids in the ledger; this run does not
 * serve it, so an orphan cleanup deregisters them, slowly. A reload that
 * adds workspace 2 back must wait for that DEREG: landing after the new
 * worker's REG, it would take the same (upserted) row offline. */
Test(supervisor_faults, workspace_readded_during_orphan_cleanup_registers_after_its_dereg)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(2, 2), .stop_timeout = "2s",
			       .http_timeout = "10s" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(2, 1, READY_MS);
	char rt2[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt2);
	cr_assert_eq(fp_fault(&FP, DEREG_503), 200);
	cr_assert_eq(dp_signal(&D, SIGTERM), 0);
	cr_assert(dp_wait_exit(&D, 6000), "the supervisor did not exit");
	cr_assert_eq(dp_ledger_ids(&D, WS[2], NULL, 0), 1, "no leftover for the next run");

	cr_assert_eq(dfx_admin("DELETE", "/_admin/faults", NULL), 200);
	cr_assert_eq(fp_fault(&FP, DEREG_SLOW_ONCE), 200);
	long seq0 = dp_journal_last_seq(&FP);
	c.workspaces = dfx_ws_list(1, 1);
	cr_assert_eq(dp_write_config(&D, &c), 0);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, READY_MS);
	cr_assert(DP_WAIT(dp_count_children_titled(&D, "multicad: cleanup") >= 1, 3000),
		  "no orphan cleanup for workspace 2");
	cr_assert(dp_runtime_is(&FP, rt2, "online"), "the slow DEREG landed before the reload");

	c.workspaces = dfx_ws_list(1, 2);
	cr_assert_eq(dp_reload(&D, &c), 0);
	dfx_wait_ws_ready(2, 1, READY_MS);
	char again[DP_ID_LEN + 1];
	dfx_runtime_of(2, again);
	cr_assert_str_eq(again, rt2, "the server upserts: the same row comes back");
	/* Every cleanup is over: no DEREG of rt2 is still on its way. */
	cr_assert(DP_WAIT(dp_count_children_titled(&D, "multicad: cleanup") == 0, 8000),
		  "the orphan cleanup never finished");
	long reg = find_seq(false, seq0, "POST", "/api/daemon/register", WS[2]);
	long dereg = find_seq(true, seq0, "POST", "/api/daemon/deregister", rt2);
	cr_assert_geq(reg, 0, "no REG of workspace 2");
	cr_assert_geq(dereg, 0, "no DEREG of the leftover");
	cr_expect_lt(dereg, reg, "the leftover's DEREG landed after the new worker's REG");
	cr_expect_eq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 0), 1,
		     "the leftover was deregistered twice");
	dp_sleep_ms(2 * HB_MS);
	cr_expect(dp_runtime_is(&FP, rt2, "online"));
	cr_expect_eq(dp_count_online(&FP, NULL), 2);
}

#define DEREG_HANG "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
		   "\"delay_ms\":20000,\"count\":-1}"

/* The supervisor never waits on the network: a cleanup hanging on the
 * server delays neither reaping, nor a reload, nor the shutdown. */
Test(supervisor_faults, hanging_server_delays_neither_reload_nor_shutdown)
{
	dfx_start_plane(3, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2), .stop_timeout = "2s",
			       .http_timeout = "10s" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	cr_assert_eq(fp_fault(&FP, DEREG_HANG), 200);
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_eq(kill(p1, SIGKILL), 0);
	/* The cleanup helper is now stuck in its DEREG. */
	cr_assert(DP_WAIT(dp_count_children_titled(&D, "multicad: cleanup") >= 1, 3000),
		  "no cleanup helper for the dead worker");

	c.workspaces = dfx_ws_list(1, 3);
	int64_t t0 = dp_now_ms();
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(dp_worker_pid(&D, WS[3]) != 0, 3000),
		  "the reload waited for the hanging cleanup");
	cr_log_info("reload applied %lld ms after HUP", (long long)(dp_now_ms() - t0));
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2);
	cr_expect_eq(dp_worker_pid(&D, WS[1]), 0, "respawned before the cleanup finished");
	cr_expect_eq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[1], 0), 0);

	/* Shutdown: workers' DEREGs hang too. Bounded: stop_timeout, then the
	 * final DEREG's own short bound. */
	t0 = dp_now_ms();
	cr_assert_eq(dp_signal(&D, SIGTERM), 0);
	bool exited = dp_wait_exit(&D, 2000 + 3000);
	int64_t took = dp_now_ms() - t0;
	cr_assert(exited, "the shutdown hung with the server hanging");
	cr_log_info("SIGTERM with a hanging server: exit after %lld ms", (long long)took);
	cr_expect(WIFEXITED(D.status), "status 0x%x", D.status);
	cr_expect_eq(dp_group_pids(&D, NULL, 0), 0, "processes outlived the supervisor");
	cr_expect_eq(dp_ledger_ids(&D, WS[1], NULL, 0), 1, "the ledger lost workspace 1's ids");
}

/* ---- exit 78 ---- */

#define WS_FOREIGN "5e000000-0000-4000-8000-000000000009"

/* Waits for the foreign workspace's worker to give up; false (with the
 * reason in the log) when it died some other way first. */
static bool foreign_exits_78(void)
{
	int64_t until = dp_now_ms() + 20000;
	while (dp_now_ms() < until) {
		if (dp_log_has(&D, "worker exited", WS_FOREIGN, "exited with status 78", NULL))
			return true;
		if (dp_log_has(&D, "worker exited", WS_FOREIGN, "killed by signal", NULL))
			return false;
		dp_sleep_ms(50);
	}
	return false;
}

static void exit_78(const char *liveness)
{
	/* Workspace 9 exists, but the token's user is no member: REG answers
	 * 404 "workspace not found"; the worker gives up with 78. */
	dfx_start_plane(1, "{\"id\":\"" WS_FOREIGN "\",\"name\":\"foreign\",\"members\":[\"u2\"]}",
			NULL, NULL);
	char list[128];
	snprintf(list, sizeof list, "%s %s", WS[1], WS_FOREIGN);
	struct dp_config c = { .workspaces = list, .profile_sync_interval = "300ms",
			       .worker_liveness_timeout = liveness };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]);

	cr_assert(foreign_exits_78(),
		  "the worker of the foreign workspace did not exit with 78 (FATAL reported: %s; "
		  "killed for liveness: %d times)",
		  dp_log_has(&D, "worker reports a configuration error", WS_FOREIGN, NULL, NULL)
			  ? "yes" : "no",
		  dp_log_count(&D, "killing worker", WS_FOREIGN, "missed its liveness deadline", NULL));
	cr_assert(DP_WAIT(dp_worker_pid(&D, WS_FOREIGN) == 0, 2000));
	cr_assert(DP_WAIT(dp_log_has(&D, WS_FOREIGN, "worker has a configuration error", NULL, NULL),
			  2000), "the supervisor did not park the workspace");
	int started = dp_log_count(&D, "worker started", WS_FOREIGN, NULL, NULL);
	long seq0 = dp_journal_last_seq(&FP);

	/* Parked: nothing restarts it for a while (its slow retry is about
	 * 5 x restart_backoff_max = 10 s away). */
	int64_t until = dp_now_ms() + 3000;
	while (dp_now_ms() < until) {
		cr_assert_eq(dp_worker_pid(&D, WS_FOREIGN), 0, "the exit-78 worker was restarted");
		dp_sleep_ms(100);
	}
	cr_expect_eq(dp_log_count(&D, "worker started", WS_FOREIGN, NULL, NULL), started);
	cr_expect_eq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS_FOREIGN, 0), 0);
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1);

	/* A reload starts it again. */
	cr_assert_eq(dp_signal(&D, SIGHUP), 0);
	cr_assert(DP_WAIT(dp_log_count(&D, "worker started", WS_FOREIGN, NULL, NULL) > started, 5000),
		  "the exit-78 worker was not started again by the reload");
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS_FOREIGN, 0)
			  >= 1, 5000), "the restarted worker did not try to register");
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1, "the healthy worker was restarted by the reload");
	cr_expect_eq(dp_count_online(&FP, WS_FOREIGN), 0);
	cr_expect_eq(dp_count_online(&FP, WS[1]), 1);
}

/* A liveness timeout long enough for the worker to wind down after FATAL. */
Test(supervisor_faults, exit_78_workspace_not_restarted_until_hup)
{
	exit_78("8s");
}

/* With the suite's usual 1 s liveness timeout: the give-up must not be
 * mistaken for a hang (killed, counted as a crash, restarted for ever). */
Test(supervisor_faults, exit_78_not_lost_to_liveness_kill_with_short_timeout)
{
	exit_78("1s");
}

/* ---- a crash loop that never reports ---- */

/* Every life registers and dies before its REPORT: the supervisor never
 * hears of the ids, so only the server's stale sweep takes them offline.
 * Once parked, each failed life must wait longer than the last, or every
 * respawn's REG keeps the rows fresh for ever. The emulator's stale
 * threshold (3 s) has the production ratio to restart_backoff_max (1 s
 * here; 150 s against 60 s there). */
Test(supervisor_faults, parked_crash_loop_backs_off_further_so_unreported_rows_go_stale)
{
	NEED_HOOKS();
	static const char *const args[] = { "--stale-after", "3s", "--sweep-interval", "500ms",
					    NULL };
	dfx_start_plane(1, NULL, NULL, args);
	char tail[256];
	snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = exit_after_register\n", WS[1]);
	struct dp_config c = { .workspaces = WS[1], .tail = tail, .restart_backoff_max = "1s" };
	dfx_start_daemon(&c, NULL);
	cr_assert(DP_WAIT(dp_log_has(&D, "crash-looping", WS[1], NULL, NULL), 20000),
		  "the crash loop was not parked");
	long seq0 = dp_journal_last_seq(&FP);
	int samples = 0, offline = 0;
	int64_t until = dp_now_ms() + 24000;
	while (dp_now_ms() < until) {
		int n = dp_count_online(&FP, WS[1]);
		cr_assert_geq(n, 0, "cannot read the emulator's state");
		samples++;
		offline += n == 0;
		dp_sleep_ms(250);
	}
	int regs = dp_journal_match(&FP, seq0, "POST", "/api/daemon/register", WS[1], 0);
	cr_log_info("parked crash loop: offline in %d of %d samples, %d REGs in 24 s", offline,
		    samples, regs);
	cr_expect_gt(offline, samples / 10,
		     "rows online in %d of %d samples over 24 s of a parked crash loop (%d REGs)",
		     samples - offline, samples, regs);
	/* Parked lives wait about 1, 2, 4, 8, 16 s: 4 or 5 REGs in 24 s (a
	 * flat 1 s gives about 20). */
	cr_expect_leq(regs, 7, "%d REGs in 24 s of a parked crash loop", regs);
	cr_expect_geq(regs, 2, "the parked workspace stopped retrying (%d REGs in 24 s)", regs);
}

/* ---- a token the server rejects for a while ---- */

#define ALL_403 "{\"path_prefix\":\"/api/daemon/\",\"status\":403,\"count\":-1}"
#define DEREG_403_X3 "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\"," \
		     "\"status\":403,\"count\":3}"

static bool exited_78(const char *ws)
{
	return dp_log_has(&D, "worker exited", ws, "exited with status 78", NULL);
}

/* A 403 streak parks the workspace in config-error. Its cleanup DEREG is
 * refused too and must be retried (the ledger keeping the ids); once the
 * server accepts the token again the rows go offline and the workspace is
 * retried by itself, slowly, without a reload. */
Test(supervisor_faults, config_error_from_sustained_403_cleans_up_and_recovers_by_itself)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = WS[1] }; /* restart_backoff_max 2s: retry ~10 s */
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	cr_assert_eq(fp_fault(&FP, ALL_403), 200);
	cr_assert(DP_WAIT(exited_78(WS[1]), 30000), "the worker did not give up on the refused token");
	int64_t t_exit = dp_now_ms();
	int n0 = dp_journal_match(&FP, 0, "POST", "/api/daemon/deregister", rt, 403);
	cr_assert(DP_WAIT(dp_journal_match(&FP, 0, "POST", "/api/daemon/deregister", rt, 403) >= n0 + 2,
			  8000), "the refused cleanup DEREG is not retried (%d refused, %d at the exit)",
		  dp_journal_match(&FP, 0, "POST", "/api/daemon/deregister", rt, 403), n0);
	cr_expect(dp_runtime_is(&FP, rt, "online"));
	cr_expect_eq(dp_ledger_ids(&D, WS[1], NULL, 0), 1, "the ledger forgot ids still online");
	cr_expect_eq(dp_worker_pid(&D, WS[1]), 0, "respawned before its cleanup");

	long seq1 = dp_journal_last_seq(&FP);
	cr_assert_eq(dfx_admin("DELETE", "/_admin/faults", NULL), 200);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt, "offline"), 6000),
		  "the cleanup did not take %s offline once the server accepted the token", rt);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq1, "POST", "/api/daemon/register", WS[1], 200) >= 1,
			  25000), "the config-error workspace was not retried once the server was healthy");
	int64_t took = dp_now_ms() - t_exit;
	cr_log_info("config-error workspace retried %lld ms after its exit", (long long)took);
	cr_expect_geq(took, 4000, "retried after %lld ms: not slowly", (long long)took);
	dfx_wait_ws_ready(1, 1, READY_MS);
	long dereg = find_seq(false, seq1, "POST", "/api/daemon/deregister", rt);
	long reg = find_seq(false, seq1, "POST", "/api/daemon/register", WS[1]);
	cr_expect(dereg >= 0 && dereg < reg, "REG (seq %ld) before the cleanup DEREG (seq %ld)", reg,
		  dereg);
}

/* The server revokes the token: the workspace parks in config-error. A
 * token file the supervisor may not use changes nothing (logged once); a
 * good new one restarts the workspace at once, its leftovers deregistered
 * first with the new token. */
Test(supervisor_faults, config_error_restarted_at_once_when_the_token_file_changes)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	/* restart_backoff_max 10s: the slow retry (about 50 s) is out of the way. */
	struct dp_config c = { .workspaces = WS[1], .restart_backoff_max = "10s" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	cr_assert_eq(dfx_admin("DELETE", "/_admin/tokens/" DP_TOKEN, NULL), 200);
	cr_assert(DP_WAIT(exited_78(WS[1]), 30000), "the worker did not give up on the revoked token");
	cr_assert(DP_WAIT(dp_worker_pid(&D, WS[1]) == 0, 3000));
	int started = dp_log_count(&D, "worker started", WS[1], NULL, NULL);

	cr_assert_eq(dp_write_token(&D, "mul_rotated_token", 0644), 0);
	cr_assert(DP_WAIT(dp_log_has(&D, "token file", "keeping the current token", NULL, NULL), 6000),
		  "a token file readable by others was not reported");
	dp_sleep_ms(3000);
	cr_expect_eq(dp_log_count(&D, "token file", "keeping the current token", NULL, NULL), 1,
		     "the unusable token file was not logged exactly once");
	cr_expect_eq(dp_log_count(&D, "worker started", WS[1], NULL, NULL), started,
		     "an unusable token file restarted the workspace");

	cr_assert_eq(dfx_admin("POST", "/_admin/tokens",
			   "{\"token\":\"mul_rotated_token\",\"user\":\"" DP_USER "\"}"), 200);
	long seq1 = dp_journal_last_seq(&FP);
	int64_t t0 = dp_now_ms();
	cr_assert_eq(dp_write_token(&D, "mul_rotated_token", 0600), 0);
	cr_assert(DP_WAIT(dp_log_count(&D, "worker started", WS[1], NULL, NULL) > started, 5000),
		  "the config-error workspace was not restarted when the token file changed");
	cr_log_info("restarted %lld ms after the token file changed", (long long)(dp_now_ms() - t0));
	dfx_wait_ws_ready(1, 1, READY_MS);
	long dereg = find_seq(false, seq1, "POST", "/api/daemon/deregister", rt);
	long reg = find_seq(false, seq1, "POST", "/api/daemon/register", WS[1]);
	cr_expect_geq(dereg, 0, "the leftover %s was not deregistered with the new token", rt);
	cr_expect(reg > dereg, "REG (seq %ld) before the leftover's DEREG (seq %ld)", reg, dereg);
	cr_expect_geq(dp_journal_match(&FP, seq1, "POST", "/api/daemon/register", WS[1], 200), 1);
}

/* A 403 on the cleanup DEREG of a killed, then removed, workspace is
 * retried (with backoff) until it goes through: the rows end offline. */
Test(supervisor_faults, cleanup_dereg_refused_403_is_retried_until_rows_offline)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2) };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	char rt2[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt2);
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_eq(fp_fault(&FP, DEREG_403_X3), 200);
	cr_assert_eq(kill(p2, SIGKILL), 0);
	c.workspaces = dfx_ws_list(1, 1);
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 403) >= 1,
			  5000), "no refused DEREG of the dead worker's runtime");
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt2, "offline"), 10000),
		  "%s stays online after its DEREG was refused %d times", rt2,
		  dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 403));
	cr_expect_geq(dp_journal_match(&FP, seq0, "POST", "/api/daemon/deregister", rt2, 200), 1);
	cr_expect(DP_WAIT(dp_ledger_ids(&D, WS[2], NULL, 0) < 0, 6000), "the ledger file stays");
	dp_sleep_ms(2 * HB_MS);
	cr_expect(dp_runtime_is(&FP, rt2, "offline"));
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1, "the other worker was touched");
	cr_expect_eq(dp_count_online(&FP, NULL), 1);
}

/* ---- workers that flood valid frames ---- */

/* The flooder is killed with its reason; while it keeps coming back (and
 * flooding) for 10 s, the healthy worker keeps its pid and the control
 * socket answers at once. */
static void flood_fault(const char *fault, const char *reason)
{
	NEED_HOOKS();
	dfx_start_plane(2, NULL, NULL, NULL);
	char tail[256];
	snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = %s\n", WS[2], fault);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2), .tail = tail };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]);
	char rt1[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt1);
	cr_assert(DP_WAIT(dp_log_has(&D, "killing worker", WS[2], reason, NULL), 8000),
		  "the %s worker was not killed (reason \"%s\")", fault, reason);

	int64_t worst = 0, until = dp_now_ms() + 10000;
	int failed = 0, polls = 0;
	bool status_says = false;
	while (dp_now_ms() < until) {
		char *out = NULL;
		int64_t t = dp_now_ms();
		int rc = dp_control(&D, "{\"cmd\":\"status\"}", &out, 3000);
		int64_t took = dp_now_ms() - t;
		failed += rc < 0;
		status_says = status_says || (rc == 0 && strstr(out, reason) != NULL);
		free(out);
		worst = took > worst ? took : worst;
		polls++;
		cr_assert_eq(dp_worker_pid(&D, WS[1]), p1, "the healthy worker was replaced");
		dp_sleep_ms(100);
	}
	cr_log_info("%s: %d status requests, slowest %lld ms, flooder killed %d times", fault, polls,
		    (long long)worst, dp_log_count(&D, "killing worker", WS[2], reason, NULL));
	cr_expect_eq(failed, 0, "%d of %d status requests got no answer within 3 s", failed, polls);
	cr_expect_lt(worst, 750, "a status request took %lld ms", (long long)worst);
	cr_expect(status_says, "the status never showed why the flooder was killed");
	cr_expect_eq(dp_log_count(&D, "killing worker", WS[1], NULL, NULL), 0);
	cr_expect(dp_runtime_is(&FP, rt1, "online"));
}

Test(supervisor_faults, worker_flooding_pongs_is_killed_alone_control_stays_responsive)
{
	flood_fault("ipc_pong_flood", "unsolicited PONG");
}

Test(supervisor_faults, worker_flooding_reports_is_killed_alone_control_stays_responsive)
{
	flood_fault("ipc_report_flood", "REPORT flood");
}
