/* The supervisor's view of the host's tasks: the slots (host-wide
 * max_concurrent_tasks), every task in flight with the worker it was routed
 * to, and what its worker last said about it (TASK_STATE). Memory is the
 * truth; each workspace's task ids are journaled beside its runtime ids in
 * the ledger (state_dir/ledger/<ws>.tasks), so that a restarted supervisor
 * knows which runtimes had work in flight.
 *
 * Slots: used = tasks in flight; reserved = granted to the link's claim in
 * progress (SLOTS .. CLAIM_DONE). free = max - used - reserved. A slot
 * index is stable for a task's life (MULTICA_TASK_SLOT) and the lowest
 * free index is taken.
 *
 * Single-threaded (the supervisor's loop). Error convention: 0 / -1 with
 * errno; lookups return NULL. */
#ifndef MC_SV_SVTASK_H
#define MC_SV_SVTASK_H

#include <stdbool.h>
#include <stddef.h>

#include "common/clock.h"
#include "ipc/messages.h"
#include "ipc/task_msgs.h"

struct mc_sv;

struct mc_sv_task {
	char id[40];
	char runtime_id[40];
	char ws[MC_ID_MAX];
	int slot;
	enum mc_task_state state;
	int pid, pgid;                    /* of the agent, 0 while none */
	char family[32];
	char last_output[MC_TASK_STATE_OUTPUT_MAX + 1];
	mc_ms_t routed_at, state_at;
	struct mc_sv_task *next;
};

/* The table (owned by struct mc_sv). */
struct mc_sv_tasks {
	int max;                          /* max_concurrent_tasks */
	int used, reserved;
	unsigned char *slot_busy;         /* max entries; heap */
	struct mc_sv_task *head;
	size_t n;
	bool claiming_stopped;            /* drain or shutdown: no more grants */
	unsigned long gen;                /* bumped by every add and remove */
	unsigned long removed;            /* tasks removed so far (slots freed) */
};

int mc_sv_tasks_init(struct mc_sv_tasks *t, int max);
/* A reload changed max_concurrent_tasks: tasks keep their slots; a smaller
 * max only stops new grants until enough have ended. */
int mc_sv_tasks_resize(struct mc_sv_tasks *t, int max);
void mc_sv_tasks_free(struct mc_sv_tasks *t);
int mc_sv_tasks_free_slots(const struct mc_sv_tasks *t);

/* Records a task routed to ws's worker, taking the lowest free slot (and
 * one reservation). Allocates; NULL with errno (ENOSPC: no slot). */
struct mc_sv_task *mc_sv_task_add(struct mc_sv_tasks *t, const char *id, const char *runtime_id,
				  const char *ws, mc_ms_t now);
struct mc_sv_task *mc_sv_task_find(struct mc_sv_tasks *t, const char *id);
/* Unlinks and frees the task, freeing its slot. */
void mc_sv_task_remove(struct mc_sv_tasks *t, struct mc_sv_task *task);
/* Tasks of one workspace: the count, and cb for each (cb must not remove). */
size_t mc_sv_tasks_count_ws(const struct mc_sv_tasks *t, const char *ws);
void mc_sv_tasks_foreach_ws(struct mc_sv_tasks *t, const char *ws,
			    void (*cb)(struct mc_sv_task *task, void *arg), void *arg);
/* Removes every task of ws, freeing their slots; returns how many. The
 * table only: mc_route_drop_ws (sv.h) also journals it and wakes the link. */
size_t mc_sv_tasks_drop_ws(struct mc_sv_tasks *t, const char *ws);

#endif
