/* Maintenance (reference 3.10): agent branches no worktree holds are
 * deleted, caches with no worktree and unused for 30 days are removed,
 * and the disk figure is refreshed. A repository whose lock is held or
 * waited for is skipped (foreground first). */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentapi/rc_int.h"
#include "common/clock.h"

#define GC_GIT_MS 30000

/* The stamp as wall ms, or -1 when missing or unreadable. */
static int64_t read_stamp(const char *bare)
{
	char text[64] = "";
	int dfd = open(bare, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd = dfd < 0 ? -1 : openat(dfd, RC_STAMP, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd >= 0)
		close(dfd);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
	if (!f) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	char *end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	return (int64_t)timegm(&tm) * 1000;
}

static bool in_list(const char *list, const char *ref)
{
	size_t n = strlen(ref);
	for (const char *p = list; (p = strstr(p, ref)) != NULL; p += n)
		if ((p == list || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* Worktree prune, then branch -D of every agent branch not checked out.
 * Returns the number of linked worktrees, -1 when git failed. */
static int light_cleanup(const char *bare, int64_t dl)
{
	char e[RC_ERR];
	struct mc_git_out wl, refs;
	rc_git(dl, NULL, e, sizeof(e), "-C", bare, "worktree", "prune", NULL);
	if (rc_git(dl, &wl, e, sizeof(e), "-C", bare, "worktree", "list", "--porcelain", NULL)) {
		mc_git_out_free(&wl);
		return -1;
	}
	/* "branch refs/heads/agent/x" lines as "agent/x\n" entries. */
	char *held = calloc(1, wl.out_len + 2);
	size_t used = 0;
	int worktrees = 0;
	bool block = false, bare_block = false;
	for (char *line = wl.out, *nl; held && line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "worktree ", 9)) {
			block = true;
			bare_block = false;
		} else if (!strcmp(line, "bare")) {
			bare_block = true;
		} else if (!strncmp(line, "branch refs/heads/", 18)) {
			/* held has room for all of wl.out plus one byte */
			size_t len = strlen(line + 18);
			memcpy(held + used, line + 18, len);
			used += len;
			held[used++] = '\n';
		} else if (!line[0] && block) {
			worktrees += !bare_block;
			block = false;
		}
	}
	if (block)
		worktrees += !bare_block;
	mc_git_out_free(&wl);
	if (held && rc_git(dl, &refs, e, sizeof(e), "-C", bare, "for-each-ref",
			   "--format=%(refname:short)", "refs/heads/agent/", NULL) == 0) {
		for (char *b = refs.out, *nl; b && *b; b = nl ? nl + 1 : NULL) {
			nl = strchr(b, '\n');
			if (nl)
				*nl = '\0';
			if (b[0] && !in_list(held, b))
				rc_git(dl, NULL, e, sizeof(e), "-C", bare, "branch", "-D", "--", b,
				       NULL);
		}
	}
	mc_git_out_free(&refs);
	free(held);
	return worktrees;
}

static void gc_repo(struct mc_repocache *rc, const char *ws, const char *wsdir, const char *bare,
		    int64_t wall_now)
{
	struct rc_repo *r = rc_repo_by_bare(rc, ws, bare);
	if (!r || !rc_trylock_maint(rc, r))
		return;
	int wt = light_cleanup(bare, mc_now_ms() + GC_GIT_MS);
	int64_t stamp = read_stamp(bare);
	if (stamp < 0) {
		rc_stamp(bare, wall_now);
	} else if (wt == 0 && wall_now - stamp >= RC_TTL_MS) {
		rc_rmtree(bare);
		rmdir(wsdir); /* only when it became empty */
		pthread_mutex_lock(&rc->mu);
		r->fetched_ms = 0;
		pthread_mutex_unlock(&rc->mu);
	}
	rc_unlock(rc, r);
}

static void gc_ws(struct mc_repocache *rc, const char *ws, int64_t wall_now)
{
	char wsdir[PATH_MAX];
	int len = snprintf(wsdir, sizeof(wsdir), "%s/%s", rc->root, ws);
	if (len < 0 || (size_t)len >= sizeof(wsdir))
		return;
	rc_perm_join_ws(wsdir); /* its bares are its agents': reached through its group */
	DIR *d = opendir(wsdir);
	if (!d)
		return;
	struct dirent *de;
	/* Names first: the directory changes as caches are evicted. */
	char (*names)[256] = NULL;
	size_t n = 0, cap = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp-"))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			void *nn = realloc(names, nc * sizeof(*names));
			if (!nn)
				break;
			names = nn;
			cap = nc;
		}
		snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		char bare[PATH_MAX];
		len = snprintf(bare, sizeof(bare), "%s/%s", wsdir, names[i]);
		if (len > 0 && (size_t)len < sizeof(bare) && rc_bare_cached(bare))
			gc_repo(rc, ws, wsdir, bare, wall_now);
	}
	free(names);
}

void mc_repocache_gc(struct mc_repocache *rc, int64_t wall_now_ms)
{
	DIR *d = opendir(rc->root);
	if (d) {
		struct dirent *de;
		char ws[256];
		/* readdir is not re-entered: one workspace at a time. */
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' || !rc_ws_id_ok(de->d_name))
				continue;
			snprintf(ws, sizeof(ws), "%s", de->d_name);
			gc_ws(rc, ws, wall_now_ms);
		}
		closedir(d);
	}
	int64_t bytes = rc_tree_bytes(rc->root);
	pthread_mutex_lock(&rc->mu);
	rc->disk_bytes = bytes;
	pthread_mutex_unlock(&rc->mu);
}
