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
 *   - agent_user not in the file and no such user (without
 *     agent_uid_range: with it the user only lends its group), agent_user
 *     the daemon's own user, the daemon lacking CAP_SETUID/CAP_SETGID, or
 *     agent_user = (empty) : fallback (every workspace's identity has sw
 *     false), MC_IDENTITY_FALLBACK_WARNING logged at warn with the reason;
 *   - a configuration error (mc_agent_ids_configure -1, nothing changed):
 *     agent_user given in the file but unknown, agent_user of uid 0 or
 *     inside agent_uid_range, an empty agent_user with agent_uid_range, the
 *     daemon's own uid/gid inside the range its agents use.
 * agent_user's primary group is the agents' supplementary group (when it
 * is neither root's nor the daemon's), in both modes.
 *
 * Error convention: 0, or -1 with errno and a message in err. */
#ifndef MC_SV_AGENT_IDS_H
#define MC_SV_AGENT_IDS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/identity.h"
#include "supervisor/config.h"

struct mc_agent_ids;

/* Allocates; reads <state_dir>/agent-ids if it exists (a corrupt file:
 * NULL, EINVAL, the message naming the file and line). state_dir NULL:
 * nothing read or persisted (multicad -t). */
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

/* mc_agent_ids_get without allocating (a const caller: the CONFIG digest):
 * -1 with ENOENT when ws has no slot yet (or it is past the range). */
int mc_agent_ids_peek(const struct mc_agent_ids *a, const char *ws, struct mc_identity *out);

/* NULL when agents are isolated; else why not ("no user multicad-agent",
 * "the daemon lacks CAP_SETUID", "agent_user is empty"). */
const char *mc_agent_ids_fallback_reason(const struct mc_agent_ids *a);
/* The agents' HOME for the worker config (see mc_worker_config.agent_home). */
const char *mc_agent_ids_home(const struct mc_agent_ids *a);

enum mc_agent_mode {
	MC_AGENT_MODE_USER,       /* one agent_user, a group per workspace */
	MC_AGENT_MODE_UID_RANGE,  /* a uid (= gid) per workspace */
	MC_AGENT_MODE_DAEMON,     /* fallback: the daemon's own user */
};

/* What status and the log say about the decision. Borrowed strings. */
struct mc_agent_ids_info {
	enum mc_agent_mode mode;
	const char *user;         /* agent_user when it exists and is used; else NULL */
	long uid;                 /* user mode: agent_user's; daemon: the daemon's; else -1 */
	unsigned uid_lo, uid_hi;  /* uid_range mode; else 0-0 */
	unsigned gid_lo, gid_hi;  /* user mode; else 0-0 */
	const char *reason;       /* fallback: why; else NULL */
};
void mc_agent_ids_info(const struct mc_agent_ids *a, struct mc_agent_ids_info *out);
/* "user", "uid_range" or "daemon". */
const char *mc_agent_mode_name(enum mc_agent_mode m);

#endif
