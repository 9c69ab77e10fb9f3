/* Async-signal-safe recursive removal (rmtree.h). */
#include "worker/rmtree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DENTS_BUF 4096
/* A directory is re-listed after removals; a bound for one that refills. */
#define MAX_PASSES 64

struct dent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static bool dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static int remove_at(int dfd, const char *name, int depth);

/* Empties the directory fd. */
static int empty_dir(int fd, int depth)
{
	char buf[DENTS_BUF] __attribute__((aligned(8)));
	int rc = 0, first_err = 0;
	for (int pass = 0; pass < MAX_PASSES; pass++) {
		if (lseek(fd, 0, SEEK_SET) < 0)
			return -1;
		bool any = false, removed = false;
		for (;;) {
			long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			for (long off = 0; off < n;) {
				struct dent64 *de = (struct dent64 *)(buf + off);
				off += de->d_reclen;
				if (dot(de->d_name))
					continue;
				any = true;
				if (remove_at(fd, de->d_name, depth) == 0) {
					removed = true;
				} else if (first_err == 0) {
					first_err = errno;
					rc = -1;
				}
			}
		}
		if (!any)
			return rc;
		if (!removed)
			break; /* nothing more will go */
	}
	errno = first_err ? first_err : ENOTEMPTY;
	return -1;
}

static int remove_at(int dfd, const char *name, int depth)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth >= MC_RMTREE_MAX_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0700) != 0700)
		fchmod(fd, 0700); /* ours but read-only: let us empty it */
	int rc = empty_dir(fd, depth + 1);
	int e = errno;
	close(fd);
	if (rc < 0) {
		errno = e;
		return -1;
	}
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

int mc_rmtree_at(int dfd, const char *name)
{
	if (name == NULL || name[0] == '\0' || dot(name) || strchr(name, '/') != NULL) {
		errno = EINVAL;
		return -1;
	}
	return remove_at(dfd, name, 0);
}

int mc_rmtree_prefixed(int dfd, const char *prefix)
{
	char buf[DENTS_BUF] __attribute__((aligned(8)));
	size_t k = strlen(prefix);
	int rc = 0, first_err = 0;
	if (lseek(dfd, 0, SEEK_SET) < 0)
		return -1;
	/* Matches are renamed-away names nobody recreates: one listing, with
	 * removals in between, sees each of them (a removal never moves
	 * another entry past the read offset on the file systems we use, and
	 * a miss is taken by the next GC round). */
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct dent64 *de = (struct dent64 *)(buf + off);
			off += de->d_reclen;
			if (dot(de->d_name) || strncmp(de->d_name, prefix, k) != 0)
				continue;
			if (mc_rmtree_at(dfd, de->d_name) < 0 && first_err == 0) {
				first_err = errno;
				rc = -1;
			}
		}
	}
	if (rc < 0)
		errno = first_err;
	return rc;
}
