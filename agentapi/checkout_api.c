/* POST /repo/checkout (reference 2.3): the check table in its order, with
 * each status and message exactly; readiness (one refresh at a time per
 * workspace, the server's list always fetched); the checkout itself
 * through the repo cache. Runs on the connection's own thread and blocks
 * it; /health is served by other threads meanwhile. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentapi/agentapi_int.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"

#define ERR_MAX 1024

/* The decoded body; every string heap ("" when absent or null). */
struct co_body {
	char *url, *workspace_id, *workdir, *ref, *task_id, *checkout_mode, *agent_name;
	bool retry_busy;
};

static void body_free(struct co_body *b)
{
	free(b->url);
	free(b->workspace_id);
	free(b->workdir);
	free(b->ref);
	free(b->task_id);
	free(b->checkout_mode);
	free(b->agent_name);
}

/* Go's strings.TrimSpace for ASCII, in place. */
static char *trim(char *s)
{
	size_t n = strlen(s), i = 0;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
	return s;
}

static int decode_body(const struct mca_request *rq, struct co_body *b, char *err, size_t es)
{
	cJSON *root = mc_json_parse(rq->body, rq->body_len, err, es);
	if (root == NULL)
		return -1;
	int rc = -1;
	if (!cJSON_IsObject(root)) {
		mc_json_fail(err, es, "", "cannot unmarshal %s into an object",
			     mc_json_type_name(root));
		goto done;
	}
	static const char *const keys[] = { "url", "workspace_id", "workdir", "ref",
					    "task_id", "checkout_mode", "agent_name" };
	char **dst[] = { &b->url, &b->workspace_id, &b->workdir, &b->ref,
			 &b->task_id, &b->checkout_mode, &b->agent_name };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (mc_json_get_string(root, "", keys[i], MC_JSON_STR_OR_EMPTY, dst[i], err, es) < 0)
			goto done;
	rc = mc_json_get_bool(root, "", "retry_busy", false, false, &b->retry_busy, err, es);
done:
	cJSON_Delete(root);
	return rc;
}

/* The bearer token of the header (reference 1.3), or NULL; *len set. */
static const char *bearer(const char *h, size_t *len)
{
	if (h == NULL)
		return NULL;
	while (isspace((unsigned char)*h))
		h++;
	if (strncmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (isspace((unsigned char)*h))
		h++;
	size_t n = strlen(h);
	while (n > 0 && isspace((unsigned char)h[n - 1]))
		n--;
	*len = n;
	return n > 0 ? h : NULL;
}

/* workdir resolved (symlinks) into out, inside the task's resolved root. */
static bool workdir_owned(const char *root, const char *workdir, char out[PATH_MAX])
{
	char r[PATH_MAX];
	if (realpath(root, r) == NULL || realpath(workdir, out) == NULL)
		return false;
	size_t n = strlen(r);
	if (n == 1) /* "/" */
		return true;
	return strcmp(out, r) == 0 || (strncmp(out, r, n) == 0 && out[n] == '/');
}

/* ---- readiness ---- */

static struct mca_ws *ws_get(struct mca_ctx *ctx, const char *id)
{
	pthread_mutex_lock(&ctx->ws_mu);
	struct mca_ws *w = ctx->ws;
	while (w != NULL && strcmp(w->id, id) != 0)
		w = w->next;
	if (w == NULL && (w = calloc(1, sizeof *w)) != NULL) {
		snprintf(w->id, sizeof w->id, "%s", id);
		pthread_mutex_init(&w->refresh_mu, NULL);
		pthread_mutex_init(&w->mu, NULL);
		w->next = ctx->ws;
		ctx->ws = w;
	}
	pthread_mutex_unlock(&ctx->ws_mu);
	return w;
}

static void allowed_clear(struct mca_ws *w)
{
	for (size_t i = 0; i < w->n_allowed; i++)
		free(w->allowed[i]);
	free(w->allowed);
	w->allowed = NULL;
	w->n_allowed = 0;
}

void mca_ws_free_all(struct mca_ctx *ctx)
{
	while (ctx->ws != NULL) {
		struct mca_ws *w = ctx->ws;
		ctx->ws = w->next;
		allowed_clear(w);
		pthread_mutex_destroy(&w->refresh_mu);
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
}

/* The workspace list (from the server) or the task's repos hold url. */
static bool allowed(struct mca_ws *w, const struct mc_agent_task *t, const char *url)
{
	bool ok = mca_task_has_repo(t, url);
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; !ok && i < w->n_allowed; i++)
		ok = strcmp(w->allowed[i], url) == 0;
	pthread_mutex_unlock(&w->mu);
	return ok;
}

/* GET /api/daemon/workspaces/{ws}/repos into w->allowed. 0, or -1 with
 * the error in err. */
static int refresh(struct mca_ctx *ctx, struct mca_ws *w, char *err, size_t es)
{
	struct mc_workspace_repos repos = { 0 };
	int rc = -1;
	pthread_mutex_lock(&ctx->api_mu);
	struct mc_call *c = ctx->api != NULL ? mc_call_workspace_repos(ctx->api, w->id) : NULL;
	if (c == NULL) {
		snprintf(err, es, "%s", ctx->api == NULL ? "no daemon credential" : strerror(errno));
	} else {
		mc_call_set_timeout(c, MCA_REFRESH_TIMEOUT_MS);
		if (mc_call_perform(c) == 0 && mc_call_take_workspace_repos(c, &repos) == 0)
			rc = 0;
		else
			snprintf(err, es, "%s", mc_call_error(c)->message);
	}
	mc_call_free(c);
	pthread_mutex_unlock(&ctx->api_mu);
	if (rc < 0)
		return -1;
	pthread_mutex_lock(&w->mu);
	allowed_clear(w);
	w->allowed = repos.urls;
	w->n_allowed = repos.n;
	repos.urls = NULL;
	repos.n = 0;
	pthread_mutex_unlock(&w->mu);
	mc_workspace_repos_clear(&repos);
	return 0;
}

/* Syncs the workspace's list plus url (a task-scoped repo is synced too,
 * and a clone that failed before is retried). */
static void sync_cache(struct mca_ctx *ctx, struct mca_ws *w, const char *url,
		       int64_t deadline, char *err, size_t es)
{
	pthread_mutex_lock(&w->mu);
	size_t n = w->n_allowed;
	const char **urls = calloc(n + 1, sizeof *urls);
	char **copies = calloc(n + 1, sizeof *copies);
	size_t k = 0;
	bool listed = false;
	for (size_t i = 0; urls != NULL && copies != NULL && i < n; i++) {
		if ((copies[k] = strdup(w->allowed[i])) == NULL)
			break;
		listed = listed || strcmp(copies[k], url) == 0;
		urls[k] = copies[k];
		k++;
	}
	pthread_mutex_unlock(&w->mu);
	if (urls != NULL && !listed)
		urls[k++] = url;
	if (urls != NULL)
		mc_repocache_sync(ctx->rc, w->id, k, urls, deadline, err, es);
	for (size_t i = 0; copies != NULL && i <= n; i++)
		free(copies[i]);
	free(copies);
	free(urls);
}

static int ensure_ready(struct mca_ctx *ctx, const struct mc_agent_task *t, const char *url,
			int64_t deadline, struct mca_reply *out)
{
	char err[ERR_MAX];
	struct mca_ws *w = ws_get(ctx, t->workspace_id);
	if (w == NULL) {
		mca_reply_error(out, 500, "workspace is not watched by this daemon: %s",
				t->workspace_id);
		return -1;
	}
	bool hit_on_entry = allowed(w, t, url) && mc_repocache_has(ctx->rc, w->id, url);
	pthread_mutex_lock(&w->refresh_mu);
	int rc = 0;
	if (!hit_on_entry && allowed(w, t, url) && mc_repocache_has(ctx->rc, w->id, url))
		goto out; /* a concurrent request filled it */
	if (refresh(ctx, w, err, sizeof err) < 0) {
		mca_reply_error(out, 500, "refresh workspace repos: %s", err);
		rc = -1;
		goto out;
	}
	if (!allowed(w, t, url)) {
		mca_reply_error(out, 400, "repo is not configured for this workspace");
		rc = -1;
		goto out;
	}
	if (mc_repocache_has(ctx->rc, w->id, url))
		goto out;
	err[0] = '\0';
	sync_cache(ctx, w, url, deadline, err, sizeof err);
	if (!mc_repocache_has(ctx->rc, w->id, url)) {
		mc_repocache_last_error(ctx->rc, w->id, url, err, sizeof err);
		if (err[0] != '\0')
			mca_reply_error(out, 500, "repo is configured but not synced: %s", err);
		else
			mca_reply_error(out, 500, "repo is configured but not synced");
		rc = -1;
	}
out:
	pthread_mutex_unlock(&w->refresh_mu);
	return rc;
}

/* ---- the checkout ---- */

static void run_checkout(struct mca_ctx *ctx, const struct mc_agent_task *t,
			 const struct co_body *b, const char *workdir, int64_t arrived,
			 int64_t deadline, struct mca_reply *out)
{
	const char *dref = mca_task_repo_ref(t, b->url);
	struct mc_checkout_req req = {
		.workspace_id = t->workspace_id,
		.url = b->url,
		.ref = b->ref[0] != '\0' ? b->ref : NULL,
		.default_ref = dref[0] != '\0' ? dref : NULL,
		.workdir = workdir,
		.task_id = t->task_id,
		.agent_name = t->agent_name,
		.isolated = strcmp(b->checkout_mode, "isolated") == 0,
		.lock_wait_ms = b->retry_busy ? ctx->lock_wait_ms : 0,
		.deadline_ms = deadline,
		.arrived_ms = arrived,
	};
	struct mc_checkout_res *res = calloc(1, sizeof *res);
	char err[ERR_MAX] = "";
	if (res == NULL)
		return mca_reply_error(out, 500, "out of memory");
	atomic_fetch_add(&ctx->checkouts_running, 1);
	enum mc_checkout_outcome oc = mc_repocache_checkout(ctx->rc, &req, res, err, sizeof err);
	atomic_fetch_sub(&ctx->checkouts_running, 1);
	if (oc == MC_CO_OK) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "path", res->path);
		cJSON_AddStringToObject(o, "branch_name", res->branch);
		mca_reply_json(out, 200, o);
		cJSON_Delete(o);
	} else if (oc == MC_CO_BUSY && b->retry_busy) {
		mca_reply_error(out, 503, "repository is busy with another operation; retry later");
		out->retry_busy = true;
	} else {
		mca_reply_error(out, 500, "%s", err[0] ? err : "checkout failed");
	}
	free(res);
}

/* ---- a retried request keeps its first arrival ---- */

/* The CLI answers 503 retry_busy by sending the request again: the retry
 * is the same checkout, so it keeps the arrival of the first attempt (a
 * fetch that began after that serves it too; repocache.h arrived_ms).
 * A small ring of tasks answered busy; a lost entry only costs a fetch. */
#define BUSY_RING 64
static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char task[MCA_ID_MAX]; int64_t arrived; } busy_ring[BUSY_RING];
static unsigned busy_next;

/* now, or the first attempt's arrival when task was answered busy; the
 * entry is taken (a new busy answer records it again). */
static int64_t first_arrival(const char *task, int64_t now)
{
	int64_t at = now;
	pthread_mutex_lock(&busy_mu);
	for (unsigned i = 0; i < BUSY_RING; i++)
		if (busy_ring[i].task[0] != '\0' && strcmp(busy_ring[i].task, task) == 0) {
			at = busy_ring[i].arrived < now ? busy_ring[i].arrived : now;
			busy_ring[i].task[0] = '\0';
		}
	pthread_mutex_unlock(&busy_mu);
	return at;
}

static void remember_busy(const char *task, int64_t arrived)
{
	pthread_mutex_lock(&busy_mu);
	unsigned i = busy_next++ % BUSY_RING;
	snprintf(busy_ring[i].task, sizeof busy_ring[i].task, "%s", task);
	busy_ring[i].arrived = arrived;
	pthread_mutex_unlock(&busy_mu);
}

/* Rows 3-9 of the check table, after the token (row 2) matched t. */
static int check_body(const struct mca_request *rq, const struct mc_agent_task *t,
		      struct co_body *b, char workdir[PATH_MAX], struct mca_reply *out)
{
	char err[ERR_MAX];
	if (rq->body_too_large) {
		mca_reply_error(out, 413, "invalid request body: http: request body too large");
		return -1;
	}
	if (decode_body(rq, b, err, sizeof err) < 0) {
		mca_reply_error(out, 400, "invalid request body: %s", err);
		return -1;
	}
	trim(b->url);
	trim(b->ref);
	const char *bad = b->url[0] == '\0' ? "url is required"
		: b->workspace_id[0] == '\0' ? "workspace_id is required"
		: b->workdir[0] == '\0' ? "workdir is required"
		: strcmp(b->checkout_mode, "") != 0 && strcmp(b->checkout_mode, "isolated") != 0
		? "invalid checkout_mode" : NULL;
	if (bad != NULL) {
		mca_reply_error(out, 400, "%s", bad);
		return -1;
	}
	if (strcmp(b->workspace_id, t->workspace_id) != 0 || strcmp(b->task_id, t->task_id) != 0) {
		mca_reply_error(out, 403, "repo checkout task context does not match the active task");
		return -1;
	}
	if (!workdir_owned(t->work_dir, b->workdir, workdir)) {
		mca_reply_error(out, 403, "repo checkout workdir is not owned by the active task");
		return -1;
	}
	return 0;
}

void mca_checkout_handle(struct mca_ctx *ctx, const struct mca_request *rq,
			 struct mca_reply *out)
{
	if (strcmp(rq->method, "POST") != 0)
		return mca_reply_error(out, 405, "method not allowed");
	size_t tlen = 0;
	const char *tok = bearer(rq->authorization, &tlen);
	struct mc_agent_task *t = malloc(sizeof *t); /* ~50 KiB */
	if (t == NULL)
		return mca_reply_error(out, 500, "out of memory");
	struct co_body b = { 0 };
	char workdir[PATH_MAX];
	/* The worker reports a running task (its token's hash) once the agent
	 * runs: an agent quick to call may be ahead of it, by milliseconds. */
	if (tok == NULL ||
	    !mca_registry_lookup_wait(ctx->reg, tok, tlen, t, MCA_REGISTER_GRACE_MS)) {
		mca_reply_error(out, 401, "repo checkout requires an active task credential");
		goto done;
	}
	if (check_body(rq, t, &b, workdir, out) < 0)
		goto done;
	if (ctx->rc == NULL) {
		mca_reply_error(out, 500, "repo cache not initialized");
		goto done;
	}
	int64_t now = mc_now_ms();
	int64_t arrived = first_arrival(t->task_id, now);
	int64_t deadline = now + MCA_CHECKOUT_BUDGET_MS;
	atomic_fetch_add(&ctx->checkout_waiters, 1);
	int ready = ensure_ready(ctx, t, b.url, deadline, out);
	atomic_fetch_sub(&ctx->checkout_waiters, 1);
	if (ready == 0)
		run_checkout(ctx, t, &b, workdir, arrived, deadline, out);
	if (out->retry_busy)
		remember_busy(t->task_id, arrived);
	mc_log(MC_LOG_INFO, "repo checkout", "task", t->task_id, "url", b.url,
	       "status", MC_LOG_NUM(out->status), NULL);
done:
	body_free(&b);
	free(t);
}
