/* Dropped runtime ids whose DEREG has not succeeded yet. They stay in every
 * REPORT until a DEREG of them succeeds (so the supervisor's ledger keeps
 * them and cleans them up if the worker dies), a failed DEREG is retried
 * with backoff, an id that is registered again leaves the set (never
 * deregister what we host), and the final DEREG at stop takes them all. */
#ifndef MC_WORKER_DROPPED_H
#define MC_WORKER_DROPPED_H

#include <stdbool.h>
#include <stddef.h>

#include "common/backoff.h"
#include "common/clock.h"
#include "worker/tracked.h"

#define MC_DROPPED_RETRY_MIN_MS 1000
#define MC_DROPPED_RETRY_MAX_MS 30000

struct mc_dropped {
	char **ids;                /* owned strings */
	size_t n;
	size_t n_sent;             /* the first n_sent ids are in the DEREG in flight */
	struct mc_backoff backoff; /* consecutive failed DEREGs */
	mc_ms_t retry_at;          /* no DEREG before this (0: due now) */
};

void mc_dropped_init(struct mc_dropped *d);
/* Frees every id. */
void mc_dropped_clear(struct mc_dropped *d);

/* Takes ownership of ids (the array and its strings, freed here whatever
 * the result); ids already pending are not added twice. New ids are due at
 * once. Returns 0, or -1 (ENOMEM: the ids that did not fit are freed and
 * lost, the caller logs it). */
int mc_dropped_add(struct mc_dropped *d, char **ids, size_t n);

/* Removes (and frees) the ids that are tracked again. */
void mc_dropped_forget_tracked(struct mc_dropped *d, const struct mc_tracked *t);

/* True when ids are pending and their DEREG may be sent at now. */
bool mc_dropped_due(const struct mc_dropped *d, mc_ms_t now);

/* Outcome of the DEREG of the first n_sent ids: success removes them and
 * resets the backoff; failure keeps them and returns the delay before the
 * retry. */
void mc_dropped_succeeded(struct mc_dropped *d);
mc_ms_t mc_dropped_failed(struct mc_dropped *d, mc_ms_t now);

/* Moves every pending id to the end of *ids (a malloc'd array of *n owned
 * strings, grown here; the caller frees it). Returns 0, or -1 (ENOMEM:
 * nothing moved). */
int mc_dropped_take_all(struct mc_dropped *d, char ***ids, size_t *n);

#endif
