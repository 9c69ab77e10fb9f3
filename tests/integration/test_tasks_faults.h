/* What the fault-injection suites over tasks share (test_tasks_faults.c:
 * deaths of the daemon's processes; test_tasks_faults_server.c: server
 * faults, cancel and delete at every stage, stop, drain and reload).
 *
 * The whole daemon (daemon_fixture.h) against the emulator, its claude
 * built-in being the fake claude (tests/agents). Tasks are queued with ids
 * the test picks (tf_new_id), so that a fault on the task's own endpoints
 * can be in place before the link can claim it.
 *
 * After each fault a test asserts what a user of the server would see:
 * the task ends terminal exactly once (tf_tally replays the emulator's
 * call log: which terminal call took effect, how often the task started),
 * and no agent process is left (nothing in /proc carries the task's
 * MULTICA_TASK_ID). Parent side only; asserts with Criterion. */
#ifndef MC_TEST_TASKS_FAULTS_H
#define MC_TEST_TASKS_FAULTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "tests/support/daemon_fixture.h"
#include "tests/support/fp_tasks.h"

#ifdef MC_TEST_HOOKS
#define TF_NEED_HOOKS() ((void)0)
#else
#define TF_NEED_HOOKS() cr_skip_test("needs a build configured with -DMC_TEST_HOOKS=ON")
#endif

#define TF_READY_MS 15000
#define TF_ID_LEN 40

/* The daemon's settings of a test (NULL: the default). */
struct tf_opts {
	int n_ws;                      /* workspaces 1..n_ws (0: 1) */
	const char *daemon_extra;      /* more [daemon] lines */
	const char *tail;              /* [workspace ...] sections */
	const char *const *fp_args;    /* more emulator flags (NULL-terminated) */
	struct dp_config *keep;        /* where to keep the config (a reload edits it) */
};

/* The emulator, then the daemon (task_poll_interval 300ms, task_stop_grace
 * 1s, stop_timeout 8s, http_timeout 2s), every workspace ready. */
void tf_start(const struct tf_opts *o);
/* dp_config as tf_start writes it (strings static: valid until the next call). */
void tf_config(struct dp_config *c, const struct tf_opts *o);

/* A fresh task id of this test process. */
void tf_new_id(char id[TF_ID_LEN]);
/* Queues task id for workspace ws's claude row; env as fpt_queue's. */
void tf_queue_id(int ws, const char *id, const char *env);
/* tf_new_id and tf_queue_id. */
void tf_queue(int ws, const char *env, char id[TF_ID_LEN]);

/* A fault on the task's endpoint op ("start", "status", "complete", ...):
 * spec is the rest of the fault's JSON ("\"status\":502,\"count\":1"). */
void tf_fault_on(const char *id, const char *op, const char *spec);
/* A fault on any path under prefix. */
void tf_fault_path(const char *method, const char *prefix, const char *spec);
/* No fault any more. */
void tf_faults_clear(void);
/* Faults not yet used up (GET /_admin/faults). */
int tf_faults_left(void);

/* What the emulator's call log says about a task (the replay of its state:
 * a call counts as taking effect when it changed the row). */
struct tf_tally {
	int claims;          /* times handed out */
	int starts;          /* /start calls that took effect */
	int effective;       /* complete, fail, recover-orphans that ended the task */
	int completes;       /* /complete calls that reached the server */
	int fails;
	int acks;            /* cancel-ack calls */
	int recovers;
	int messages;        /* /messages calls */
	char status[32];     /* the row's status now */
	char reason[64];     /* its failure_reason */
	char calls[4096];    /* the ops in order, for the messages */
};
void tf_tally(const char *id, struct tf_tally *t);
/* Requests for the task's endpoint op in the journal (faulted ones too). */
int tf_requests(const char *id, const char *op);
/* Of them, the ones the fault answered (or reset, or delayed). */
int tf_faulted(const char *id, const char *op);

/* Waits for the row to be terminal (completed, failed, cancelled). */
bool tf_wait_terminal(const char *id, int timeout_ms);
/* The task ended want (and, when reason is not NULL, with that
 * failure_reason) by exactly one terminal call that took effect, started
 * starts times, and no process of it is left within 2 s. */
void tf_assert_once(const char *id, const char *want, const char *reason, int starts);
/* Cancelled at the emulator, no complete or fail of the daemon took
 * effect, at most one cancel-ack reached it, nothing of it is left. */
void tf_assert_cancelled(const char *id);
/* No process carries the task's MULTICA_TASK_ID within ms. */
bool tf_no_procs(const char *id, int ms);
/* SIGKILLs every process carrying the task's MULTICA_TASK_ID; how many. */
int tf_kill_task_procs(const char *id);
/* The agent of the task runs and the row is running. */
void tf_wait_running(const char *id, int timeout_ms);

/* POST /_admin/tasks/{id}/cancel, DELETE /_admin/tasks/{id}. */
void tf_cancel(const char *id);
void tf_delete(const char *id);

/* The supervisor's count of slots in use (status), -1 when no answer. */
int tf_slots_used(void);
/* The daemon's link process, 0 when none. */
pid_t tf_link_pid(void);
/* Whether the task's report is still in the outbox of workspace ws. */
bool tf_in_outbox(int ws, const char *id);

#endif
