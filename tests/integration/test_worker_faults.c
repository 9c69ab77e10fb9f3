/* The worker against multica-fakeplane with faults injected on the paths
 * test_worker.c leaves alone: heartbeats that fail, time out or answer
 * garbage, a deregister that fails at stop, recover-orphans failing, a
 * plain 404 that is not "runtime not found", register answers of the wrong
 * shape, two distinct deletions of the same runtime, 401/403 answers (the
 * token is judged over time), a DEREG of dropped ids that fails, and a
 * worker dying right after its REG answer. Each test runs its
 * own emulator and asserts what the server saw (journal and /_admin/state).
 * Waits are on conditions with generous timeouts (a loaded 2-CPU machine);
 * fixed pumps are used only where a test must let time pass to show that
 * something does NOT happen. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "tests/support/fakeplane_proc.h"
#include "tests/support/worker_harness.h"
#include "tests/support/worker_fixture.h"
#include "worker/worker.h"

TestSuite(worker_faults, .timeout = 60);

#define ANY_STATUS FX_ANY_STATUS

/* A short stale threshold so that rows whose heartbeats fail go offline on
 * the server, and only the worker's resumed heartbeats bring them back. */
static const char *const FAST_SWEEP[] = { "--sweep-interval", "100ms", "--stale-after", "1s",
					  NULL };

/* ---- helpers (journal and status helpers: tests/support/worker_fixture.h) ---- */

/* The tracked set as reported, copied (the harness's report changes). */
struct idset {
	size_t n;
	char *ids[8];
};

static void idset_take(struct idset *s, const struct wh *h)
{
	memset(s, 0, sizeof *s);
	cr_assert_leq(h->report.n, 8);
	for (size_t i = 0; i < h->report.n; i++) {
		s->ids[i] = strdup(h->report.ids[i]);
		cr_assert_not_null(s->ids[i]);
	}
	s->n = h->report.n;
}

static void idset_free(struct idset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->ids[i]);
	s->n = 0;
}

/* The last report holds exactly the ids of s. */
static void assert_report_is(const struct wh *h, const struct idset *s)
{
	cr_assert_eq(h->report.n, s->n, "report holds %zu ids, want %zu", h->report.n, s->n);
	for (size_t i = 0; i < s->n; i++)
		cr_assert(wh_report_has(h, s->ids[i]), "report lost %s", s->ids[i]);
}

/* Plane with PROF1 (my-claude on PATH) + the claude built-in: two runtimes,
 * first registration complete (REG answered, both recover-orphans sent). */
static void fx_two_runtimes(struct fixture *fx, const char *const *plane_args,
			    struct wh_opts o, struct idset *ids)
{
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane_args(fx, profiles, plane_args);
	o.builtins = &FX_CLAUDE;
	o.n_builtins = 1;
	fx_start_worker_opts(fx, o);
	cr_assert(wh_wait_report_n(&fx->h, 2, 8000), "no report of 2 runtimes");
	cr_assert(fx_wait_count(fx, "POST", RO_PREFIX, 2, 5000), "first registration incomplete");
	idset_take(ids, &fx->h);
}

/* Every id of s gets at least k heartbeats answered 200 after seq. */
static void assert_beats_resume(struct fixture *fx, const struct idset *s, double after_seq,
				int k)
{
	for (size_t i = 0; i < s->n; i++)
		cr_assert(fx_wait_jcount(fx, "POST", HB_PATH, 200, after_seq, s->ids[i], k, 8000),
			  "heartbeats of %s did not resume", s->ids[i]);
}

/* ---- heartbeat faults ---- */

/* Shared body of the heartbeat fault tests: the fault is on for long enough
 * that the fast sweep takes both rows offline on the server; the worker
 * keeps both runtimes (no report, REG or DEREG) and its resumed heartbeats
 * bring the rows back online once the fault is cleared. */
static void heartbeat_fault_keeps_runtimes(const char *fault_json, long http_timeout_ms,
					   bool check_ping)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { .http_timeout_ms = http_timeout_ms };
	fx_two_runtimes(&fx, FAST_SWEEP, o, &ids);
	unsigned reports = fx.h.n_reports;
	int regs = fx_count(&fx, "POST", REG_PATH);
	int ros = fx_count(&fx, "POST", RO_PREFIX);
	cr_assert_eq(regs, 1);

	double seq0 = fx_last_seq(&fx);
	cr_assert_eq(fp_fault(&fx.fp, fault_json), 200);
	/* The server sees failing beats for both runtimes... */
	for (size_t i = 0; i < ids.n; i++)
		cr_assert(fx_wait_jcount(&fx, "POST", HB_PATH, ANY_STATUS, seq0, ids.ids[i], 3, 10000),
			  "no faulted heartbeats for %s", ids.ids[i]);
	/* ...and, with nothing else keeping them alive, sweeps the rows. */
	for (size_t i = 0; i < ids.n; i++)
		cr_assert(fx_wait_status(&fx, ids.ids[i], "offline", 8000),
			  "row %s was never swept while the heartbeats failed", ids.ids[i]);
	if (check_ping) {
		/* Requests hang in the server meanwhile (up to http_timeout_ms):
		 * the loop must not. A loop blocked by them would be slow on
		 * every ping; one slow ping is the host's scheduler. */
		int slow = 0;
		for (uint64_t k = 1; k <= 5; k++) {
			long rtt = wh_ping(&fx.h, k, 1000);
			cr_assert_geq(rtt, 0, "ping %lu unanswered", (unsigned long)k);
			cr_assert_lt(rtt, http_timeout_ms, "ping %lu took %ld ms", (unsigned long)k, rtt);
			slow += rtt >= 100;
			wh_pump(&fx.h, 150);
		}
		cr_assert_leq(slow, 1, "%d of 5 pings took 100 ms or more", slow);
	}
	wh_pump(&fx.h, 300);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), regs, "no REG while heartbeats fail");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0, "no DEREG while heartbeats fail");
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), ros, "no recover-orphans while heartbeats fail");
	cr_assert_eq(fx.h.n_reports, reports, "the report changed while heartbeats failed");
	assert_report_is(&fx.h, &ids);

	double seq1 = fx_last_seq(&fx);
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	assert_beats_resume(&fx, &ids, seq1, 2);
	for (size_t i = 0; i < ids.n; i++)
		cr_assert(fx_wait_status(&fx, ids.ids[i], "online", 5000),
			  "row %s not back online", ids.ids[i]);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), regs, "heartbeats alone revive the rows");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(fx.h.n_reports, reports);
	assert_report_is(&fx.h, &ids);

	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped && fx.h.stopped_deregistered);
	idset_free(&ids);
	fx_stop(&fx);
}

Test(worker_faults, heartbeat_500_keeps_runtimes_and_resumes)
{
	heartbeat_fault_keeps_runtimes(
		"{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\",\"status\":500,"
		"\"body\":\"{\\\"error\\\":\\\"db down\\\"}\",\"count\":-1}", 0, false);
}

/* The server holds each heartbeat 2 s (then answers 500, so a late answer
 * cannot revive a row); the worker gives up after http_timeout_ms 400. */
Test(worker_faults, heartbeat_timeout_keeps_runtimes_and_ping_stays_fast)
{
	heartbeat_fault_keeps_runtimes(
		"{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\",\"delay_ms\":2000,"
		"\"status\":500,\"count\":-1}", 400, true);
}

/* Evidence that the worker really times out rather than waiting: with a 2 s
 * server delay and a 400 ms client timeout, each runtime's beats leave
 * about every 500 ms; a worker that waited would send one per 2 s. */
Test(worker_faults, heartbeat_timeout_is_enforced_by_the_worker)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { .http_timeout_ms = 400 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	double seq0 = fx_last_seq(&fx);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\","
			      "\"delay_ms\":2000,\"status\":500,\"count\":-1}"), 200);
	mc_ms_t t0 = mc_now_ms();
	wh_pump(&fx.h, 3000);
	mc_ms_t window = mc_now_ms() - t0;
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	/* The faulted beats are journaled when the server answers, 2 s late. */
	for (size_t i = 0; i < ids.n; i++) {
		cr_assert(fx_wait_jcount(&fx, "POST", HB_PATH, 500, seq0, ids.ids[i], 4, 8000),
			  "runtime %s: fewer than 4 beats left in %ld ms: the worker waited on "
			  "the hung server instead of timing out (%d seen)", ids.ids[i],
			  (long)window, fx_jcount(&fx, "POST", HB_PATH, 500, seq0, ids.ids[i]));
	}
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	assert_report_is(&fx.h, &ids);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	idset_free(&ids);
	fx_stop(&fx);
}

Test(worker_faults, heartbeat_malformed_json_keeps_runtime_no_recovery)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	unsigned reports = fx.h.n_reports;
	double seq0 = fx_last_seq(&fx);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\","
			      "\"status\":200,\"body\":\"not json\",\"count\":-1}"), 200);
	for (size_t i = 0; i < ids.n; i++)
		cr_assert(fx_wait_jcount(&fx, "POST", HB_PATH, 200, seq0, ids.ids[i], 6, 10000),
			  "no garbage-answered heartbeats for %s", ids.ids[i]);
	wh_pump(&fx.h, 300);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1, "a garbage heartbeat answer is no runtime-gone");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 2);
	cr_assert_eq(fx.h.n_reports, reports, "the report changed");
	assert_report_is(&fx.h, &ids);
	double seq1 = fx_last_seq(&fx);
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	assert_beats_resume(&fx, &ids, seq1, 2);
	for (size_t i = 0; i < ids.n; i++)
		fx_assert_status(&fx, ids.ids[i], "online");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	idset_free(&ids);
	fx_stop(&fx);
}

/* 404 alone is not "runtime gone": only a body saying "runtime not found"
 * is (common/api.h). A proxy's or router's plain 404 must not make the
 * worker drop and re-register its runtimes. */
Test(worker_faults, heartbeat_plain_404_is_not_runtime_gone)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	unsigned reports = fx.h.n_reports;
	double seq0 = fx_last_seq(&fx);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\","
			      "\"status\":404,\"body\":\"{\\\"error\\\":\\\"not found\\\"}\","
			      "\"count\":-1}"), 200);
	for (size_t i = 0; i < ids.n; i++)
		cr_assert(fx_wait_jcount(&fx, "POST", HB_PATH, 404, seq0, ids.ids[i], 5, 10000),
			  "no 404-answered heartbeats for %s", ids.ids[i]);
	wh_pump(&fx.h, 300);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1, "a plain 404 triggered a recovery REG");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(fx.h.n_reports, reports, "a plain 404 dropped a runtime from the report");
	assert_report_is(&fx.h, &ids);
	cr_assert_not(fx.h.fatal, "a plain 404 is not a configuration error");
	double seq1 = fx_last_seq(&fx);
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	assert_beats_resume(&fx, &ids, seq1, 2);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	idset_free(&ids);
	fx_stop(&fx);
}

/* ---- stop ---- */

Test(worker_faults, deregister_500_at_stop_exits_0_not_deregistered)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" DEREG_PATH "\","
			      "\"status\":500,\"body\":\"{\\\"error\\\":\\\"db down\\\"}\","
			      "\"count\":-1}"), 200);
	mc_ms_t t0 = mc_now_ms();
	int code = wh_stop(&fx.h, 8000);
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert_eq(code, MC_WORKER_EXIT_OK, "exit code %d", code);
	cr_assert_leq(took, 5000 + 1000, "stop took %ld ms (budget 5 s)", (long)took);
	cr_assert(fx.h.stopped, "no STOPPED");
	cr_assert_not(fx.h.stopped_deregistered, "STOPPED says deregistered after a 500");
	/* The last report keeps what is still online, so the supervisor's
	 * ledger still holds it for the cleanup. */
	cr_assert_eq(fx.h.report.n, ids.n, "the last report lists the ids still online");
	for (size_t i = 0; i < ids.n; i++)
		cr_assert(wh_report_has(&fx.h, ids.ids[i]));
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 1, "one DEREG at stop, not retried");
	/* The rows are still online on the server: the supervisor's ledger
	 * cleanup is what takes them offline now. */
	for (size_t i = 0; i < ids.n; i++)
		fx_assert_status(&fx, ids.ids[i], "online");
	idset_free(&ids);
	fx_stop(&fx);
}

/* A deregister that hangs: the stop is still bounded by the 5 s budget. */
Test(worker_faults, deregister_hanging_at_stop_is_bounded_by_the_budget)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" DEREG_PATH "\","
			      "\"delay_ms\":15000,\"count\":-1}"), 200);
	mc_ms_t t0 = mc_now_ms();
	int code = wh_stop(&fx.h, 10000);
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert_eq(code, MC_WORKER_EXIT_OK, "exit code %d", code);
	cr_assert_leq(took, 5000 + 1500, "stop took %ld ms (budget 5 s)", (long)took);
	cr_assert(fx.h.stopped, "no STOPPED");
	cr_assert_not(fx.h.stopped_deregistered);
	idset_free(&ids);
	fx_stop(&fx);
}

/* ---- recover-orphans ---- */

Test(worker_faults, recover_orphans_500_at_first_registration_registration_stands)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&fx, profiles);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" RO_PREFIX "\","
			      "\"status\":500,\"body\":\"{\\\"error\\\":\\\"db down\\\"}\","
			      "\"count\":-1}"), 200);
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 2, 8000), "no report of 2 runtimes");
	struct idset ids;
	idset_take(&ids, &fx.h);
	unsigned reports = fx.h.n_reports;
	cr_assert(fx_wait_jcount(&fx, "POST", RO_PREFIX, 500, -1, NULL, 2, 5000),
		  "recover-orphans not attempted");
	double seq0 = fx_last_seq(&fx);
	assert_beats_resume(&fx, &ids, seq0, 4);
	for (size_t i = 0; i < ids.n; i++)
		fx_assert_status(&fx, ids.ids[i], "online");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1, "the registration stands");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(fx.h.n_reports, reports);
	assert_report_is(&fx.h, &ids);
	/* Fire and forget today; a retry would be fine, a storm would not. */
	int ros = fx_count(&fx, "POST", RO_PREFIX);
	cr_assert_leq(ros, 4, "recover-orphans storm (%d)", ros);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped_deregistered);
	idset_free(&ids);
	fx_stop(&fx);
}

/* ---- register answers of the wrong shape ---- */

/* Worker with the claude built-in registered; then REG answers are replaced
 * by body_json (status 200) and a profile appears on the server. The drift
 * REG must count as failed: no report change, no DEREG, retried with
 * backoff; it succeeds once the fault is cleared. body_json may hold one
 * "@ID@", replaced by the built-in's runtime id. */
static void register_answer_is_failed(const char *body_json)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 8000));
	cr_assert(fx_wait_count(&fx, "POST", RO_PREFIX, 1, 5000));
	struct idset ids;
	idset_take(&ids, &fx.h);
	unsigned reports = fx.h.n_reports;

	char body[2048], fault[4096];
	const char *at = strstr(body_json, "@ID@");
	if (at != NULL)
		snprintf(body, sizeof body, "%.*s%s%s", (int)(at - body_json), body_json,
			 ids.ids[0], at + 4);
	else
		snprintf(body, sizeof body, "%s", body_json);
	cJSON *bs = cJSON_CreateString(body);
	char *quoted = cJSON_PrintUnformatted(bs);
	snprintf(fault, sizeof fault, "{\"method\":\"POST\",\"path_prefix\":\"" REG_PATH "\","
		 "\"status\":200,\"body\":%s,\"count\":-1}", quoted);
	free(quoted);
	cJSON_Delete(bs);
	cr_assert_eq(fp_fault(&fx.fp, fault), 200);
	cr_assert_eq(fx_admin(&fx, "POST", "/_admin/profiles",
			   fx_profile_json(PROF1, "P1", "my-claude", true)), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 2, 5000), "no drift REG");
	mc_ms_t t0 = mc_now_ms();
	wh_pump(&fx.h, 2000);
	mc_ms_t window = mc_now_ms() - t0;
	int regs = fx_count(&fx, "POST", REG_PATH) - 1;
	/* 150 ms ticks: ~13 attempts in 2 s without backoff; with the step
	 * backoff (150 ms doubling to 600 ms) about 5. */
	cr_assert_geq(regs, 2, "not retried (%d REGs in %ld ms)", regs, (long)window);
	cr_assert_leq(regs, 8, "register storm: %d REGs in %ld ms", regs, (long)window);
	cr_assert_eq(fx.h.n_reports, reports, "a bad REG answer changed the report");
	assert_report_is(&fx.h, &ids);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0, "a bad REG answer deregistered something");
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 1, "a bad REG answer sent recover-orphans");
	fx_assert_status(&fx, ids.ids[0], "online");

	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	cr_assert(wh_wait_report_n(&fx.h, 2, 8000), "not retried after the fault cleared");
	cr_assert(wh_report_has(&fx.h, ids.ids[0]), "the built-in kept its id");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	idset_free(&ids);
	fx_stop(&fx);
}

#define RT_JSON(id_member, name, profile) \
	"{" id_member "\"name\":\"" name "\",\"provider\":\"claude\",\"status\":\"online\"," \
	"\"profile_id\":" profile "}"

Test(worker_faults, register_200_with_too_few_runtimes_is_a_failed_register)
{
	/* Two runtimes sent, one answered (the built-in's real row). */
	register_answer_is_failed("{\"runtimes\":["
				  RT_JSON("\"id\":\"@ID@\",", "Claude (testhost)", "null") "]}");
}

Test(worker_faults, register_200_with_too_many_runtimes_is_a_failed_register)
{
	register_answer_is_failed("{\"runtimes\":["
		RT_JSON("\"id\":\"@ID@\",", "Claude (testhost)", "null") ","
		RT_JSON("\"id\":\"c1111111-1111-4111-8111-111111111111\",", "P1 (testhost)",
			"\"" PROF1 "\"") ","
		RT_JSON("\"id\":\"c2222222-2222-4222-8222-222222222222\",", "X (testhost)",
			"null") "]}");
}

Test(worker_faults, register_200_with_runtime_missing_id_is_a_failed_register)
{
	register_answer_is_failed("{\"runtimes\":["
		RT_JSON("\"id\":\"@ID@\",", "Claude (testhost)", "null") ","
		RT_JSON("", "P1 (testhost)", "\"" PROF1 "\"") "]}");
}

/* The supervisor kills a worker that reports a non-UUID id (a crash loop):
 * such an answer is a decode error, and nothing of it reaches a REPORT. */
Test(worker_faults, register_200_with_a_non_uuid_runtime_id_is_a_failed_register)
{
	register_answer_is_failed("{\"runtimes\":["
		RT_JSON("\"id\":\"@ID@\",", "Claude (testhost)", "null") ","
		RT_JSON("\"id\":\"rt-2\",", "P1 (testhost)", "\"" PROF1 "\"") "]}");
}

Test(worker_faults, register_200_without_runtimes_is_a_failed_register)
{
	register_answer_is_failed("{\"ok\":true,\"x\":\"@ID@\"}");
}

/* ---- runtime gone, twice ---- */

/* multica's tryClaimRegisterSlot: a deletion that happens after the previous
 * recovery completed is a new event and recovers at once, even inside the
 * 30 s coalescing window of that recovery. */
Test(worker_faults, DistinctDeletionsWithinCoalesceWindowBothRecover)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { .profile_sync_ms = 5000 }; /* heartbeats drive recovery */
	fx_two_runtimes(&fx, NULL, o, &ids);
	char *custom = fx_runtime_of(&fx, PROF1);
	char *first = fx_runtime_of(&fx, NULL);
	cr_assert_not_null(custom);
	cr_assert_not_null(first);

	char path[160];
	snprintf(path, sizeof path, "/_admin/runtimes/%s", first);
	cr_assert_eq(fx_admin(&fx, "DELETE", path, NULL), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 2, 5000), "no first recovery REG");
	/* Recovery complete: the report holds a fresh id for the built-in. */
	cr_assert(wh_wait_report_without(&fx.h, first, 2, 5000), "the deleted id is still reported");
	cr_assert(wh_report_has(&fx.h, custom), "the survivor keeps its id");
	char *second = fx_runtime_of(&fx, NULL);
	cr_assert_not_null(second);
	cr_assert_str_neq(second, first);
	cr_assert(wh_report_has(&fx.h, second));
	/* Let heartbeats of the new row flow: the second deletion is well after
	 * the first recovery completed. */
	cr_assert(fx_wait_jcount(&fx, "POST", HB_PATH, 200, fx_last_seq(&fx), second, 2, 5000));

	mc_ms_t t_del2 = mc_now_ms();
	snprintf(path, sizeof path, "/_admin/runtimes/%s", second);
	cr_assert_eq(fx_admin(&fx, "DELETE", path, NULL), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 3, 5000),
		  "the second, distinct deletion was coalesced into the first recovery");
	mc_ms_t took = mc_now_ms() - t_del2;
	cr_assert_lt(took, 5000, "second recovery took %ld ms", (long)took);
	cr_assert(wh_wait_report_without(&fx.h, second, 2, 5000), "the deleted id is still reported");
	cr_assert(wh_report_has(&fx.h, custom));
	char *third = fx_runtime_of(&fx, NULL);
	cr_assert_not_null(third);
	cr_assert(wh_report_has(&fx.h, third));
	fx_assert_status(&fx, third, "online");
	fx_assert_status(&fx, custom, "online");

	/* Exactly two recoveries, each with recover-orphans for its new id only. */
	wh_pump(&fx.h, 500);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 3);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	char ro[200];
	snprintf(ro, sizeof ro, RO_PREFIX "%s/recover-orphans", second);
	cr_assert_eq(fx_count(&fx, "POST", ro), 1);
	snprintf(ro, sizeof ro, RO_PREFIX "%s/recover-orphans", third);
	cr_assert(fx_wait_count(&fx, "POST", ro, 1, 3000));
	snprintf(ro, sizeof ro, RO_PREFIX "%s/recover-orphans", custom);
	cr_assert_eq(fx_count(&fx, "POST", ro), 1, "the survivor was orphan-recovered again");
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 4);

	free(custom);
	free(first);
	free(second);
	free(third);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	idset_free(&ids);
	fx_stop(&fx);
}

/* ---- the token is judged over time ---- */

/* AUTH_WINDOW = clamp(2 x heartbeat_interval, 5 s, 60 s): the 5 s floor with
 * the harness's 100 ms heartbeats. */
#define AUTH_WINDOW_MS 5000

/* PROF1 and PROF2 + the claude built-in: three runtimes, all registered. */
static void fx_three_runtimes(struct fixture *fx, struct idset *ids)
{
	char profiles[2048];
	snprintf(profiles, sizeof profiles, "[%s,%s]",
		 fx_profile_json(PROF1, "P1", "my-claude", true),
		 fx_profile_json(PROF2, "P2", "other-claude", true));
	fx_start_plane(fx, profiles);
	fx_start_worker(fx, true);
	cr_assert(wh_wait_report_n(&fx->h, 3, 8000), "no report of 3 runtimes");
	cr_assert(fx_wait_count(fx, "POST", RO_PREFIX, 3, 5000), "first registration incomplete");
	idset_take(ids, &fx->h);
}

/* A WAF, a proxy or a server deploy answers 403 for a moment: three
 * runtimes' beats are rejected within milliseconds of each other, which is
 * no evidence against the token. The worker keeps everything. */
Test(worker_faults, heartbeat_403_burst_shorter_than_the_auth_window_keeps_the_worker)
{
	struct fixture fx;
	struct idset ids;
	fx_three_runtimes(&fx, &ids);
	double seq0 = fx_last_seq(&fx);
	mc_ms_t t0 = mc_now_ms();
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\","
			      "\"status\":403,\"body\":\"{\\\"error\\\":\\\"forbidden\\\"}\","
			      "\"count\":-1}"), 200);
	/* Each runtime rejected 3 times: 9 rejections in a row, no success. */
	size_t rejected = 0;
	while (rejected < ids.n && !fx.h.fatal && !fx.h.exited && mc_now_ms() < t0 + 3000) {
		wh_pump(&fx.h, 20);
		rejected = 0;
		for (size_t i = 0; i < ids.n; i++)
			rejected += fx_jcount(&fx, "POST", HB_PATH, 403, seq0, ids.ids[i]) >= 3;
	}
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	mc_ms_t burst = mc_now_ms() - t0;
	double seq1 = fx_last_seq(&fx);
	wh_pump(&fx.h, 300);
	cr_assert_not(fx.h.fatal, "a %ld ms burst of 403 made the worker give up (%s)", (long)burst,
		      fx.h.fatal_reason);
	cr_assert_not(fx.h.exited, "the worker exited after a %ld ms burst of 403", (long)burst);
	cr_assert_eq(rejected, ids.n, "not every runtime saw 3 rejected beats in %ld ms",
		     (long)burst);
	cr_assert_lt(burst, AUTH_WINDOW_MS, "the burst took %ld ms", (long)burst);
	assert_beats_resume(&fx, &ids, seq1, 3);
	for (size_t i = 0; i < ids.n; i++)
		fx_assert_status(&fx, ids.ids[i], "online");
	assert_report_is(&fx.h, &ids);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped_deregistered);
	idset_free(&ids);
	fx_stop(&fx);
}

/* Every request rejected, for good: the worker gives up with FATAL and exit
 * 78, but only once the rejections have lasted the whole window. */
Test(worker_faults, sustained_403_gives_up_after_the_auth_window_not_before)
{
	struct fixture fx;
	struct idset ids;
	fx_three_runtimes(&fx, &ids);
	double seq0 = fx_last_seq(&fx);
	mc_ms_t t0 = mc_now_ms();
	cr_assert_eq(fp_fault(&fx.fp, "{\"path_prefix\":\"/api/\",\"status\":403,"
			      "\"body\":\"{\\\"error\\\":\\\"forbidden\\\"}\",\"count\":-1}"), 200);
	mc_ms_t until = t0 + AUTH_WINDOW_MS + 10000;
	while (!fx.h.fatal && !fx.h.exited && mc_now_ms() < until)
		wh_pump(&fx.h, 20);
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert(fx.h.fatal, "no FATAL %ld ms into a sustained 403 (exited: %d)", (long)took,
		  fx.h.exited);
	cr_assert_geq(took, AUTH_WINDOW_MS, "gave up after %ld ms, before the %d ms window",
		      (long)took, AUTH_WINDOW_MS);
	cr_assert_eq(wh_wait_exit(&fx.h, 8000), MC_WORKER_EXIT_CONFIG);
	int rejected = fx_jcount(&fx, NULL, "/api/", 403, seq0, NULL);
	cr_assert_geq(rejected, 3, "%d rejected requests", rejected);
	idset_free(&ids);
	fx_stop(&fx);
}

/* ---- the report after a REG answer ---- */

/* The test hook "exit_after_register_done" ends the worker right after its
 * REG answer was handled, as another callback crashing in the same loop
 * iteration would. The supervisor must already know the new ids (its
 * ledger deregisters them): the REPORT is written before the handler
 * returns, not left queued for a later iteration. */
Test(worker_faults, report_is_written_before_the_register_answer_handler_returns)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&fx, profiles);
	struct wh_opts o = { .builtins = &FX_CLAUDE, .n_builtins = 1,
			     .test_fault = "exit_after_register_done" };
	fx_start_worker_opts(&fx, o);
	cr_assert_eq(wh_wait_exit(&fx.h, 8000), 99, "the hook did not end the worker");
	wh_pump(&fx.h, 300); /* whatever it wrote before dying */
	char *custom = fx_runtime_of(&fx, PROF1);
	char *builtin = fx_runtime_of(&fx, NULL);
	cr_assert(custom != NULL && builtin != NULL, "the REG did not create both rows");
	cr_assert_geq(fx.h.n_reports, 1, "the worker died with its REPORT still queued: "
		      "2 rows online that no one knows about");
	cr_assert_eq(fx.h.report.n, 2);
	cr_assert(wh_report_has(&fx.h, custom));
	cr_assert(wh_report_has(&fx.h, builtin));
	cr_assert_not(fx.h.violation);
	free(custom);
	free(builtin);
	fx_stop(&fx);
}

/* ---- the DEREG of dropped ids ---- */

/* PROF1 is disabled while the DEREG of its runtime answers 503 `fails`
 * times: the id stays in the report while its DEREG is pending, the DEREG
 * is retried with backoff (1 s doubling, +-20 %), and the row ends offline. */
static void dropped_dereg_503_is_retried(int fails)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	char *custom = fx_runtime_of(&fx, PROF1);
	char *builtin = fx_runtime_of(&fx, NULL);
	cr_assert(custom != NULL && builtin != NULL);
	double seq0 = fx_last_seq(&fx);
	char fault[512];
	snprintf(fault, sizeof fault, "{\"method\":\"POST\",\"path_prefix\":\"" DEREG_PATH "\","
		 "\"status\":503,\"body\":\"{\\\"error\\\":\\\"unavailable\\\"}\",\"count\":%d}",
		 fails);
	cr_assert_eq(fp_fault(&fx.fp, fault), 200);
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":false}"), 200);
	cr_assert(fx_wait_jcount(&fx, "POST", DEREG_PATH, 503, seq0, custom, 1, 5000),
		  "no DEREG of the dropped id");
	mc_ms_t t_fail = mc_now_ms();
	/* Pending now. The report can be judged only while the row is still
	 * online (the retry, >= 0.8 s later, shrinks it once it worked). */
	wh_pump(&fx.h, 50);
	char *st = fp_runtime_status(&fx.fp, custom);
	if (st != NULL && strcmp(st, "online") == 0) {
		cr_assert(wh_report_has(&fx.h, custom),
			  "the dropped id left the report while its DEREG was pending");
		cr_assert(wh_report_has(&fx.h, builtin));
	} else {
		cr_log_warn("the retry was faster than this check: report not judged");
	}
	free(st);
	cr_assert(fx_wait_status(&fx, custom, "offline", 15000),
		  "the dropped row stayed online after %d failed DEREG(s)", fails);
	mc_ms_t took = mc_now_ms() - t_fail;
	cr_assert(wh_wait_report_without(&fx.h, custom, 1, 3000),
		  "the id stayed in the report after its DEREG worked");
	cr_assert(wh_report_has(&fx.h, builtin));
	long min_wait = 800L * ((1L << fails) - 1) - 200;
	cr_assert_geq(took, min_wait, "%d retries within %ld ms: no backoff", fails, (long)took);
	wh_pump(&fx.h, 1500);
	int deregs = fx_jcount(&fx, "POST", DEREG_PATH, ANY_STATUS, seq0, custom);
	cr_assert_eq(deregs, fails + 1, "%d DEREGs of the dropped id, want %d", deregs, fails + 1);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), fails + 1, "a DEREG named something else");
	fx_assert_status(&fx, builtin, "online");
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped_deregistered);
	fx_assert_status(&fx, builtin, "offline");
	free(custom);
	free(builtin);
	idset_free(&ids);
	fx_stop(&fx);
}

Test(worker_faults, dropped_dereg_503_once_is_retried_and_the_row_ends_offline)
{
	dropped_dereg_503_is_retried(1);
}

Test(worker_faults, dropped_dereg_503_three_times_is_retried_with_backoff)
{
	dropped_dereg_503_is_retried(3);
}

/* SIGTERM while the DEREG of a dropped id is pending: the final DEREG
 * carries it with everything tracked. */
Test(worker_faults, sigterm_while_a_dropped_dereg_is_pending_deregisters_it_at_stop)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	char *custom = fx_runtime_of(&fx, PROF1);
	char *builtin = fx_runtime_of(&fx, NULL);
	cr_assert(custom != NULL && builtin != NULL);
	double seq0 = fx_last_seq(&fx);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" DEREG_PATH "\","
			      "\"status\":503,\"count\":-1}"), 200);
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":false}"), 200);
	/* The first attempt and its retry 1 s later; the next is 2 s away. */
	cr_assert(fx_wait_jcount(&fx, "POST", DEREG_PATH, 503, seq0, custom, 2, 8000),
		  "the failed DEREG of the dropped id was not retried");
	cr_assert(wh_report_has(&fx.h, custom), "a pending id left the report");
	cr_assert(wh_report_has(&fx.h, builtin));
	fx_assert_status(&fx, custom, "online");
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	double seq1 = fx_last_seq(&fx);
	cr_assert_eq(kill(fx.h.pid, SIGTERM), 0);
	cr_assert_eq(wh_wait_exit(&fx.h, 8000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped && fx.h.stopped_deregistered);
	cr_assert_eq(fx.h.report.n, 0, "the last report is not empty");
	cr_assert_eq(fx_jcount(&fx, "POST", DEREG_PATH, ANY_STATUS, seq1, NULL), 1,
		     "one DEREG at stop");
	cr_assert_eq(fx_jcount(&fx, "POST", DEREG_PATH, 200, seq1, custom), 1,
		     "the final DEREG left the pending id out");
	cr_assert_eq(fx_jcount(&fx, "POST", DEREG_PATH, 200, seq1, builtin), 1);
	fx_assert_status(&fx, custom, "offline");
	fx_assert_status(&fx, builtin, "offline");
	free(custom);
	free(builtin);
	idset_free(&ids);
	fx_stop(&fx);
}

/* A pending id that the server hands back (the profile enabled again) is
 * hosted again: it leaves the pending set and is never deregistered. */
Test(worker_faults, pending_dropped_id_registered_again_is_not_deregistered)
{
	struct fixture fx;
	struct idset ids;
	struct wh_opts o = { 0 };
	fx_two_runtimes(&fx, NULL, o, &ids);
	char *custom = fx_runtime_of(&fx, PROF1);
	cr_assert_not_null(custom);
	double seq0 = fx_last_seq(&fx);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" DEREG_PATH "\","
			      "\"status\":503,\"count\":-1}"), 200);
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":false}"), 200);
	cr_assert(fx_wait_jcount(&fx, "POST", DEREG_PATH, 503, seq0, custom, 1, 5000));
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":true}"), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 3, 5000), "no REG after the re-enable");
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	char *again = fx_runtime_of(&fx, PROF1);
	cr_assert_not_null(again);
	cr_assert_str_eq(again, custom, "the server's upsert gave a new id");
	double seq1 = fx_last_seq(&fx);
	wh_pump(&fx.h, 3000); /* past every retry the failed DEREG had coming */
	cr_assert_eq(fx_jcount(&fx, "POST", DEREG_PATH, ANY_STATUS, seq1, NULL), 0,
		     "a DEREG after the id was hosted again");
	fx_assert_status(&fx, custom, "online");
	assert_report_is(&fx.h, &ids);
	cr_assert(fx_wait_jcount(&fx, "POST", HB_PATH, 200, seq1, custom, 2, 5000),
		  "the id hosted again is not heartbeated");
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	free(custom);
	free(again);
	idset_free(&ids);
	fx_stop(&fx);
}

/* ---- a built-in set that changes while the first REG is out ---- */

/* The first REG carries the set the worker had when it built the payload;
 * a PROBES change that arrives while that REG is in flight must still
 * reach the server (it used to be dropped until the next change: the
 * change was only noted after the first registration). */
Test(worker_faults, builtins_changed_during_the_first_register_are_registered)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" REG_PATH "\","
				      "\"delay_ms\":1000,\"count\":1}"), 200);
	fx_start_worker(&fx, true);
	/* Let the worker fetch and send its REG (held 1 s at the server): the
	 * fetch answered, the payload is built at once (waiting for the fetch,
	 * not a fixed time: a loaded sanitizer run was slower than 300 ms). */
	cr_assert(fx_wait_jcount(&fx, "GET", PROF_PATH, 200, 0, NULL, 1, 10000),
		  "the worker never fetched its profiles");
	wh_pump(&fx.h, 150);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 0, "the first REG was not held");
	const struct mc_builtin updated = { "claude", "Claude", "9.9.9", "" };
	cr_assert_eq(wh_send_probes(&fx.h, &updated, 1), 0);
	cr_assert(fx_wait_jcount(&fx, "POST", REG_PATH, 200, 0, "9.9.9", 1, 10000),
		  "the new built-in version never reached the server (%d REGs)",
		  fx_count(&fx, "POST", REG_PATH));
	cr_assert_eq(fx_jcount(&fx, "POST", REG_PATH, 200, 0, "2.1.0"), 1,
		     "the first REG carried the old set");
	fx_stop(&fx);
}
