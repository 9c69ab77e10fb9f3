/* multica-fakeplane: the daemon's task endpoints
 * (reference/multica-task-execution.md sections 2 and 7): batch and legacy
 * claim, prepare-lease, wait-local-directory, start, status, progress,
 * messages, session, usage, complete, fail, cancel-ack. Routed by api.c
 * (auth, state lock); every call on a task is also written to its log. */
#ifndef FP_TASKS_H
#define FP_TASKS_H

#include <stddef.h>

#include "tests/fakeplane/api.h"

#define FP_CLAIM_CAP 32   /* the server's batch bound (H:1569) */

extern const struct fp_route fp_task_routes[];
extern const size_t fp_task_nroutes;

#endif
