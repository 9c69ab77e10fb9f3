/* task_bench: what its phases share (task_bench.c: set-up, latency, memory,
 * idle claims; tb_load.c: throughput and the output flood). */
#ifndef MC_BENCH_TB_BENCH_H
#define MC_BENCH_TB_BENCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "tests/bench/tb_util.h"
#include "tests/support/daemon_proc.h"

#define TB_MAX_WS 1000

struct tb_opts {
	int lat_tasks;          /* [1][2] sequential tasks */
	int tp_tasks, tp_ws;    /* [3] */
	int fl_agents, fl_rate, fl_secs;   /* [4] */
	int mem_tasks;          /* [5] */
	int idle_ws, idle_window_s;        /* [6] */
	const char *idle_poll;  /* [6] task_poll_interval */
	const char *poll;       /* task_poll_interval of [1]-[5] */
	bool skip[7];           /* --skip N */
	const char *csv_dir;
};

/* One emulator and one daemon serving workspaces 1..n_ws, each with the
 * claude built-in = the fake claude (FAKE_CLAUDE_BIN). */
struct tb_rig {
	struct tb_emu emu;
	struct dp d;
	bool d_ready;
	int n_ws;
	char *ws_list;
	char extra[512];
	char providers[600];
	char (*rid)[DP_ID_LEN + 1];   /* rid[i]: workspace i's runtime (1-based) */
};

extern volatile sig_atomic_t tb_interrupted;

/* Sleeps ms; false once interrupted. */
bool tb_nap(long ms);
/* Waits until every task of ids[0..n) has left queued/dispatched/running
 * (or timeout_ms); the number still not terminal. */
int tb_wait_terminal(struct tb_rig *r, char (*ids)[TB_TASK_ID_LEN], int n, int timeout_ms);
/* The path of a FAKE_AGENT_TIMES file for phase name, in the daemon's dir
 * (removed with it); the file is removed first. */
void tb_times_path(const struct tb_rig *r, const char *name, char *out, size_t n);
/* The live worker of workspace i, or 0. */
pid_t tb_worker_of(const struct tb_rig *r, int i);
/* utime + stime (clock ticks) of every worker of the rig, or -1. */
long long tb_workers_ticks(const struct tb_rig *r);

int tb_phase_throughput(struct tb_rig *r, const struct tb_opts *o);
int tb_phase_flood(struct tb_rig *r, const struct tb_opts *o);

#endif
