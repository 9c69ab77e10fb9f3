/* The auth registry of the agents' local API (reference 1.3): the tasks
 * whose agent runs now, keyed by the hex BLAKE2b-256 of their token
 * (common/task.h mc_task_token_hash), as the supervisor reports them in
 * AGENT_TASK frames. The process never holds a task token: a request's
 * Bearer token is hashed and compared in constant time.
 *
 * Thread-safe (one mutex): the IPC loop adds and removes, every HTTP
 * connection thread looks up.
 *
 * Error convention: 0 / -1 with errno (ENOMEM, EINVAL). */
#ifndef MC_AGENTAPI_REGISTRY_H
#define MC_AGENTAPI_REGISTRY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "ipc/agentapi_msgs.h"

#define MCA_ID_MAX 40

/* A task is the AGENT_TASK "running" payload (ipc/agentapi_msgs.h). */

struct mca_registry;

struct mca_registry *mca_registry_new(void);
void mca_registry_free(struct mca_registry *r);

/* Records (or replaces, same task_id) a running task; copies t. */
int mca_registry_add(struct mca_registry *r, const struct mc_agent_task *t);
/* Forgets task_id (its token gets 401 from now on). True if it was there. */
bool mca_registry_remove(struct mca_registry *r, const char *task_id);
/* The task whose token is token[0..len) into *out: true, or false when no
 * running task has it. Every entry is compared (constant time). */
bool mca_registry_lookup(struct mca_registry *r, const char *token, size_t len,
			 struct mc_agent_task *out);
/* mca_registry_lookup, and on a miss waiting up to wait_ms for a task to
 * be added (the agent starts before the supervisor's AGENT_TASK reaches
 * this process: its first request may come first). */
bool mca_registry_lookup_wait(struct mca_registry *r, const char *token, size_t len,
			      struct mc_agent_task *out, long wait_ms);
/* Running tasks. */
size_t mca_registry_count(struct mca_registry *r);
/* The distinct workspace ids of the running tasks, at most max, into ids;
 * returns how many. */
size_t mca_registry_workspaces(struct mca_registry *r, char (*ids)[MCA_ID_MAX], size_t max);

/* The default ref of url in t ("" when none; the first entry wins). */
const char *mca_task_repo_ref(const struct mc_agent_task *t, const char *url);
bool mca_task_has_repo(const struct mc_agent_task *t, const char *url);

#endif
