/* task_bench: the task figures of issue 10 against the whole daemon (the
 * build's multicad: supervisor, link, workers) and multica-fakeplane on
 * loopback, with the fake claude CLI (tests/agents/fake_claude.c) as the
 * agent. Each figure, its goal and how it is measured are in
 * tests/bench/README.md ("Tasks"):
 *
 *   [1] task claimed -> agent process exec'd
 *   [2] agent's result line written -> /complete answered
 *   [3] 1000 trivial tasks at max_concurrent_tasks = 20: tasks/s, each task
 *       claimed, started and completed exactly once
 *   [4] 20 agents printing 200 lines/s: the workers' CPU, the message
 *       batches' spacing, every line at the emulator
 *   [5] the worker's memory per running task
 *   [6] claim requests of an idle host with 1000 workspaces
 *
 * Clocks: the emulator's call log and journal are CLOCK_REALTIME in whole
 * ms (when it answered); the fake agent writes its own CLOCK_REALTIME
 * (FAKE_AGENT_TIMES: "exec" first thing in main, "result" just before the
 * result line); the daemon's log ts= is CLOCK_REALTIME in whole ms. All on
 * this host. Lines starting with SUMMARY repeat the figures; the exit
 * status is 0 when every phase ran (the goals are targets, not asserts). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/bench/sv_extra.h"
#include "tests/bench/smaps.h"
#include "tests/bench/tb_bench.h"

volatile sig_atomic_t tb_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	tb_interrupted = 1;
}

bool tb_nap(long ms)
{
	if (!tb_interrupted)
		dp_sleep_ms(ms);
	return !tb_interrupted;
}

static const char *verdict(bool ok)
{
	return ok ? "OK" : "MISSED";
}

/* ---- the rig ---- */

static void rig_free(struct tb_rig *r)
{
	if (r->d_ready)
		dp_free(&r->d); /* kills and reaps what is left, removes the temp dir */
	r->d_ready = false;
	tb_emu_stop(&r->emu);
	free(r->ws_list);
	free(r->rid);
	r->ws_list = NULL;
	r->rid = NULL;
}

/* The emulator, the daemon started, every workspace's row online. */
static int rig_start(struct tb_rig *r, int n_ws, const char *poll, int timeout_ms)
{
	memset(r, 0, sizeof *r);
	r->n_ws = n_ws;
	if ((r->rid = calloc((size_t)n_ws + 1, sizeof *r->rid)) == NULL ||
	    (r->ws_list = dp_ws_list(1, n_ws)) == NULL)
		return -1;
	static const char *const args[] = { "--journal-max", "1000000", NULL };
	if (tb_emu_start(&r->emu, n_ws, args) < 0 || dp_init(&r->d, NULL, NULL, "2.1.0") < 0)
		return -1;
	r->d_ready = true;
	snprintf(r->extra, sizeof r->extra,
		 "max_concurrent_tasks = 20\ntask_poll_interval = %s\ntask_stop_grace = 1s\n", poll);
	snprintf(r->providers, sizeof r->providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	struct dp_config c = {
		.server_url = r->emu.fp.url, .workspaces = r->ws_list,
		.heartbeat_interval = "15s", .profile_sync_interval = "30s",
		.worker_ping_interval = "5s", .worker_liveness_timeout = "20s",
		.restart_backoff_min = "100ms", .restart_backoff_max = "5s",
		.stop_timeout = "15s", .http_timeout = "10s",
		.daemon_extra = r->extra, .providers = r->providers,
	};
	if (dp_write_config(&r->d, &c) < 0 || dp_start(&r->d) < 0)
		return -1;
	int64_t until = dp_now_ms() + timeout_ms;
	while (tb_count_online(&r->emu) < n_ws) {
		if (dp_now_ms() > until || !dp_alive(&r->d) || !tb_nap(100)) {
			fprintf(stderr, "task_bench: not all %d runtimes online\n", n_ws);
			return -1;
		}
	}
	for (int i = 1; i <= n_ws; i++)
		if (tb_runtime_of(&r->emu, i, r->rid[i]) < 0)
			return -1;
	return 0;
}

pid_t tb_worker_of(const struct tb_rig *r, int i)
{
	char ws[DP_ID_LEN + 1];
	dp_ws_id(i, ws);
	return dp_worker_pid(&r->d, ws);
}

long long tb_workers_ticks(const struct tb_rig *r)
{
	long long sum = 0;
	for (int i = 1; i <= r->n_ws; i++) {
		pid_t p = tb_worker_of(r, i);
		long long t = p > 0 ? proc_cpu_ticks(p) : -1;
		if (t < 0)
			return -1;
		sum += t;
	}
	return sum;
}

void tb_times_path(const struct tb_rig *r, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/times-%s", r->d.dir, name);
	unlink(out);
}

static bool terminal(const char *s)
{
	return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
	       strcmp(s, "cancelled") == 0;
}

int tb_wait_terminal(struct tb_rig *r, char (*ids)[TB_TASK_ID_LEN], int n, int timeout_ms)
{
	int64_t until = dp_now_ms() + timeout_ms;
	int left = n, from = 0;
	while (from < n) {
		char st[32];
		if (tb_task_field(&r->emu, ids[from], "status", st, sizeof st) == 0 && terminal(st)) {
			from++;
			left--;
			continue;
		}
		if (dp_now_ms() > until || !dp_alive(&r->d) || !tb_nap(from + 1 < n ? 50 : 5))
			break;
	}
	return left;
}

/* ---- [1] [2] latency, one task at a time ---- */

/* The time of the first call op in the task's call log, or -1. */
static int64_t call_time(const cJSON *task, const char *op)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(task, "calls")) {
		const char *o = cJSON_GetStringValue(cJSON_GetObjectItem(c, "op"));
		if (o != NULL && strcmp(o, op) == 0)
			return tb_time_of(c, "time");
	}
	return -1;
}

static void print_stats(const char *label, double *v, int n, const char *unit)
{
	struct tb_stats s = tb_stats_of(v, n);
	printf("    %-44s %s: n %d  min %.1f  median %.1f  p95 %.1f  max %.1f  mean %.1f\n", label,
	       unit, s.n, s.min, s.median, s.p95, s.max, s.mean);
}

struct latv {
	double c2e[1000], r2c[1000], c2acc[1000], acc2st[1000], st2e[1000], c2start[1000];
	int n, nlog;
};

/* One finished task's latencies into v; false when a clock is missing. */
static bool one_latency(struct tb_rig *r, const char *id, const struct tb_evs *ev,
			const char *log, struct latv *v)
{
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	cJSON *t = tb_get_json(&r->emu, path);
	const struct tb_ev *ex = tb_evs_find(ev, "exec", id, NULL);
	const struct tb_ev *res = tb_evs_find(ev, "result", id, NULL);
	int64_t claim = call_time(t, "claim"), done = call_time(t, "complete");
	int64_t start = call_time(t, "start");
	cJSON_Delete(t);
	if (claim < 0 || done < 0 || ex == NULL || res == NULL)
		return false;
	v->c2e[v->n] = ex->ms - (double)claim;
	v->r2c[v->n] = (double)done - res->ms;
	v->c2start[v->n] = (double)(start - claim);
	int64_t acc = tb_log_ts(log, "task accepted", id), st = tb_log_ts(log, "agent started", id);
	if (acc > 0 && st > 0) {
		v->c2acc[v->nlog] = (double)(acc - claim);
		v->acc2st[v->nlog] = (double)(st - acc);
		v->st2e[v->nlog] = ex->ms - (double)st;
		v->nlog++;
	}
	v->n++;
	return true;
}

static void print_calls(struct tb_rig *r, const char *id)
{
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	cJSON *t = tb_get_json(&r->emu, path);
	int64_t claim = call_time(t, "claim");
	const cJSON *c;
	printf("    calls of the last task (ms after its claim):");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(t, "calls")) {
		const char *o = cJSON_GetStringValue(cJSON_GetObjectItem(c, "op"));
		printf(" %s +%lld", o ? o : "?", (long long)(tb_time_of(c, "time") - claim));
	}
	printf("\n");
	cJSON_Delete(t);
}

static int phase_latency(struct tb_rig *r, const struct tb_opts *o)
{
	int k = o->lat_tasks < 1000 ? o->lat_tasks : 1000;
	printf("\n[1][2] latency: %d text tasks one at a time on workspace 1 (task_poll_interval %s)\n",
	       k, o->poll);
	char times[400], env[600], (*ids)[TB_TASK_ID_LEN] = calloc((size_t)k, TB_TASK_ID_LEN);
	struct latv *v = calloc(1, sizeof *v);
	int rc = -1;
	tb_times_path(r, "latency", times, sizeof times);
	snprintf(env, sizeof env, "\"FAKE_AGENT_TIMES\":\"%s\"", times);
	if (ids == NULL || v == NULL)
		goto out;
	for (int i = 0; i < k; i++) {
		if (tb_queue(&r->emu, r->rid[1], env, ids[i]) < 0 ||
		    tb_wait_terminal(r, ids + i, 1, 30000) != 0) {
			fprintf(stderr, "task_bench: [1] task %d did not end\n", i);
			goto out;
		}
		tb_nap(20);
	}
	struct tb_evs ev;
	if (tb_evs_load(times, &ev) < 0)
		goto out;
	char *log = dp_log_read(&r->d);
	for (int i = 0; i < k; i++)
		if (!one_latency(r, ids[i], &ev, log ? log : "", v))
			fprintf(stderr, "task_bench: [1] task %s: a timestamp is missing\n", ids[i]);
	free(log);
	tb_evs_free(&ev);
	print_calls(r, ids[k - 1]);
	struct tb_stats c2e = tb_stats_of(v->c2e, v->n), r2c = tb_stats_of(v->r2c, v->n);
	print_stats("[1] claim answered -> agent exec'd", v->c2e, v->n, "ms");
	print_stats("    claim answered -> /start answered", v->c2start, v->n, "ms");
	print_stats("    claim -> worker's \"task accepted\" log", v->c2acc, v->nlog, "ms");
	print_stats("    \"task accepted\" -> \"agent started\" log", v->acc2st, v->nlog, "ms");
	print_stats("    \"agent started\" log -> agent's main()", v->st2e, v->nlog, "ms");
	print_stats("[2] result line written -> /complete answered", v->r2c, v->n, "ms");
	printf("SUMMARY claim_to_exec median %.1f ms p95 %.1f ms (goal median < 20): %s\n",
	       c2e.median, c2e.p95, verdict(c2e.n > 0 && c2e.median < 20));
	printf("SUMMARY result_to_complete median %.1f ms p95 %.1f ms (goal median < 10): %s\n",
	       r2c.median, r2c.p95, verdict(r2c.n > 0 && r2c.median < 10));
	csv_figure(o->csv_dir, v->n, "tasks", "claim_to_exec_median", c2e.median, "ms");
	csv_figure(o->csv_dir, v->n, "tasks", "claim_to_exec_p95", c2e.p95, "ms");
	csv_figure(o->csv_dir, v->n, "tasks", "result_to_complete_median", r2c.median, "ms");
	csv_figure(o->csv_dir, v->n, "tasks", "result_to_complete_p95", r2c.p95, "ms");
	rc = v->n == k ? 0 : -1;
out:
	free(ids);
	free(v);
	return rc;
}

/* ---- [5] memory per running task ---- */

static void print_rollup(const char *label, const struct rollup *u)
{
	printf("    %-30s Rss %6ld  Pss %6ld  Private_Dirty %6ld  Anonymous %6ld kB\n", label,
	       u->rss, u->pss, u->private_dirty, u->anon);
}

static bool agents_gone(const struct tb_evs *ev)
{
	for (int i = 0; i < ev->n; i++)
		if (dp_pid_alive(ev->v[i].pid))
			return false;
	return true;
}

static int phase_memory(struct tb_rig *r, const struct tb_opts *o)
{
	int n = o->mem_tasks < 1000 ? o->mem_tasks : 1000;
	pid_t w = tb_worker_of(r, 1);
	printf("\n[5] memory: workspace 1's worker (pid %d), idle, then %d hanging agents running\n",
	       (int)w, n);
	char times[400], env[600], (*ids)[TB_TASK_ID_LEN] = calloc((size_t)n, TB_TASK_ID_LEN);
	struct rollup idle, busy, after;
	int rc = -1;
	tb_times_path(r, "memory", times, sizeof times);
	snprintf(env, sizeof env, "\"FAKE_AGENT_MODE\":\"hang\",\"FAKE_AGENT_TIMES\":\"%s\"", times);
	tb_nap(1000);
	if (ids == NULL || w <= 0 || read_rollup(w, &idle) < 0)
		goto out;
	for (int i = 0; i < n; i++)
		if (tb_queue(&r->emu, r->rid[1], env, ids[i]) < 0)
			goto out;
	int64_t until = dp_now_ms() + 60000;
	while (tb_evs_count(times, "exec") < n)
		if (dp_now_ms() > until || !tb_nap(50)) {
			fprintf(stderr, "task_bench: [5] only %d of %d agents started\n",
				tb_evs_count(times, "exec"), n);
			goto out;
		}
	tb_nap(1500); /* their init lines flushed, the status polls begun */
	if (read_rollup(w, &busy) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		char path[128];
		snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", ids[i]);
		tb_http(&r->emu, "POST", path, "{}", NULL);
	}
	struct tb_evs ev;
	if (tb_evs_load(times, &ev) < 0)
		goto out;
	until = dp_now_ms() + 30000;
	while (!agents_gone(&ev) && dp_now_ms() < until && tb_nap(100))
		;
	bool gone = agents_gone(&ev);
	tb_evs_free(&ev);
	tb_wait_terminal(r, ids, n, 20000);
	tb_nap(1000);
	if (read_rollup(w, &after) < 0)
		goto out;
	print_rollup("idle (after [1])", &idle);
	print_rollup("with the agents running", &busy);
	print_rollup("after they were cancelled", &after);
	double pss = (double)(busy.pss - idle.pss) / n, pd = (double)(busy.private_dirty -
								    idle.private_dirty) / n;
	double rss = (double)(busy.rss - idle.rss) / n;
	printf("    per running task: Pss %.1f KiB, Private_Dirty %.1f KiB, Rss %.1f KiB "
	       "(difference / %d); agents all gone after the cancel: %s\n", pss, pd, rss, n,
	       gone ? "yes" : "NO");
	printf("SUMMARY memory_per_task Pss %.1f KiB Private_Dirty %.1f KiB (goal < 64): %s\n", pss,
	       pd, verdict(pss < 64 && pd < 64));
	csv_figure(o->csv_dir, n, "tasks", "mem_per_task_pss", pss, "KiB");
	csv_figure(o->csv_dir, n, "tasks", "mem_per_task_private_dirty", pd, "KiB");
	csv_figure(o->csv_dir, n, "tasks", "mem_per_task_rss", rss, "KiB");
	csv_figure(o->csv_dir, n, "tasks", "mem_worker_idle_pss", (double)idle.pss, "KiB");
	csv_figure(o->csv_dir, n, "tasks", "mem_worker_after_pss", (double)after.pss, "KiB");
	rc = gone ? 0 : -1;
out:
	free(ids);
	return rc;
}

/* ---- [6] claim requests of an idle host ---- */

static bool is_claim(const struct dp_req *q)
{
	if (strcmp(q->method, "POST") != 0)
		return false;
	if (strcmp(q->path, "/api/daemon/tasks/claim") == 0 || strcmp(q->path, "/api/daemon/claim") == 0)
		return true;
	size_t l = strlen(q->path);
	return strncmp(q->path, "/api/daemon/runtimes/", 21) == 0 && l > 12 &&
	       strcmp(q->path + l - 12, "/tasks/claim") == 0;
}

static int runtime_ids_in(const char *body)
{
	cJSON *j = cJSON_Parse(body);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "runtime_ids"));
	cJSON_Delete(j);
	return n;
}

static int phase_idle(const struct tb_opts *o)
{
	struct tb_rig r;
	int n = o->idle_ws, rc = -1;
	printf("\n[6] idle host: %d workspaces x 1 runtime, task_poll_interval %s, window %d s\n", n,
	       o->idle_poll, o->idle_window_s);
	int64_t t0 = dp_now_ms();
	if (rig_start(&r, n, o->idle_poll, 300000) < 0)
		goto out;
	printf("    all %d rows online %.1f s after the start\n", n, (dp_now_ms() - t0) / 1000.0);
	long poll_ms = 0;
	int64_t pm;
	char unit[8] = "";
	if (sscanf(o->idle_poll, "%ld%7s", &poll_ms, unit) >= 1) {
		pm = strcmp(unit, "s") == 0 ? poll_ms * 1000 : strcmp(unit, "m") == 0 ? poll_ms * 60000
										       : poll_ms;
		poll_ms = (long)pm;
	}
	tb_nap(2 * poll_ms + 2000); /* start-up's wake-ups over */
	if (tb_http(&r.emu, "DELETE", "/_admin/journal", NULL, NULL) != 200)
		goto out;
	int64_t w0 = dp_wall_ms();
	if (!tb_nap(o->idle_window_s * 1000L))
		goto out;
	int64_t w1 = dp_wall_ms();
	struct dp_journal j;
	if (dp_journal_load(&r.emu.fp, &j) < 0)
		goto out;
	int claims = 0, ids_min = -1, ids_max = 0, legacy = 0, other = 0;
	for (size_t i = 0; i < j.n; i++) {
		const struct dp_req *q = &j.v[i];
		if (!is_claim(q)) {
			other += strcmp(q->path, "/api/daemon/heartbeat") != 0;
			continue;
		}
		claims++;
		legacy += strstr(q->path, "/runtimes/") != NULL;
		int k = runtime_ids_in(q->body);
		ids_min = ids_min < 0 || k < ids_min ? k : ids_min;
		ids_max = k > ids_max ? k : ids_max;
	}
	dp_journal_free(&j);
	double window_s = (double)(w1 - w0) / 1000.0;
	double per = poll_ms > 0 ? claims / (window_s * 1000.0 / (double)poll_ms) : 0;
	printf("    %.1f s: %d claim requests (%d legacy per-runtime), runtime_ids per claim %d-%d; "
	       "%d requests other than claims and heartbeats\n", window_s, claims, legacy,
	       ids_min, ids_max, other);
	printf("SUMMARY idle_claims %.2f per task_poll_interval for the host (%d in %.1f s, %d "
	       "workspaces; goal 1; the poll is jittered up by < 10%%): %s\n", per, claims, window_s,
	       n, verdict(per > 0.8 && per <= 1.05 && legacy == 0));
	csv_figure(o->csv_dir, n, "tasks", "idle_claims_per_poll", per, "");
	csv_figure(o->csv_dir, n, "tasks", "idle_claims", claims, "");
	csv_figure(o->csv_dir, n, "tasks", "idle_window_s", window_s, "s");
	csv_figure(o->csv_dir, n, "tasks", "idle_claim_runtime_ids", ids_max, "");
	rc = 0;
out:
	rig_free(&r);
	return rc;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: task_bench [--lat N] [--tasks N] [--tp-ws N] [--agents N] [--rate N]\n"
		"                  [--secs N] [--mem N] [--idle-ws N] [--idle-window S]\n"
		"                  [--idle-poll D] [--poll D] [--skip 1..6] [--csv DIR]\n");
}

static int parse_int(const char *s, int lo, int hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi) {
		usage();
		exit(2);
	}
	return (int)v;
}

static void parse_opts(int argc, char **argv, struct tb_opts *o)
{
	*o = (struct tb_opts){ .lat_tasks = 30, .tp_tasks = 1000, .tp_ws = 4, .fl_agents = 20,
			       .fl_rate = 200, .fl_secs = 10, .mem_tasks = 20, .idle_ws = 1000,
			       .idle_window_s = 60, .idle_poll = "5s", .poll = "250ms" };
	static const struct option lo[] = {
		{ "lat", 1, 0, 'l' }, { "tasks", 1, 0, 't' }, { "tp-ws", 1, 0, 'w' },
		{ "agents", 1, 0, 'a' }, { "rate", 1, 0, 'r' }, { "secs", 1, 0, 's' },
		{ "mem", 1, 0, 'm' }, { "idle-ws", 1, 0, 'W' }, { "idle-window", 1, 0, 'i' },
		{ "idle-poll", 1, 0, 'P' }, { "poll", 1, 0, 'p' }, { "skip", 1, 0, 'S' },
		{ "csv", 1, 0, 'c' }, { 0, 0, 0, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o->lat_tasks = parse_int(optarg, 1, 1000); break;
		case 't': o->tp_tasks = parse_int(optarg, 1, 100000); break;
		case 'w': o->tp_ws = parse_int(optarg, 1, 50); break;
		case 'a': o->fl_agents = parse_int(optarg, 1, 20); break;
		case 'r': o->fl_rate = parse_int(optarg, 1, 100000); break;
		case 's': o->fl_secs = parse_int(optarg, 1, 3600); break;
		case 'm': o->mem_tasks = parse_int(optarg, 1, 20); break;
		case 'W': o->idle_ws = parse_int(optarg, 1, TB_MAX_WS); break;
		case 'i': o->idle_window_s = parse_int(optarg, 1, 3600); break;
		case 'P': o->idle_poll = optarg; break;
		case 'p': o->poll = optarg; break;
		case 'S': o->skip[parse_int(optarg, 1, 6)] = true; break;
		case 'c': o->csv_dir = optarg; break;
		default: usage(); exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	struct tb_opts o;
	parse_opts(argc, argv, &o);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("task_bench: multicad %s, fake claude %s; load average %.2f; %ld CPUs\n",
	       MULTICAD_BIN, FAKE_CLAUDE_BIN, tb_loadavg1(), sysconf(_SC_NPROCESSORS_ONLN));
	int failed = 0;
	bool rig_phases = !o.skip[1] || !o.skip[3] || !o.skip[4] || !o.skip[5];
	if (rig_phases) {
		struct tb_rig r;
		int ws = o.tp_ws;
		printf("\nrig: %d workspaces x 1 runtime (claude = the fake claude), "
		       "max_concurrent_tasks 20, task_poll_interval %s, heartbeat 15s\n", ws, o.poll);
		if (rig_start(&r, ws, o.poll, 60000) < 0) {
			failed++;
		} else {
			if (!o.skip[1] && !tb_interrupted)
				failed += phase_latency(&r, &o) < 0;
			if (!o.skip[5] && !tb_interrupted)
				failed += phase_memory(&r, &o) < 0;
			if (!o.skip[4] && !tb_interrupted)
				failed += tb_phase_flood(&r, &o) < 0;
			if (!o.skip[3] && !tb_interrupted)
				failed += tb_phase_throughput(&r, &o) < 0;
		}
		printf("    load average %.2f\n", tb_loadavg1());
		rig_free(&r);
	}
	if (!o.skip[6] && !tb_interrupted)
		failed += phase_idle(&o) < 0;
	printf("\ntask_bench: %s; load average %.2f\n", failed ? "some phases did not finish" :
	       "every phase ran", tb_loadavg1());
	curl_global_cleanup();
	return failed || tb_interrupted ? 1 : 0;
}
