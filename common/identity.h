/* The identity everything the server or an agent decides to run gets
 * (issue 11, SECURITY.md): agents, the version probes of custom profiles,
 * the git of the agents' local API. Never the daemon's own uid when the
 * daemon can switch (CAP_SETUID + CAP_SETGID, or root).
 *
 * Per workspace, from the configuration:
 *   agent_user = NAME (default multicad-agent): uid = NAME's uid; gid = the
 *     workspace's own group, agent_gid_range.lo + index: workspaces apart
 *     by group (their directories are reachable through that group only);
 *   agent_uid_range = LO-HI: uid = gid = LO + index: apart as processes too;
 *     NAME's primary group, when NAME exists, is a supplementary group
 *     (for what the operator shares with every agent: tools, the HOME
 *     template).
 * index: the workspace's slot, allocated once and kept in
 * <state_dir>/agent-ids (supervisor/agent_ids.c), never reused.
 *
 * Without the capabilities (or an empty "agent_user =" line), agents run as
 * the daemon's user and MC_IDENTITY_FALLBACK_WARNING is said in the
 * start-up log, by multicad -t and in multicactl status.
 *
 * Error convention: 0, or -1 with errno. */
#ifndef MC_COMMON_IDENTITY_H
#define MC_COMMON_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MC_IDENTITY_FALLBACK_WARNING \
	"agents run as the daemon's own user: an agent can read the daemon token"

/* The umask agents and their helpers run with: what they create in their
 * workspace's group-owned directories stays reachable by the group (the
 * worker's GC, the same workspace's next task). */
#define MC_AGENT_UMASK 007

struct mc_identity {
	bool sw;          /* switch to it; false: the daemon's own (fallback) */
	uid_t uid;
	gid_t gid;        /* primary: the workspace's group */
	gid_t extra_gid;  /* supplementary; (gid_t)-1: none */
};

/* True when this process can switch identities: euid 0, or CAP_SETUID and
 * CAP_SETGID in its effective set. */
bool mc_identity_can_switch(void);

/* In a child between fork and exec (async-signal-safe calls only): when
 * id->sw, sets the groups (gid, extra_gid), gid then uid (real, effective
 * and saved), and drops every capability (ambient cleared, then permitted,
 * effective and inheritable emptied) and sets PR_SET_NO_NEW_PRIVS, so the
 * exec'd program has none of the daemon's powers and cannot gain any
 * (setuid binaries included); checks the switch stuck. Always sets
 * MC_AGENT_UMASK. -1 with errno at the first step that failed. */
int mc_identity_enter(const struct mc_identity *id);

/* "uid 61003 gid 61003" / "the daemon's own user (uid 1000)", into out. */
void mc_identity_describe(const struct mc_identity *id, char *out, size_t out_size);

#endif
