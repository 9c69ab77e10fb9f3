/* The supervisor's built-in probes, against the whole daemon (build's
 * multicad) and multica-fakeplane: what the emulator shows while the
 * provider CLIs are slow, hang, fail, move or change in [providers].
 *
 * The fake CLIs are shell scripts in the daemon's PATH dir that print a
 * version of their own; marker files in the test dir make them slow
 * (DIR/slow: 3 s), hang once (DIR/NAME.hang-once), fail once
 * (DIR/NAME.fail-once) or fail for good (DIR/NAME.broken). Each finished
 * --version appends a line to DIR/NAME.done, so a test can tell when a
 * round has run. Conventions as in test_supervisor.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#define READY_MS 15000
#define V_CLAUDE "claude-1.0.0"
#define V_CODEX "codex-9.0.0"
#define BOTH "claude = claude\ncodex = codex\n"
#define REG_PATH "/api/daemon/register"
#define DEREG_PATH "/api/daemon/deregister"

static char *LIST;   /* workspaces 1..n of start_plane (the fixture's) */

static pid_t pid_file(const char *name);

/* A hung fake CLI the daemon failed to kill is not left behind by a failed
 * test (it runs in a process group of its own, out of dp_free's reach). */
static void kill_hung_cli(const char *file)
{
	pid_t pid = D.dir[0] ? pid_file(file) : 0;
	char title[256];
	if (pid > 0 && dp_pid_alive(pid) && dp_proc_title(pid, title, sizeof title) == 0 &&
	    (strstr(title, "sleep") != NULL || strstr(title, D.cli_dir) != NULL))
		kill(pid, SIGKILL);
}

static void suite_fini(void)
{
	kill_hung_cli("claude.hang-child.pid");
	kill_hung_cli("claude.hang.pid");
	dfx_fini();
}

TestSuite(sv_probes, .timeout = 120, .fini = suite_fini);

#ifdef MC_TEST_HOOKS
#define NEED_HOOKS() ((void)0)
#else
#define NEED_HOOKS() cr_skip_test("needs a build configured with -DMC_TEST_HOOKS=ON")
#endif

/* ---- fixture (tests/support/daemon_fixture.h) ---- */

static void start_plane(int n_ws)
{
	dfx_start_plane(n_ws, NULL, NULL, NULL);
	LIST = dfx_ws_list(1, n_ws);
}

/* A fake CLI printing version, obeying the marker files (see the top). */
static void write_cli(const char *name, const char *version)
{
	char path[512], tmp[520], m[400];
	snprintf(path, sizeof path, "%s/%s", D.cli_dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	snprintf(m, sizeof m, "%s/%s", D.dir, name);
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"#!/bin/sh\n"
		"m='%s'\n"
		"if [ -e \"$m.hang-once\" ]; then\n"
		"  rm -f \"$m.hang-once\"; echo $$ > \"$m.hang.pid\"\n"
		"  sleep 120 & echo $! > \"$m.hang-child.pid\"; wait\n"
		"fi\n"
		"if [ -e \"$m.fail-once\" ]; then rm -f \"$m.fail-once\"; exit 1; fi\n"
		"if [ -e \"$m.broken\" ]; then exit 1; fi\n"
		"if [ -e '%s/slow' ]; then sleep 3; fi\n"
		"echo '%s'\n"
		"echo x >> \"$m.done\"\n",
		m, D.dir, version);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(tmp, 0755), 0);
	cr_assert_eq(rename(tmp, path), 0); /* atomic: a probe never runs half a script */
}

static void marker(const char *name, bool on)
{
	char path[400];
	snprintf(path, sizeof path, "%s/%s", D.dir, name);
	if (!on) {
		cr_assert(unlink(path) == 0 || errno == ENOENT);
		return;
	}
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
}

/* Lines in DIR/name.done: finished --version runs of that CLI. */
static int done_count(const char *name)
{
	char path[400], line[16];
	snprintf(path, sizeof path, "%s/%s.done", D.dir, name);
	FILE *f = fopen(path, "r");
	int n = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		n++;
	fclose(f);
	return n;
}

static pid_t pid_file(const char *name)
{
	char path[400], buf[32] = "";
	snprintf(path, sizeof path, "%s/%s", D.dir, name);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	char *end;
	long v = strtol(buf, &end, 10);
	return end != buf && v > 0 ? (pid_t)v : 0;
}

/* Writes the config (providers as given) and the fake CLIs. */
static void prepare_daemon(struct dp_config *c, const char *providers, bool with_codex)
{
	const char *none[] = { NULL };
	c->workspaces = LIST;
	c->providers = providers;
	dfx_prepare_daemon(c, none);
	write_cli("claude", V_CLAUDE);
	if (with_codex)
		write_cli("codex", V_CODEX);
}

/* prepare_daemon, and the daemon started. */
static void start_daemon(struct dp_config *c, const char *providers, bool with_codex)
{
	prepare_daemon(c, providers, with_codex);
	cr_assert_eq(dp_start(&D), 0);
}

/* The emulator's built-in row of ws for provider. */
struct row {
	bool found, online;
	char id[DP_ID_LEN + 1];
	char version[64];
	char name[128];
};

static struct row row_of(int ws, const char *provider)
{
	struct row r = { 0 };
	cJSON *s = fp_state(&FP);
	if (s == NULL)
		return r;
	const cJSON *rt;
	cJSON_ArrayForEach(rt, cJSON_GetObjectItem(s, "runtimes")) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "workspace_id"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "provider"));
		const char *prof = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "profile_id"));
		if (w == NULL || p == NULL || strcmp(w, WS[ws]) != 0 || strcmp(p, provider) != 0 ||
		    (prof != NULL && prof[0] != '\0'))
			continue;
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "status"));
		const char *v = cJSON_GetStringValue(
			cJSON_GetObjectItem(cJSON_GetObjectItem(rt, "metadata"), "version"));
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "name"));
		r.found = true;
		r.online = st != NULL && strcmp(st, "online") == 0;
		snprintf(r.id, sizeof r.id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(rt, "id")));
		snprintf(r.version, sizeof r.version, "%s", v ? v : "");
		snprintf(r.name, sizeof r.name, "%s", name ? name : "");
		break;
	}
	cJSON_Delete(s);
	return r;
}

/* ws's row of provider is online, carrying version and a name starting
 * with display. */
static bool row_right(int ws, const char *provider, const char *display, const char *version)
{
	struct row r = row_of(ws, provider);
	return r.found && r.online && strcmp(r.version, version) == 0 &&
	       strncmp(r.name, display, strlen(display)) == 0;
}

static bool both_right(int n_ws)
{
	for (int i = 1; i <= n_ws; i++)
		if (!row_right(i, "claude", "Claude", V_CLAUDE) ||
		    !row_right(i, "codex", "Codex", V_CODEX))
			return false;
	return true;
}

static bool online(int ws, const char *provider)
{
	struct row r = row_of(ws, provider);
	return r.found && r.online;
}

static bool offline(int ws, const char *provider)
{
	struct row r = row_of(ws, provider);
	return r.found && !r.online;
}

static int reloads(void)
{
	return dp_log_count(&D, "configuration reloaded", NULL, NULL, NULL);
}

/* Reload with c and wait until the supervisor has applied it. */
static void reload_and_wait(struct dp_config *c)
{
	int before = reloads();
	cr_assert_eq(dp_reload(&D, c), 0);
	cr_assert(DP_WAIT(reloads() > before, 5000), "the reload was not applied");
}

/* A reload that starts a round the CLIs make slow (3 s), then the given
 * providers while that round runs. Returns when a round has finished
 * after the second reload (a done line of `name`). */
static void reload_during_slow_round(struct dp_config *c, const char *providers,
				     const char *name)
{
	marker("slow", true);
	reload_and_wait(c); /* the same configuration: a slow round starts */
	int done = done_count(name);
	c->providers = providers;
	reload_and_wait(c);
	cr_assert(DP_WAIT(done_count(name) > done, 20000), "no probe round finished");
	marker("slow", false);
}

/* ---- 1: a reload during a round ---- */

Test(sv_probes, reordered_providers_during_a_slow_round_keep_their_own_versions)
{
	start_plane(2);
	struct dp_config c = { 0 };
	start_daemon(&c, BOTH, true);
	cr_assert(DP_WAIT(both_right(2), READY_MS), "the built-ins did not come up");
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);

	reload_during_slow_round(&c, "codex = codex\nclaude = claude\n", "claude");
	/* The workers had 1 s of jitter to re-register a changed set; a mixed
	 * up one would show here. */
	int64_t until = dp_now_ms() + 4000;
	while (dp_now_ms() < until) {
		cr_assert(both_right(2),
			  "a row carries another provider's version: claude %s, codex %s",
			  row_of(1, "claude").version, row_of(1, "codex").version);
		dp_sleep_ms(100);
	}
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2);
}

Test(sv_probes, removing_a_provider_during_a_slow_round_breaks_no_worker)
{
	start_plane(2);
	struct dp_config c = { 0 };
	start_daemon(&c, BOTH, true);
	cr_assert(DP_WAIT(both_right(2), READY_MS), "the built-ins did not come up");
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);

	reload_during_slow_round(&c, "codex = codex\n", "codex");
	cr_assert(DP_WAIT(offline(1, "claude") && offline(2, "claude"), 8000),
		  "the removed provider's rows are still online");
	dp_sleep_ms(1500);
	for (int i = 1; i <= 2; i++)
		cr_expect(row_right(i, "codex", "Codex", V_CODEX),
			  "workspace %d: the remaining provider's row is wrong (%s)", i,
			  row_of(i, "codex").version);
	cr_expect_eq(dp_log_count(&D, "protocol violation", NULL, NULL, NULL), 0,
		     "a worker refused the supervisor's PROBES");
	cr_expect_eq(dp_worker_pid(&D, WS[1]), p1, "worker 1 was restarted");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "worker 2 was restarted");
}

/* ---- 3: one slow or failing probe ---- */

Test(sv_probes, one_hung_probe_keeps_the_runtime_online_and_leaves_no_process)
{
	/* Test builds shorten the probe timeout to 3 s; others take 10 s. */
	setenv("MC_TEST_PROBE_TIMING", "3000,60000", 1);
	start_plane(2);
	struct dp_config c = { 0 };
	start_daemon(&c, NULL, false);
	cr_assert(DP_WAIT(online(1, "claude") && online(2, "claude"), READY_MS));
	struct row r1 = row_of(1, "claude"), r2 = row_of(2, "claude");
	long seq0 = dp_journal_last_seq(&FP);

	marker("claude.hang-once", true);
	reload_and_wait(&c);
	cr_assert(DP_WAIT(pid_file("claude.hang-child.pid") != 0, 5000), "the probe did not run");
	pid_t leader = pid_file("claude.hang.pid"), child = pid_file("claude.hang-child.pid");
	/* Until the hung probe is killed, and 3 s more (the workers' jitter). */
	int64_t until = dp_now_ms() + 25000;
	int64_t settle = 0;
	while (dp_now_ms() < until && (settle == 0 || dp_now_ms() < settle)) {
		cr_assert(dp_runtime_is(&FP, r1.id, "online") && dp_runtime_is(&FP, r2.id, "online"),
			  "a claude row went offline while its CLI hung once");
		if (settle == 0 && !dp_pid_alive(leader))
			settle = dp_now_ms() + 3000;
		dp_sleep_ms(100);
	}
	cr_assert_neq(settle, 0, "the hung probe was never killed");
	cr_expect_eq(dp_journal_match(&FP, seq0, "POST", DEREG_PATH, NULL, 0), 0,
		     "a DEREG went out for a CLI that hung once");
	cr_expect(dp_log_has(&D, "keeping the last known version", "claude", NULL, NULL));
	cr_expect_not(dp_pid_alive(child), "the hung probe's child %d outlived the probe",
		      (int)child);
}

Test(sv_probes, a_fast_failure_is_retried_within_the_first_round)
{
	start_plane(2);
	struct dp_config c = { 0 };
	prepare_daemon(&c, NULL, false);
	marker("claude.fail-once", true);
	cr_assert_eq(dp_start(&D), 0);
	cr_assert(DP_WAIT(row_right(1, "claude", "Claude", V_CLAUDE) &&
			  row_right(2, "claude", "Claude", V_CLAUDE), READY_MS),
		  "claude is not online after one failed --version");
	cr_expect(dp_log_has(&D, "version probe failed; retrying", "claude", NULL, NULL));
}

Test(sv_probes, a_provider_failing_three_rounds_in_a_row_goes_offline)
{
	NEED_HOOKS();
	setenv("MC_TEST_PROBE_TIMING", "2000,1500", 1); /* failed rounds 1.5 s apart */
	start_plane(2);
	struct dp_config c = { 0 };
	start_daemon(&c, BOTH, true);
	cr_assert(DP_WAIT(both_right(2), READY_MS), "the built-ins did not come up");

	marker("claude.broken", true);
	reload_and_wait(&c);
	/* Two failed rounds (no reload for the second: it comes sooner): the
	 * last known version stays registered. */
	int64_t until = dp_now_ms() + 20000;
	while (dp_log_count(&D, "keeping the last known version", "claude", NULL, NULL) < 2 &&
	       dp_now_ms() < until) {
		cr_assert(online(1, "claude") && online(2, "claude"),
			  "claude went offline before its third failed round");
		dp_sleep_ms(100);
	}
	cr_assert_geq(dp_log_count(&D, "keeping the last known version", "claude", NULL, NULL), 2,
		      "no second failed round within 20 s");
	/* The third takes it offline; codex is untouched. */
	cr_assert(DP_WAIT(offline(1, "claude") && offline(2, "claude"), 10000),
		  "claude still online after three failed rounds");
	cr_expect(dp_log_has(&D, "too many rounds", "claude", NULL, NULL));
	cr_expect(online(1, "codex") && online(2, "codex"));
}

Test(sv_probes, a_cli_gone_from_path_is_dropped_at_once)
{
	start_plane(2);
	struct dp_config c = { 0 };
	start_daemon(&c, BOTH, true);
	cr_assert(DP_WAIT(both_right(2), READY_MS), "the built-ins did not come up");
	char path[512];
	snprintf(path, sizeof path, "%s/codex", D.cli_dir);
	cr_assert_eq(unlink(path), 0);
	reload_and_wait(&c);
	cr_assert(DP_WAIT(offline(1, "codex") && offline(2, "codex"), 8000),
		  "an uninstalled CLI stayed online");
	cr_expect(online(1, "claude") && online(2, "claude"));
}

/* ---- 3: the workers do not re-register at the same instant ---- */

Test(sv_probes, a_changed_set_reregisters_the_workers_spread_out)
{
	enum { N = 8 };
	start_plane(N);
	struct dp_config c = { .profile_sync_interval = "5s" };
	start_daemon(&c, BOTH, false); /* codex not installed yet */
	for (int i = 1; i <= N; i++)
		cr_assert(DP_WAIT(online(i, "claude"), READY_MS), "workspace %d not up", i);
	dp_sleep_ms(500);
	long seq0 = dp_journal_last_seq(&FP);
	write_cli("codex", V_CODEX);
	int64_t t0 = dp_wall_ms();
	reload_and_wait(&c);
	for (int i = 1; i <= N; i++)
		cr_assert(DP_WAIT(online(i, "codex"), 15000), "workspace %d has no codex row", i);

	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	int64_t first = 0, last = 0;
	for (int i = 1; i <= N; i++) {
		int64_t at = 0;
		for (size_t k = 0; k < j.n && at == 0; k++)
			if (j.v[k].seq > seq0 && strcmp(j.v[k].method, "POST") == 0 &&
			    strcmp(j.v[k].path, REG_PATH) == 0 && strstr(j.v[k].body, WS[i]) != NULL)
				at = j.v[k].time_ms;
		cr_assert_neq(at, 0, "no REG of workspace %d after the change", i);
		first = first == 0 || at < first ? at : first;
		last = at > last ? at : last;
	}
	dp_journal_free(&j);
	/* Uniform delays in [0, 5 s) for 8 workers: a spread under 1 s has a
	 * probability below 1e-4. Without jitter they land within ms. */
	cr_expect_geq(last - first, 1000, "8 workers re-registered within %lld ms of each other",
		      (long long)(last - first));
	cr_expect_leq(last - t0, 5000 + 6000, "a re-registration came %lld ms after the reload",
		      (long long)(last - t0));
}
