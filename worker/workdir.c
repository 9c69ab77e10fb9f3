/* A task's directory tree: fresh or reused, with its ownership markers. */
#include "worker/workdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "worker/safefs.h"

#define MARKER_MAX (64u * 1024u)
#define MANAGED_ENV  ".managed_env.json"
#define TASK_CONTEXT "daemon_task_context.json"

static int fail(char *err, size_t err_size, const char *what)
{
	int e = errno;
	snprintf(err, err_size, "%s: %s", what, strerror(e));
	errno = e;
	return -1;
}

static bool reuse_scope(const struct mc_task *t)
{
	return t->kind == MC_TASK_CHAT ? (t->chat_session_id && *t->chat_session_id)
				       : (t->issue_id && *t->issue_id);
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* The ownership marker (both files carry the same facts). */
static char *marker_json(const struct mc_task *t)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	bool ok = cJSON_AddStringToObject(o, "workspace_id", t->workspace_id) &&
		  cJSON_AddStringToObject(o, "agent_id", t->agent_id) &&
		  cJSON_AddStringToObject(o, "task_id", t->id) &&
		  cJSON_AddStringToObject(o, "issue_id", str_or_empty(t->issue_id)) &&
		  cJSON_AddStringToObject(o, "chat_session_id", str_or_empty(t->chat_session_id));
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

static bool field_is(const cJSON *o, const char *key, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) && strcmp(v->valuestring, str_or_empty(want)) == 0;
}

/* True when the marker dfd/name names t's workspace (if check_ws), agent
 * and scope (issue or chat session). */
static bool marker_matches(int dfd, const char *name, const struct mc_task *t, bool check_ws)
{
	size_t len;
	char *s = mc_fs_read_at(dfd, name, MARKER_MAX, &len);
	if (!s)
		return false;
	cJSON *o = cJSON_ParseWithLength(s, len);
	free(s);
	bool ok = cJSON_IsObject(o) && (!check_ws || field_is(o, "workspace_id", t->workspace_id)) &&
		  field_is(o, "agent_id", t->agent_id) &&
		  (t->kind == MC_TASK_CHAT ? field_is(o, "chat_session_id", t->chat_session_id)
					   : field_is(o, "issue_id", t->issue_id));
	cJSON_Delete(o);
	return ok;
}

/* Splits "<rroot>/<ws>/<x>/workdir" off path; x into name. */
static bool prior_name(const char *rroot, const char *ws, const char *path, char *name)
{
	size_t rl = strlen(rroot), wl = strlen(ws);
	if (strncmp(path, rroot, rl) != 0 || path[rl] != '/' || strncmp(path + rl + 1, ws, wl) != 0 ||
	    path[rl + 1 + wl] != '/')
		return false;
	const char *x = path + rl + wl + 2;
	const char *slash = strchr(x, '/');
	if (!slash || strcmp(slash, "/workdir") != 0 || slash == x || *x == '.' ||
	    (size_t)(slash - x) >= 64)
		return false;
	memcpy(name, x, (size_t)(slash - x));
	name[slash - x] = '\0';
	return true;
}

bool mc_workdir_reusable(const char *root, const struct mc_task *t, char *name)
{
	char rroot[PATH_MAX], rprior[PATH_MAX], x[64];
	if (!t->prior_work_dir || !*t->prior_work_dir || !reuse_scope(t))
		return false;
	if (!realpath(root, rroot) || !realpath(t->prior_work_dir, rprior) ||
	    !prior_name(rroot, t->workspace_id, rprior, x))
		return false;
	/* the same path again, opened without symlinks below root */
	bool ok = false;
	int rfd = open(rroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int wsfd = rfd < 0 ? -1 : mc_fs_subdir(rfd, t->workspace_id, false, 0, false);
	int tfd = wsfd < 0 ? -1 : mc_fs_subdir(wsfd, x, false, 0, false);
	int cfd = tfd < 0 ? -1 : mc_fs_walk(tfd, "workdir/.multica", false, 0, false);
	if (cfd >= 0)
		ok = marker_matches(tfd, MANAGED_ENV, t, true) &&
		     marker_matches(cfd, TASK_CONTEXT, t, false);
	int fds[] = {cfd, tfd, wsfd, rfd};
	for (size_t i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (ok && name)
		strlcpy(name, x, 64);
	return ok;
}

static bool busy(const struct mc_workdir_req *req, const char *name)
{
	for (size_t i = 0; i < req->n_busy; i++)
		if (req->busy[i] && strcmp(req->busy[i], name) == 0)
			return true;
	return false;
}

static int set_path(char *dst, const char *base, const char *leaf)
{
	if ((size_t)snprintf(dst, PATH_MAX, "%s%s%s", base, *leaf ? "/" : "", leaf) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static long agent_gid(const struct mc_workdir_req *req)
{
	return req->shared ? (long)req->gid : -1;
}

/* With an agent group: the directory fd gets the group and 02770. */
static int share(int fd, long gid)
{
	if (gid < 0)
		return 0;
	if (fchown(fd, (uid_t)-1, (gid_t)gid) < 0 || fchmod(fd, MC_WORKDIR_SHARED) < 0)
		return -1;
	return 0;
}

/* mc_fs_subdir/mc_fs_walk (create, fix the mode), shared when gid >= 0. */
static int dir_at(int dfd, const char *rel, bool create, long gid)
{
	int fd = mc_fs_walk(dfd, rel, create, gid >= 0 ? MC_WORKDIR_SHARED : MC_WORKDIR_MODE,
			    gid < 0);
	if (fd >= 0 && share(fd, gid) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Creates the subdirectories in the task dir tfd and fills wd's paths. */
static int make_tree(int tfd, const struct mc_workdir_req *req, struct mc_workdir *wd)
{
	static const char *const dirs[] = {"workdir", "output", "logs", "multica-config",
					   "workdir/.multica", "tmp"};
	/* the agent's own child makes tmp/ (and codex-home/) when shared */
	size_t n = sizeof dirs / sizeof *dirs - (req->shared ? 1 : 0);
	for (size_t i = 0; i < n; i++) {
		int fd = dir_at(tfd, dirs[i], true, agent_gid(req));
		if (fd < 0)
			return -1;
		close(fd);
	}
	bool codex = req->provider && strcmp(req->provider, "codex") == 0;
	if (codex && !req->shared) {
		int fd = mc_fs_subdir(tfd, "codex-home", true, MC_WORKDIR_MODE, true);
		if (fd < 0)
			return -1;
		close(fd);
	}
	wd->codex_home[0] = '\0';
	if (set_path(wd->workdir, wd->task_dir, "workdir") < 0 ||
	    set_path(wd->output, wd->task_dir, "output") < 0 ||
	    set_path(wd->logs, wd->task_dir, "logs") < 0 ||
	    set_path(wd->tmp, wd->task_dir, "tmp") < 0 ||
	    set_path(wd->config_root, wd->task_dir, "multica-config") < 0 ||
	    (codex && set_path(wd->codex_home, wd->task_dir, "codex-home") < 0))
		return -1;
	return 0;
}

static int write_markers(int tfd, const struct mc_task *t, long gid)
{
	char *m = marker_json(t);
	if (!m) {
		errno = ENOMEM;
		return -1;
	}
	mode_t mode = gid >= 0 ? MC_WORKDIR_MARKER_SHARED : 0600;
	int rc = mc_fs_write_at(tfd, MANAGED_ENV, m, strlen(m), mode, false);
	int cfd = rc < 0 ? -1 : mc_fs_walk(tfd, "workdir/.multica", false, 0, false);
	if (cfd < 0)
		rc = -1;
	else
		rc = mc_fs_write_at(cfd, TASK_CONTEXT, m, strlen(m), mode, false);
	if (cfd >= 0)
		close(cfd);
	free(m);
	return rc;
}

int mc_workdir_prepare(const struct mc_workdir_req *req, struct mc_workdir *wd, char *err,
		       size_t err_size)
{
	const struct mc_task *t = req->task;
	char rroot[PATH_MAX];
	memset(wd, 0, sizeof *wd);
	wd->shared = req->shared;
	int rfd = mc_fs_open_root(req->root, req->shared ? MC_WORKDIR_ROOT_SHARED : MC_WORKDIR_MODE);
	/* agents pass through root to their workspace's dir, never list it */
	if (rfd >= 0 && req->shared && fchmod(rfd, MC_WORKDIR_ROOT_SHARED) < 0) {
		close(rfd);
		rfd = -1;
	}
	if (rfd < 0 || !realpath(req->root, rroot)) {
		if (rfd >= 0)
			close(rfd);
		return fail(err, err_size, "workspaces_root");
	}
	char name[64];
	wd->reused = mc_workdir_reusable(rroot, t, name) && !busy(req, name);
	strlcpy(wd->name, wd->reused ? name : t->key, sizeof wd->name);
	int wsfd = mc_fs_name_ok(t->workspace_id) ?
		   dir_at(rfd, t->workspace_id, true, agent_gid(req)) : -1;
	if (wsfd < 0 && !mc_fs_name_ok(t->workspace_id))
		errno = EINVAL;
	close(rfd);
	if (wsfd < 0)
		return fail(err, err_size, "workspace dir");
	int tfd = mc_fs_name_ok(wd->name) ? dir_at(wsfd, wd->name, !wd->reused, agent_gid(req)) : -1;
	if (tfd < 0 && !mc_fs_name_ok(wd->name))
		errno = EINVAL;
	close(wsfd);
	if (tfd < 0)
		return fail(err, err_size, "task dir");
	int rc = -1;
	const char *what = NULL;
	if ((size_t)snprintf(wd->task_dir, sizeof wd->task_dir, "%s/%s/%s", rroot,
			     t->workspace_id, wd->name) >= sizeof wd->task_dir) {
		errno = ENAMETOOLONG;
		what = "task dir path";
	} else if (make_tree(tfd, req, wd) < 0) {
		what = "task dir tree";
	} else if (write_markers(tfd, t, agent_gid(req)) < 0) {
		what = "task markers";
	} else if (unlinkat(tfd, ".gc_meta.json", 0) < 0 && errno != ENOENT) {
		what = "stale gc meta";   /* a live task dir must not look finished */
	} else {
		rc = 0;
	}
	int e = errno;
	close(tfd);
	errno = e;
	return rc < 0 ? fail(err, err_size, what) : 0;
}

int mc_workdir_finish(const struct mc_workdir *wd, const struct mc_task *t, int64_t ended_ms,
		      char *err, size_t err_size)
{
	static const char *const kinds[] = {"issue", "comment", "chat"};
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "task_id", t->id) &&
		  cJSON_AddStringToObject(o, "issue_id", str_or_empty(t->issue_id)) &&
		  cJSON_AddStringToObject(o, "chat_session_id", str_or_empty(t->chat_session_id)) &&
		  cJSON_AddStringToObject(o, "kind", kinds[t->kind <= MC_TASK_CHAT ? t->kind : 0]) &&
		  cJSON_AddNumberToObject(o, "ended_at_ms", (double)ended_ms);
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s) {
		errno = ENOMEM;
		return fail(err, err_size, "gc meta");
	}
	int fd = open(wd->task_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = fd < 0 ? -1 : mc_fs_write_at(fd, ".gc_meta.json", s, strlen(s), 0600, false);
	int e = errno;
	if (fd >= 0)
		close(fd);
	free(s);
	errno = e;
	return rc < 0 ? fail(err, err_size, "gc meta") : 0;
}
