/* The repository cache behind POST /repo/checkout
 * (reference/multica-local-api.md section 3): bare mirrors under
 * <workspaces_root>/.repos/<workspace_id>/, checked out into a task's work
 * dir as a linked worktree (default) or an isolated clone, with the exact
 * git argv of the reference run as child processes with deadlines.
 *
 * Thread-safe: the local API serves each connection on its own thread,
 * and any number of them may call in at once. One lock per bare
 * repository (waiters bounded when the caller asks), one sync at a time
 * per workspace.
 *
 * Error convention: functions returning int give 0, or -1 with a message
 * in err (the text the API answers with, reference 2.3 table row 12). */
#ifndef MC_AGENTAPI_REPOCACHE_H
#define MC_AGENTAPI_REPOCACHE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mc_repocache;

/* Allocates the cache rooted at <workspaces_root>/.repos (created 0700). */
struct mc_repocache *mc_repocache_new(const char *workspaces_root, char *err, size_t err_size);
void mc_repocache_free(struct mc_repocache *rc);

/* Makes the cache of workspace ws hold every url (the server's list, in
 * its order): clones what is missing, fetches what is cached and stale
 * (3.3). A url whose clone failed is retried by the next sync. Returns 0
 * when every url is cached; -1 with the last error otherwise (the urls
 * that did work stay usable). deadline_ms: absolute CLOCK_MONOTONIC ms. */
int mc_repocache_sync(struct mc_repocache *rc, const char *ws, size_t n,
		      const char *const *urls, int64_t deadline_ms, char *err, size_t err_size);
/* True when url has a bare cache for ws. */
bool mc_repocache_has(struct mc_repocache *rc, const char *ws, const char *url);
/* The last sync error of url in ws ("" when none), into out. */
void mc_repocache_last_error(struct mc_repocache *rc, const char *ws, const char *url, char *out,
			     size_t out_size);

struct mc_checkout_req {
	const char *workspace_id;
	const char *url;
	const char *ref;            /* NULL or "": the task's default, else the remote's default */
	const char *default_ref;    /* the task's repos[].ref for url, or NULL */
	const char *workdir;        /* resolved, inside the task's work dir */
	const char *task_id;
	const char *agent_name;     /* the token's agent name (branch name) */
	bool isolated;              /* checkout_mode "isolated" */
	long lock_wait_ms;          /* > 0: give up (busy) after this; 0: wait as long as it takes */
	int64_t deadline_ms;        /* absolute CLOCK_MONOTONIC ms for the whole checkout */
	/* Additive (HY1): CLOCK_MONOTONIC ms the request arrived (0: at the
	 * call). A fetch that began after it already holds what this
	 * checkout's own fetch would get: no second fetch for a burst. */
	int64_t arrived_ms;
};

struct mc_checkout_res {
	char path[PATH_MAX];        /* the checkout */
	char branch[256];           /* the branch actually created or reused */
};

enum mc_checkout_outcome {
	MC_CO_OK,
	MC_CO_BUSY,                 /* lock not had within lock_wait_ms: 503 retry_busy */
	MC_CO_ERROR,                /* err says why: 500 */
};

enum mc_checkout_outcome mc_repocache_checkout(struct mc_repocache *rc,
					       const struct mc_checkout_req *req,
					       struct mc_checkout_res *res, char *err,
					       size_t err_size);

/* Bytes the cache holds on disk (a cheap estimate, refreshed by gc). */
int64_t mc_repocache_disk_bytes(struct mc_repocache *rc);
/* Bounded maintenance: stale agent branches, caches unused for 30 days. */
void mc_repocache_gc(struct mc_repocache *rc, int64_t wall_now_ms);

/* Additive (HX2): tuning and figures.
 * A cache fetched less than ms ago is not fetched again by sync or
 * checkout (default 5000; 0: always fetch, as multica does). */
void mc_repocache_set_fresh_ms(struct mc_repocache *rc, int64_t ms);
/* `git fetch origin` runs on cached repositories so far (tests, figures). */
int64_t mc_repocache_fetch_count(struct mc_repocache *rc);
/* Checkouts in progress now (AGENT_STATUS checkouts_running). */
int mc_repocache_checkouts_running(struct mc_repocache *rc);

/* Additive (H7, issue 11): the identity of workspace ws's agents, the
 * latest a task brought (AGENT_TASK). When id->sw, every git of the
 * workspace's cache runs as it (clone, fetch, checkout, maintenance),
 * <cache>/<ws> is the daemon's with group id->gid and mode 02770, <cache>
 * 0711, its bare repositories core.sharedRepository=group, and this
 * process joins id->gid (setgroups, a union: CAP_SETGID) to stamp,
 * measure and evict them. Never called, or sw false: the daemon's own
 * user, as before. After a restart, before any task, a workspace whose
 * directory shows a switched identity has its git run as the owner of
 * each bare (the group from the directory), never as the daemon.
 * 0, or -1 with err (the group could not be joined). */
struct mc_identity;
int mc_repocache_set_identity(struct mc_repocache *rc, const char *ws,
			      const struct mc_identity *id, char *err, size_t err_size);

/* "my-repo" for ".../org/my-repo.git", "repo" for "" (reference 2.3). */
void mc_repo_name(const char *url, char *out, size_t out_size);
/* "agent/<sanitized name>/<task key>" (reference 2.3). */
void mc_repo_branch_name(const char *agent_name, const char *task_id, char *out, size_t out_size);

#endif
