#include "supervisor/timerq.h"

#include <errno.h>
#include <stdlib.h>

void mc_timer_init(struct mc_timer *t, int kind, void *owner)
{
	t->deadline = 0;
	t->heap_index = -1;
	t->kind = kind;
	t->owner = owner;
}

void mc_timerq_init(struct mc_timerq *q)
{
	q->heap = NULL;
	q->n = q->cap = 0;
}

void mc_timerq_free(struct mc_timerq *q)
{
	for (size_t i = 0; i < q->n; i++)
		q->heap[i]->heap_index = -1;
	free(q->heap);
	mc_timerq_init(q);
}

static void place(struct mc_timerq *q, size_t i, struct mc_timer *t)
{
	q->heap[i] = t;
	t->heap_index = (long)i;
}

static void sift_up(struct mc_timerq *q, size_t i)
{
	struct mc_timer *t = q->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (q->heap[parent]->deadline <= t->deadline)
			break;
		place(q, i, q->heap[parent]);
		i = parent;
	}
	place(q, i, t);
}

static void sift_down(struct mc_timerq *q, size_t i)
{
	struct mc_timer *t = q->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		mc_ms_t best_deadline = t->deadline;
		if (l < q->n && q->heap[l]->deadline < best_deadline) {
			best = l;
			best_deadline = q->heap[l]->deadline;
		}
		if (r < q->n && q->heap[r]->deadline < best_deadline)
			best = r;
		if (best == i)
			break;
		place(q, i, q->heap[best]);
		i = best;
	}
	place(q, i, t);
}

int mc_timerq_arm(struct mc_timerq *q, struct mc_timer *t, mc_ms_t deadline)
{
	if (t->heap_index >= 0) {
		mc_ms_t old = t->deadline;
		t->deadline = deadline;
		if (deadline < old)
			sift_up(q, (size_t)t->heap_index);
		else
			sift_down(q, (size_t)t->heap_index);
		return 0;
	}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct mc_timer **nh = realloc(q->heap, cap * sizeof *nh);
		if (nh == NULL) {
			errno = ENOMEM;
			return -1;
		}
		q->heap = nh;
		q->cap = cap;
	}
	t->deadline = deadline;
	place(q, q->n++, t);
	sift_up(q, q->n - 1);
	return 0;
}

void mc_timerq_cancel(struct mc_timerq *q, struct mc_timer *t)
{
	if (t->heap_index < 0)
		return;
	size_t i = (size_t)t->heap_index;
	t->heap_index = -1;
	q->n--;
	if (i == q->n)
		return;
	place(q, i, q->heap[q->n]);
	sift_down(q, i);
	sift_up(q, (size_t)q->heap[i]->heap_index);
}

struct mc_timer *mc_timerq_peek(const struct mc_timerq *q)
{
	return q->n > 0 ? q->heap[0] : NULL;
}

struct mc_timer *mc_timerq_pop_due(struct mc_timerq *q, mc_ms_t now)
{
	struct mc_timer *t = mc_timerq_peek(q);
	if (t == NULL || t->deadline > now)
		return NULL;
	mc_timerq_cancel(q, t);
	return t;
}
