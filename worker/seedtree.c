/* Async-signal-safe tree copy for the agent's child (seedtree.h). */
#include "worker/seedtree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DENTS_BUF 4096
#define COPY_BUF 8192
#define CODEX_CONFIG_MAX (256u * 1024u)

struct dent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static void close_keep(int fd)
{
	int e = errno;
	close(fd);
	errno = e;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int copy_file(int sdir, int ddir, const char *name, mode_t mode)
{
	int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (in < 0)
		return -1;
	int out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 mode & 0777);
	if (out < 0) {
		close_keep(in);
		return -1;
	}
	char buf[COPY_BUF];
	int rc = 0;
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r > 0 && write_all(out, buf, (size_t)r) < 0)) {
			rc = -1;
			break;
		}
		if (r == 0)
			break;
	}
	close_keep(in);
	if (close(out) < 0)
		rc = -1;
	return rc;
}

static int copy_link(int sdir, int ddir, const char *name)
{
	char target[4096];
	ssize_t n = readlinkat(sdir, name, target, sizeof target - 1);
	if (n < 0)
		return -1;
	target[n] = '\0';
	return symlinkat(target, ddir, name);
}

static int copy_dir(int sfd, int dfd, int depth);

static int copy_subdir(int sdir, int ddir, const char *name, mode_t mode, int depth)
{
	if (depth >= MC_SEED_MAX_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	if (mkdirat(ddir, name, (mode & 0777) | 0700) < 0 && errno != EEXIST)
		return -1;
	int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0)
		return -1;
	int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0) {
		close_keep(s);
		return -1;
	}
	int rc = copy_dir(s, d, depth + 1);
	close_keep(s);
	close_keep(d);
	return rc;
}

static int copy_entry(int sfd, int dfd, const char *name, int depth)
{
	struct stat st;
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (S_ISREG(st.st_mode))
		return copy_file(sfd, dfd, name, st.st_mode);
	if (S_ISLNK(st.st_mode))
		return copy_link(sfd, dfd, name);
	if (S_ISDIR(st.st_mode))
		return copy_subdir(sfd, dfd, name, st.st_mode, depth);
	return 0; /* devices, fifos, sockets: not seeded */
}

static int copy_dir(int sfd, int dfd, int depth)
{
	char buf[DENTS_BUF] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, sfd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		for (long off = 0; off < n;) {
			struct dent64 *de = (struct dent64 *)(buf + off);
			off += de->d_reclen;
			const char *nm = de->d_name;
			if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
				continue;
			if (copy_entry(sfd, dfd, nm, depth) < 0)
				return -1;
		}
	}
}

int mc_seed_tree(const char *src, int dstfd)
{
	int s = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s < 0)
		return -1;
	int rc = copy_dir(s, dstfd, 0);
	close_keep(s);
	return rc;
}

static void wipe(volatile char *p, size_t n)
{
	while (n--)
		*p++ = 0;
}

/* Reads at most max bytes of dir/name (a regular file) into buf; the
 * length, or -1 (ENOENT when absent). */
static ssize_t read_small(int dir, const char *name, char *buf, size_t max)
{
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	size_t got = 0;
	while (got < max) {
		ssize_t r = read(fd, buf + got, max - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close_keep(fd);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return (ssize_t)got;
}

static bool contains(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(hay + i, needle, k) == 0)
			return true;
	return false;
}

/* Replaces dfd/name with head (may be NULL) then data: the old entry is
 * unlinked first, so a symlink planted there is never written through. */
static int put(int dfd, const char *name, const char *head, const char *data, size_t n)
{
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return -1;
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (head != NULL && write_all(fd, head, strlen(head)) < 0)
		rc = -1;
	if (rc == 0 && n > 0 && write_all(fd, data, n) < 0)
		rc = -1;
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

int mc_seed_codex(const char *src, int dstfd)
{
	static char buf[CODEX_CONFIG_MAX];
	static const char sandbox[] = "sandbox_mode = \"danger-full-access\"\n";
	int s = src != NULL ? open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	int rc = 0;
	ssize_t n = s >= 0 ? read_small(s, "config.toml", buf, sizeof buf) : -1;
	if (n < 0)
		n = 0;
	if (put(dstfd, "config.toml", contains(buf, (size_t)n, "sandbox_mode") ? NULL : sandbox,
		buf, (size_t)n) < 0)
		rc = -1;
	wipe(buf, (size_t)n);
	n = s >= 0 ? read_small(s, "auth.json", buf, sizeof buf) : -1;
	if (n >= 0) {
		if (put(dstfd, "auth.json", NULL, buf, (size_t)n) < 0)
			rc = -1;
		wipe(buf, (size_t)n);
	}
	if (s >= 0)
		close_keep(s);
	return rc;
}
