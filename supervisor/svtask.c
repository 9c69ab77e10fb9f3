/* The supervisor's task table (svtask.h): a list of tasks in flight (at
 * most max_concurrent_tasks, 20 by default: a list is the right size) and
 * the slot bitmap. */
#include "supervisor/svtask.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

int mc_sv_tasks_init(struct mc_sv_tasks *t, int max)
{
	memset(t, 0, sizeof *t);
	if (max < 1) {
		errno = EINVAL;
		return -1;
	}
	t->slot_busy = calloc((size_t)max, 1);
	if (t->slot_busy == NULL)
		return -1;
	t->max = max;
	return 0;
}

int mc_sv_tasks_resize(struct mc_sv_tasks *t, int max)
{
	if (max < 1) {
		errno = EINVAL;
		return -1;
	}
	/* Slots past the new max stay busy until their tasks end: the bitmap
	 * keeps the larger size. */
	int highest = 0;
	for (const struct mc_sv_task *k = t->head; k != NULL; k = k->next)
		if (k->slot + 1 > highest)
			highest = k->slot + 1;
	int size = max > highest ? max : highest;
	unsigned char *nb = calloc((size_t)size, 1);
	if (nb == NULL)
		return -1;
	for (const struct mc_sv_task *k = t->head; k != NULL; k = k->next)
		nb[k->slot] = 1;
	free(t->slot_busy);
	t->slot_busy = nb;
	t->max = max;
	return 0;
}

void mc_sv_tasks_free(struct mc_sv_tasks *t)
{
	while (t->head != NULL) {
		struct mc_sv_task *k = t->head;
		t->head = k->next;
		free(k);
	}
	free(t->slot_busy);
	memset(t, 0, sizeof *t);
}

int mc_sv_tasks_free_slots(const struct mc_sv_tasks *t)
{
	int f = t->max - t->used - t->reserved;
	return f > 0 ? f : 0;
}

static int lowest_free_slot(const struct mc_sv_tasks *t)
{
	for (int i = 0; i < t->max; i++)
		if (!t->slot_busy[i])
			return i;
	return -1;
}

struct mc_sv_task *mc_sv_task_add(struct mc_sv_tasks *t, const char *id, const char *runtime_id,
				  const char *ws, mc_ms_t now)
{
	int slot = lowest_free_slot(t);
	if (slot < 0 || t->used >= t->max) {
		errno = ENOSPC;
		return NULL;
	}
	struct mc_sv_task *k = calloc(1, sizeof *k);
	if (k == NULL)
		return NULL;
	strlcpy(k->id, id, sizeof k->id);
	strlcpy(k->runtime_id, runtime_id, sizeof k->runtime_id);
	strlcpy(k->ws, ws, sizeof k->ws);
	k->slot = slot;
	k->state = MC_TS_ACCEPTED;
	k->routed_at = k->state_at = now;
	t->slot_busy[slot] = 1;
	t->used++;
	if (t->reserved > 0)
		t->reserved--; /* the claim's reservation became this task */
	k->next = t->head;
	t->head = k;
	t->n++;
	t->gen++;
	return k;
}

struct mc_sv_task *mc_sv_task_find(struct mc_sv_tasks *t, const char *id)
{
	for (struct mc_sv_task *k = t->head; k != NULL; k = k->next)
		if (strcmp(k->id, id) == 0)
			return k;
	return NULL;
}

void mc_sv_task_remove(struct mc_sv_tasks *t, struct mc_sv_task *task)
{
	for (struct mc_sv_task **pp = &t->head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp != task)
			continue;
		*pp = task->next;
		t->slot_busy[task->slot] = 0;
		t->used--;
		t->n--;
		t->gen++;
		t->removed++;
		free(task);
		return;
	}
}

size_t mc_sv_tasks_count_ws(const struct mc_sv_tasks *t, const char *ws)
{
	size_t n = 0;
	for (const struct mc_sv_task *k = t->head; k != NULL; k = k->next)
		if (strcmp(k->ws, ws) == 0)
			n++;
	return n;
}

void mc_sv_tasks_foreach_ws(struct mc_sv_tasks *t, const char *ws,
			    void (*cb)(struct mc_sv_task *task, void *arg), void *arg)
{
	for (struct mc_sv_task *k = t->head; k != NULL; k = k->next)
		if (strcmp(k->ws, ws) == 0)
			cb(k, arg);
}

size_t mc_sv_tasks_drop_ws(struct mc_sv_tasks *t, const char *ws)
{
	size_t n = 0;
	struct mc_sv_task *k = t->head, *next;
	for (; k != NULL; k = next) {
		next = k->next;
		if (strcmp(k->ws, ws) == 0) {
			mc_sv_task_remove(t, k);
			n++;
		}
	}
	return n;
}
