/* Internals of the repository cache, shared by repocache.c (state, locks,
 * sync), rc_names.c, rc_refs.c, rc_checkout.c and rc_gc.c. Not an API.
 * Error convention as repocache.h: 0, or -1 with a message in err. */
#ifndef MC_AGENTAPI_RC_INT_H
#define MC_AGENTAPI_RC_INT_H

#include <pthread.h>

#include "agentapi/git_run.h"
#include "agentapi/repocache.h"
#include "common/identity.h"

#define RC_ERR 512
#define RC_STAMP ".multica_last_used"
#define RC_TTL_MS (30LL * 24 * 3600 * 1000)
#define RC_FRESH_MS_DEFAULT 5000

/* One bare repository: its lock and what is known of it. Entries are
 * never freed before the cache (the lock must outlive every holder). */
struct rc_repo {
	struct rc_repo *next;
	char ws[128];
	char *url;                  /* owned; NULL when found by gc only */
	char bare[PATH_MAX];
	bool held;                  /* the lock */
	int waiters;                /* foreground waiters */
	int64_t fetched_ms;         /* monotonic ms of the last good fetch, 0 never */
	int64_t fetch_began_ms;     /* monotonic ms that fetch (or the clone) began */
	char last_err[RC_ERR];
	/* The lock holder's: the identity its git runs as (rc_perm_enter). */
	struct mc_identity id;
	bool id_refused;            /* switched on disk, identity unknown: no git */
};

/* One workspace: its sync lock, its agents' identity (the latest a task
 * brought: mc_repocache_set_identity). */
struct rc_ws {
	struct rc_ws *next;
	char id[128];
	bool syncing;
	bool have_ident;
	struct mc_identity ident;
};

struct mc_repocache {
	char root[PATH_MAX];        /* <workspaces_root>/.repos */
	pthread_mutex_t mu;         /* guards the lists, flags and counters */
	pthread_cond_t cv;          /* CLOCK_MONOTONIC; broadcast on every release */
	struct rc_repo *repos;
	struct rc_ws *wss;
	int64_t disk_bytes;
	int64_t fresh_ms;
	int64_t fetches;
	int running;                /* checkouts in progress */
};

/* repocache.c */
/* The workspace's entry, created when missing; NULL on ENOMEM. rc->mu held. */
struct rc_ws *rc_ws_get_locked(struct mc_repocache *rc, const char *ws);
/* The entry of (ws, url), created when missing; NULL with err on a bad
 * workspace id or ENOMEM. Takes rc->mu. */
struct rc_repo *rc_repo_get(struct mc_repocache *rc, const char *ws, const char *url, char *err,
			    size_t err_size);
/* The entry of a bare path (gc), created when missing. */
struct rc_repo *rc_repo_by_bare(struct mc_repocache *rc, const char *ws, const char *bare);
/* Takes the repo lock. wait_until: absolute ms after which the wait gives
 * up (<= 0: never). Returns 0 when held, 1 when wait_until passed. The
 * holder's thread then runs git as the workspace's identity (rc_perm_enter)
 * until rc_unlock. */
int rc_lock(struct mc_repocache *rc, struct rc_repo *r, int64_t wait_until);
/* Takes the lock only when it is free and nobody waits; true when held. */
bool rc_trylock_maint(struct mc_repocache *rc, struct rc_repo *r);
void rc_unlock(struct mc_repocache *rc, struct rc_repo *r);
bool rc_bare_cached(const char *bare);
/* The layout, then fetch origin and set-head, under the lock. Counts the
 * fetch; records fetched_ms on success. */
int rc_fetch(struct mc_repocache *rc, struct rc_repo *r, int64_t deadline, char *err,
	     size_t err_size);
bool rc_is_fresh(struct mc_repocache *rc, struct rc_repo *r);
void rc_stamp(const char *bare, int64_t wall_ms);

/* rc_names.c */
/* "github.com+org+my-repo.git" (reference 3.1). */
void rc_bare_dir_name(const char *url, char *out, size_t out_size);
bool rc_ws_id_ok(const char *ws);

/* rc_perm.c: the cache under agent identities (issue 11).
 * With a switching identity the workspace's directory is the daemon's,
 * group id.gid, 02770, its bare repositories core.sharedRepository=group
 * (group-writable whatever uid made a file), and this process is in the
 * group (setgroups) so it can measure, stamp and evict them. */
/* Records ws's identity, joins its group, fixes the directories. */
int rc_perm_set_identity(struct mc_repocache *rc, const char *ws, const struct mc_identity *id,
			 char *err, size_t err_size);
/* After the lock is taken: r->id (the workspace's identity; after a
 * restart, the one its directory shows), the thread's git identity, the
 * workspace directory and an existing bare adopted (a cache the daemon
 * made before agents were switched). */
void rc_perm_enter(struct mc_repocache *rc, struct rc_repo *r);
/* Before the lock is released: the thread's git runs as the daemon again. */
void rc_perm_leave(void);
/* A workspace directory made for switched agents (setgid, a group not
 * ours): its group joined, so that its bares can be read (gc after a
 * restart). No-op otherwise. */
void rc_perm_join_ws(const char *wsdir);
/* mkdir <cache>/<ws> (0700), then group and 02770 when r->id.sw. */
int rc_perm_ws_dir(const struct rc_repo *r, const char *wsdir);

/* rc_git.c: git with a NULL-terminated argument list after "git", as the
 * identity rc_git_identity set for this thread (none: the daemon's). */
/* id NULL: the daemon's own; refuse: every git (and rc_cmd) fails with
 * "the workspace's agent identity is not known yet", none runs. */
void rc_git_identity(const struct mc_identity *id, bool refuse);
int rc_git(int64_t deadline, struct mc_git_out *o, char *err, size_t err_size, ...)
	__attribute__((sentinel));
/* rc_git and, when git exited non-zero, err = mc_git_describe. out may be
 * NULL. Returns 0, or -1. */
int rc_git_ok(int64_t deadline, struct mc_git_out *o, char *err, size_t err_size, ...)
	__attribute__((sentinel));
/* Trimmed first line of git's stdout (a sha, a ref), "" when it failed. */
int rc_git_line(int64_t deadline, char *dst, size_t dst_size, ...) __attribute__((sentinel));
/* True when this thread's git runs as a switched agent identity. */
bool rc_git_switched(void);
/* Any program (argv[0] on PATH) as this thread's identity, like git;
 * 0, or -1 with err. */
int rc_cmd(int64_t deadline, const char *const *argv, char *err, size_t err_size);
/* Recursive removal (no symlink followed), as this thread's identity when
 * it is switched (rm -rf); 0 or -1. */
int rc_rmtree(const char *path);
/* Bytes a tree holds on disk (st_blocks). */
int64_t rc_tree_bytes(const char *path);

/* rc_refs.c */
/* Resolves the base (3.5): ref non-empty -> requested ref, else default
 * branch. refname gets the ref to start from, commit its sha. */
int rc_resolve_base(const struct rc_repo *r, const char *ref, int64_t deadline, char *refname,
		    size_t refname_size, char *commit, size_t commit_size, char *err,
		    size_t err_size);

/* rc_checkout.c */
enum mc_checkout_outcome rc_checkout_locked(struct mc_repocache *rc, struct rc_repo *r,
					    const struct mc_checkout_req *req,
					    struct mc_checkout_res *res, char *err, size_t err_size);

#endif
