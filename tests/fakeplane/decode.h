/* multica-fakeplane: JSON -> model objects, shared by the seed loader and the
 * admin API. Errors name the offending field by its path, e.g.
 * "profiles[2].workspace_id: expected string" (the seed loader puts the file
 * name in front).
 *
 * Error convention: 0 on success, -1 with a message in err[0..errlen). */
#ifndef FP_DECODE_H
#define FP_DECODE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "tests/fakeplane/state.h"

/* Each allocates a new object into *out (fields as in the seed file; a
 * missing id gets a fresh UUID). path prefixes error messages ("" at top). */
int fp_decode_workspace(const cJSON *j, const char *path, struct fp_workspace **out,
			char *err, size_t errlen);
int fp_decode_profile(const cJSON *j, const char *path, struct fp_profile **out,
		      char *err, size_t errlen);
/* A task: {id?, runtime_id, status? (default queued), agent?{id, name, ...},
 * agent_id? (default agent.id), workspace_id?, issue_id?, failure_reason?,
 * error?, attempt?, max_attempts?, session_id?, work_dir?, auth_token? (a
 * fixed claim token; null: none), ...any other fields}: the others and
 * agent are kept in t->extra for claims. */
int fp_decode_task(const cJSON *j, const char *path, struct fp_task **out,
		   char *err, size_t errlen);
/* Applies a PATCH {status?, failure_reason?, error?, session_id?,
 * work_dir?, issue_id?, attempt?, max_attempts?} to t (may be half-changed
 * on error). */
int fp_decode_task_patch(const cJSON *j, struct fp_task *t, char *err, size_t errlen);
/* Seed extension: a pre-existing runtime row. */
int fp_decode_runtime(const cJSON *j, const char *path, struct fp_runtime **out,
		      char *err, size_t errlen);

/* Applies a PATCH body to p (pass a clone; on error it may be half-changed).
 * id, workspace_id and protocol_family may only repeat their value. */
int fp_decode_profile_patch(const cJSON *j, struct fp_profile *p, char *err, size_t errlen);

#endif
