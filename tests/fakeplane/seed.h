/* multica-fakeplane: the seed file (INTERFACE.md "multica-fakeplane").
 *
 *   { "tokens": {TOKEN: user}, "workspaces": [...], "profiles": [...],
 *     "runtimes": [...], "tasks": [...] }      every key optional
 *
 * "runtimes" is an extension: rows that exist before any register, e.g.
 * {"workspace_id","daemon_id","provider","profile_id"?,"id"?,"name"?,"status"?}.
 * "tasks" take every field of POST /_admin/tasks (decode.h fp_decode_task). */
#ifndef FP_SEED_H
#define FP_SEED_H

#include <stddef.h>

#include "tests/fakeplane/state.h"

/* Loads file into st (before any thread runs; no lock taken). Returns 0, or
 * -1 with "FILE: where: what" in err, e.g.
 * "seed.json: profiles[2].workspace_id: expected string". */
int fp_seed_load(struct fp_state *st, const char *file, char *err, size_t errlen);

#endif
