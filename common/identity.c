/* The agents' identity (common/identity.h). mc_identity_enter runs in a
 * child between fork and exec, possibly of a multi-threaded parent: raw
 * syscalls only (glibc's setgroups/setres[ug]id broadcast the change to
 * every thread of the process through signals and locks, which a forked
 * child must not rely on), no malloc, no stdio. */
#include "common/identity.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

/* 32-bit arches whose plain calls take 16-bit ids have a *32 variant. */
#ifdef SYS_setgroups32
#define MC_SYS_SETGROUPS SYS_setgroups32
#define MC_SYS_SETRESGID SYS_setresgid32
#define MC_SYS_SETRESUID SYS_setresuid32
#define MC_SYS_GETRESUID SYS_getresuid32
#define MC_SYS_GETRESGID SYS_getresgid32
#else
#define MC_SYS_SETGROUPS SYS_setgroups
#define MC_SYS_SETRESGID SYS_setresgid
#define MC_SYS_SETRESUID SYS_setresuid
#define MC_SYS_GETRESUID SYS_getresuid
#define MC_SYS_GETRESGID SYS_getresgid
#endif

static bool cap_in(uint32_t set0, uint32_t set1, int cap)
{
	return cap < 32 ? (set0 >> cap) & 1u : (set1 >> (cap - 32)) & 1u;
}

bool mc_identity_can_switch(void)
{
	/* The effective set, not the uid: a root in a container without
	 * CAP_SETUID cannot switch, a non-root with ambient caps can. */
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return cap_in(d[0].effective, d[1].effective, CAP_SETUID) &&
	       cap_in(d[0].effective, d[1].effective, CAP_SETGID);
}

/* Every capability set emptied; ambient first (the kernel would drop it
 * with permitted anyway, but a kernel without ambient caps says EINVAL:
 * nothing to clear there). */
static int drop_caps(void)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	return 0;
}

static int check_switched(const struct mc_identity *id)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (syscall(MC_SYS_GETRESUID, &ru, &eu, &su) < 0 ||
	    syscall(MC_SYS_GETRESGID, &rg, &eg, &sg) < 0)
		return -1;
	if (ru != id->uid || eu != id->uid || su != id->uid || rg != id->gid || eg != id->gid ||
	    sg != id->gid) {
		errno = EPERM;
		return -1;
	}
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	for (int i = 0; i < 2; i++)
		if (d[i].effective != 0 || d[i].permitted != 0 || d[i].inheritable != 0) {
			errno = EPERM;
			return -1;
		}
	return 0;
}

int mc_identity_enter(const struct mc_identity *id)
{
	umask(MC_AGENT_UMASK);
	if (!id->sw) {
		/* The daemon's own uid (fallback): still none of its powers
		 * (it may hold CAP_SETUID with agent_user = ""), best effort:
		 * a developer's sandbox may refuse capset, the agent runs. */
		(void)drop_caps();
		(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		return 0;
	}
	if (id->uid == 0 || id->uid == (uid_t)-1 || id->gid == (gid_t)-1) {
		errno = EINVAL;
		return -1;
	}
	gid_t groups[2] = { id->gid, id->extra_gid };
	size_t ngroups = id->extra_gid == (gid_t)-1 || id->extra_gid == id->gid ? 1 : 2;
	if (syscall(MC_SYS_SETGROUPS, ngroups, groups) < 0)
		return -1;
	if (syscall(MC_SYS_SETRESGID, id->gid, id->gid, id->gid) < 0)
		return -1;
	/* uid last: groups and gids need CAP_SETGID, which leaving uid 0
	 * takes away. A non-root daemon's (ambient) caps survive setresuid:
	 * hence drop_caps after it. */
	if (syscall(MC_SYS_SETRESUID, id->uid, id->uid, id->uid) < 0)
		return -1;
	if (drop_caps() < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return check_switched(id);
}

void mc_identity_describe(const struct mc_identity *id, char *out, size_t out_size)
{
	if (out_size == 0)
		return;
	if (!id->sw)
		snprintf(out, out_size, "the daemon's own user (uid %u)", (unsigned)getuid());
	else if (id->extra_gid != (gid_t)-1 && id->extra_gid != id->gid)
		snprintf(out, out_size, "uid %u gid %u (and group %u)", (unsigned)id->uid,
			 (unsigned)id->gid, (unsigned)id->extra_gid);
	else
		snprintf(out, out_size, "uid %u gid %u", (unsigned)id->uid, (unsigned)id->gid);
}
