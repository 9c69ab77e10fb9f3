/* The worker against multica-fakeplane: the conformance cases of
 * reference/multica-daemon-behavior.md section 3 that apply to our design
 * (names kept recognisable), our deliberate differences, and faults.
 * Every test asserts the exact requests the emulator journaled. */
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

TestSuite(worker, .timeout = 60);




/* The body (parsed) of the n-th (0-based) journaled request matching. */
static cJSON *nth_body(struct fixture *fx, const char *method, const char *path, int n)
{
	cJSON *j = fp_journal(&fx->fp);
	cr_assert_not_null(j);
	cJSON *e, *found = NULL;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		if (m && p && strcmp(m, method) == 0 && strncmp(p, path, strlen(path)) == 0 &&
		    n-- == 0) {
			const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
			found = b ? cJSON_Parse(b) : NULL;
			break;
		}
	}
	cJSON_Delete(j);
	return found;
}

/* ---- first registration ---- */

Test(worker, first_registration_registers_then_recovers_orphans_for_every_id)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "Team Claude", "my-claude", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, true);

	cr_assert(wh_wait_report_n(&fx.h, 2, 5000), "no report of 2 runtimes");
	cr_assert(fx_wait_count(&fx, "POST", RO_PREFIX, 2, 3000));

	cJSON *reg = nth_body(&fx, "POST", REG_PATH, 0);
	cr_assert_not_null(reg);
	cJSON *rts = cJSON_GetObjectItem(reg, "runtimes");
	cr_assert_eq(cJSON_GetArraySize(rts), 2);
	cJSON *b = cJSON_GetArrayItem(rts, 0), *c = cJSON_GetArrayItem(rts, 1);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(b, "name")), "Claude (testhost)");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(b, "type")), "claude");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(b, "version")), "2.1.0");
	cr_assert_null(cJSON_GetObjectItem(b, "profile_id"));
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), "Team Claude (testhost)");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(c, "profile_id")), PROF1);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(c, "version")), "9.9.9");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(reg, "failed_profiles")));
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(reg, "daemon_id")), "test-daemon");
	cJSON_Delete(reg);

	/* Order: GET profiles, REG, then recover-orphans for both ids. */
	cJSON *j = fp_journal(&fx.fp);
	const char *first = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "path"));
	const char *second = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "path"));
	cr_assert_str_eq(first, PROF_PATH);
	cr_assert_str_eq(second, REG_PATH);
	cJSON_Delete(j);
	for (size_t i = 0; i < fx.h.report.n; i++) {
		char path[128];
		snprintf(path, sizeof path, RO_PREFIX "%s/recover-orphans", fx.h.report.ids[i]);
		cr_assert_eq(fx_count(&fx, "POST", path), 1, "no recover-orphans for %s", path);
		fx_assert_status(&fx, fx.h.report.ids[i], "online");
	}
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, nothing_to_register_sends_no_request)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, false);
	wh_pump(&fx.h, 600);
	cr_assert_geq(fx_count(&fx, "GET", PROF_PATH), 2, "the drift loop keeps checking");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 0);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped && fx.h.stopped_deregistered);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0, "nothing held: no DEREG at stop");
	fx_stop(&fx);
}

/* ---- drift ---- */

Test(worker, RefreshWorkspaceRuntimeProfiles_NoDrift_DoesNotReregister)
{
	struct fixture fx;
	fx_start_builtin_and_profile(&fx);
	int gets = fx_count(&fx, "GET", PROF_PATH);
	wh_pump(&fx.h, 800);
	cr_assert_geq(fx_count(&fx, "GET", PROF_PATH), gets + 3, "one GET per interval");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0);
	cr_assert_geq(fx_count(&fx, "POST", HB_PATH), 4, "heartbeats flow");
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, profiles_reordered_by_the_server_do_not_reregister)
{
	struct fixture fx;
	char profiles[2048];
	snprintf(profiles, sizeof profiles, "[%s,%s]", fx_profile_json(PROF1, "P1", "my-claude", true),
		 fx_profile_json(PROF2, "P2", "other-claude", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, false);
	cr_assert(wh_wait_report_n(&fx.h, 2, 5000));
	/* The server answers the same profiles in the other order from now on. */
	char fault[3072], body[2048];
	snprintf(body, sizeof body, "{\"workspace_id\":\"" WS "\",\"runtime_profiles\":[%s,%s]}",
		 fx_profile_json(PROF2, "P2", "other-claude", true),
		 fx_profile_json(PROF1, "P1", "my-claude", true));
	cJSON *b = cJSON_CreateString(body);
	char *bs = cJSON_PrintUnformatted(b);
	snprintf(fault, sizeof fault,
		 "{\"method\":\"GET\",\"path_prefix\":\"" PROF_PATH "\",\"status\":200,\"body\":%s,\"count\":-1}", bs);
	free(bs);
	cJSON_Delete(b);
	cr_assert_eq(fp_fault(&fx.fp, fault), 200);
	int gets = fx_count(&fx, "GET", PROF_PATH);
	wh_pump(&fx.h, 700);
	cr_assert_geq(fx_count(&fx, "GET", PROF_PATH), gets + 2);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, RefreshWorkspaceRuntimeProfiles_NewProfileTriggersReregister)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	cr_assert(fx_wait_count(&fx, "POST", RO_PREFIX, 1, 2000));
	char *builtin_id = strdup(fx.h.report.ids[0]);
	/* A running task on the built-in must survive the drift. */
	char task[256];
	snprintf(task, sizeof task, "{\"id\":\"b3333333-3333-4333-8333-333333333333\",\"runtime_id\":\"%s\",\"status\":\"running\"}", builtin_id);
	cr_assert_eq(fx_admin(&fx, "POST", "/_admin/tasks", task), 200);
	mc_ms_t t0 = mc_now_ms();
	cr_assert_eq(fx_admin(&fx, "POST", "/_admin/profiles", fx_profile_json(PROF1, "New", "my-claude", true)), 200);
	cr_assert(wh_wait_report_n(&fx.h, 2, 3000), "the new profile's runtime is not reported");
	/* The latency itself is worker_bench's figure; this only tells the
	 * periodic check from a broken schedule (10 intervals of slack for a
	 * loaded sanitizer build, which also spawns the version probe). */
	cr_assert_leq(mc_now_ms() - t0, 10 * 150, "not picked up by the periodic check");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 2);
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 1, "drift never recovers orphans");
	cr_assert(wh_report_has(&fx.h, builtin_id), "the built-in kept its id");
	cJSON *st = fp_state(&fx.fp);
	cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "tasks"), 0);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "status")), "running");
	cJSON_Delete(st);
	/* A second refresh with the same list does nothing. */
	wh_pump(&fx.h, 500);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 2);
	free(builtin_id);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, rename_is_drift)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "Before", "my-claude", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, false);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"display_name\":\"After\"}"), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 2, 3000));
	cJSON *reg = nth_body(&fx, "POST", REG_PATH, 1);
	cJSON *rt = cJSON_GetArrayItem(cJSON_GetObjectItem(reg, "runtimes"), 0);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(rt, "name")), "After (testhost)");
	cJSON_Delete(reg);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, RefreshWorkspaceRuntimeProfiles_DisableConvergesCustomOnlyDaemon)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "Only", "my-claude", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, false);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	char *id = strdup(fx.h.report.ids[0]);
	cr_assert(fx_wait_count(&fx, "POST", RO_PREFIX, 1, 2000));
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":false}"), 200);
	cr_assert(wh_wait_report_n(&fx.h, 0, 3000));
	cr_assert(fx_wait_count(&fx, "POST", DEREG_PATH, 1, 2000));
	cJSON *d = nth_body(&fx, "POST", DEREG_PATH, 0);
	cJSON *ids = cJSON_GetObjectItem(d, "runtime_ids");
	cr_assert_eq(cJSON_GetArraySize(ids), 1);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(ids, 0)), id);
	cJSON_Delete(d);
	fx_assert_status(&fx, id, "offline");
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1, "converge sends no REG");
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 1, "converge sends no RO");
	/* Quiet afterwards. */
	wh_pump(&fx.h, 600);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1);
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 1);
	fx_assert_status(&fx, id, "offline");
	free(id);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, RefreshWorkspaceRuntimeProfiles_DisableOneOfManyDeregistersDroppedID)
{
	struct fixture fx;
	fx_start_builtin_and_profile(&fx);
	char *custom = fx_runtime_of(&fx, PROF1);
	char *builtin = fx_runtime_of(&fx, NULL);
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":false}"), 200);
	cr_assert(wh_wait_report_n(&fx.h, 1, 3000));
	cr_assert(fx_wait_count(&fx, "POST", DEREG_PATH, 1, 2000));
	cJSON *d = nth_body(&fx, "POST", DEREG_PATH, 0);
	cJSON *ids = cJSON_GetObjectItem(d, "runtime_ids");
	cr_assert_eq(cJSON_GetArraySize(ids), 1);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(ids, 0)), custom);
	cJSON_Delete(d);
	cr_assert(wh_report_has(&fx.h, builtin));
	fx_assert_status(&fx, builtin, "online");
	fx_assert_status(&fx, custom, "offline");
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 2, "only the first registration's RO");
	free(custom);
	free(builtin);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

/* Journal positions: the first DEREG naming id, and the last heartbeat of
 * id (the emulator journals a request once it has been applied). */
static void dereg_and_last_beat(struct fixture *fx, const char *id, int *dereg, int *beat)
{
	cJSON *j = fp_journal(&fx->fp);
	cr_assert_not_null(j);
	*dereg = *beat = -1;
	int i = 0;
	cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		if (p && b && strstr(b, id) != NULL) {
			if (strcmp(p, DEREG_PATH) == 0 && *dereg < 0)
				*dereg = i;
			else if (strcmp(p, HB_PATH) == 0)
				*beat = i;
		}
		i++;
	}
	cJSON_Delete(j);
}

/* Every beat takes 600 ms at the server, so the dropped runtime's beat is
 * almost always out when the profile is disabled. A beat landing after
 * the DEREG would bring the row back online with nothing serving it. */
static void dropped_runtime_stays_offline(int survivors)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, survivors > 0);
	cr_assert(wh_wait_report_n(&fx.h, (size_t)survivors + 1, 5000));
	char *custom = fx_runtime_of(&fx, PROF1);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\","
				      "\"delay_ms\":600,\"count\":-1}"), 200);
	cr_assert(fx_wait_count(&fx, "POST", HB_PATH, 2 * (survivors + 1), 3000));
	cr_assert_eq(fx_admin(&fx, "PATCH", "/_admin/profiles/" PROF1, "{\"enabled\":false}"), 200);
	cr_assert(fx_wait_count(&fx, "POST", DEREG_PATH, 1, 4000), "no DEREG of the dropped id");
	wh_pump(&fx.h, 800); /* longer than any beat still at the server */
	int dereg, beat;
	dereg_and_last_beat(&fx, custom, &dereg, &beat);
	cr_assert_geq(dereg, 0);
	cr_assert_lt(beat, dereg, "a heartbeat of the dropped runtime landed after its DEREG");
	fx_assert_status(&fx, custom, "offline");
	cr_assert_eq(fx.h.report.n, (size_t)survivors);
	free(custom);
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, dropped_runtime_beat_in_flight_lands_before_its_dereg)
{
	dropped_runtime_stays_offline(1);
}

Test(worker, converge_to_zero_lets_the_last_beat_land_before_the_dereg)
{
	dropped_runtime_stays_offline(0);
}

Test(worker, command_vanishing_from_path_fails_the_profile_and_deregisters_it)
{
	struct fixture fx;
	fx_start_builtin_and_profile(&fx);
	char *custom = fx_runtime_of(&fx, PROF1);
	char path[600];
	snprintf(path, sizeof path, "%s/my-claude", fx.cli_dir);
	cr_assert_eq(unlink(path), 0);
	cr_assert(wh_wait_report_n(&fx.h, 1, 3000));
	cr_assert(fx_wait_count(&fx, "POST", DEREG_PATH, 1, 2000));
	cJSON *reg = nth_body(&fx, "POST", REG_PATH, 1);
	cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(reg, "failed_profiles"), 0);
	cr_assert_not_null(f);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(f, "reason")),
			 "command not found on PATH: my-claude");
	cJSON_Delete(reg);
	fx_assert_status(&fx, custom, "offline");
	free(custom);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, RegisterRuntimes_unsupported_family_and_missing_command_are_failed_profiles)
{
	struct fixture fx;
	char profiles[2048];
	snprintf(profiles, sizeof profiles,
		 "[{\"id\":\"" PROF1 "\",\"workspace_id\":\"" WS "\",\"display_name\":\"G\","
		 "\"protocol_family\":\"gemini\",\"command_name\":\"my-claude\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true},%s]",
		 fx_profile_json(PROF2, "Missing", "no-such-cli", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, false);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 1, 5000));
	cJSON *reg = nth_body(&fx, "POST", REG_PATH, 0);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(reg, "runtimes")), 0);
	cJSON *fl = cJSON_GetObjectItem(reg, "failed_profiles");
	cr_assert_eq(cJSON_GetArraySize(fl), 2);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(fl, 0), "reason")),
			 "unsupported protocol_family: gemini");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(fl, 1), "reason")),
			 "command not found on PATH: no-such-cli");
	cJSON_Delete(reg);
	wh_pump(&fx.h, 500);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1, "failed-only workspaces do not re-register every tick");
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, RegisterRuntimes_PrefersCommandPathOverride_and_falls_back_to_path)
{
	struct fixture fx;
	char profiles[2048];
	snprintf(profiles, sizeof profiles, "[%s,%s]", fx_profile_json(PROF1, "Over", "my-claude", true),
		 fx_profile_json(PROF2, "Bad", "my-claude", true));
	fx_start_plane(&fx, profiles);
	char good[600], bad[600];
	snprintf(good, sizeof good, "%s/other-claude", fx.cli_dir);
	snprintf(bad, sizeof bad, "%s/not-there", fx.cli_dir);
	struct mc_profile_override ov[2];
	memset(ov, 0, sizeof ov);
	snprintf(ov[0].profile_id, sizeof ov[0].profile_id, "%s", PROF1);
	snprintf(ov[0].path, sizeof ov[0].path, "%s", good);
	snprintf(ov[1].profile_id, sizeof ov[1].profile_id, "%s", PROF2);
	snprintf(ov[1].path, sizeof ov[1].path, "%s", bad);
	/* The override CLI reports another version, so we can tell what ran. */
	cr_assert_eq(wh_add_fake_cli(fx.cli_dir, "other-claude", "7.7.7"), 0);
	struct wh_opts o = { .overrides = ov, .n_overrides = 2 };
	fx_start_worker_opts(&fx, o);
	cr_assert(wh_wait_report_n(&fx.h, 2, 5000));
	cJSON *reg = nth_body(&fx, "POST", REG_PATH, 0);
	cJSON *rts = cJSON_GetObjectItem(reg, "runtimes");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(rts, 0), "version")), "7.7.7");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(rts, 1), "version")), "9.9.9");
	cJSON_Delete(reg);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

/* ---- fetch and register errors ---- */

static void assert_no_storm_while_fault(const char *fault_body)
{
	struct fixture fx;
	fx_start_builtin_and_profile(&fx);
	char fault[1024];
	snprintf(fault, sizeof fault, "{\"method\":\"GET\",\"path_prefix\":\"" PROF_PATH "\",%s,\"count\":-1}",
		 fault_body);
	cr_assert_eq(fp_fault(&fx.fp, fault), 200);
	/* A real change on the server that the worker cannot see. */
	cr_assert_eq(fx_admin(&fx, "POST", "/_admin/profiles", fx_profile_json(PROF2, "P2", "other-claude", true)), 200);
	wh_pump(&fx.h, 900);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 1, "no REG while the fetch fails");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 0, "no DEREG while the fetch fails");
	cr_assert_eq(fx.h.report.n, 2, "runtimes kept");
	cr_assert_geq(wh_ping(&fx.h, 42, 1000), 0, "worker alive and answering");
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	cr_assert(wh_wait_report_n(&fx.h, 3, 4000), "converges once the server answers");
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, RefreshWorkspaceRuntimeProfiles_FetchErrorIsBestEffort_404)
{
	assert_no_storm_while_fault("\"status\":404,\"body\":\"{\\\"error\\\":\\\"not found\\\"}\"");
}

Test(worker, fetch_error_500_no_storm)
{
	assert_no_storm_while_fault("\"status\":500,\"body\":\"{\\\"error\\\":\\\"boom\\\"}\"");
}

Test(worker, fetch_malformed_json_no_storm)
{
	assert_no_storm_while_fault("\"status\":200,\"body\":\"{\\\"runtime_profiles\\\": [\"");
}

Test(worker, fetch_wrong_type_no_storm)
{
	assert_no_storm_while_fault("\"status\":200,\"body\":\"{\\\"runtime_profiles\\\": {}}\"");
}

Test(worker, fetch_oversized_body_no_storm)
{
	assert_no_storm_while_fault("\"status\":200,\"body_size\":6000000");
}

Test(worker, fetch_timeout_no_storm)
{
	assert_no_storm_while_fault("\"delay_ms\":3000");
}

Test(worker, register_500_leaves_signature_and_backs_off)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" REG_PATH "\",\"status\":500,\"body\":\"{\\\"error\\\":\\\"db down\\\"}\",\"count\":-1}"), 200);
	cr_assert_eq(fx_admin(&fx, "POST", "/_admin/profiles", fx_profile_json(PROF1, "P1", "my-claude", true)), 200);
	wh_pump(&fx.h, 1500);
	int regs = fx_count(&fx, "POST", REG_PATH);
	/* 1 s of 150 ms ticks would be ~10 attempts without backoff. */
	cr_assert_geq(regs, 2, "retried");
	cr_assert_leq(regs, 7, "no register storm (%d)", regs);
	cr_assert_eq(fx.h.report.n, 1);
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/faults", NULL), 200);
	cr_assert(wh_wait_report_n(&fx.h, 2, 6000), "the next tick retries and succeeds");
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

/* ---- runtime gone ---- */

Test(worker, HandleRuntimeGone_PrunesAndReregisters_recovering_only_the_new_id)
{
	struct fixture fx;
	fx_start_builtin_and_profile(&fx);
	cr_assert(fx_wait_count(&fx, "POST", RO_PREFIX, 2, 2000));
	char *builtin = fx_runtime_of(&fx, NULL);
	char *custom = fx_runtime_of(&fx, PROF1);
	char path[128];
	snprintf(path, sizeof path, "/_admin/runtimes/%s", builtin);
	cr_assert_eq(fx_admin(&fx, "DELETE", path, NULL), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 2, 3000), "no recovery REG");
	cr_assert(wh_wait_report_without(&fx.h, builtin, 2, 3000), "the deleted id is still reported");
	cr_assert(wh_report_has(&fx.h, custom), "the survivor keeps its id");
	char *fresh = fx_runtime_of(&fx, NULL);
	cr_assert_str_neq(fresh, builtin);
	cr_assert(fx_wait_count(&fx, "POST", RO_PREFIX, 3, 2000));
	wh_pump(&fx.h, 300);
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 3, "RO only for the new id");
	snprintf(path, sizeof path, RO_PREFIX "%s/recover-orphans", fresh);
	cr_assert_eq(fx_count(&fx, "POST", path), 1);
	snprintf(path, sizeof path, RO_PREFIX "%s/recover-orphans", custom);
	cr_assert_eq(fx_count(&fx, "POST", path), 1, "the survivor was not orphan-recovered again");
	free(builtin);
	free(custom);
	free(fresh);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, HandleRuntimeGone_CoalescesConcurrentCallers)
{
	struct fixture fx;
	char profiles[2048];
	snprintf(profiles, sizeof profiles, "[%s,%s]", fx_profile_json(PROF1, "P1", "my-claude", true),
		 fx_profile_json(PROF2, "P2", "other-claude", true));
	fx_start_plane(&fx, profiles);
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 3, 5000));
	/* One step: deleting them one by one races the heartbeats, and a
	 * recovery between two deletions is a second wave, not this one. */
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/runtimes", NULL), 200);
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 2, 3000));
	wh_pump(&fx.h, 600);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 2, "one recovery for the whole wave");
	cr_assert_eq(fx.h.report.n, 3);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, profile_deleted_on_server_recovers_without_it)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&fx, profiles);
	struct wh_opts o = { .builtins = &FX_CLAUDE, .n_builtins = 1, .profile_sync_ms = 5000 };
	fx_start_worker_opts(&fx, o);
	cr_assert(wh_wait_report_n(&fx.h, 2, 5000));
	char *builtin = fx_runtime_of(&fx, NULL);
	cr_assert_eq(fx_admin(&fx, "DELETE", "/_admin/profiles/" PROF1, NULL), 200);
	/* The sync interval is long: the heartbeat's 404 drives this. The
	 * worker reports the shrunken set before the recovery REG, so wait
	 * for the REG itself, not for a report of one runtime. */
	cr_assert(fx_wait_count(&fx, "POST", REG_PATH, 2, 3000), "no recovery registration");
	cr_assert(wh_wait_report_n(&fx.h, 1, 3000));
	cr_assert(wh_report_has(&fx.h, builtin));
	wh_pump(&fx.h, 200);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 2, "one recovery, not more");
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 2, "no RO for the surviving built-in");
	free(builtin);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

/* ---- stop ---- */

Test(worker, stop_deregisters_everything_in_one_request)
{
	struct fixture fx;
	fx_start_builtin_and_profile(&fx);
	char *a = strdup(fx.h.report.ids[0]), *b = strdup(fx.h.report.ids[1]);
	cr_assert_eq(wh_stop(&fx.h, 6000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped && fx.h.stopped_deregistered);
	cr_assert_eq(fx.h.report.n, 0, "the last report is empty");
	cr_assert_eq(fx_count(&fx, "POST", DEREG_PATH), 1);
	cJSON *d = nth_body(&fx, "POST", DEREG_PATH, 0);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "runtime_ids")), 2);
	cJSON_Delete(d);
	fx_assert_status(&fx, a, "offline");
	fx_assert_status(&fx, b, "offline");
	free(a);
	free(b);
	fx_stop(&fx);
}

Test(worker, supervisor_eof_deregisters_and_exits)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	char *a = strdup(fx.h.report.ids[0]);
	wh_close(&fx.h);
	cr_assert_eq(wh_wait_exit(&fx.h, 6000), MC_WORKER_EXIT_OK);
	fx_assert_status(&fx, a, "offline");
	free(a);
	fx_stop(&fx);
}

Test(worker, sigterm_deregisters_and_exits)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	char *a = strdup(fx.h.report.ids[0]);
	kill(fx.h.pid, SIGTERM);
	cr_assert_eq(wh_wait_exit(&fx.h, 6000), MC_WORKER_EXIT_OK);
	fx_assert_status(&fx, a, "offline");
	free(a);
	fx_stop(&fx);
}

Test(worker, stop_mid_registration_leaves_nothing_online)
{
	struct fixture fx;
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&fx, profiles);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" REG_PATH "\",\"delay_ms\":700,\"count\":1}"), 200);
	fx_start_worker(&fx, true);
	cr_assert(fx_wait_count(&fx, "GET", PROF_PATH, 1, 3000));
	wh_pump(&fx.h, 200); /* the REG is now in flight, held by the server */
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	cJSON *st = fp_state(&fx.fp);
	cJSON *r;
	int rows = 0;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		rows++;
		cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")), "offline",
				 "runtime %s left online",
				 cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")));
	}
	cJSON_Delete(st);
	cr_assert_eq(rows, 2, "the delayed REG did create both rows");
	fx_stop(&fx);
}

/* The token is judged over 5 s here (AUTH_WINDOW's floor), each step
 * sending 2 requests (fetch, REG of the built-in) spaced by the step
 * backoff (150 ms doubling to 600 ms, +-20 %): about 26 requests in the
 * window at most. A loop without backoff would send hundreds. */
Test(worker, bad_token_exits_78_with_fatal)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	struct wh_opts o = { .token = "mul_wrong", .builtins = &FX_CLAUDE, .n_builtins = 1 };
	fx_start_worker_opts(&fx, o);
	cr_assert_eq(wh_wait_exit(&fx.h, 15000), MC_WORKER_EXIT_CONFIG);
	cr_assert(fx.h.fatal);
	int n = fx_count(&fx, NULL, "/api/");
	cr_assert_leq(n, 40, "request storm with a bad token (%d)", n);
	fx_stop(&fx);
}

/* ---- liveness and built-ins ---- */

Test(worker, ping_answered_while_a_request_hangs)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"GET\",\"path_prefix\":\"" PROF_PATH "\",\"delay_ms\":1500,\"count\":1}"), 200);
	fx_start_worker(&fx, true);
	wh_pump(&fx.h, 200);
	long rtt = wh_ping(&fx.h, 7, 1000);
	cr_assert_geq(rtt, 0);
	cr_assert_lt(rtt, 750, "pong took %ld ms: the loop waited on the 1.5 s request", rtt);
	cr_assert_eq(wh_stop(&fx.h, 6000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, builtin_probe_change_reregisters)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	struct mc_builtin two[2] = { FX_CLAUDE, { "codex", "Codex", "0.5.0", "" } };
	cr_assert_eq(wh_send_probes(&fx.h, two, 2), 0);
	cr_assert(wh_wait_report_n(&fx.h, 2, 3000));
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 2);
	wh_pump(&fx.h, 200);
	cr_assert_eq(fx_count(&fx, "POST", RO_PREFIX), 1, "no RO for a built-in change");
	/* The same result again: nothing. */
	cr_assert_eq(wh_send_probes(&fx.h, two, 2), 0);
	wh_pump(&fx.h, 400);
	cr_assert_eq(fx_count(&fx, "POST", REG_PATH), 2);
	cr_assert_eq(wh_stop(&fx.h, 5000), MC_WORKER_EXIT_OK);
	fx_stop(&fx);
}

Test(worker, garbage_from_the_supervisor_ends_the_worker_cleanly)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	char *a = strdup(fx.h.report.ids[0]);
	const char junk[] = "\x00\x05\x00\x00\x00\x00\x00\x03xyz";
	cr_assert_eq(write(fx.h.fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
	cr_assert_eq(wh_wait_exit(&fx.h, 6000), MC_WORKER_EXIT_FAILURE);
	fx_assert_status(&fx, a, "offline");
	free(a);
	fx_stop(&fx);
}

/* A heartbeat already on the wire at STOP must land before the final DEREG:
 * the server revives an offline row on a heartbeat, so the other order
 * would leave the runtime online with nothing serving it. */
Test(worker, stop_lets_an_in_flight_heartbeat_land_before_the_dereg)
{
	struct fixture fx;
	fx_start_plane(&fx, "[]");
	fx_start_worker(&fx, true);
	cr_assert(wh_wait_report_n(&fx.h, 1, 5000));
	char *a = strdup(fx.h.report.ids[0]);
	cr_assert_eq(fp_fault(&fx.fp, "{\"method\":\"POST\",\"path_prefix\":\"" HB_PATH "\",\"delay_ms\":600,\"count\":1}"), 200);
	int beats = fx_count(&fx, "POST", HB_PATH);
	wh_pump(&fx.h, 250); /* the next beat goes out and is held by the server */
	cr_assert_eq(wh_stop(&fx.h, 7000), MC_WORKER_EXIT_OK);
	cr_assert(fx.h.stopped_deregistered);
	cr_assert_gt(fx_count(&fx, "POST", HB_PATH), beats, "the held heartbeat was answered");
	fx_assert_status(&fx, a, "offline");
	free(a);
	fx_stop(&fx);
}
