/* The agents' identity of each workspace (common/identity.h): which slot
 * of agent_uid_range / agent_gid_range a workspace has, kept for good in
 * <state_dir>/agent-ids ("<workspace-uuid> <index>\n" lines, rewritten
 * atomically: temp file, fsync, rename, dir fsync), so that a workspace's
 * directories keep their group across restarts. A slot is never given to
 * another workspace, even after its workspace left the config (its
 * directories may still exist). Range exhausted: that workspace's worker
 * is not started (state config-error, last_error naming the range).
 *
 * Resolution at start and at every reload (mc_sv_agent_ids_resolve):
 *   - agent_user not in the file and no such user, or the daemon lacks
 *     CAP_SETUID/CAP_SETGID, or agent_user = "" : fallback (every
 *     workspace's identity has sw false), MC_IDENTITY_FALLBACK_WARNING
 *     logged at warn with the reason;
 *   - agent_user given in the file but unknown: a configuration error.
 *
 * Error convention: 0, or -1 with errno and a message in err. */
#ifndef MC_SV_AGENT_IDS_H
#define MC_SV_AGENT_IDS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/identity.h"
#include "supervisor/config.h"

struct mc_agent_ids;

/* Allocates; reads <state_dir>/agent-ids if it exists. */
struct mc_agent_ids *mc_agent_ids_new(const char *state_dir, char *err, size_t err_size);
void mc_agent_ids_free(struct mc_agent_ids *a);

/* Applies cfg's agent_* keys: user lookup, capability check, fallback
 * decision (the reason kept for mc_agent_ids_fallback_reason). */
int mc_agent_ids_configure(struct mc_agent_ids *a, const struct mc_config *cfg, char *err,
			   size_t err_size);

/* The identity of workspace ws (allocating and persisting its slot on
 * first use). Fallback: out->sw false, 0 returned. */
int mc_agent_ids_get(struct mc_agent_ids *a, const char *ws, struct mc_identity *out,
		     char *err, size_t err_size);

/* NULL when agents are isolated; else why not ("no user multicad-agent",
 * "the daemon lacks CAP_SETUID", "agent_user is empty"). */
const char *mc_agent_ids_fallback_reason(const struct mc_agent_ids *a);
/* The agents' HOME for the worker config (see mc_worker_config.agent_home). */
const char *mc_agent_ids_home(const struct mc_agent_ids *a);

#endif
