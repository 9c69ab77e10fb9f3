/* No-symlink directory walks, atomic file writes, bounded tree removal. */
#include "worker/safefs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/fdio.h"

#define REMOVE_MAX_DEPTH 32   /* deeper levels are moved up, not recursed into */

bool mc_fs_name_ok(const char *name)
{
	return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static void close_keep_errno(int fd)
{
	int e = errno;
	close(fd);
	errno = e;
}

int mc_fs_open_root(const char *path, mode_t mode)
{
	char buf[4096];
	if (!path || !*path || strlcpy(buf, path, sizeof buf) >= sizeof buf) {
		errno = EINVAL;
		return -1;
	}
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = c;
		if (c == '\0')
			break;
	}
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int mc_fs_subdir(int dfd, const char *name, bool create, mode_t mode, bool fix_mode)
{
	if (!mc_fs_name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	if (create && mkdirat(dfd, name, mode) < 0 && errno != EEXIST)
		return -1;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fix_mode && fchmod(fd, mode) < 0) {
		close_keep_errno(fd);
		return -1;
	}
	return fd;
}

int mc_fs_walk(int dfd, const char *rel, bool create, mode_t mode, bool fix_mode)
{
	char buf[4096];
	if (strlcpy(buf, rel, sizeof buf) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int cur = dup(dfd);
	if (cur < 0)
		return -1;
	for (char *c = buf; c && *c;) {
		char *slash = strchr(c, '/');
		if (slash)
			*slash = '\0';
		int next = mc_fs_subdir(cur, c, create, mode, fix_mode);
		close_keep_errno(cur);
		if (next < 0)
			return -1;
		cur = next;
		c = slash ? slash + 1 : NULL;
	}
	return cur;
}

int mc_fs_write_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
		   bool durable)
{
	char tmp[300];
	if (!mc_fs_name_ok(name) ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", name) >= sizeof tmp) {
		errno = EINVAL;
		return -1;
	}
	if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT)
		return -1;
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) < 0 || mc_write_all(fd, data, len) < 0 ||
	    (durable && fsync(fd) < 0)) {
		close_keep_errno(fd);
		unlinkat(dfd, tmp, 0);
		return -1;
	}
	if (close(fd) < 0 || renameat(dfd, tmp, dfd, name) < 0) {
		int e = errno;
		unlinkat(dfd, tmp, 0);
		errno = e;
		return -1;
	}
	if (durable && fsync(dfd) < 0)
		return -1;
	return 0;
}

char *mc_fs_read_at(int dfd, const char *name, size_t max, size_t *len)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		if (errno == 0 || S_ISREG(st.st_mode))
			errno = EFBIG;
		else
			errno = EINVAL;
		close_keep_errno(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf && got <= (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (buf && got > (size_t)st.st_size) {   /* grew while read */
		free(buf);
		buf = NULL;
		errno = EFBIG;
	}
	close_keep_errno(fd);
	if (!buf)
		return NULL;
	buf[got] = '\0';
	if (len)
		*len = got;
	return buf;
}

DIR *mc_fs_opendir(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d)
		close_keep_errno(fd);
	return d;
}

/* Empties directory fd (not closed here), depth levels below the top. */
static int empty_dir(int fd, int top_fd, size_t *budget, int depth);

static int remove_entry(int dfd, const char *name, int top_fd, size_t *budget, int depth)
{
	if (*budget == 0)
		return 1;
	if (unlinkat(dfd, name, 0) == 0) {
		(*budget)--;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth >= REMOVE_MAX_DEPTH && top_fd >= 0) {
		/* a hostile deep tree: move the subtree up to the top instead of
		 * holding one fd per level */
		char moved[64];
		static unsigned long counter;
		snprintf(moved, sizeof moved, ".deep-%ld-%lu", (long)getpid(), ++counter);
		if (renameat(dfd, name, top_fd, moved) == 0)
			return 1;    /* removed from the top on a later pass */
	}
	int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return -1;
	int rc = empty_dir(sub, top_fd, budget, depth + 1);
	close(sub);
	if (rc != 0)
		return rc;
	if (*budget == 0)
		return 1;
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -1;
	(*budget)--;
	return 0;
}

static int empty_dir(int fd, int top_fd, size_t *budget, int depth)
{
	DIR *d = mc_fs_opendir(fd);
	if (!d)
		return -1;
	int rc = 0;
	bool moved = false;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = remove_entry(fd, de->d_name, top_fd < 0 ? fd : top_fd, budget, depth);
		if (rc == 1 && *budget > 0) {   /* moved up: keep going */
			moved = true;
			rc = 0;
		}
	}
	closedir(d);
	if (rc == 0 && moved)
		rc = 1;
	return rc;
}

int mc_fs_remove_tree(int dfd, const char *name, size_t *budget)
{
	if (!mc_fs_name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ELOOP && errno != ENOTDIR)
			return -1;
		if (*budget == 0)       /* a symlink or a file: unlink it, never follow */
			return 1;
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return -1;
		(*budget)--;
		return 0;
	}
	int rc = empty_dir(fd, fd, budget, 0);
	close(fd);
	if (rc != 0)
		return rc;
	if (*budget == 0)
		return 1;
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -1;
	(*budget)--;
	return 0;
}
