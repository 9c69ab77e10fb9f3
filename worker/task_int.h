/* Private to the executor (task_exec.c: the table of tasks and the loop
 * glue; task_fsm.c: one task's state x event table; task_agent.c: the
 * agent process and its backend; task_report.c: the terminal report
 * through the outbox; task_calls.c: the small calls). */
#ifndef MC_WORKER_TASK_INT_H
#define MC_WORKER_TASK_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/api.h"
#include "common/api_task.h"
#include "common/clock.h"
#include "common/secret.h"
#include "common/task.h"
#include "ipc/task_msgs.h"
#include "worker/agent_id.h"
#include "worker/launch.h"

struct mc_worker;
struct mc_agent;                 /* agent_proc.h */
struct mc_backend_session;       /* backend.h */
struct mc_backend_ops;
struct mc_msgbatch;              /* msgbatch.h */

#define MC_TASK_CANCEL_POLL_MS   5000
#define MC_TASK_FLUSH_MS         500
#define MC_TASK_FINAL_FLUSH_MS   10000
#define MC_TASK_SMALL_CALL_MS    5000
#define MC_TASK_PREPARE_MS       (5 * 60 * 1000)
#define MC_TASK_REPORT_ATTEMPTS  6        /* then 4, 8, 16, 32, 64 s apart */
#define MC_TASK_RETRY_OUTBOX_MS  60000    /* after the schedule: keep trying */

enum xt_state {
	XT_PREPARING,      /* checks, work dir; /start not sent yet */
	XT_STARTING,       /* /start in flight */
	XT_RUNNING,        /* the agent runs */
	XT_STOPPING_AGENT, /* the agent's group is being stopped (cancel, idle, stop) */
	XT_FLUSHING,       /* the agent is done: last message batch, usage */
	XT_CHECKING,       /* final status check before the terminal call */
	XT_REPORTING,      /* terminal call in flight or waiting for its retry */
	XT_DONE,           /* ended: freed after the turn */
	XT_STATE_COUNT,
};

enum xt_event {
	XE_BEGIN,          /* accepted: run the pre-flight */
	XE_CALL_DONE,      /* the state's own call (start, status, terminal) answered */
	XE_AGENT_DONE,     /* the agent's result is in and its group is gone */
	XE_CANCEL,         /* the server ended the task (status poll) */
	XE_IDLE,           /* task_idle_timeout without output */
	XE_STOP,           /* the worker stops */
	XE_TIMER,          /* the state's deadline */
	XE_FLUSHED,        /* no message batch pending or in flight */
	XE_COUNT,
};

/* Why the agent is being stopped. */
enum xt_stop_why {
	XS_NONE,
	XS_CANCEL,         /* the server ended the task: cancel-ack */
	XS_IDLE,           /* silent too long: fail (timeout) */
	XS_WORKER_STOP,    /* the worker stops: fail (runtime_offline) */
	XS_PREPARE,        /* prepare deadline */
};

struct mc_usage_row {
	char model[128];
	long long input, output, cache_read, cache_write;
};

struct mc_xtask {
	struct mc_worker *w;
	struct mc_task t;
	struct mc_secret *token;
	int slot;
	enum xt_state st;
	enum mc_task_state reported;     /* last TASK_STATE sent */
	mc_ms_t accepted_at;
	mc_ms_t deadline;                /* the state's timer, 0: none */

	/* launch */
	char *family;
	char *exe;
	size_t n_prefix;
	char **prefix;                   /* fixed_args of a custom profile */
	char *task_dir;                  /* <root>/<ws>/<key> */
	char *work_dir;                  /* .../workdir (or a reused prior one) */
	char *tmp_dir;
	char *codex_home;
	char *config_root;
	char *task_name;                 /* the task dir's name (busy list) */
	char *resume_id;                 /* the session asked for, NULL: fresh */
	bool resume_dropped;             /* prior session could not be used */
	bool fresh_retry_done;

	/* the agent */
	struct mc_agent *agent;
	struct mc_backend_session *bk;
	const struct mc_backend_ops *ops;
	bool agent_finished;             /* the backend's finish ran */
	mc_ms_t exited_at;               /* leader reaped, group not yet empty */
	bool force_killed;
	unsigned wf_off, wf_n;              /* its slice of the loop's poll fds */
	enum xt_stop_why stop_why;
	mc_ms_t last_output_at;
	bool result_in;
	char *r_status;                  /* completed, failed, aborted, timeout */
	char *r_output;
	char *r_error;
	char *session_id;
	bool session_pinned;
	bool resume_rejected;
	bool tools_ran;
	size_t n_usage;
	struct mc_usage_row usage[8];

	/* messages */
	struct mc_msgbatch *msgs;
	struct mc_call *msg_call;        /* one batch in flight at a time */
	mc_ms_t next_flush_at;
	mc_ms_t flush_deadline;
	char last_output[MC_TASK_STATE_OUTPUT_MAX + 1];

	/* calls */
	struct mc_call *op_call;         /* start / final status / terminal call */
	struct mc_call *status_call;     /* cancel poll */
	mc_ms_t next_status_at;
	struct mc_call *aux[4];          /* progress, session, usage: fire and forget */
	bool server_ended;               /* status poll saw it terminal or gone */

	/* report */
	int report_op;                   /* enum mc_task_op: COMPLETE, FAIL, CANCEL_ACK */
	char *report_body;
	int attempts;
	mc_ms_t retry_at;
	bool outbox_written;
	char outcome[64];
	bool replay;                     /* an outbox entry of an earlier life: no TASK_STATE */

	struct mc_api_lane lane;          /* its calls in order, beside other tasks' */
	struct mc_xtask *next;
};

/* The executor's state inside struct mc_worker. */
struct mc_exec {
	struct mc_xtask *head;
	size_t n;
	struct mc_api *api;              /* task traffic: its own queue and connection */
	bool stopping;
	bool idle_told;                  /* the deferred stop was handed back */
	mc_ms_t stop_deadline;
	mc_ms_t next_gc_at;
	mc_ms_t next_sweep_at;
	size_t gc_cursor;
	mc_ms_t next_outbox_at;
	struct mc_launch_table launch;
	struct mc_agent_id aid;          /* who agents and probes run as (agent_id.h) */
};

/* task_fsm.c */
void mc_xt_event(struct mc_xtask *x, enum xt_event ev);
const char *mc_xt_state_name(enum xt_state s);
/* Reports the task's state to the supervisor when it changed. */
void mc_xt_report_state(struct mc_xtask *x, enum mc_task_state s);
/* Starts the terminal call of a run that ended (fail-closed routing). */
void mc_xt_finish(struct mc_xtask *x);
/* Fails the task: error text and multica failure_reason. */
void mc_xt_fail(struct mc_xtask *x, const char *error, const char *reason);

/* task_calls.c */
int mc_xt_start_call(struct mc_xtask *x, struct mc_call *c, void (*done)(struct mc_call *, void *));
void mc_xt_send_aux(struct mc_xtask *x, enum mc_task_op op, const char *body);
void mc_xt_poll_status(struct mc_xtask *x, mc_ms_t now);
void mc_xt_flush_messages(struct mc_xtask *x, mc_ms_t now, bool force);
bool mc_xt_messages_idle(const struct mc_xtask *x);
void mc_xt_send_usage(struct mc_xtask *x);
void mc_xt_cancel_calls(struct mc_xtask *x);
/* Cancels the state's call and the cancel poll; progress, session and
 * usage calls go on (they were queued before the report). */
void mc_xt_cancel_calls_but_aux(struct mc_xtask *x);

/* task_report.c */
/* Writes the outbox file, then sends it; retries per the schedule. */
void mc_xt_report(struct mc_xtask *x, int op, char *body /* taken */);
void mc_xt_report_timer(struct mc_xtask *x, mc_ms_t now);

/* task_agent.c */
int mc_xt_agent_spawn(struct mc_xtask *x, char *err, size_t err_size);
void mc_xt_agent_stop(struct mc_xtask *x, enum xt_stop_why why, long grace_ms);
void mc_xt_agent_service(struct mc_xtask *x, mc_ms_t now);
unsigned mc_xt_agent_waitfds(struct mc_xtask *x, struct curl_waitfd *fds, unsigned max);
void mc_xt_agent_set_ready(struct mc_xtask *x, const struct curl_waitfd *fds);
mc_ms_t mc_xt_agent_deadline(const struct mc_xtask *x);
void mc_xt_agent_free(struct mc_xtask *x);
int mc_xt_agent_pid(const struct mc_xtask *x);

/* task_exec.c */
/* The grace of an agent stopped because the worker stops: what the stop
 * budget leaves. */
long mc_xt_stop_grace(const struct mc_xtask *x);

/* adopted.c: the worker as a child subreaper of its agents' leftovers */
void mc_adopted_enable(void);
void mc_adopted_sweep(struct mc_worker *w, mc_ms_t now, bool force);

/* task_prepare.c */
/* Pre-flight and work dir: 0, or -1 after failing the task itself. */
int mc_xt_prepare(struct mc_xtask *x);

#endif
