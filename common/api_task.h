/* The task endpoints of the daemon API (reference/multica-task-execution.md
 * section 2), as mc_calls of common/api.h: same ownership, same outcome
 * reporting (mc_call_error), same event-loop use.
 *
 * Bodies the executor builds itself (messages, usage, complete, fail, ...)
 * are passed as JSON text and sent as they are: the outbox stores exactly
 * the body of a terminal call, so a delivery after a crash is the same
 * request. */
#ifndef MC_API_TASK_H
#define MC_API_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "common/api.h"
#include "common/secret.h"

/* What a claim answer may hold: the server caps a batch at 32. */
#define MC_CLAIM_MAX_TASKS 32
/* Response cap of a claim (32 tasks with chat history and context). */
#define MC_CLAIM_MAX_BODY (64u * 1024u * 1024u)

/* POST /api/daemon/tasks/claim {"daemon_id","runtime_ids","max_tasks"}.
 * Times out after 5 s (multica's batch claim bound) unless overridden. */
struct mc_call *mc_call_claim_tasks(struct mc_api *api, const char *daemon_id, size_t n,
				    const char *const *runtime_ids, int max_tasks);
/* POST /api/daemon/runtimes/{id}/tasks/claim {} (legacy). */
struct mc_call *mc_call_claim_runtime_task(struct mc_api *api, const char *runtime_id);

/* One claimed task: the JSON object without its token, and the token. */
struct mc_claimed_task {
	cJSON *task;               /* owned */
	struct mc_secret *token;   /* owned; NULL when the server sent none */
	char id[40];               /* "" when the task had no usable id */
	char runtime_id[40];
};
struct mc_claimed {
	size_t n;
	struct mc_claimed_task *v;
};
void mc_claimed_clear(struct mc_claimed *c);
/* Either claim: moves the tasks out of a successful call ({"tasks":[...]}
 * or {"task":null|{...}}). A non-object element is a decode error of the
 * call; a task without a usable id or runtime_id is still returned (the
 * caller fails what it can, logs the rest). */
int mc_call_take_claimed(struct mc_call *call, struct mc_claimed *out);

/* POST /api/daemon/tasks/{id}/<what> with body (NULL: "{}"), for what in
 * start, progress, messages, session, usage, complete, fail, cancel-ack;
 * and POST /api/daemon/runtimes/{rid}/tasks/{id}/prepare-lease.
 * body is copied. EINVAL for a task id that is not a UUID. */
enum mc_task_op {
	MC_TASK_OP_START,
	MC_TASK_OP_PROGRESS,
	MC_TASK_OP_MESSAGES,
	MC_TASK_OP_SESSION,
	MC_TASK_OP_USAGE,
	MC_TASK_OP_COMPLETE,
	MC_TASK_OP_FAIL,
	MC_TASK_OP_CANCEL_ACK,
	MC_TASK_OP_COUNT,
};
const char *mc_task_op_name(enum mc_task_op op);   /* "start", "cancel-ack", ... */
struct mc_call *mc_call_task_op(struct mc_api *api, enum mc_task_op op, const char *task_id,
				const char *body);
struct mc_call *mc_call_task_prepare_lease(struct mc_api *api, const char *runtime_id,
					   const char *task_id);
/* GET /api/daemon/tasks/{id}/status */
struct mc_call *mc_call_task_status(struct mc_api *api, const char *task_id);
/* status call: the status string of a 2xx answer ("running", ...); NULL
 * otherwise. Borrowed from the call. */
const char *mc_call_task_status_value(const struct mc_call *call);
/* Any call: 404 whose body contains "task not found" (case-insensitive). */
bool mc_call_task_not_found(const struct mc_call *call);
/* Task endpoints: the task id of the call's path, else NULL. Borrowed. */
const char *mc_call_task_id(const struct mc_call *call);
/* mc_call_task_op calls: its enum mc_task_op; -1 for any other call. */
int mc_call_task_op_of(const struct mc_call *call);
/* True for completed, failed, cancelled. */
bool mc_task_status_terminal(const char *status);

#endif
