/* The runtimes a worker hosts for its workspace, in server response order:
 * what it heartbeats, reports to the supervisor and deregisters on stop. */
#ifndef MC_WORKER_TRACKED_H
#define MC_WORKER_TRACKED_H

#include <stdbool.h>
#include <stddef.h>

#include "common/api.h"
#include "common/clock.h"

struct mc_tracked_rt {
	char *id;
	char *provider;
	char *profile_id;    /* NULL for a built-in */
	/* heartbeat schedule, owned by heartbeat.c */
	mc_ms_t next_beat;
	struct mc_call *beat;      /* in flight, or NULL */
	bool beat_failing;         /* last beat failed: log only state changes */
};

struct mc_tracked {
	size_t n;
	size_t cap;
	struct mc_tracked_rt *v;
};

void mc_tracked_init(struct mc_tracked *t);
/* Frees every entry; in-flight heartbeat calls must have been cancelled. */
void mc_tracked_clear(struct mc_tracked *t);

/* Index of id, or -1. */
long mc_tracked_find(const struct mc_tracked *t, const char *id);

/* Removes id (order of the rest kept). Returns true if it was tracked. The
 * entry's heartbeat call, if any, is freed. */
bool mc_tracked_remove(struct mc_tracked *t, const char *id);

/* Authoritative apply of a register response: the tracked set becomes
 * exactly resp (in order). Entries that survive keep their heartbeat
 * schedule; new ones get next_beat = 0 (heartbeat.c schedules them).
 * Allocates *dropped_ids (the ids that were tracked and are not in resp;
 * caller frees with mc_ids_free) and *added_ids (ids in resp that were not
 * tracked before). Returns 0, or -1 with errno=ENOMEM (set unchanged). */
int mc_tracked_replace(struct mc_tracked *t, const struct mc_runtime_list *resp,
		       char ***dropped_ids, size_t *n_dropped,
		       char ***added_ids, size_t *n_added);

/* Drops everything; allocates the former ids into *ids (caller frees). */
int mc_tracked_take_all(struct mc_tracked *t, char ***ids, size_t *n);

/* A malloc'd array of pointers to the ids (borrowed strings), for reports
 * and deregistration. Caller frees the array only. NULL when empty. */
const char **mc_tracked_id_view(const struct mc_tracked *t);

void mc_ids_free(char **ids, size_t n);

#endif
