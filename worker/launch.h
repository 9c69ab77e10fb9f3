/* What this worker launches for each runtime it hosts: the protocol family
 * (which backend), the resolved executable and, for a custom profile, its
 * fixed_args as the launch prefix (reference/multica-task-execution.md
 * 4.4). Rebuilt after every successful REG from the payload that REG sent,
 * so a task always runs what its runtime was registered with; a custom
 * runtime never silently falls back to the built-in binary.
 *
 * Error convention: 0 / -1 with errno (ENOMEM); lookups return NULL. */
#ifndef MC_WORKER_LAUNCH_H
#define MC_WORKER_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#include "ipc/messages.h"
#include "worker/payload.h"
#include "worker/tracked.h"

struct mc_launch {
	char *runtime_id;
	char *family;       /* provider of a built-in, protocol_family of a profile */
	char *path;         /* absolute executable; NULL when unknown here */
	char *version;
	size_t n_args;      /* custom profile: fixed_args */
	char **args;
	bool custom;
};

struct mc_launch_table {
	size_t n;
	struct mc_launch *v;
};

/* Replaces the table with one entry per tracked runtime. Entries come from
 * p (custom rows by profile id) and builtins (by provider); a tracked
 * runtime p does not describe keeps its previous entry. Allocates. */
int mc_launch_table_update(struct mc_launch_table *t, const struct mc_tracked *tracked,
			   const struct mc_payload *p, const struct mc_probes *builtins);
const struct mc_launch *mc_launch_find(const struct mc_launch_table *t, const char *runtime_id);
void mc_launch_table_clear(struct mc_launch_table *t);

#endif
