/* Retention of finished task directories: bounded work per call. */
#include "worker/workdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "worker/safefs.h"

#define GC_PREFIX ".gc-"

static bool is_active(const char *name, const char *const *active, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (active[i] && strcmp(active[i], name) == 0)
			return true;
	return false;
}

/* When the task dir tfd was finished (wall ms), from .gc_meta.json, else
 * the dir's mtime; -1 when neither is known. */
static int64_t ended_at(int tfd)
{
	size_t len;
	char *s = mc_fs_read_at(tfd, ".gc_meta.json", 4096, &len);
	if (s) {
		cJSON *o = cJSON_ParseWithLength(s, len);
		free(s);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "ended_at_ms");
		int64_t at = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15 ?
			(int64_t)v->valuedouble : -1;
		cJSON_Delete(o);
		if (at >= 0)
			return at;
	}
	struct stat st;
	if (fstat(tfd, &st) < 0)
		return -1;
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Expires wsfd/name when old enough: renamed out of the namespace. */
static int consider(int wsfd, const char *name, int64_t retention_ms, int64_t now_ms)
{
	int tfd = mc_fs_subdir(wsfd, name, false, 0, false);
	if (tfd < 0)
		return 0;      /* not a directory (or a symlink): not ours to judge */
	int64_t at = ended_at(tfd);
	close(tfd);
	if (at < 0 || now_ms - at < retention_ms)
		return 0;
	char gone[300];
	if ((size_t)snprintf(gone, sizeof gone, GC_PREFIX "%s", name) >= sizeof gone)
		return 0;
	if (renameat(wsfd, name, wsfd, gone) < 0) {
		mc_log(MC_LOG_WARN, "task dir retention: rename failed", "dir", name,
		       "error", strerror(errno), NULL);
		return 0;
	}
	mc_log(MC_LOG_INFO, "task dir expired", "dir", name, NULL);
	return 1;
}

/* Removes the ".gc-*" leftovers within the unlink budget. */
static void remove_expired(int wsfd, size_t *budget)
{
	DIR *d = mc_fs_opendir(wsfd);
	if (!d)
		return;
	struct dirent *de;
	while (*budget > 0 && (de = readdir(d))) {
		if (strncmp(de->d_name, GC_PREFIX, strlen(GC_PREFIX)) != 0)
			continue;
		if (mc_fs_remove_tree(wsfd, de->d_name, budget) < 0)
			mc_log(MC_LOG_WARN, "task dir removal failed", "dir", de->d_name,
			       "error", strerror(errno), NULL);
	}
	closedir(d);
}

static int sweep(const char *root, const char *workspace_id, int64_t retention_ms,
		 int64_t now_ms, const char *const *active, size_t n_active, size_t *cursor,
		 bool remove)
{
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int wsfd = rfd < 0 ? -1 : mc_fs_subdir(rfd, workspace_id, false, 0, false);
	if (rfd >= 0)
		close(rfd);
	if (wsfd < 0)
		return errno == ENOENT ? 0 : -1;
	size_t budget = remove ? MC_WORKDIR_GC_UNLINKS : 0;
	remove_expired(wsfd, &budget);
	DIR *d = mc_fs_opendir(wsfd);
	if (!d) {
		close(wsfd);
		return -1;
	}
	int expired = 0;
	size_t index = 0, scanned = 0;
	struct dirent *de;
	bool ended = true;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, MC_WORKDIR_HOME_NAME) == 0)
			continue; /* ours (.gc-*, markers) or the agents' HOME */
		if (index++ < *cursor)
			continue;
		if (scanned++ == MC_WORKDIR_GC_SCAN) {
			ended = false;
			break;
		}
		if (!is_active(de->d_name, active, n_active))
			expired += consider(wsfd, de->d_name, retention_ms, now_ms);
	}
	closedir(d);
	/* expired entries left the listing: the next call starts that many earlier */
	*cursor = ended ? 0 : index - 1 - (size_t)expired;
	if (expired && budget > 0)
		remove_expired(wsfd, &budget);
	close(wsfd);
	return expired;
}

int mc_workdir_gc(const char *root, const char *workspace_id, int64_t retention_ms,
		  int64_t now_ms, const char *const *active, size_t n_active, size_t *cursor)
{
	return sweep(root, workspace_id, retention_ms, now_ms, active, n_active, cursor, true);
}

int mc_workdir_gc_expire(const char *root, const char *workspace_id, int64_t retention_ms,
			 int64_t now_ms, const char *const *active, size_t n_active,
			 size_t *cursor)
{
	return sweep(root, workspace_id, retention_ms, now_ms, active, n_active, cursor, false);
}
