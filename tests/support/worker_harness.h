/* Test support: play the supervisor's side of a worker's socket. The worker
 * runs in a forked child exactly as the supervisor will start it
 * (mc_worker_main on a socketpair end). Parent side only. */
#ifndef MC_TEST_WORKER_HARNESS_H
#define MC_TEST_WORKER_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/frame.h"
#include "ipc/messages.h"
#include "ipc/task_msgs.h"

#include <cjson/cJSON.h>

#include "common/secret.h"

struct wh_opts {
	const char *server_url;
	const char *token;
	const char *workspace_id;
	const char *daemon_id;          /* default "test-daemon" */
	const char *device_name;        /* default "testhost" */
	long heartbeat_ms;              /* default 100 */
	long profile_sync_ms;           /* default 150 */
	long http_timeout_ms;           /* default 2000 */
	long probe_timeout_ms;          /* default 1000 */
	const struct mc_builtin *builtins;
	size_t n_builtins;
	const struct mc_profile_override *overrides;
	size_t n_overrides;
	const char *path_env;           /* PATH in the worker; NULL: "/nonexistent" */
	const char *test_fault;
	const char *ca_file;            /* NULL: the system's CA store */
	/* tasks */
	const char *workspaces_root;    /* NULL: none (tasks refused) */
	const char *state_dir;          /* NULL: none (no outbox) */
	long task_idle_timeout_ms;      /* default 0: off */
	long task_stop_grace_ms;        /* default 2000 */
	long stop_timeout_ms;           /* default 10000 */
	long task_retention_ms;         /* default 0: kept */
};

/* What the worker last said about one task (TASK_STATE). */
struct wh_task {
	char id[40];
	enum mc_task_state state;
	int pid;
	char outcome[64];
	unsigned n_states;
	char last_output[MC_TASK_STATE_OUTPUT_MAX + 1];
};
#define WH_MAX_TASKS 64

struct wh {
	pid_t pid;
	int fd;
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	struct mc_report report;        /* the last REPORT */
	unsigned n_reports;
	uint64_t last_pong;
	bool got_pong;
	bool stopped;                   /* STOPPED received */
	bool stopped_deregistered;
	bool fatal;
	char fatal_reason[256];
	bool exited;
	int status;                     /* waitpid status once exited */
	bool violation;                 /* the worker sent something invalid */
	bool tasks_ready;               /* TASKS_READY received */
	struct wh_task tasks[WH_MAX_TASKS];
	size_t n_tasks;
};

/* Forks the worker, completes the handshake. 0 or -1. */
int wh_start(struct wh *h, const struct wh_opts *o);
/* Reads and records frames for up to timeout_ms (returns early when the
 * worker exits). */
void wh_pump(struct wh *h, int timeout_ms);
/* Pumps until the last report holds n ids (true) or the timeout passes. */
bool wh_wait_report_n(struct wh *h, size_t n, int timeout_ms);
/* Pumps until the last report holds n ids, none of them id: the report
 * after a change, where an earlier report may have the same size. */
bool wh_wait_report_without(struct wh *h, const char *id, size_t n, int timeout_ms);
/* Pumps until at least k reports have arrived in total. */
bool wh_wait_reports(struct wh *h, unsigned k, int timeout_ms);
bool wh_report_has(const struct wh *h, const char *id);
int wh_send_probes(struct wh *h, const struct mc_builtin *b, size_t n);
/* Ping and wait for the pong; returns the round trip in ms or -1. */
long wh_ping(struct wh *h, uint64_t seq, int timeout_ms);
/* STOP, then wait for STOPPED and the exit; returns the exit code or -1. */
int wh_stop(struct wh *h, int timeout_ms);
/* Waits for the child to exit; returns its exit code, 128+signal, or -1. */
int wh_wait_exit(struct wh *h, int timeout_ms);
/* Sends a TASK frame (as the supervisor routes one). 0 or -1. */
int wh_send_task(struct wh *h, int slot, const char *token, const cJSON *task);
/* The worker's last word on task id, NULL before any. */
const struct wh_task *wh_task(const struct wh *h, const char *id);
/* Pumps until task id reached state (or ended) within timeout_ms. */
bool wh_wait_task_state(struct wh *h, const char *id, enum mc_task_state state,
			int timeout_ms);
/* Closes our end of the socket (the worker sees EOF). */
void wh_close(struct wh *h);
/* Kills the child if still alive, reaps it, frees everything. */
void wh_free(struct wh *h);

/* Makes a temp dir with an executable script NAME printing "VERSION" for
 * --version. Returns a malloc'd dir path (remove with wh_rmtree). */
char *wh_fake_cli_dir(const char *const *names, const char *version);
int wh_add_fake_cli(const char *dir, const char *name, const char *version);
void wh_rmtree(const char *dir);

#endif
