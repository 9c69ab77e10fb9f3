/* task_bench helpers: the emulator over one kept-alive libcurl handle, tasks
 * queued and read back through its admin API, the fake agents' own clock
 * (FAKE_AGENT_TIMES, tests/agents/fake_common.h), the daemon's log lines,
 * statistics. Parent side only.
 * Error convention: -1 (or NULL) on failure, with a line on stderr. */
#ifndef MC_BENCH_TB_UTIL_H
#define MC_BENCH_TB_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "tests/support/daemon_proc.h"
#include "tests/support/fakeplane_proc.h"

#define TB_TASK_ID_LEN 40

struct tb_emu {
	struct fp_proc fp;
	bool started;
	CURL *h;          /* one handle: its connection is kept alive */
};

/* Starts the emulator seeded with workspaces 1..n_ws (dp_seed), more flags
 * args (NULL-terminated, may be NULL). 0 or -1. */
int tb_emu_start(struct tb_emu *e, int n_ws, const char *const *args);
void tb_emu_stop(struct tb_emu *e);
/* One request; *out (if not NULL) gets the malloc'd body. Status or -1. */
long tb_http(struct tb_emu *e, const char *method, const char *path, const char *body,
	     char **out);
/* GET path parsed (caller deletes), or NULL. */
cJSON *tb_get_json(struct tb_emu *e, const char *path);
/* The online runtime ids of workspace ws (dp_ws_id numbering), or -1. */
int tb_runtime_of(struct tb_emu *e, int ws, char out[DP_ID_LEN + 1]);
/* Online runtime rows in all, or -1. */
int tb_count_online(struct tb_emu *e);
/* Queues a task (a fresh id into id) for runtime rid whose agent's
 * custom_env holds env (JSON members without braces). 0 or -1. */
int tb_queue(struct tb_emu *e, const char *rid, const char *env, char id[TB_TASK_ID_LEN]);
/* A task row's string field (GET /_admin/tasks/{id}) into out; "" if none. */
int tb_task_field(struct tb_emu *e, const char *id, const char *field, char *out, size_t n);

/* ---- time ---- */
/* "2026-11-28T23:10:49.604Z" -> epoch ms, or -1. */
int64_t tb_parse_time(const char *s);
/* The time string of obj[key] as epoch ms, or -1. */
int64_t tb_time_of(const cJSON *obj, const char *key);

/* ---- the fake agents' clock ---- */
struct tb_ev {
	char event[16];
	double ms;         /* CLOCK_REALTIME, ms with the ns fraction */
	char task[TB_TASK_ID_LEN];
	int pid;
};
struct tb_evs {
	struct tb_ev *v;
	int n;
};
/* Reads the FAKE_AGENT_TIMES file (a missing file: none) into out,
 * allocated: free it with tb_evs_free. 0 or -1. */
int tb_evs_load(const char *path, struct tb_evs *out);
void tb_evs_free(struct tb_evs *e);
/* The first event of task, or NULL; *count (may be NULL) gets how many. */
const struct tb_ev *tb_evs_find(const struct tb_evs *e, const char *event, const char *task,
				int *count);
/* Lines of the file with event (cheap: for waits). */
int tb_evs_count(const char *path, const char *event);

/* ---- the daemon's log ---- */
/* ts= of the first log line with msg="msg" naming task=id, epoch ms, or -1. */
int64_t tb_log_ts(const char *log, const char *msg, const char *id);

/* ---- statistics ---- */
struct tb_stats {
	int n;
	double min, median, p95, max, mean;
};
/* Sorts v in place. */
struct tb_stats tb_stats_of(double *v, int n);
double tb_loadavg1(void);

#endif
