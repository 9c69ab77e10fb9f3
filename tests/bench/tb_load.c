/* task_bench [3] throughput of trivial tasks and [4] the output flood:
 * see task_bench.c and tests/bench/README.md ("Tasks"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/bench/smaps.h"
#include "tests/bench/sv_extra.h"
#include "tests/bench/tb_bench.h"

static const char *verdict(bool ok)
{
	return ok ? "OK" : "MISSED";
}

static double pct_of_core(long long ticks, double secs)
{
	return secs > 0 ? 100.0 * (double)ticks / (double)sysconf(_SC_CLK_TCK) / secs : -1;
}

/* ---- [3] throughput ---- */

struct tp_row {
	bool seen;
	char status[16];
	int claims, starts, completes, fails;
	int64_t claimed, done;
};

static int count_of(const cJSON *row, const char *op)
{
	return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(row, "counts"), op));
}

/* Fills rows[i] for ids[i] from GET /_admin/tasks. 0 or -1. */
static int tp_read(struct tb_rig *r, char (*ids)[TB_TASK_ID_LEN], int n, struct tp_row *rows)
{
	cJSON *all = tb_get_json(&r->emu, "/_admin/tasks");
	if (all == NULL)
		return -1;
	memset(rows, 0, (size_t)n * sizeof *rows);
	const cJSON *t;
	unsigned base = (unsigned)strtoul(ids[0] + 1, NULL, 10);
	cJSON_ArrayForEach(t, all) {
		/* tb_queue's ids: "c<counter>-<fixed>": the counter is the index. */
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(t, "id"));
		if (id == NULL || id[0] != 'c' || strlen(id) < 9 || strcmp(id + 8, ids[0] + 8) != 0)
			continue;
		long i = (long)strtoul(id + 1, NULL, 10) - (long)base;
		if (i < 0 || i >= n || strcmp(ids[i], id) != 0)
			continue;
		struct tp_row *w = &rows[i];
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(t, "status"));
		w->seen = true;
		snprintf(w->status, sizeof w->status, "%s", st ? st : "?");
		w->claims = count_of(t, "claim");
		w->starts = count_of(t, "start");
		w->completes = count_of(t, "complete");
		w->fails = count_of(t, "fail");
		w->claimed = tb_time_of(t, "dispatched_at");
		w->done = tb_time_of(t, "completed_at");
	}
	cJSON_Delete(all);
	return 0;
}

static int tp_done(const struct tp_row *rows, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += rows[i].seen && (strcmp(rows[i].status, "completed") == 0 ||
				      strcmp(rows[i].status, "failed") == 0 ||
				      strcmp(rows[i].status, "cancelled") == 0);
	return k;
}

/* The most tasks between their claim and their completion at once. */
static int max_overlap(const struct tp_row *rows, int n)
{
	int best = 0;
	for (int i = 0; i < n; i++) {
		int k = 0;
		for (int j = 0; j < n; j++)
			k += rows[j].claimed <= rows[i].claimed && rows[j].done > rows[i].claimed;
		best = k > best ? k : best;
	}
	return best;
}

static void tp_report(const struct tp_row *rows, int n, const struct tb_evs *ev,
		      char (*ids)[TB_TASK_ID_LEN], double *rate, int *bad)
{
	int64_t first = -1, last = -1;
	int not_completed = 0, multi = 0, execs_bad = 0, shown = 0;
	for (int i = 0; i < n; i++) {
		const struct tp_row *w = &rows[i];
		int execs = 0;
		tb_evs_find(ev, "exec", ids[i], &execs);
		bool ok = w->seen && strcmp(w->status, "completed") == 0;
		bool once = w->claims == 1 && w->starts == 1 && w->completes == 1 && w->fails == 0;
		not_completed += !ok;
		multi += ok && !once;
		execs_bad += execs != 1;
		if ((!ok || !once || execs != 1) && shown++ < 5)
			printf("      task %s: %s, claim %d start %d complete %d fail %d, agent runs %d\n",
			       ids[i], w->seen ? w->status : "missing", w->claims, w->starts,
			       w->completes, w->fails, execs);
		if (w->claimed > 0 && (first < 0 || w->claimed < first))
			first = w->claimed;
		if (w->done > last)
			last = w->done;
	}
	double secs = (double)(last - first) / 1000.0;
	*rate = secs > 0 ? n / secs : 0;
	*bad = not_completed + multi + execs_bad;
	printf("    first claim -> last /complete %.2f s = %.1f tasks/s; at most %d tasks between "
	       "claim and completion at once\n", secs, *rate, max_overlap(rows, n));
	printf("    not completed %d; completed but not exactly one claim/start/complete (or a "
	       "fail) %d; agent runs != 1: %d\n", not_completed, multi, execs_bad);
}

int tb_phase_throughput(struct tb_rig *r, const struct tb_opts *o)
{
	int n = o->tp_tasks;
	printf("\n[3] throughput: %d text tasks over %d workspaces, max_concurrent_tasks 20\n", n,
	       r->n_ws);
	char times[400], env[600], (*ids)[TB_TASK_ID_LEN] = calloc((size_t)n, TB_TASK_ID_LEN);
	struct tp_row *rows = calloc((size_t)n, sizeof *rows);
	int rc = -1;
	tb_times_path(r, "throughput", times, sizeof times);
	snprintf(env, sizeof env, "\"FAKE_AGENT_TIMES\":\"%s\"", times);
	if (ids == NULL || rows == NULL)
		goto out;
	struct rollup m0 = { 0 }, m1 = { 0 };
	pid_t w1 = tb_worker_of(r, 1);
	if (w1 > 0)
		read_rollup(w1, &m0);
	long long tick0 = tb_workers_ticks(r), sv0 = proc_cpu_ticks(r->d.pid);
	int64_t q0 = dp_now_ms();
	for (int i = 0; i < n; i++)
		if (tb_queue(&r->emu, r->rid[1 + i % r->n_ws], env, ids[i]) < 0)
			goto out;
	int64_t q1 = dp_now_ms();
	printf("    queued in %.2f s\n", (q1 - q0) / 1000.0);
	int64_t until = dp_now_ms() + 300000;
	while (tp_read(r, ids, n, rows) == 0 && tp_done(rows, n) < n)
		if (dp_now_ms() > until || !dp_alive(&r->d) || !tb_nap(500))
			break;
	int64_t q2 = dp_now_ms();
	long long tick1 = tb_workers_ticks(r), sv1 = proc_cpu_ticks(r->d.pid);
	tb_nap(1500); /* a late duplicate would show now */
	if (w1 > 0)
		read_rollup(w1, &m1);
	struct tb_evs ev;
	if (tp_read(r, ids, n, rows) < 0 || tb_evs_load(times, &ev) < 0)
		goto out;
	double rate;
	int bad;
	tp_report(rows, n, &ev, ids, &rate, &bad);
	tb_evs_free(&ev);
	double secs = (q2 - q0) / 1000.0;
	printf("    queue start -> all terminal seen %.2f s; CPU over it: workers %.1f %% of one "
	       "core (%.2f ms per task), supervisor %.1f %%\n", secs,
	       pct_of_core(tick1 - tick0, secs),
	       1000.0 * (double)(tick1 - tick0) / (double)sysconf(_SC_CLK_TCK) / n,
	       pct_of_core(sv1 - sv0, secs));
	printf("    workspace 1's worker before and after its %d tasks: Pss %ld -> %ld kB, "
	       "Private_Dirty %ld -> %ld kB (growth check)\n", (n + r->n_ws - 1) / r->n_ws, m0.pss,
	       m1.pss, m0.private_dirty, m1.private_dirty);
	printf("SUMMARY throughput %.1f tasks/s (%d tasks, goal >= 50), lost or repeated %d: %s\n",
	       rate, n, bad, verdict(rate >= 50 && bad == 0));
	csv_figure(o->csv_dir, n, "tasks", "throughput_tasks_s", rate, "tasks/s");
	csv_figure(o->csv_dir, n, "tasks", "throughput_bad", bad, "");
	csv_figure(o->csv_dir, n, "tasks", "throughput_ws", r->n_ws, "");
	csv_figure(o->csv_dir, n, "tasks", "throughput_worker_pss_before", (double)m0.pss, "KiB");
	csv_figure(o->csv_dir, n, "tasks", "throughput_worker_pss_after", (double)m1.pss, "KiB");
	rc = 0;
out:
	free(ids);
	free(rows);
	return rc;
}

/* ---- [4] the output flood ---- */

struct fl_task {
	int lines, dups, missing, notes, batches;
	double gaps[4096];
	int ngaps;
};

/* Counts the "rl#<i>;" markers of every text message; seen[] per line. */
static void fl_scan(const cJSON *task, int total, unsigned char *seen, struct fl_task *f)
{
	const cJSON *m;
	memset(seen, 0, (size_t)total);
	cJSON_ArrayForEach(m, cJSON_GetObjectItem(task, "messages")) {
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(m, "type"));
		const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"));
		if (type != NULL && strcmp(type, "error") == 0 && c != NULL && strstr(c, "multicad"))
			f->notes++;
		for (const char *p = c; p != NULL && (p = strstr(p, "rl#")) != NULL; p += 3) {
			long i = strtol(p + 3, NULL, 10);
			if (i < 0 || i >= total)
				continue;
			if (seen[i]++)
				f->dups++;
			f->lines++;
		}
	}
	for (int i = 0; i < total; i++)
		f->missing += seen[i] == 0;
}

/* The spacing of the task's messages calls, but for the last (the
 * stream's end flushes whatever the deadline). */
static void fl_gaps(const cJSON *task, struct fl_task *f)
{
	const cJSON *c;
	int64_t prev = -1;
	double pending = -1;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(task, "calls")) {
		const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(c, "op"));
		if (op == NULL || strcmp(op, "messages") != 0)
			continue;
		int64_t t = tb_time_of(c, "time");
		f->batches++;
		if (pending >= 0 && f->ngaps < 4096)
			f->gaps[f->ngaps++] = pending;
		pending = prev >= 0 ? (double)(t - prev) : -1;
		prev = t;
	}
}

static int fl_check(struct tb_rig *r, char (*ids)[TB_TASK_ID_LEN], int n, int total,
		    struct fl_task *fs)
{
	unsigned char *seen = malloc((size_t)total);
	if (seen == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		char path[128];
		snprintf(path, sizeof path, "/_admin/tasks/%s", ids[i]);
		cJSON *t = tb_get_json(&r->emu, path);
		if (t == NULL) {
			free(seen);
			return -1;
		}
		fl_scan(t, total, seen, &fs[i]);
		fl_gaps(t, &fs[i]);
		cJSON_Delete(t);
	}
	free(seen);
	return 0;
}

static void fl_report(const struct tb_opts *o, struct fl_task *fs, int n, int total, double cpu,
		      double cpu_all, double window)
{
	int lines = 0, dups = 0, missing = 0, notes = 0, batches = 0, ng = 0;
	double *g = calloc((size_t)n * 4096, sizeof *g);
	for (int i = 0; i < n; i++) {
		lines += fs[i].lines;
		dups += fs[i].dups;
		missing += fs[i].missing;
		notes += fs[i].notes;
		batches += fs[i].batches;
		for (int k = 0; g != NULL && k < fs[i].ngaps; k++)
			g[ng++] = fs[i].gaps[k];
	}
	struct tb_stats s = tb_stats_of(g, g ? ng : 0);
	free(g);
	printf("    lines at the emulator %d of %d (missing %d, duplicated %d), cap notes %d\n",
	       lines, n * total, missing, dups, notes);
	printf("    message batches: %d (%.1f per task); spacing between a task's batches, ms: "
	       "min %.0f  median %.0f  p95 %.0f  max %.0f (n %d)\n", batches, (double)batches / n,
	       s.min, s.median, s.p95, s.max, s.n);
	printf("    workers' CPU while all %d streamed: %.2f %% of one core over %.1f s; over the "
	       "tasks' whole life %.2f %%\n", n, cpu, window, cpu_all);
	bool ok = cpu < 10 && missing == 0 && dups == 0 && s.median >= 450 && s.median <= 600;
	printf("SUMMARY flood workers_cpu %.2f %% of one core (goal < 10), batch spacing median "
	       "%.0f ms p95 %.0f ms (goal 500), lines lost %d: %s\n", cpu, s.median, s.p95, missing,
	       verdict(ok));
	csv_figure(o->csv_dir, n, "tasks", "flood_cpu_pct", cpu, "% of one core");
	csv_figure(o->csv_dir, n, "tasks", "flood_cpu_all_pct", cpu_all, "% of one core");
	csv_figure(o->csv_dir, n, "tasks", "flood_batch_median", s.median, "ms");
	csv_figure(o->csv_dir, n, "tasks", "flood_batch_p95", s.p95, "ms");
	csv_figure(o->csv_dir, n, "tasks", "flood_lines_missing", missing, "");
	csv_figure(o->csv_dir, n, "tasks", "flood_lines", lines, "");
}

int tb_phase_flood(struct tb_rig *r, const struct tb_opts *o)
{
	int n = o->fl_agents, total = o->fl_rate * o->fl_secs;
	printf("\n[4] flood: %d agents on workspace 1, each %d text lines/s for %d s (%d lines)\n",
	       n, o->fl_rate, o->fl_secs, total);
	char times[400], env[800], (*ids)[TB_TASK_ID_LEN] = calloc((size_t)n, TB_TASK_ID_LEN);
	struct fl_task *fs = calloc((size_t)n, sizeof *fs);
	int rc = -1;
	tb_times_path(r, "flood", times, sizeof times);
	snprintf(env, sizeof env, "\"FAKE_AGENT_MODE\":\"rate\",\"FAKE_AGENT_LINES_PER_S\":\"%d\","
		 "\"FAKE_AGENT_SECONDS\":\"%d\",\"FAKE_AGENT_TIMES\":\"%s\"", o->fl_rate,
		 o->fl_secs, times);
	if (ids == NULL || fs == NULL)
		goto out;
	long long all0 = tb_workers_ticks(r), t0 = -1, t1 = -1;
	int64_t m_all0 = dp_now_ms(), m0 = 0, m1 = 0;
	for (int i = 0; i < n; i++)
		if (tb_queue(&r->emu, r->rid[1], env, ids[i]) < 0)
			goto out;
	int64_t until = dp_now_ms() + 60000 + 2000L * o->fl_secs;
	while (t1 < 0 && dp_now_ms() < until && tb_nap(20)) {
		if (t0 < 0 && tb_evs_count(times, "exec") >= n) {
			t0 = tb_workers_ticks(r);
			m0 = dp_now_ms();
		}
		if (t0 >= 0 && tb_evs_count(times, "result") > 0) {
			t1 = tb_workers_ticks(r);
			m1 = dp_now_ms();
		}
	}
	if (t1 < 0 || tb_wait_terminal(r, ids, n, 60000) != 0) {
		fprintf(stderr, "task_bench: [4] the flood tasks did not all run and end\n");
		goto out;
	}
	long long all1 = tb_workers_ticks(r);
	double window = (m1 - m0) / 1000.0, whole = (dp_now_ms() - m_all0) / 1000.0;
	if (fl_check(r, ids, n, total, fs) < 0)
		goto out;
	fl_report(o, fs, n, total, pct_of_core(t1 - t0, window), pct_of_core(all1 - all0, whole),
		  window);
	rc = 0;
out:
	free(ids);
	free(fs);
	return rc;
}
