#include "common/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define MC_SECRET_FILE_MAX 4096

struct mc_secret {
	size_t len;
	char *value; /* sodium_malloc'd, len + 1 bytes, NUL-terminated */
};

struct mc_secret *mc_secret_new(const char *value, size_t len)
{
	if (sodium_init() < 0) {
		errno = ENOMEM;
		return NULL;
	}
	struct mc_secret *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->value = sodium_malloc(len + 1);
	if (s->value == NULL) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(s->value, value, len);
	s->value[len] = '\0';
	s->len = len;
	sodium_mprotect_noaccess(s->value);
	return s;
}

static void set_err(char *err, size_t err_size, const char *path, const char *why)
{
	if (err != NULL && err_size > 0)
		snprintf(err, err_size, "%s: %s", path, why);
}

static int read_bounded(int fd, char *buf, size_t cap, size_t *out_len)
{
	size_t used = 0;
	for (;;) {
		ssize_t r = read(fd, buf + used, cap - used);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used == cap) {
			errno = EFBIG;
			return -1;
		}
	}
	*out_len = used;
	return 0;
}

struct mc_secret *mc_secret_from_file(const char *path, char *err, size_t err_size)
{
	if (sodium_init() < 0) {
		set_err(err, err_size, path, "libsodium failed to initialize");
		errno = ENOMEM;
		return NULL;
	}
	/* O_NONBLOCK: a FIFO (or a device) at this path must not hang the
	 * caller (a reload on the supervisor's loop); it is refused below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		set_err(err, err_size, path, strerror(e));
		errno = e;
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		set_err(err, err_size, path, "not a regular file");
		errno = EINVAL;
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		set_err(err, err_size, path,
			"token file is accessible by group or others (chmod 600 it)");
		errno = EPERM;
		return NULL;
	}

	/* Read straight into guarded memory so the token never sits in the heap. */
	char *buf = sodium_malloc(MC_SECRET_FILE_MAX + 1);
	if (buf == NULL) {
		close(fd);
		set_err(err, err_size, path, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	size_t len = 0;
	int rc = read_bounded(fd, buf, MC_SECRET_FILE_MAX + 1, &len);
	int e = errno;
	close(fd);
	struct mc_secret *s = NULL;
	if (rc < 0) {
		set_err(err, err_size, path,
			e == EFBIG ? "token file larger than 4 KiB" : strerror(e));
		goto out;
	}
	size_t start = 0;
	while (start < len && (buf[start] == ' ' || buf[start] == '\t' ||
			       buf[start] == '\n' || buf[start] == '\r'))
		start++;
	while (len > start && (buf[len - 1] == ' ' || buf[len - 1] == '\t' ||
			       buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == start) {
		set_err(err, err_size, path, "token file is empty");
		e = EINVAL;
		goto out;
	}
	for (size_t i = start; i < len; i++) {
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			set_err(err, err_size, path,
				"token contains whitespace or non-printable bytes");
			e = EINVAL;
			goto out;
		}
	}
	s = mc_secret_new(buf + start, len - start);
	e = errno;
out:
	sodium_free(buf); /* wipes */
	errno = e;
	return s;
}

const char *mc_secret_open(struct mc_secret *s)
{
	sodium_mprotect_readonly(s->value);
	return s->value;
}

void mc_secret_close(struct mc_secret *s)
{
	sodium_mprotect_noaccess(s->value);
}

size_t mc_secret_len(const struct mc_secret *s) { return s->len; }

struct mc_secret *mc_secret_dup(struct mc_secret *s)
{
	const char *v = mc_secret_open(s);
	struct mc_secret *copy = mc_secret_new(v, s->len);
	mc_secret_close(s);
	return copy;
}

void mc_secret_free(struct mc_secret *s)
{
	if (s == NULL)
		return;
	sodium_free(s->value);
	free(s);
}

bool mc_secret_equal(struct mc_secret *a, struct mc_secret *b)
{
	if (a == NULL || b == NULL || mc_secret_len(a) != mc_secret_len(b))
		return false;
	const char *x = mc_secret_open(a), *y = mc_secret_open(b);
	bool eq = sodium_memcmp(x, y, mc_secret_len(a)) == 0;
	mc_secret_close(a);
	mc_secret_close(b);
	return eq;
}

void mc_secret_forbid_dumps(void)
{
#ifdef MC_TEST_HOOKS
	const char *keep = getenv("MC_TEST_DUMPABLE");
	if (keep != NULL && strcmp(keep, "1") == 0)
		return;
#endif
	/* Cannot fail for 0; inherited by fork, reset by execve. */
	prctl(PR_SET_DUMPABLE, 0);
	struct rlimit rl;
	if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur != 0) {
		rl.rlim_cur = 0;
		setrlimit(RLIMIT_CORE, &rl); /* lowering needs no privilege */
	}
}
