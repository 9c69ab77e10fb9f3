/* The worker's half of the push channel against multica-fakeplane: the
 * test plays the supervisor and sends what it routes from the link
 * (SYNC_NOW, PUSH_STATE; ipc/ws_msgs.h). Every case counts the requests
 * the emulator journaled after a point: what the server would see. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "ipc/ws_msgs.h"
#include "tests/support/worker_fixture.h"
#include "worker/worker.h"

TestSuite(worker_push, .timeout = 60);

#ifdef MC_SANITIZE
#define SLOW 3 /* a sanitizer build on a loaded host: the latency bounds stretch */
#else
#define SLOW 1
#endif

#define HOUR_MS (3600L * 1000)

/* P1 on the server, the claude built-in, both registered and reported, the
 * poll at profile_sync_ms. */
static void start(struct fixture *fx, long profile_sync_ms)
{
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(fx, profiles);
	struct wh_opts o = { .builtins = &FX_CLAUDE, .n_builtins = 1,
			     .profile_sync_ms = profile_sync_ms };
	fx_start_worker_opts(fx, o);
	cr_assert(wh_wait_report_n(&fx->h, 2, 5000), "the worker did not report its 2 runtimes");
	/* The first registration's recover-orphans out of the way. */
	cr_assert(fx_wait_count(fx, "POST", RO_PREFIX, 2, 3000));
}

static void sync_now(struct fixture *fx, const char *reason)
{
	cr_assert_eq(mc_ipc_send_sync_now(&fx->h.wr, reason), 0);
	wh_pump(&fx->h, 0); /* flushes */
}

static void push_state(struct fixture *fx, bool up)
{
	cr_assert_eq(mc_ipc_send_push_state(&fx->h.wr, up), 0);
	wh_pump(&fx->h, 0);
}

static int gets_after(struct fixture *fx, double seq)
{
	return fx_jcount(fx, "GET", PROF_PATH, FX_ANY_STATUS, seq, NULL);
}

static int regs_after(struct fixture *fx, double seq)
{
	return fx_jcount(fx, "POST", REG_PATH, FX_ANY_STATUS, seq, NULL);
}

Test(worker_push, sync_now_without_drift_fetches_once_and_registers_nothing)
{
	struct fixture fx;
	start(&fx, HOUR_MS);
	double seq = fx_last_seq(&fx);
	sync_now(&fx, "push");
	cr_assert(fx_wait_jcount(&fx, "GET", PROF_PATH, FX_ANY_STATUS, seq, NULL, 1, 2000 * SLOW),
		  "SYNC_NOW fetched no profiles");
	wh_pump(&fx.h, 400);
	cr_assert_eq(gets_after(&fx, seq), 1, "exactly one fetch");
	cr_assert_eq(regs_after(&fx, seq), 0, "no drift: no REG");
	cr_assert_eq(fx_jcount(&fx, "POST", DEREG_PATH, FX_ANY_STATUS, seq, NULL), 0);
	cr_assert_not(fx.h.violation);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker_push, sync_now_after_a_profile_change_registers_at_once)
{
	struct fixture fx;
	start(&fx, HOUR_MS); /* the poll would not come for an hour */
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"display_name\":\"Renamed\"}"),
		     200);
	double seq = fx_last_seq(&fx);
	mc_ms_t t0 = mc_now_ms();
	sync_now(&fx, "push");
	cr_assert(fx_wait_jcount(&fx, "POST", REG_PATH, FX_ANY_STATUS, seq, NULL, 1, 2000 * SLOW),
		  "the drift was not registered");
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert_leq(took, 200 * SLOW, "REG %lld ms after the SYNC_NOW", (long long)took);
	cr_assert_eq(gets_after(&fx, seq), 1, "one fetch: the list that showed the drift");
	cr_assert(fx_wait_jcount(&fx, "POST", REG_PATH, FX_ANY_STATUS, seq, "Renamed (testhost)",
				 1, 1000));
	cr_assert_eq(fx_jcount(&fx, "POST", RO_PREFIX, FX_ANY_STATUS, seq, NULL), 0,
		     "drift never recovers orphans");
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker_push, a_burst_of_sync_nows_coalesces)
{
	struct fixture fx;
	start(&fx, HOUR_MS);
	double seq = fx_last_seq(&fx);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(mc_ipc_send_sync_now(&fx.h.wr, i % 2 ? "push" : "reconnect"), 0);
	wh_pump(&fx.h, 0);
	cr_assert(fx_wait_jcount(&fx, "GET", PROF_PATH, FX_ANY_STATUS, seq, NULL, 1, 2000 * SLOW));
	wh_pump(&fx.h, 600);
	int gets = gets_after(&fx, seq);
	cr_assert(gets >= 1 && gets <= 2, "20 SYNC_NOWs cost %d fetches (want 1-2)", gets);
	cr_assert_eq(regs_after(&fx, seq), 0);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker_push, sync_nows_during_a_registration_are_one_more_check_after_it)
{
	struct fixture fx;
	start(&fx, HOUR_MS);
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"display_name\":\"Slow\"}"),
		     200);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" REG_PATH
				       "\",\"delay_ms\":600,\"count\":1}"), 200);
	double seq = fx_last_seq(&fx);
	sync_now(&fx, "push");
	/* The drift's REG is held at the server: these come while it is out. */
	wh_pump(&fx.h, 200);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(mc_ipc_send_sync_now(&fx.h.wr, "push"), 0);
	wh_pump(&fx.h, 0);
	cr_assert(fx_wait_jcount(&fx, "POST", REG_PATH, FX_ANY_STATUS, seq, NULL, 1, 3000 * SLOW));
	cr_assert(fx_wait_jcount(&fx, "GET", PROF_PATH, FX_ANY_STATUS, seq, NULL, 2, 2000 * SLOW),
		  "no check after the registration that was in flight");
	wh_pump(&fx.h, 500);
	cr_assert_eq(gets_after(&fx, seq), 2, "5 SYNC_NOWs during the REG: one check after it");
	cr_assert_eq(regs_after(&fx, seq), 1, "the second check found no drift");
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker_push, sync_now_before_the_first_registration_is_ignored)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&fx, profiles);
	/* The first fetch is held: the SYNC_NOW lands before the first REG. */
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"GET\",\"path_prefix\":\"" PROF_PATH
				       "\",\"delay_ms\":500,\"count\":1}"), 200);
	struct wh_opts o = { .builtins = &FX_CLAUDE, .n_builtins = 1, .profile_sync_ms = HOUR_MS };
	fx_start_worker_opts(&fx, o);
	sync_now(&fx, "reconnect");
	cr_assert(wh_wait_report_n(&fx.h, 2, 5000 * SLOW));
	wh_pump(&fx.h, 500);
	cr_assert_eq(fx_count(&fx, "GET", PROF_PATH), 1, "the first registration's fetch only");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_not(fx.h.violation);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker_push, socket_up_stretches_the_poll_and_down_restores_it)
{
	struct fixture fx;
	start(&fx, 1000);
	push_state(&fx, true);
	double seq = fx_last_seq(&fx);
	wh_pump(&fx.h, 3000);
	int gets = gets_after(&fx, seq);
	cr_assert_leq(gets, 1, "socket up: %d polls in 3 s at a 1 s interval", gets);
	/* Down: the last check is more than an interval ago, so one comes
	 * within the next second, and then one per interval again. */
	push_state(&fx, false);
	seq = fx_last_seq(&fx);
	mc_ms_t t0 = mc_now_ms();
	cr_assert(fx_wait_jcount(&fx, "GET", PROF_PATH, FX_ANY_STATUS, seq, NULL, 1, 1500 * SLOW),
		  "socket down: no poll within a second");
	cr_assert(fx_wait_jcount(&fx, "GET", PROF_PATH, FX_ANY_STATUS, seq, NULL, 3,
				 2000 + 1500 * SLOW), "socket down: the poll is not back at 1 s");
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert_geq(took, 1500, "3 polls in %lld ms: faster than the interval", (long long)took);
	cr_assert_eq(regs_after(&fx, seq), 0);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker_push, a_malformed_push_frame_is_a_protocol_violation)
{
	struct fixture fx;
	start(&fx, HOUR_MS);
	cr_assert_eq(mc_ipc_writer_queue(&fx.h.wr, MC_IPC_PUSH_STATE, "{\"up\":1}", 8), 0);
	wh_pump(&fx.h, 0);
	cr_assert_eq(wh_wait_exit(&fx.h, 5000 * SLOW), MC_WORKER_EXIT_FAILURE);
	/* It still took its runtimes offline on the way out. */
	cr_assert_geq(fx_count(&fx, "POST", DEREG_PATH), 1);
	fx_stop(&fx);
}
