/* The repository cache under agent identities (issue 11; rc_int.h
 * rc_perm_*): who git runs as, the group and modes of the cache's
 * directories, and this process's membership of the workspaces' groups.
 *
 *   <workspaces_root>/.repos        daemon, 0711: no listing, a path leads on
 *   .repos/<ws>                     daemon, group agent_gid, 02770
 *   .repos/<ws>/<bare>              made by the agent's git,
 *                                   core.sharedRepository=group
 *
 * The agent-api has no CAP_CHOWN or CAP_DAC_OVERRIDE: it reaches what an
 * agent uid made through the group, which it joins with CAP_SETGID. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentapi/rc_int.h"
#include "common/log.h"

#define WS_MODE   02770
#define ROOT_MODE 0711
#define ADOPT_GIT_MS 30000
#define GROUPS_MAX 65536

/* ---- this process's groups ---- */

static pthread_mutex_t groups_mu = PTHREAD_MUTEX_INITIALIZER;

/* Adds gid to the supplementary groups (a union: the other workspaces'
 * stay). glibc's setgroups applies to every thread. */
static int join_group(gid_t gid, char *err, size_t err_size)
{
	pthread_mutex_lock(&groups_mu);
	int rc = -1;
	int n = getgroups(0, NULL);
	gid_t *v = n >= 0 && n < GROUPS_MAX ? calloc((size_t)n + 1, sizeof(*v)) : NULL;
	if (!v) {
		snprintf(err, err_size, "getgroups: %s", strerror(n < 0 ? errno : ENOMEM));
		goto out;
	}
	n = getgroups(n, v);
	bool have = n < 0 ? false : getegid() == gid;
	for (int i = 0; n > 0 && i < n && !have; i++)
		have = v[i] == gid;
	if (n < 0) {
		snprintf(err, err_size, "getgroups: %s", strerror(errno));
	} else if (have) {
		rc = 0;
	} else {
		v[n] = gid;
		rc = setgroups((size_t)n + 1, v);
		if (rc < 0)
			snprintf(err, err_size, "setgroups (join gid %u): %s", (unsigned)gid,
				 strerror(errno));
	}
	free(v);
out:
	pthread_mutex_unlock(&groups_mu);
	return rc;
}

/* ---- directories ---- */

/* path, a directory of ours, gets group gid and mode (no-op when it has
 * them). Missing: 0. */
static int fix_dir(const char *path, gid_t gid, mode_t mode)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		errno = EPERM;
		return -1;
	}
	if (gid != (gid_t)-1 && st.st_gid != gid && lchown(path, (uid_t)-1, gid) < 0)
		return -1;
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return -1;
	return 0;
}

int rc_perm_ws_dir(const struct rc_repo *r, const char *wsdir)
{
	if (mkdir(wsdir, 0700) < 0 && errno != EEXIST)
		return -1;
	return r->id.sw ? fix_dir(wsdir, r->id.gid, WS_MODE) : 0;
}

/* The group the daemon gave a switched workspace's directory, or -1: an
 * agent can chgrp its own files, never the daemon's directory. The exact
 * mode, as a fallback directory (0700) inherits a setgid parent's group. */
static gid_t switched_gid(const char *wsdir)
{
	struct stat st;
	if (lstat(wsdir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 07777) != WS_MODE || st.st_gid == getegid())
		return (gid_t)-1;
	return st.st_gid;
}

void rc_perm_join_ws(const char *wsdir)
{
	gid_t gid = switched_gid(wsdir);
	char e[RC_ERR];
	if (gid != (gid_t)-1 && mc_identity_can_switch() && join_group(gid, e, sizeof(e)) < 0)
		mc_log(MC_LOG_WARN, "cannot join a workspace's agent group", "error", e, NULL);
}

/* ---- adopting a bare the daemon made ---- */

static _Thread_local gid_t adopt_gid;

/* Ours: the group's, with the owner's rights; a directory setgid. */
static int adopt_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_SL || st->st_uid != geteuid())
		return 0; /* an agent's own files are group-shared already */
	if (st->st_gid != adopt_gid)
		lchown(path, (uid_t)-1, adopt_gid);
	mode_t m = st->st_mode & 07777;
	mode_t want = m | ((m & 0700) >> 3);
	if (flag == FTW_DP || flag == FTW_D)
		want |= 02070;
	if (want != m)
		chmod(path, want);
	return 0;
}

/* A bare of ours not yet the group's (made before the switch): every
 * file ours goes to the group, then sharedRepository=group as the agent
 * (the top directory is fixed last, so a half-done adoption is redone). */
static void adopt_bare(struct rc_repo *r)
{
	struct stat st;
	if (lstat(r->bare, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_gid == r->id.gid && (st.st_mode & 02070) == 02070))
		return;
	adopt_gid = r->id.gid;
	if (nftw(r->bare, adopt_one, 16, FTW_PHYS | FTW_DEPTH) < 0)
		return;
	char e[RC_ERR];
	if (rc_git_ok(0, NULL, e, sizeof(e), "-C", r->bare, "config", "core.sharedRepository",
		      "group", NULL) < 0) {
		const char *base = strrchr(r->bare, '/');
		mc_log(MC_LOG_WARN, "cannot share a repository cache with the agents' group", "cache",
		       base ? base + 1 : r->bare, "error", e, NULL);
	}
}

/* A bare another agent uid made (the workspace's identity changed: the
 * operator moved to agent_uid_range, say): nobody of the new identity
 * can use it, this process cannot chown it. Removed as its maker, so
 * the next sync clones it again as the new one. */
static void drop_foreign_bare(struct rc_repo *r)
{
	struct stat st;
	if (lstat(r->bare, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid == geteuid() ||
	    st.st_uid == r->id.uid || st.st_uid == 0)
		return;
	/* with the directory's group: the maker's rm reaches the bare */
	struct mc_identity maker = { .sw = true, .uid = st.st_uid, .gid = st.st_gid,
				     .extra_gid = r->id.gid };
	rc_git_identity(&maker, false);
	int rc = rc_rmtree(r->bare);
	rc_git_identity(&r->id, false);
	const char *base = strrchr(r->bare, '/');
	mc_log(rc == 0 ? MC_LOG_INFO : MC_LOG_WARN,
	       rc == 0 ? "repository cache of a former agent identity removed"
		       : "cannot remove the repository cache of a former agent identity",
	       "cache", base ? base + 1 : r->bare, "uid", MC_LOG_NUM(st.st_uid), NULL);
}

/* ---- identities ---- */

/* ws's directory, with the bare's owner: the identity a switched cache
 * was made by (after a restart, before any task said it). 0: known or
 * not switched (id->sw false); -1: switched, identity unknown. */
static int identity_on_disk(const struct mc_repocache *rc, const struct rc_repo *r,
			    struct mc_identity *id)
{
	char wsdir[PATH_MAX];
	struct stat bare;
	*id = (struct mc_identity){ .sw = false, .extra_gid = (gid_t)-1 };
	int n = snprintf(wsdir, sizeof(wsdir), "%s/%s", rc->root, r->ws);
	gid_t gid = n > 0 && (size_t)n < sizeof(wsdir) ? switched_gid(wsdir) : (gid_t)-1;
	if (gid == (gid_t)-1)
		return 0;
	char e[RC_ERR];
	if (!mc_identity_can_switch() || join_group(gid, e, sizeof(e)) < 0 ||
	    lstat(r->bare, &bare) < 0 || bare.st_uid == geteuid() || bare.st_uid == 0)
		return -1;
	*id = (struct mc_identity){ .sw = true, .uid = bare.st_uid, .gid = gid,
				    .extra_gid = (gid_t)-1 };
	return 0;
}

void rc_perm_enter(struct mc_repocache *rc, struct rc_repo *r)
{
	pthread_mutex_lock(&rc->mu);
	struct rc_ws *w = rc_ws_get_locked(rc, r->ws);
	bool known = w && w->have_ident;
	if (known)
		r->id = w->ident;
	pthread_mutex_unlock(&rc->mu);
	r->id_refused = false;
	if (!known && identity_on_disk(rc, r, &r->id) < 0)
		r->id_refused = true;
	rc_git_identity(r->id.sw ? &r->id : NULL, r->id_refused);
	if (!r->id.sw)
		return;
	char wsdir[PATH_MAX];
	int n = snprintf(wsdir, sizeof(wsdir), "%s/%s", rc->root, r->ws);
	if (n > 0 && (size_t)n < sizeof(wsdir))
		fix_dir(wsdir, r->id.gid, WS_MODE);
	if (known)
		drop_foreign_bare(r); /* a derived identity is the bare's maker */
	adopt_bare(r);
}

void rc_perm_leave(void)
{
	rc_git_identity(NULL, false);
}

int rc_perm_set_identity(struct mc_repocache *rc, const char *ws, const struct mc_identity *id,
			 char *err, size_t err_size)
{
	if (id->sw && join_group(id->gid, err, err_size) < 0)
		return -1;
	pthread_mutex_lock(&rc->mu);
	struct rc_ws *w = rc_ws_get_locked(rc, ws);
	if (w) {
		w->ident = *id;
		w->have_ident = true;
	}
	pthread_mutex_unlock(&rc->mu);
	if (!w) {
		snprintf(err, err_size, "repo cache: out of memory");
		return -1;
	}
	if (!id->sw)
		return 0;
	char wsdir[PATH_MAX];
	int n = snprintf(wsdir, sizeof(wsdir), "%s/%s", rc->root, ws);
	if (fix_dir(rc->root, (gid_t)-1, ROOT_MODE) < 0 ||
	    (n > 0 && (size_t)n < sizeof(wsdir) && fix_dir(wsdir, id->gid, WS_MODE) < 0)) {
		snprintf(err, err_size, "repo cache: the agents' directories: %s", strerror(errno));
		return -1;
	}
	return 0;
}
