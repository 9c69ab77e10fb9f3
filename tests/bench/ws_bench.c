/* ws_bench: the websocket figures of issue 14 against the whole daemon
 * (the build's multicad) and multica-fakeplane's socket on loopback, with
 * the fake claude CLI as the agent. Figures, goals and method are in
 * tests/bench/README.md ("Websocket push"):
 *
 *   [1] profile change -> REG at the server, socket up (polls at 1h)
 *   [2] profile change -> REG, the upgrade answered 404 (drift poll 2 s)
 *   [3] task queued -> agent process started, socket up (claim poll 1h)
 *   [4] reconnect at 1000 workspaces: sockets, and the profile checks of
 *       the reconnect's reconcile spread over time (peak per second)
 *
 * Clocks: everything is the emulator's CLOCK_REALTIME in whole ms: the
 * profile's updated_at in the PATCH's reply (when the change was made),
 * the task's created_at, the journal's time of a request (when it was
 * answered); the fake agent writes its own CLOCK_REALTIME at the top of
 * main (FAKE_AGENT_TIMES). Lines starting with SUMMARY repeat the figures;
 * the exit status is 0 when every phase ran (goals are targets, not
 * asserts). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/bench/sv_extra.h"
#include "tests/bench/tb_util.h"

#define PROF "a0000000-0000-4000-8000-000000000001"
#define REG_PATH "/api/daemon/register"
#define UPGRADE_PATH "/api/daemon/ws"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static bool nap(long ms)
{
	if (!interrupted)
		dp_sleep_ms(ms);
	return !interrupted;
}

static const char *verdict(bool ok)
{
	return ok ? "OK" : "MISSED";
}

struct opts {
	int samples, down_samples, tasks, n_big;
	bool skip[5];
	const char *csv_dir;
};

/* One emulator and one daemon serving workspaces 1..n_ws (the claude
 * built-in = the fake claude), with profile PROF in workspace 1. */
struct rig {
	struct tb_emu emu;
	struct dp d;
	bool d_ready;
	int n_ws;
	char *ws_list;
	char extra[512], providers[600];
	char rid[DP_ID_LEN + 1];    /* workspace 1's claude row */
};

/* The daemon's lines about its socket going away (why it was redialled),
 * the first few printed: a figure with a reconnect in it says so. */
static void print_ws_losses(struct rig *r)
{
	if (!r->d_ready)
		return;
	char *log = dp_log_read(&r->d);
	int n = 0;
	for (char *line = log, *nl; line != NULL && *line != '\0'; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strstr(line, "msg=\"websocket lost") == NULL &&
		    strstr(line, "msg=\"websocket protocol") == NULL)
			continue;
		if (n++ < 5)
			printf("    daemon: %s\n", line);
	}
	printf("    the daemon lost its socket %d time(s)\n", n);
	free(log);
}

static void rig_free(struct rig *r)
{
	print_ws_losses(r);
	if (r->d_ready)
		dp_free(&r->d);
	r->d_ready = false;
	tb_emu_stop(&r->emu);
	free(r->ws_list);
	r->ws_list = NULL;
}

/* The emulator's socket connections and the runtimes of the first. */
static int ws_conns(struct rig *r, int *n_rt)
{
	cJSON *j = tb_get_json(&r->emu, "/_admin/ws");
	if (j == NULL)
		return -1;
	const cJSON *c = cJSON_GetObjectItem(j, "connections");
	int n = cJSON_GetArraySize(c);
	if (n_rt != NULL)
		*n_rt = n > 0 ? cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0),
								       "runtime_ids"))
			      : 0;
	cJSON_Delete(j);
	return n;
}

/* One connection carrying every online row, within timeout_ms. */
static bool wait_socket(struct rig *r, int timeout_ms)
{
	int64_t until = dp_now_ms() + timeout_ms;
	int n_rt = 0;
	while (dp_now_ms() < until && dp_alive(&r->d) && nap(100))
		if (ws_conns(r, &n_rt) == 1 && n_rt == tb_count_online(&r->emu))
			return true;
	fprintf(stderr, "ws_bench: the socket did not come up with every runtime\n");
	return false;
}

static int rig_start(struct rig *r, int n_ws, const char *sync, const char *poll,
		     const char *ws_fault, int timeout_ms)
{
	memset(r, 0, sizeof *r);
	r->n_ws = n_ws;
	if ((r->ws_list = dp_ws_list(1, n_ws)) == NULL)
		return -1;
	static const char *const args[] = { "--journal-max", "1000000", NULL };
	const char *clis[] = { "claude", "my-claude", NULL };
	if (tb_emu_start(&r->emu, n_ws, args) < 0 || dp_init(&r->d, NULL, clis, "2.1.0") < 0)
		return -1;
	r->d_ready = true;
	char ws1[DP_ID_LEN + 1], prof[512];
	dp_ws_id(1, ws1);
	snprintf(prof, sizeof prof,
		 "{\"id\":\"" PROF "\",\"workspace_id\":\"%s\",\"display_name\":\"S\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"my-claude\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true}", ws1);
	if (tb_http(&r->emu, "POST", "/_admin/profiles", prof, NULL) != 200 ||
	    (ws_fault != NULL && tb_http(&r->emu, "POST", "/_admin/ws/faults", ws_fault, NULL) != 200))
		return -1;
	snprintf(r->extra, sizeof r->extra,
		 "max_concurrent_tasks = 20\ntask_poll_interval = %s\ntask_stop_grace = 1s\n", poll);
	snprintf(r->providers, sizeof r->providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	struct dp_config c = {
		.server_url = r->emu.fp.url, .workspaces = r->ws_list,
		.heartbeat_interval = "15s", .profile_sync_interval = sync,
		.worker_ping_interval = "5s", .worker_liveness_timeout = "20s",
		.restart_backoff_min = "100ms", .restart_backoff_max = "5s",
		.stop_timeout = "15s", .http_timeout = "10s",
		.daemon_extra = r->extra, .providers = r->providers,
	};
	if (dp_write_config(&r->d, &c) < 0 || dp_start(&r->d) < 0)
		return -1;
	int64_t until = dp_now_ms() + timeout_ms;
	while (tb_count_online(&r->emu) < n_ws + 1) {
		if (dp_now_ms() > until || !dp_alive(&r->d) || !nap(100)) {
			fprintf(stderr, "ws_bench: not all %d runtimes online\n", n_ws + 1);
			return -1;
		}
	}
	if (tb_runtime_of(&r->emu, 1, r->rid) < 0)
		return -1;
	if (ws_fault == NULL && !wait_socket(r, timeout_ms))
		return -1;
	nap(1500); /* the reconnect's reconcile is over */
	return 0;
}

/* ---- the journal ---- */

/* Time of the first entry method+path prefix (body containing has: NULL
 * any) answered 200, or -1 (none yet). */
static int64_t j_first_time(struct rig *r, const char *method, const char *prefix,
			    const char *has)
{
	cJSON *j = tb_get_json(&r->emu, "/_admin/journal");
	int64_t t = -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		if (m != NULL && p != NULL && strcmp(m, method) == 0 &&
		    strncmp(p, prefix, strlen(prefix)) == 0 &&
		    (has == NULL || (b != NULL && strstr(b, has) != NULL)) &&
		    cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status")) == 200) {
			t = tb_time_of(e, "time");
			break;
		}
	}
	cJSON_Delete(j);
	return t;
}

static double pct(double *v, int n, double p)
{
	struct tb_stats s = tb_stats_of(v, n); /* sorts v */
	(void)s;
	if (n == 0)
		return 0;
	int k = (int)(p * (double)(n - 1) + 0.5);
	return v[k];
}

/* ---- [1] [2] profile change -> REG ---- */

/* n changes of PROF, one at a time: updated_at of the PATCH's reply ->
 * the REG of workspace 1 in the journal. Latencies into v; how many. */
static int drift_samples(struct rig *r, int n, int wait_ms, bool jitter, double *v)
{
	char ws1[DP_ID_LEN + 1];
	dp_ws_id(1, ws1);
	int k = 0;
	for (int i = 0; i < n && !interrupted; i++) {
		char body[64], *reply = NULL;
		if (tb_http(&r->emu, "DELETE", "/_admin/journal", NULL, NULL) != 200)
			break;
		snprintf(body, sizeof body, "{\"display_name\":\"S%d\"}", i);
		int64_t before = dp_wall_ms();
		if (tb_http(&r->emu, "PATCH", "/_admin/profiles/" PROF, body, &reply) != 200) {
			free(reply);
			break;
		}
		cJSON *p = cJSON_Parse(reply);
		int64_t t0 = tb_time_of(p, "updated_at");
		cJSON_Delete(p);
		free(reply);
		if (t0 < 0)
			t0 = before;
		int64_t t1 = -1, until = dp_now_ms() + wait_ms;
		while ((t1 = j_first_time(r, "POST", REG_PATH, ws1)) < 0 && dp_now_ms() < until &&
		       nap(5))
			;
		if (t1 < 0) {
			fprintf(stderr, "ws_bench: change %d: no REG within %d ms\n", i, wait_ms);
			continue;
		}
		v[k++] = (double)(t1 - t0);
		/* Every REG is a REPORT to the supervisor, which kills a worker
		 * sending more than 10 a second (burst 20): changes come at most
		 * ~6 a second, as no user makes them faster. */
		nap(jitter ? 150 + rand() % 600 : 150);
	}
	return k;
}

static int phase_push_drift(struct rig *r, const struct opts *o)
{
	int n = o->samples;
	printf("\n[1] profile change -> REG, socket up: %d changes one at a time "
	       "(profile_sync_interval 1h, task_poll_interval 1h)\n", n);
	double *v = calloc((size_t)n, sizeof *v);
	if (v == NULL)
		return -1;
	int k = drift_samples(r, n, 5000, false, v);
	struct tb_stats s = tb_stats_of(v, k);
	double p99 = pct(v, k, 0.99);
	printf("    n %d  min %.0f  median %.0f  p95 %.0f  p99 %.0f  max %.0f ms\n", s.n, s.min,
	       s.median, s.p95, p99, s.max);
	printf("SUMMARY push_drift median %.0f ms p99 %.0f ms n %d (goal median < 50, p99 < 200, "
	       "n >= 200): %s\n", s.median, p99, k,
	       verdict(k >= 200 && s.median < 50 && p99 < 200));
	csv_figure(o->csv_dir, k, "ws", "push_drift_median", s.median, "ms");
	csv_figure(o->csv_dir, k, "ws", "push_drift_p99", p99, "ms");
	csv_figure(o->csv_dir, k, "ws", "push_drift_max", s.max, "ms");
	csv_figure(o->csv_dir, k, "ws", "push_drift_n", k, "");
	free(v);
	return k == n ? 0 : -1;
}

static int phase_down_drift(const struct opts *o)
{
	int n = o->down_samples;
	printf("\n[2] profile change -> REG, upgrade answered 404: %d changes at random phases "
	       "of the poll (profile_sync_interval 2s)\n", n);
	struct rig r;
	memset(&r, 0, sizeof r);
	double *v = calloc((size_t)n, sizeof *v);
	int rc = -1, k = 0;
	if (v == NULL || rig_start(&r, 1, "2s", "2s", "{\"refuse\":404}", 30000) < 0)
		goto out;
	k = drift_samples(&r, n, 8000, true, v);
	long refused = 0;
	cJSON *w = tb_get_json(&r.emu, "/_admin/ws");
	refused = (long)cJSON_GetNumberValue(
		cJSON_GetObjectItem(cJSON_GetObjectItem(w, "upgrades"), "404"));
	cJSON_Delete(w);
	struct tb_stats s = tb_stats_of(v, k);
	printf("    n %d  min %.0f  median %.0f  p95 %.0f  max %.0f ms; %ld upgrades refused "
	       "(404) meanwhile\n", s.n, s.min, s.median, s.p95, s.max, refused);
	printf("SUMMARY down_drift median %.0f ms max %.0f ms (goal max <= 2000, one poll "
	       "interval): %s\n", s.median, s.max, verdict(k == n && s.max <= 2000));
	csv_figure(o->csv_dir, k, "ws", "down_drift_median", s.median, "ms");
	csv_figure(o->csv_dir, k, "ws", "down_drift_max", s.max, "ms");
	csv_figure(o->csv_dir, k, "ws", "down_refused", (double)refused, "");
	rc = k == n ? 0 : -1;
out:
	rig_free(&r);
	free(v);
	return rc;
}

/* ---- [3] task queued -> agent started ---- */

static int phase_task(struct rig *r, const struct opts *o)
{
	int n = o->tasks;
	printf("\n[3] task queued -> agent process started, socket up: %d tasks one at a time "
	       "(task_poll_interval 1h)\n", n);
	char times[400], env[600];
	snprintf(times, sizeof times, "%s/times-ws", r->d.dir);
	unlink(times);
	snprintf(env, sizeof env, "\"FAKE_AGENT_TIMES\":\"%s\"", times);
	char (*ids)[TB_TASK_ID_LEN] = calloc((size_t)n, TB_TASK_ID_LEN);
	double *v = calloc((size_t)n, sizeof *v);
	int k = 0, rc = -1;
	if (ids == NULL || v == NULL)
		goto out;
	for (int i = 0; i < n && !interrupted; i++) {
		if (tb_queue(&r->emu, r->rid, env, ids[i]) < 0)
			goto out;
		char st[32] = "";
		int64_t until = dp_now_ms() + 20000;
		while (dp_now_ms() < until && nap(10) &&
		       tb_task_field(&r->emu, ids[i], "status", st, sizeof st) == 0 &&
		       strcmp(st, "completed") != 0 && strcmp(st, "failed") != 0)
			;
		nap(20);
	}
	struct tb_evs ev;
	if (tb_evs_load(times, &ev) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		char path[128];
		snprintf(path, sizeof path, "/_admin/tasks/%s", ids[i]);
		cJSON *t = tb_get_json(&r->emu, path);
		int64_t created = tb_time_of(t, "created_at");
		cJSON_Delete(t);
		const struct tb_ev *ex = tb_evs_find(&ev, "exec", ids[i], NULL);
		if (created > 0 && ex != NULL)
			v[k++] = ex->ms - (double)created;
	}
	tb_evs_free(&ev);
	struct tb_stats s = tb_stats_of(v, k);
	printf("    n %d  min %.1f  median %.1f  p95 %.1f  max %.1f ms\n", s.n, s.min, s.median,
	       s.p95, s.max);
	printf("SUMMARY push_task median %.1f ms p95 %.1f ms (goal median < 100): %s\n", s.median,
	       s.p95, verdict(k > 0 && s.median < 100));
	csv_figure(o->csv_dir, k, "ws", "push_task_median", s.median, "ms");
	csv_figure(o->csv_dir, k, "ws", "push_task_p95", s.p95, "ms");
	rc = k == n ? 0 : -1;
out:
	free(ids);
	free(v);
	return rc;
}

/* ---- [4] reconnect at 1000 workspaces ---- */

static int phase_reconnect(const struct opts *o)
{
	int n = o->n_big;
	printf("\n[4] reconnect at %d workspaces: the socket dropped by the server, then "
	       "the reconcile's profile checks\n", n);
	struct rig r;
	memset(&r, 0, sizeof r);
	int rc = -1;
	int64_t *t = calloc((size_t)n * 4 + 16, sizeof *t);
	if (t == NULL || rig_start(&r, n, "30s", "1h", NULL, 180000) < 0)
		goto out;
	nap(3000);
	if (tb_http(&r.emu, "DELETE", "/_admin/journal", NULL, NULL) != 200 ||
	    tb_http(&r.emu, "POST", "/_admin/ws/drop", "{\"close_frame\":true}", NULL) != 200)
		goto out;
	int64_t t_drop = dp_wall_ms();
	if (!wait_socket(&r, 60000))
		goto out;
	nap(6000); /* 1000 checks at 500/s: 2 s, and margin */
	cJSON *j = tb_get_json(&r.emu, "/_admin/journal");
	int ups = 0, fetches = 0, regs = 0;
	int64_t t_up = -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		if (m == NULL || p == NULL)
			continue;
		if (strncmp(p, UPGRADE_PATH, strlen(UPGRADE_PATH)) == 0) {
			ups++;
			if (t_up < 0)
				t_up = tb_time_of(e, "time");
		} else if (strcmp(m, "GET") == 0 && strstr(p, "/runtime-profiles") != NULL &&
			   fetches < n * 4 + 16) {
			t[fetches++] = tb_time_of(e, "time");
		} else if (strcmp(m, "POST") == 0 && strcmp(p, REG_PATH) == 0) {
			regs++;
		}
	}
	cJSON_Delete(j);
	int n_rt = 0, conns = ws_conns(&r, &n_rt);
	/* sorted for the window count */
	for (int a = 1; a < fetches; a++)
		for (int b = a; b > 0 && t[b - 1] > t[b]; b--) {
			int64_t x = t[b];
			t[b] = t[b - 1];
			t[b - 1] = x;
		}
	int peak = peak_in_window(t, fetches, 1000);
	double spread = fetches > 0 ? (double)(t[fetches - 1] - t[0]) : 0;
	double first = fetches > 0 && t_up > 0 ? (double)(t[0] - t_up) : -1;
	printf("    drop -> upgrade %lld ms; %d upgrade request(s); %d connection(s) now, with "
	       "%d runtimes\n", (long long)(t_up - t_drop), ups, conns, n_rt);
	printf("    %d profile fetches, the first %.0f ms after the upgrade, spread over %.0f ms, "
	       "peak %d in 1 s; %d REGs\n", fetches, first, spread, peak, regs);
	/* "A few hundred": < 600, the supervisor spreading at 500 a second. */
	printf("SUMMARY reconnect_%d upgrades %d connections %d fetches %d peak_1s %d spread %.0f "
	       "ms (goal one socket, peak < 600/s): %s\n", n, ups, conns, fetches, peak, spread,
	       verdict(ups == 1 && conns == 1 && peak < 600));
	csv_figure(o->csv_dir, n, "ws", "reconnect_upgrades", ups, "");
	csv_figure(o->csv_dir, n, "ws", "reconnect_connections", conns, "");
	csv_figure(o->csv_dir, n, "ws", "reconnect_runtimes", n_rt, "");
	csv_figure(o->csv_dir, n, "ws", "reconnect_fetches", fetches, "");
	csv_figure(o->csv_dir, n, "ws", "reconnect_peak_1s", peak, "");
	csv_figure(o->csv_dir, n, "ws", "reconnect_spread", spread, "ms");
	csv_figure(o->csv_dir, n, "ws", "reconnect_drop_to_upgrade", (double)(t_up - t_drop), "ms");
	csv_figure(o->csv_dir, n, "ws", "reconnect_regs", regs, "");
	rc = 0;
out:
	rig_free(&r);
	free(t);
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: ws_bench [--csv DIR] [--samples N] [--down-samples N] "
			"[--tasks N] [--big N] [--skip 1-4]...\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .samples = 200, .down_samples = 20, .tasks = 100, .n_big = 1000 };
	static const struct option lo[] = {
		{ "csv", required_argument, NULL, 'c' },
		{ "samples", required_argument, NULL, 's' },
		{ "down-samples", required_argument, NULL, 'd' },
		{ "tasks", required_argument, NULL, 't' },
		{ "big", required_argument, NULL, 'b' },
		{ "skip", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		long v = optarg != NULL ? strtol(optarg, NULL, 10) : 0;
		switch (ch) {
		case 'c': o.csv_dir = optarg; break;
		case 's': o.samples = (int)v; break;
		case 'd': o.down_samples = (int)v; break;
		case 't': o.tasks = (int)v; break;
		case 'b': o.n_big = (int)v; break;
		case 'k':
			if (v >= 1 && v <= 4)
				o.skip[v] = true;
			break;
		default: usage(); return 2;
		}
	}
	if (o.samples < 1 || o.down_samples < 1 || o.tasks < 1 || o.n_big < 1 ||
	    o.n_big > 2000) {
		usage();
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	fp_raise_nofile(65536);
	srand((unsigned)getpid());
	int bad = 0;
	if (!o.skip[1] || !o.skip[3]) {
		struct rig r;
		printf("ws_bench: one workspace, socket up, both polls 1h\n");
		if (rig_start(&r, 1, "1h", "1h", NULL, 30000) < 0) {
			bad++;
		} else {
			if (!o.skip[1])
				bad += phase_push_drift(&r, &o) < 0;
			if (!o.skip[3])
				bad += phase_task(&r, &o) < 0;
		}
		rig_free(&r);
	}
	if (!o.skip[2])
		bad += phase_down_drift(&o) < 0;
	if (!o.skip[4])
		bad += phase_reconnect(&o) < 0;
	printf("\nws_bench: %s\n", bad ? "some phases did not finish cleanly" : "done");
	return bad ? 1 : 0;
}
