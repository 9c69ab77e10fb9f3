/* A queue of deadlines, one slot per owner (a worker, a helper), as an
 * indexed binary min-heap: arm, re-arm and cancel are O(log n), the earliest
 * deadline is O(1). The supervisor's loop never scans all workers to find
 * what is due. */
#ifndef MC_SV_TIMERQ_H
#define MC_SV_TIMERQ_H

#include <stddef.h>

#include "common/clock.h"

/* Embedded in the owner. heap_index is -1 when not armed; kind and owner
 * tell the loop whom a due timer belongs to. */
struct mc_timer {
	mc_ms_t deadline;
	long heap_index;
	int kind;
	void *owner;
};

struct mc_timerq {
	struct mc_timer **heap;
	size_t n, cap;
};

void mc_timer_init(struct mc_timer *t, int kind, void *owner);
void mc_timerq_init(struct mc_timerq *q);
/* Frees the heap array (the timers belong to their owners). */
void mc_timerq_free(struct mc_timerq *q);

/* Arms or re-arms t. 0, or -1 with errno=ENOMEM. */
int mc_timerq_arm(struct mc_timerq *q, struct mc_timer *t, mc_ms_t deadline);
void mc_timerq_cancel(struct mc_timerq *q, struct mc_timer *t);
/* The earliest timer, or NULL. */
struct mc_timer *mc_timerq_peek(const struct mc_timerq *q);
/* Removes and returns the earliest timer if it is due at now, else NULL. */
struct mc_timer *mc_timerq_pop_due(struct mc_timerq *q, mc_ms_t now);

static inline int mc_timer_armed(const struct mc_timer *t) { return t->heap_index >= 0; }

#endif
