/* Test support: tasks at the emulator, as the task suites look at them.
 * Queue one (POST /_admin/tasks), read its row and everything the daemon
 * sent for it (GET /_admin/tasks/{id}), wait for a status, list its calls
 * in order; and whether a process group still has a live member.
 * The waits call pump (may be NULL) between looks: a worker harness has
 * to be pumped, a whole daemon runs by itself. Parent side only; asserts
 * with Criterion. */
#ifndef MC_TEST_FP_TASKS_H
#define MC_TEST_FP_TASKS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "tests/support/fakeplane_proc.h"

#define FPT_AGENT_ID "b1111111-1111-4111-8111-111111111111"
#define FPT_ISSUE_ID "d1111111-1111-4111-8111-111111111111"

typedef void (*fpt_pump_fn)(void);

/* Queues a task for runtime_id whose agent has custom_env {env} (JSON
 * members without braces, may be "") and the extra top-level members
 * extra (may be ""). Writes its id into id (40 bytes). */
void fpt_queue(const struct fp_proc *fp, const char *runtime_id, const char *env,
	       const char *extra, char id[40]);
/* GET /_admin/tasks/{id}, parsed (caller deletes). */
cJSON *fpt_detail(const struct fp_proc *fp, const char *id);
/* The task row's field (status, failure_reason, ...), malloc'd; "" when absent. */
char *fpt_field(const struct fp_proc *fp, const char *id, const char *field);
bool fpt_wait_status(const struct fp_proc *fp, const char *id, const char *want,
		     int timeout_ms, fpt_pump_fn pump);
/* The ops of the daemon's calls for the task, in order, comma-separated,
 * without claims and status polls: "start,progress,...,complete". */
void fpt_calls(const struct fp_proc *fp, const char *id, char *out, size_t n);
/* How many times op appears in such a list. */
int fpt_count_op(const char *calls, const char *op);
/* The messages' seqs strictly increase (and there is at least one). */
bool fpt_seqs_increase(const struct fp_proc *fp, const char *id);
/* A live (non-zombie) process is in group pgid. */
bool fpt_group_alive(int pgid);
/* Processes whose environment names MULTICA_TASK_ID=id (live ones). */
int fpt_count_task_procs(const char *id);

#endif
