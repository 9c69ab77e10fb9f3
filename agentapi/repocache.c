/* The repository cache: state, per-repository locks, sync (clone and
 * fetch), and the checkout entry point. See repocache.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentapi/rc_int.h"
#include "common/clock.h"
#include "common/log.h"

/* ---- lifetime ---- */

static int mkdir_p0700(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

struct mc_repocache *mc_repocache_new(const char *workspaces_root, char *err, size_t err_size)
{
	if (!workspaces_root || workspaces_root[0] != '/') {
		snprintf(err, err_size, "repo cache: workspaces root must be an absolute path");
		return NULL;
	}
	struct mc_repocache *rc = calloc(1, sizeof(*rc));
	if (!rc) {
		snprintf(err, err_size, "repo cache: out of memory");
		return NULL;
	}
	int n = snprintf(rc->root, sizeof(rc->root), "%s/.repos", workspaces_root);
	if (n < 0 || (size_t)n >= sizeof(rc->root) - 300) {
		snprintf(err, err_size, "repo cache: workspaces root too long");
		free(rc);
		return NULL;
	}
	if (mkdir_p0700(workspaces_root) < 0 || mkdir_p0700(rc->root) < 0) {
		snprintf(err, err_size, "repo cache: mkdir %s: %s", rc->root, strerror(errno));
		free(rc);
		return NULL;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rc->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&rc->mu, NULL);
	rc->fresh_ms = RC_FRESH_MS_DEFAULT;
	rc->disk_bytes = rc_tree_bytes(rc->root);
	return rc;
}

void mc_repocache_free(struct mc_repocache *rc)
{
	if (!rc)
		return;
	for (struct rc_repo *r = rc->repos, *nx; r; r = nx) {
		nx = r->next;
		free(r->url);
		free(r);
	}
	for (struct rc_ws *w = rc->wss, *nx; w; w = nx) {
		nx = w->next;
		free(w);
	}
	pthread_cond_destroy(&rc->cv);
	pthread_mutex_destroy(&rc->mu);
	free(rc);
}

void mc_repocache_set_fresh_ms(struct mc_repocache *rc, int64_t ms)
{
	pthread_mutex_lock(&rc->mu);
	rc->fresh_ms = ms < 0 ? 0 : ms;
	pthread_mutex_unlock(&rc->mu);
}

int64_t mc_repocache_fetch_count(struct mc_repocache *rc)
{
	pthread_mutex_lock(&rc->mu);
	int64_t n = rc->fetches;
	pthread_mutex_unlock(&rc->mu);
	return n;
}

int mc_repocache_checkouts_running(struct mc_repocache *rc)
{
	pthread_mutex_lock(&rc->mu);
	int n = rc->running;
	pthread_mutex_unlock(&rc->mu);
	return n;
}

/* ---- entries ---- */

static struct rc_repo *find_bare(struct mc_repocache *rc, const char *bare)
{
	for (struct rc_repo *r = rc->repos; r; r = r->next)
		if (!strcmp(r->bare, bare))
			return r;
	return NULL;
}

static struct rc_repo *add_repo(struct mc_repocache *rc, const char *ws, const char *bare)
{
	struct rc_repo *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	snprintf(r->ws, sizeof(r->ws), "%s", ws);
	snprintf(r->bare, sizeof(r->bare), "%s", bare);
	r->next = rc->repos;
	rc->repos = r;
	return r;
}

static bool url_ok(const char *url)
{
	return url && url[0] && url[0] != '-' && !strpbrk(url, "\n\r") && strlen(url) < 2048;
}

struct rc_repo *rc_repo_get(struct mc_repocache *rc, const char *ws, const char *url, char *err,
			    size_t err_size)
{
	if (!rc_ws_id_ok(ws)) {
		snprintf(err, err_size, "invalid workspace id");
		return NULL;
	}
	if (!url_ok(url)) {
		snprintf(err, err_size, "invalid repository url");
		return NULL;
	}
	char name[256], bare[PATH_MAX];
	rc_bare_dir_name(url, name, sizeof(name));
	int len = snprintf(bare, sizeof(bare), "%s/%s/%s", rc->root, ws, name);
	if (len < 0 || (size_t)len >= sizeof(bare)) {
		snprintf(err, err_size, "repo cache: path too long");
		return NULL;
	}
	pthread_mutex_lock(&rc->mu);
	struct rc_repo *r = find_bare(rc, bare);
	if (!r)
		r = add_repo(rc, ws, bare);
	if (r && !r->url)
		r->url = strdup(url);
	bool ok = r && r->url;
	pthread_mutex_unlock(&rc->mu);
	if (!ok)
		snprintf(err, err_size, "repo cache: out of memory");
	return ok ? r : NULL;
}

struct rc_repo *rc_repo_by_bare(struct mc_repocache *rc, const char *ws, const char *bare)
{
	pthread_mutex_lock(&rc->mu);
	struct rc_repo *r = find_bare(rc, bare);
	if (!r)
		r = add_repo(rc, ws, bare);
	pthread_mutex_unlock(&rc->mu);
	return r;
}

/* ---- locks ---- */

static struct timespec abs_ts(int64_t ms)
{
	return (struct timespec){.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
}

/* Waits on rc->cv (rc->mu held) while *flag; 1 when wait_until passed. */
static int wait_flag(struct mc_repocache *rc, const bool *flag, int64_t wait_until)
{
	while (*flag) {
		if (wait_until <= 0) {
			pthread_cond_wait(&rc->cv, &rc->mu);
			continue;
		}
		if (mc_now_ms() >= wait_until)
			return 1;
		struct timespec ts = abs_ts(wait_until);
		pthread_cond_timedwait(&rc->cv, &rc->mu, &ts);
	}
	return 0;
}

int rc_lock(struct mc_repocache *rc, struct rc_repo *r, int64_t wait_until)
{
	pthread_mutex_lock(&rc->mu);
	r->waiters++;
	int busy = wait_flag(rc, &r->held, wait_until);
	r->waiters--;
	if (!busy)
		r->held = true;
	pthread_mutex_unlock(&rc->mu);
	if (!busy)
		rc_perm_enter(rc, r);
	return busy;
}

bool rc_trylock_maint(struct mc_repocache *rc, struct rc_repo *r)
{
	pthread_mutex_lock(&rc->mu);
	bool ok = !r->held && r->waiters == 0;
	if (ok)
		r->held = true;
	pthread_mutex_unlock(&rc->mu);
	if (ok)
		rc_perm_enter(rc, r);
	return ok;
}

void rc_unlock(struct mc_repocache *rc, struct rc_repo *r)
{
	rc_perm_leave();
	pthread_mutex_lock(&rc->mu);
	r->held = false;
	pthread_cond_broadcast(&rc->cv);
	pthread_mutex_unlock(&rc->mu);
}

/* ---- stamp, state ---- */

bool rc_bare_cached(const char *bare)
{
	char p[PATH_MAX];
	struct stat st;
	int n = snprintf(p, sizeof(p), "%s/HEAD", bare);
	return n > 0 && (size_t)n < sizeof(p) && stat(p, &st) == 0;
}

void rc_stamp(const char *bare, int64_t wall_ms)
{
	char text[64];
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(text + n, sizeof(text) - n, ".%03dZ\n", (int)(wall_ms % 1000));
	/* The bare itself not followed either: an agent can rename entries of
	 * its workspace's directory. */
	int dfd = open(bare, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd = dfd < 0 ? -1 : openat(dfd, RC_STAMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
						       O_NOFOLLOW, 0600);
	if (dfd >= 0)
		close(dfd);
	if (fd < 0)
		return;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
}

bool rc_is_fresh(struct mc_repocache *rc, struct rc_repo *r)
{
	pthread_mutex_lock(&rc->mu);
	bool fresh = r->fetched_ms > 0 && rc->fresh_ms > 0 && mc_now_ms() - r->fetched_ms < rc->fresh_ms;
	pthread_mutex_unlock(&rc->mu);
	return fresh;
}

static void set_last_err(struct mc_repocache *rc, struct rc_repo *r, const char *e)
{
	pthread_mutex_lock(&rc->mu);
	snprintf(r->last_err, sizeof(r->last_err), "%s", e ? e : "");
	pthread_mutex_unlock(&rc->mu);
}

/* ---- fetch, clone ---- */

static int ensure_layout(const char *bare, int64_t deadline, char *err, size_t err_size)
{
	char cur[256];
	if (rc_git_line(deadline, cur, sizeof(cur), "-C", bare, "config", "--get",
			"remote.origin.fetch", NULL) == 0 &&
	    strstr(cur, "refs/remotes/origin/"))
		return 0;
	return rc_git_ok(deadline, NULL, err, err_size, "-C", bare, "config", "remote.origin.fetch",
			 "+refs/heads/*:refs/remotes/origin/*", NULL);
}

int rc_fetch(struct mc_repocache *rc, struct rc_repo *r, int64_t deadline, char *err,
	     size_t err_size)
{
	if (ensure_layout(r->bare, deadline, err, err_size) < 0)
		return -1;
	pthread_mutex_lock(&rc->mu);
	rc->fetches++;
	pthread_mutex_unlock(&rc->mu);
	int64_t began = mc_now_ms();
	if (rc_git_ok(deadline, NULL, err, err_size, "-C", r->bare, "fetch", "origin", NULL) < 0)
		return -1;
	char ignored[RC_ERR];
	rc_git(deadline, NULL, ignored, sizeof(ignored), "-C", r->bare, "remote", "set-head", "origin",
	       "--auto", NULL);
	pthread_mutex_lock(&rc->mu);
	r->fetched_ms = mc_now_ms();
	r->fetch_began_ms = began;
	pthread_mutex_unlock(&rc->mu);
	return 0;
}

static int clone_into(const struct rc_repo *r, const char *tmp, int64_t deadline, char *err,
		      size_t err_size)
{
	/* As an agent identity: every file git makes in the bare stays
	 * group-writable, whichever of the workspace's uids makes it. */
	if (r->id.sw ? rc_git_ok(deadline, NULL, err, err_size, "clone", "--bare", "--config",
				 "core.sharedRepository=group", r->url, tmp, NULL) < 0
		     : rc_git_ok(deadline, NULL, err, err_size, "clone", "--bare", r->url, tmp,
				 NULL) < 0)
		return -1;
	if (rc_git_ok(deadline, NULL, err, err_size, "-C", tmp, "config", "remote.origin.fetch",
		      "+refs/heads/*:refs/remotes/origin/*", NULL) < 0 ||
	    rc_git_ok(deadline, NULL, err, err_size, "-C", tmp, "fetch", "origin", NULL) < 0)
		return -1;
	char ignored[RC_ERR];
	rc_git(deadline, NULL, ignored, sizeof(ignored), "-C", tmp, "remote", "set-head", "origin",
	       "--auto", NULL);
	return 0;
}

/* Clones into a temporary dir renamed into place, so a half-made clone
 * is never taken for a cache. Under the repo lock. */
static int clone_repo(struct mc_repocache *rc, struct rc_repo *r, int64_t deadline, char *err,
		      size_t err_size)
{
	static int seq;
	char wsdir[PATH_MAX], tmp[PATH_MAX];
	int len = snprintf(wsdir, sizeof(wsdir), "%s/%s", rc->root, r->ws);
	if (len < 0 || (size_t)len >= sizeof(wsdir) || rc_perm_ws_dir(r, wsdir) < 0) {
		/* The path may be long: the message names the workspace. */
		snprintf(err, err_size, "repo cache: mkdir <cache>/%.64s: %s", r->ws, strerror(errno));
		return -1;
	}
	len = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld-%d", r->bare, (long)getpid(),
		       __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	if (len < 0 || (size_t)len >= sizeof(tmp)) {
		snprintf(err, err_size, "repo cache: path too long");
		return -1;
	}
	rc_rmtree(r->bare); /* a leftover without HEAD */
	int64_t began = mc_now_ms();
	if (clone_into(r, tmp, deadline, err, err_size) < 0 || rename(tmp, r->bare) < 0) {
		char e2[RC_ERR];
		snprintf(e2, sizeof(e2), "git clone --bare: %s", err[0] ? err : strerror(errno));
		snprintf(err, err_size, "%s", e2);
		rc_rmtree(tmp);
		return -1;
	}
	rc_stamp(r->bare, mc_wall_ms());
	int64_t bytes = rc_tree_bytes(r->bare);
	pthread_mutex_lock(&rc->mu);
	r->fetched_ms = mc_now_ms();
	r->fetch_began_ms = began;
	rc->disk_bytes += bytes;
	pthread_mutex_unlock(&rc->mu);
	return 0;
}

/* ---- sync ---- */

struct rc_ws *rc_ws_get_locked(struct mc_repocache *rc, const char *ws)
{
	for (struct rc_ws *w = rc->wss; w; w = w->next)
		if (!strcmp(w->id, ws))
			return w;
	struct rc_ws *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	snprintf(w->id, sizeof(w->id), "%s", ws);
	w->next = rc->wss;
	rc->wss = w;
	return w;
}

static int sync_one(struct mc_repocache *rc, const char *ws, const char *url, int64_t deadline,
		    char *err, size_t err_size)
{
	struct rc_repo *r = rc_repo_get(rc, ws, url, err, err_size);
	if (!r)
		return -1;
	if (rc_lock(rc, r, deadline) != 0) {
		snprintf(err, err_size, "repository lock wait passed the sync deadline: %s", url);
		return -1;
	}
	int res = 0;
	err[0] = '\0';
	if (!rc_bare_cached(r->bare))
		res = clone_repo(rc, r, deadline, err, err_size);
	else if (!rc_is_fresh(rc, r))
		res = rc_fetch(rc, r, deadline, err, err_size);
	set_last_err(rc, r, res == 0 ? "" : err);
	rc_unlock(rc, r);
	return res;
}

int mc_repocache_sync(struct mc_repocache *rc, const char *ws, size_t n,
		      const char *const *urls, int64_t deadline_ms, char *err, size_t err_size)
{
	if (!rc_ws_id_ok(ws)) {
		snprintf(err, err_size, "invalid workspace id");
		return -1;
	}
	pthread_mutex_lock(&rc->mu);
	struct rc_ws *w = rc_ws_get_locked(rc, ws);
	int busy = w ? wait_flag(rc, &w->syncing, deadline_ms) : 1;
	if (!busy)
		w->syncing = true;
	pthread_mutex_unlock(&rc->mu);
	if (busy) {
		snprintf(err, err_size, "repo sync: %s", w ? "another sync ran past the deadline"
							   : "out of memory");
		return -1;
	}
	int res = 0;
	for (size_t i = 0; i < n; i++) {
		char e[RC_ERR];
		if (sync_one(rc, ws, urls[i], deadline_ms, e, sizeof(e)) < 0) {
			res = -1;
			snprintf(err, err_size, "%s", e);
		}
	}
	pthread_mutex_lock(&rc->mu);
	w->syncing = false;
	pthread_cond_broadcast(&rc->cv);
	pthread_mutex_unlock(&rc->mu);
	return res;
}

int mc_repocache_set_identity(struct mc_repocache *rc, const char *ws,
			      const struct mc_identity *id, char *err, size_t err_size)
{
	if (!rc_ws_id_ok(ws)) {
		snprintf(err, err_size, "invalid workspace id");
		return -1;
	}
	return rc_perm_set_identity(rc, ws, id, err, err_size);
}

bool mc_repocache_has(struct mc_repocache *rc, const char *ws, const char *url)
{
	char err[RC_ERR];
	struct rc_repo *r = rc_repo_get(rc, ws, url, err, sizeof(err));
	return r && rc_bare_cached(r->bare);
}

void mc_repocache_last_error(struct mc_repocache *rc, const char *ws, const char *url, char *out,
			     size_t out_size)
{
	char err[RC_ERR];
	if (out_size)
		out[0] = '\0';
	struct rc_repo *r = rc_repo_get(rc, ws, url, err, sizeof(err));
	if (!r)
		return;
	pthread_mutex_lock(&rc->mu);
	snprintf(out, out_size, "%s", r->last_err);
	pthread_mutex_unlock(&rc->mu);
}

int64_t mc_repocache_disk_bytes(struct mc_repocache *rc)
{
	pthread_mutex_lock(&rc->mu);
	int64_t b = rc->disk_bytes;
	pthread_mutex_unlock(&rc->mu);
	return b;
}

/* ---- checkout ---- */

static bool req_ok(const struct mc_checkout_req *q, char *err, size_t err_size)
{
	if (!q->workdir || q->workdir[0] != '/') {
		snprintf(err, err_size, "workdir must be an absolute path");
		return false;
	}
	const char *ref = q->ref && q->ref[0] ? q->ref : q->default_ref;
	if (ref && ref[0] == '-') {
		snprintf(err, err_size, "invalid ref \"%s\"", ref);
		return false;
	}
	return true;
}

/* Takes the lock: 0 held; MC_CO_BUSY / MC_CO_ERROR otherwise. */
static int checkout_lock(struct mc_repocache *rc, struct rc_repo *r,
			 const struct mc_checkout_req *q, char *err, size_t err_size)
{
	int64_t until = q->deadline_ms;
	bool bounded = q->lock_wait_ms > 0;
	if (bounded)
		until = mc_ms_earliest(mc_now_ms() + q->lock_wait_ms, q->deadline_ms);
	if (rc_lock(rc, r, until) == 0)
		return 0;
	if (bounded && (q->deadline_ms <= 0 || until < q->deadline_ms)) {
		snprintf(err, err_size, "repository is busy with another operation; retry later");
		return MC_CO_BUSY;
	}
	snprintf(err, err_size, "repository lock wait passed the checkout deadline");
	return MC_CO_ERROR;
}

/* True when the cache was fresh when the request arrived (its waiters
 * in the lock queue do not fetch again), or a good fetch (or the clone)
 * began after that: its refs are as new as this checkout's own fetch. */
static bool fresh_at(struct mc_repocache *rc, struct rc_repo *r, int64_t arrived)
{
	pthread_mutex_lock(&rc->mu);
	bool fresh = r->fetched_ms > 0 &&
		     (r->fetch_began_ms > arrived ||
		      (rc->fresh_ms > 0 && arrived - r->fetched_ms < rc->fresh_ms));
	pthread_mutex_unlock(&rc->mu);
	return fresh;
}

static void fetch_for_checkout(struct mc_repocache *rc, struct rc_repo *r, int64_t arrived,
			       int64_t deadline)
{
	if (rc_is_fresh(rc, r) || fresh_at(rc, r, arrived))
		return;
	char e[RC_ERR];
	if (rc_fetch(rc, r, deadline, e, sizeof(e)) == 0)
		return;
	const char *base = strrchr(r->bare, '/');
	mc_log(MC_LOG_WARN, "repo fetch failed; agent will see possibly stale code", "cache",
	       base ? base + 1 : r->bare, NULL);
}

enum mc_checkout_outcome mc_repocache_checkout(struct mc_repocache *rc,
					       const struct mc_checkout_req *req,
					       struct mc_checkout_res *res, char *err,
					       size_t err_size)
{
	memset(res, 0, sizeof(*res));
	int64_t arrived = req->arrived_ms > 0 ? req->arrived_ms : mc_now_ms();
	if (!req_ok(req, err, err_size))
		return MC_CO_ERROR;
	struct rc_repo *r = rc_repo_get(rc, req->workspace_id, req->url, err, err_size);
	if (!r)
		return MC_CO_ERROR;
	if (!rc_bare_cached(r->bare)) {
		snprintf(err, err_size, "repo not found in cache: %s (workspace: %s)", req->url,
			 req->workspace_id);
		return MC_CO_ERROR;
	}
	pthread_mutex_lock(&rc->mu);
	rc->running++;
	pthread_mutex_unlock(&rc->mu);
	enum mc_checkout_outcome out = (enum mc_checkout_outcome)checkout_lock(rc, r, req, err,
									      err_size);
	if (out == MC_CO_OK) {
		if (!rc_bare_cached(r->bare)) { /* evicted while we waited */
			snprintf(err, err_size, "repo not found in cache: %s (workspace: %s)",
				 req->url, req->workspace_id);
			out = MC_CO_ERROR;
		} else {
			rc_stamp(r->bare, mc_wall_ms());
			fetch_for_checkout(rc, r, arrived, req->deadline_ms);
			out = rc_checkout_locked(rc, r, req, res, err, err_size);
		}
		rc_unlock(rc, r);
	}
	pthread_mutex_lock(&rc->mu);
	rc->running--;
	pthread_mutex_unlock(&rc->mu);
	return out;
}
