/* Test support: a stand-in for agentapi/repocache.c, for the agent-api
 * tests of the HTTP rules (test_agentapi). Driven by the url:
 *   "...nosync..."  sync fails ("stub clone failed"), never cached
 *   "...busy..."    checkout: MC_CO_BUSY when lock_wait_ms > 0
 *   "...slow..."    checkout takes 2 s
 *   "...fail..."    checkout: MC_CO_ERROR "create worktree: stub failure"
 * A checkout creates <workdir>/<name> holding .stub_ref: the ref it was
 * asked for ("ref:X", "default:X" or "remote-default"). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "agentapi/repocache.h"

#define MAX_URLS 64

struct mc_repocache {
	pthread_mutex_t mu;
	size_t n;
	char urls[MAX_URLS][600];
};

struct mc_repocache *mc_repocache_new(const char *workspaces_root, char *err, size_t err_size)
{
	struct mc_repocache *rc = calloc(1, sizeof *rc);
	if (rc != NULL)
		pthread_mutex_init(&rc->mu, NULL);
	return rc;
}

int mc_repocache_set_identity(struct mc_repocache *rc, const char *ws,
			      const struct mc_identity *id, char *err, size_t err_size)
{
	(void)rc, (void)ws, (void)id, (void)err, (void)err_size;
	return 0;
}

void mc_repocache_free(struct mc_repocache *rc)
{
	if (rc != NULL)
		pthread_mutex_destroy(&rc->mu);
	free(rc);
}

static bool has_locked(struct mc_repocache *rc, const char *url)
{
	for (size_t i = 0; i < rc->n; i++)
		if (strcmp(rc->urls[i], url) == 0)
			return true;
	return false;
}

int mc_repocache_sync(struct mc_repocache *rc, const char *ws, size_t n,
		      const char *const *urls, int64_t deadline_ms, char *err, size_t err_size)
{
	int ret = 0;
	pthread_mutex_lock(&rc->mu);
	for (size_t i = 0; i < n; i++) {
		if (strstr(urls[i], "nosync") != NULL) {
			snprintf(err, err_size, "stub clone failed");
			ret = -1;
		} else if (!has_locked(rc, urls[i]) && rc->n < MAX_URLS) {
			strlcpy(rc->urls[rc->n++], urls[i], sizeof rc->urls[0]);
		}
	}
	pthread_mutex_unlock(&rc->mu);
	return ret;
}

bool mc_repocache_has(struct mc_repocache *rc, const char *ws, const char *url)
{
	pthread_mutex_lock(&rc->mu);
	bool h = has_locked(rc, url);
	pthread_mutex_unlock(&rc->mu);
	return h;
}

void mc_repocache_last_error(struct mc_repocache *rc, const char *ws, const char *url, char *out,
			     size_t out_size)
{
	snprintf(out, out_size, "%s", strstr(url, "nosync") != NULL ? "stub clone failed" : "");
}

enum mc_checkout_outcome mc_repocache_checkout(struct mc_repocache *rc,
					       const struct mc_checkout_req *req,
					       struct mc_checkout_res *res, char *err,
					       size_t err_size)
{
	if (strstr(req->url, "busy") != NULL) {
		snprintf(err, err_size, "stub: would wait for the lock");
		return req->lock_wait_ms > 0 ? MC_CO_BUSY : MC_CO_ERROR;
	}
	if (strstr(req->url, "fail") != NULL) {
		snprintf(err, err_size, "create worktree: stub failure");
		return MC_CO_ERROR;
	}
	if (strstr(req->url, "slow") != NULL)
		sleep(2);
	char name[256];
	mc_repo_name(req->url, name, sizeof name);
	snprintf(res->path, sizeof res->path, "%s/%s", req->workdir, name);
	mc_repo_branch_name(req->agent_name, req->task_id, res->branch, sizeof res->branch);
	mkdir(res->path, 0700);
	char f[PATH_MAX + 16];
	snprintf(f, sizeof f, "%s/.stub_ref", res->path);
	FILE *fp = fopen(f, "w");
	if (fp != NULL) {
		if (req->ref != NULL)
			fprintf(fp, "ref:%s", req->ref);
		else if (req->default_ref != NULL)
			fprintf(fp, "default:%s", req->default_ref);
		else
			fprintf(fp, "remote-default");
		fprintf(fp, "%s", req->isolated ? " isolated" : "");
		fclose(fp);
	}
	return MC_CO_OK;
}

int64_t mc_repocache_disk_bytes(struct mc_repocache *rc) { return 4242; }
void mc_repocache_gc(struct mc_repocache *rc, int64_t wall_now_ms) {}

void mc_repo_name(const char *url, char *out, size_t out_size)
{
	const char *s = strrchr(url, '/');
	s = s != NULL ? s + 1 : url;
	size_t n = strlen(s);
	if (n > 4 && strcmp(s + n - 4, ".git") == 0)
		n -= 4;
	if (n == 0)
		snprintf(out, out_size, "repo");
	else
		snprintf(out, out_size, "%.*s", (int)n, s);
}

void mc_repo_branch_name(const char *agent_name, const char *task_id, char *out,
			 size_t out_size)
{
	size_t n = strlen(task_id);
	snprintf(out, out_size, "agent/stub/%s", n > 12 ? task_id + n - 12 : task_id);
}
