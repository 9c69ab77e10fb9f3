/* Limits, each tested one past its edge (issue 13, section 4): what a user
 * sees there (an error naming the limit: in the log, on the server's rows,
 * in a control reply) and that nothing but, at most, the guilty worker is
 * affected (the other workers keep their pid and their online rows, the
 * supervisor answers its control socket).
 *
 *   payload   runtimes per workspace (MC_MAX_RUNTIMES) and failed_profiles
 *             (MC_MAX_FAILED_PROFILES), straight on the payload builder
 *   api       response body (MC_API_DEFAULT_MAX_BODY) and header line
 *             (libcurl's CURL_MAX_HTTP_HEADER) against the emulator
 *   worker    a REG never creates more ids than a REPORT holds
 *             (MC_MAX_REPORT)
 *   limits    the whole daemon (test_limits_daemon.c): a workspace of too
 *             many profiles, oversized answers, the control socket's
 *             clients and request size, a reload whose profile_commands
 *             overflow the CONFIG frame, workers sending frames at and past
 *             the IPC limits
 *
 * Tasks per claim: no tasks in this tree yet. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>

#include "common/api.h"
#include "common/secret.h"
#include "ipc/messages.h"
#include "tests/integration/test_limits.h"
#include "tests/support/daemon_proc.h"
#include "tests/support/fakeplane_proc.h"
#include "tests/support/worker_fixture.h"
#include "tests/support/worker_harness.h"
#include "worker/payload.h"
#include "worker/tracked.h"

/* ---- the payload builder ---- */

TestSuite(limits_payload, .timeout = SUITE_TIMEOUT);

/* n claude-family profiles whose command is an executable here. */
static void make_profiles(struct mc_profile_list *l, size_t n)
{
	l->n = n;
	l->v = calloc(n, sizeof *l->v);
	cr_assert_not_null(l->v);
	for (size_t i = 0; i < n; i++) {
		char id[DP_ID_LEN + 1], name[32];
		profile_id(1, i, id);
		snprintf(name, sizeof name, "P%zu", i);
		struct mc_profile *p = &l->v[i];
		p->id = strdup(id);
		p->workspace_id = strdup(WS);
		p->display_name = strdup(name);
		p->protocol_family = strdup("claude");
		p->command_name = strdup("/bin/sh");
		p->visibility = strdup("workspace");
		p->enabled = true;
		cr_assert(p->id && p->workspace_id && p->display_name && p->protocol_family &&
			  p->command_name && p->visibility);
	}
}

static const struct mc_worker_config *payload_cfg(void)
{
	static struct mc_worker_config c;
	snprintf(c.workspace_id, sizeof c.workspace_id, "%s", WS);
	snprintf(c.device_name, sizeof c.device_name, "box");
	return &c;
}

static const struct mc_probes *one_builtin(void)
{
	static struct mc_probes p;
	p.n = 1;
	p.v[0] = FX_CLAUDE;
	return &p;
}

Test(limits_payload, runtimes_up_to_the_limit_register_the_next_profile_fails_naming_it)
{
	struct mc_profile_list l;
	struct mc_payload p;
	/* One built-in and MC_MAX_RUNTIMES - 1 profiles: exactly the limit. */
	make_profiles(&l, MC_MAX_RUNTIMES - 1);
	cr_assert_eq(mc_payload_build(&p, one_builtin(), &l, payload_cfg(), NULL), 0);
	cr_assert_eq(p.n_rt, MC_MAX_RUNTIMES);
	cr_assert_eq(p.n_failed, 0);
	mc_payload_clear(&p);
	mc_profile_list_clear(&l);

	/* One more profile: it is not registered, and says why. */
	make_profiles(&l, MC_MAX_RUNTIMES);
	cr_assert_eq(mc_payload_build(&p, one_builtin(), &l, payload_cfg(), NULL), 0);
	cr_assert_eq(p.n_rt, MC_MAX_RUNTIMES, "%zu runtimes", p.n_rt);
	cr_assert_eq(p.n_failed, 1, "%zu failed", p.n_failed);
	cr_assert_str_eq(p.failed[0].profile_id, l.v[MC_MAX_RUNTIMES - 1].id);
	cr_assert_str_eq(p.failed[0].command_name, "/bin/sh");
	cr_assert_str_eq(p.failed[0].reason, OVER_REASON);
	cr_assert_eq(p.n_over_limit, 1);
	cr_assert_eq(p.n_unlisted, 0);
	mc_payload_clear(&p);
	mc_profile_list_clear(&l);
}

Test(limits_payload, failed_profiles_past_their_limit_are_counted_not_sent)
{
	struct mc_profile_list l;
	struct mc_payload p;
	size_t fit = MC_MAX_RUNTIMES - 1;
	make_profiles(&l, fit + MC_MAX_FAILED_PROFILES);
	cr_assert_eq(mc_payload_build(&p, one_builtin(), &l, payload_cfg(), NULL), 0);
	cr_assert_eq(p.n_rt, MC_MAX_RUNTIMES);
	cr_assert_eq(p.n_failed, MC_MAX_FAILED_PROFILES);
	cr_assert_eq(p.n_unlisted, 0);
	mc_payload_clear(&p);
	mc_profile_list_clear(&l);

	make_profiles(&l, fit + MC_MAX_FAILED_PROFILES + 1);
	cr_assert_eq(mc_payload_build(&p, one_builtin(), &l, payload_cfg(), NULL), 0);
	cr_assert_eq(p.n_rt, MC_MAX_RUNTIMES);
	cr_assert_eq(p.n_failed, MC_MAX_FAILED_PROFILES);
	cr_assert_eq(p.n_unlisted, 1);
	cr_assert_eq(p.n_over_limit, MC_MAX_FAILED_PROFILES + 1);
	mc_payload_clear(&p);
	mc_profile_list_clear(&l);
}

/* The ids a REPORT must hold after a REG: the new set, the pending
 * dropped ones, and the tracked ones the new set does not keep. */
Test(limits_payload, ids_after_a_registration_count_kept_new_and_dropped)
{
	struct mc_profile_list l;
	struct mc_payload p;
	make_profiles(&l, 2);                 /* P0, P1 + the claude built-in */
	cr_assert_eq(mc_payload_build(&p, one_builtin(), &l, payload_cfg(), NULL), 0);
	char other[DP_ID_LEN + 1];
	profile_id(2, 0, other);
	struct mc_runtime rts[] = {
		{ "11111111-1111-4111-8111-000000000001", "c", "claude", "online", NULL },
		{ "11111111-1111-4111-8111-000000000002", "p", "claude", "online", l.v[0].id },
		{ "11111111-1111-4111-8111-000000000003", "q", "claude", "online", other },
		{ "11111111-1111-4111-8111-000000000004", "x", "codex", "online", NULL },
	};
	struct mc_runtime_list resp = { 4, rts };
	struct mc_tracked t;
	mc_tracked_init(&t);
	char **dropped, **added;
	size_t nd, na;
	cr_assert_eq(mc_tracked_replace(&t, &resp, &dropped, &nd, &added, &na), 0);
	mc_ids_free(added, na);
	/* 3 new + 5 pending + the tracked "other" profile and codex built-in. */
	cr_assert_eq(mc_payload_ids_after(&p, &t, 5), 3 + 5 + 2);
	mc_tracked_clear(&t);
	mc_payload_clear(&p);
	mc_profile_list_clear(&l);
}

/* ---- the API client against the emulator ---- */

static struct fixture FX;
static bool fx_up;

static void fx_fini(void)
{
	if (fx_up)
		fx_stop(&FX);
	fx_up = false;
}

TestSuite(limits_api, .timeout = SUITE_TIMEOUT, .fini = fx_fini);

/* One GET of the profiles, blocking; its error into *err. */
static void fetch_profiles(struct mc_api_error *err)
{
	struct mc_secret *tok = mc_secret_new(TOKEN, strlen(TOKEN));
	cr_assert_not_null(tok);
	struct mc_api_config ac = { .server_url = FX.fp.url, .token = tok,
				    .client_version = "multicad/test" };
	struct mc_api *api = mc_api_new(&ac);
	mc_secret_free(tok);
	cr_assert_not_null(api);
	struct mc_call *c = mc_call_runtime_profiles(api, WS);
	cr_assert_not_null(c);
	mc_call_perform(c);
	*err = *mc_call_error(c);
	mc_call_free(c);
	mc_api_free(api);
}

static void start_plane_only(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
	fx_start_plane(&FX, "[]");
	FX.h.fd = -1; /* no worker */
	fx_up = true;
}

static void fault(const char *spec)
{
	cr_assert_eq(fp_fault(&FX.fp, spec), 200, "fault refused: %s", spec);
}

Test(limits_api, body_of_the_limit_is_read_one_byte_more_is_refused_by_name)
{
	start_plane_only();
	char spec[256];
	/* Exactly the limit: read whole, then it is no JSON (not "too large"). */
	snprintf(spec, sizeof spec, "{\"path_prefix\":\"%s\",\"status\":200,\"body_size\":%u}",
		 PROF_PATH, MC_API_DEFAULT_MAX_BODY);
	fault(spec);
	struct mc_api_error err;
	fetch_profiles(&err);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE, "%s: %s", mc_api_error_kind_name(err.kind),
		     err.message);
	/* One byte more: refused, by name. */
	snprintf(spec, sizeof spec, "{\"path_prefix\":\"%s\",\"status\":200,\"body_size\":%u}",
		 PROF_PATH, MC_API_DEFAULT_MAX_BODY + 1);
	fault(spec);
	fetch_profiles(&err);
	cr_assert_eq(err.kind, MC_API_ERR_TOO_LARGE, "%s", err.message);
	cr_assert_str_eq(err.message, "GET " PROF_PATH ": response body larger than the "
			 "4194304-byte limit");
	cr_assert(mc_api_error_is_transient(&err));
}

/* libcurl keeps a header line under CURL_MAX_HTTP_HEADER bytes, CRLF
 * included: the emulator's "X-Fakeplane-Filler: " line is 22 bytes longer
 * than its value. */
Test(limits_api, header_line_under_libcurls_limit_is_read_at_it_refused_by_name)
{
	start_plane_only();
	struct mc_api_error err;
	for (int size = CURL_MAX_HTTP_HEADER - 22 - 1; size <= CURL_MAX_HTTP_HEADER - 22; size++) {
		char spec[256];
		snprintf(spec, sizeof spec, "{\"path_prefix\":\"%s\",\"status\":200,\"body\":"
			 "{\"workspace_id\":\"" WS "\",\"runtime_profiles\":[]},\"header_size\":%d}",
			 PROF_PATH, size);
		fault(spec);
		fetch_profiles(&err);
		if (size < CURL_MAX_HTTP_HEADER - 22)
			cr_assert_eq(err.kind, MC_API_OK, "%s", err.message);
	}
	cr_assert_eq(err.kind, MC_API_ERR_TOO_LARGE, "%s: %s", mc_api_error_kind_name(err.kind),
		     err.message);
	cr_assert_str_eq(err.message, "GET " PROF_PATH ": response header line longer than "
			 "libcurl's 102400-byte limit (CURL_MAX_HTTP_HEADER)");
	cr_assert(mc_api_error_is_transient(&err));
}

/* ---- a REG never creates ids the worker's REPORT cannot hold ---- */

TestSuite(limits_worker, .timeout = SUITE_TIMEOUT, .fini = fx_fini);

#define SET_N (MC_MAX_RUNTIMES - 1)   /* profiles a set has: with the built-in, the limit */

/* Profiles of sets first..last as a JSON array (heap). */
static char *sets_json(int first, int last)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	fputc('[', f);
	for (int s = first; s <= last; s++)
		for (size_t i = 0; i < SET_N; i++) {
			char id[DP_ID_LEN + 1], name[48];
			profile_id(s, i, id);
			snprintf(name, sizeof name, "S%dP%zu", s, i);
			fprintf(f, "%s%s", s == first && i == 0 ? "" : ",",
				fx_profile_json(id, name, "my-claude", true));
		}
	fputc(']', f);
	cr_assert_eq(fclose(f), 0);
	return text;
}

/* The emulator with sets 1..3 stored (a REG of any of them is valid) and
 * the claude CLI on the worker's PATH. */
static void start_plane_with_sets(void)
{
	memset(&FX, 0, sizeof FX);
	FX.h.fd = -1;
	const char *clis[] = { "my-claude", NULL };
	FX.cli_dir = wh_fake_cli_dir(clis, "9.9.9");
	cr_assert_not_null(FX.cli_dir);
	snprintf(FX.path_env, sizeof FX.path_env, "%s:/usr/bin:/bin", FX.cli_dir);
	char *profiles = sets_json(1, 3), *seed = NULL;
	cr_assert_gt(asprintf(&seed, "{\"tokens\":{\"" TOKEN "\":\"u1\"},\"workspaces\":[{\"id\":\""
			      WS "\",\"name\":\"ws\",\"members\":[\"u1\"]}],\"profiles\":%s,"
			      "\"tasks\":[]}", profiles), 0);
	free(profiles);
	int rc = fp_start(&FX.fp, seed, NULL);
	free(seed);
	cr_assert_eq(rc, 0);
	fx_up = true;
}

/* From now on the server lists set s alone (a canned answer). */
static void serve_set(int s)
{
	char *list = sets_json(s, s), *spec = NULL;
	cr_assert_gt(asprintf(&spec, "{\"path_prefix\":\"" PROF_PATH "\",\"status\":200,\"count\":-1,"
			      "\"body\":{\"workspace_id\":\"" WS "\",\"runtime_profiles\":%s}}",
			      list), 0);
	fault(spec);
	free(spec);
	free(list);
}

/* Likewise, and every DEREG fails with 503. The worker is stopped meanwhile,
 * and in-flight requests get time to land: no DEREG slips through. */
static void serve_set_failing_deregs(int s)
{
	if (FX.h.pid > 0) {
		cr_assert_eq(kill(FX.h.pid, SIGSTOP), 0);
		dp_sleep_ms(300);
	}
	cr_assert_eq(fx_admin(&FX, "DELETE", "/_admin/faults", NULL), 200);
	fault("{\"path_prefix\":\"" DEREG_PATH "\",\"status\":503,\"count\":-1}");
	serve_set(s);
	if (FX.h.pid > 0)
		cr_assert_eq(kill(FX.h.pid, SIGCONT), 0);
}

/* Online rows of WS on the server that the worker's last REPORT lacks;
 * *online gets how many rows are online. */
static int online_not_reported(int *online)
{
	cJSON *st = fp_state(&FX.fp);
	cr_assert_not_null(st);
	int missing = 0;
	*online = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		const char *ws = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		if (ws == NULL || strcmp(ws, WS) != 0 || status == NULL || strcmp(status, "online"))
			continue;
		(*online)++;
		missing += !wh_report_has(&FX.h, id);
	}
	cJSON_Delete(st);
	return missing;
}

/* Set 1 registered, then set 2 replaces it while its DEREG fails: the
 * report holds the built-in, set 2 and the pending set 1 (1023 ids). A
 * switch to set 3 would leave 1534 ids to report: the REG waits until the
 * DEREG of set 1 works, and every online row is always in the report. */
Test(limits_worker, registration_waits_rather_than_create_ids_its_report_cannot_hold)
{
	start_plane_with_sets();
	serve_set_failing_deregs(1);
	struct wh_opts o = { .builtins = &FX_CLAUDE, .n_builtins = 1,
			     .heartbeat_ms = 600000, .profile_sync_ms = 200 };
	fx_start_worker_opts(&FX, o);
	cr_assert(wh_wait_report_n(&FX.h, MC_MAX_RUNTIMES, 60000),
		  "set 1 was not registered (report of %zu ids)", FX.h.report.n);

	serve_set_failing_deregs(2);
	cr_assert(wh_wait_report_n(&FX.h, 2 * MC_MAX_RUNTIMES - 1, 60000),
		  "set 2 was not registered beside the pending set 1 (report of %zu ids)",
		  FX.h.report.n);
	int online;
	cr_assert_eq(online_not_reported(&online), 0);
	cr_assert_eq(online, 2 * MC_MAX_RUNTIMES - 1, "%d online: the built-in, set 2 and set 1 "
		     "(its DEREG fails) should be", online);
	char first2[DP_ID_LEN + 1];
	profile_id(2, 0, first2);
	char *rt2 = fx_runtime_of(&FX, first2);
	cr_assert_not_null(rt2);

	serve_set_failing_deregs(3);
	double seq = fx_last_seq(&FX);
	wh_pump(&FX.h, 4000);
	cr_expect_eq(fx_jcount(&FX, "POST", REG_PATH, FX_ANY_STATUS, seq, NULL), 0,
		     "a REG was sent that the report could not cover");
	int missing = online_not_reported(&online);
	cr_assert_eq(missing, 0, "%d of %d online rows are not in the report (%zu ids): a dead "
		     "worker would leave them online", missing, online, FX.h.report.n);
	cr_assert_eq(FX.h.report.n, 2 * MC_MAX_RUNTIMES - 1);
	cr_assert(!FX.h.exited && !FX.h.violation, "the worker must keep running");

	/* The server takes DEREGs again: set 1 goes, set 3 comes, set 2 goes. */
	cr_assert_eq(fx_jcount(&FX, "POST", DEREG_PATH, 200, -1, NULL), 0,
		     "a DEREG slipped through a switch: the scenario did not happen");
	char first3[DP_ID_LEN + 1];
	profile_id(3, 0, first3);
	cr_assert_eq(fx_admin(&FX, "DELETE", "/_admin/faults", NULL), 200);
	serve_set(3);
	cr_assert(fx_wait_jcount(&FX, "POST", REG_PATH, 200, seq, first3, 1, 60000),
		  "set 3 was never registered once the DEREG worked");
	cr_assert(wh_wait_report_without(&FX.h, rt2, MC_MAX_RUNTIMES, 60000),
		  "the report did not come down to the built-in and set 3 (%zu ids)", FX.h.report.n);
	free(rt2);
	cr_assert_eq(online_not_reported(&online), 0);
	cr_assert_eq(online, MC_MAX_RUNTIMES);
	char *rt3 = fx_runtime_of(&FX, first3);
	cr_assert_not_null(rt3);
	cr_assert(wh_report_has(&FX.h, rt3));
	free(rt3);
}

