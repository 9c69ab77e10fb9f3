/* The token file check and the daemon id file (see config.h). */
#include "supervisor/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/fdio.h"
#include "common/secret.h"

#define DAEMON_ID_FILE_MAX 256

/* Reads the token file and wipes it at once; why gets the reason it is not
 * usable ("PATH: ..."). 0, or -1 with errno. */
static int try_token(const char *path, char *why, size_t why_size)
{
	/* mc_secret_from_file uses guarded memory, which needs sodium_init */
	if (sodium_init() < 0)
		return mc_cfg_plain_err(why, why_size, ENOMEM, "cannot initialise libsodium");
	struct mc_secret *s = mc_secret_from_file(path, why, why_size);
	if (s == NULL)
		return -1;
	mc_secret_free(s);
	return 0;
}

int mc_config_token_check(const struct mc_config *c, char *err, size_t err_size)
{
	char why[512] = "";
	if (try_token(c->token_file, why, sizeof why) < 0) {
		int e = errno;
		return mc_cfg_plain_err(err, err_size, e, "token_file %s", why);
	}
	return 0;
}

void mc_cfg_check_token(struct parse *p)
{
	int i = mc_cfg_dkey_index("token_file");
	if (p->c->token_file[0] == '\0' || p->dkey_bad[i])
		return;
	char why[512] = "";
	if (try_token(p->c->token_file, why, sizeof why) < 0)
		mc_cfg_problem(p, errno, p->dkey_line[i], "token_file", "%s", why);
}

/* Reads and validates an existing daemon id file. -1 with errno (ENOENT:
 * it does not exist, the caller creates it) and a message. */
static int read_daemon_id(const char *path, char *id, char *err, size_t err_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return mc_cfg_plain_err(err, err_size, e, "daemon_id_file %s: cannot open: %s", path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mc_cfg_plain_err(err, err_size, EINVAL, "daemon_id_file %s: not a regular file", path);
	}
	char buf[DAEMON_ID_FILE_MAX + 1];
	size_t used = 0;
	while (used < DAEMON_ID_FILE_MAX) {
		ssize_t r = read(fd, buf + used, DAEMON_ID_FILE_MAX - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return mc_cfg_plain_err(err, err_size, e, "daemon_id_file %s: cannot read: %s",
					 path, strerror(e));
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	close(fd);
	buf[used] = '\0';
	char *s = buf + strspn(buf, " \t\r\n");
	size_t n = strlen(s);
	while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
		s[--n] = '\0';
	if (!mc_cfg_is_daemon_id(s))
		return mc_cfg_plain_err(err, err_size, EINVAL,
				 "daemon_id_file %s: does not hold a daemon id (1 to %d characters of A-Z a-z 0-9 . _ -)",
				 path, DAEMON_ID_MAX_LEN);
	strlcpy(id, s, MC_ID_MAX);
	return 0;
}

static void new_uuid_v4(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
		 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* The directory part of path ("/" for "/x"). */
static void parent_dir(const char *path, char *dir, size_t n)
{
	strlcpy(dir, path, n);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Writes the id into a new temporary file next to path (mkostemp: O_EXCL,
 * mode 0600) and flushes it. Returns the fd-less temp name in tmp. */
static int write_temp(const char *path, const char *content, char *tmp, size_t tmp_size)
{
	if ((size_t)snprintf(tmp, tmp_size, "%s.XXXXXX", path) >= tmp_size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (mc_write_all(fd, content, strlen(content)) < 0 || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* Publishes tmp as path without replacing a file another process created
 * meanwhile (RENAME_NOREPLACE; plain rename where the filesystem lacks it).
 * Returns 1 if someone else won the race (tmp removed), 0, or -1. */
static int publish(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	int e = errno;
	if (e == EEXIST) {
		unlink(tmp);
		return 1;
	}
	if ((e == EINVAL || e == ENOSYS) && rename(tmp, path) == 0)
		return 0;
	e = errno;
	unlink(tmp);
	errno = e;
	return -1;
}

static int create_daemon_id(struct mc_config *c, char *err, size_t err_size)
{
	const char *path = c->daemon_id_file;
	char dir[MC_PATH_MAX], tmp[MC_PATH_MAX + 8], id[37], content[40];
	parent_dir(path, dir, sizeof dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		return mc_cfg_plain_err(err, err_size, e, "daemon_id_file %s: cannot create %s: %s",
				 path, dir, strerror(e));
	}
	new_uuid_v4(id);
	snprintf(content, sizeof content, "%s\n", id);
	if (write_temp(path, content, tmp, sizeof tmp) < 0) {
		int e = errno;
		return mc_cfg_plain_err(err, err_size, e, "daemon_id_file %s: cannot write: %s", path, strerror(e));
	}
	int won = publish(tmp, path);
	if (won < 0) {
		int e = errno;
		return mc_cfg_plain_err(err, err_size, e, "daemon_id_file %s: cannot rename %s: %s",
				 path, tmp, strerror(e));
	}
	if (won == 1) /* another process created it first: use theirs */
		return read_daemon_id(path, c->daemon_id, err, err_size);
	if (fsync_dir(dir) < 0) {
		int e = errno;
		return mc_cfg_plain_err(err, err_size, e, "daemon_id_file %s: cannot sync %s: %s",
				 path, dir, strerror(e));
	}
	strlcpy(c->daemon_id, id, sizeof c->daemon_id);
	mc_log(MC_LOG_INFO, "created a new daemon id", "file", path, "daemon_id", id, NULL);
	return 0;
}

int mc_config_resolve_daemon_id(struct mc_config *c, char *err, size_t err_size)
{
	if (c->daemon_id_file[0] == '\0')
		return c->daemon_id[0] != '\0' ? 0
			: mc_cfg_plain_err(err, err_size, EINVAL, "neither daemon_id nor daemon_id_file is set");
	if (read_daemon_id(c->daemon_id_file, c->daemon_id, err, err_size) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	if (sodium_init() < 0)
		return mc_cfg_plain_err(err, err_size, ENOMEM, "daemon_id_file: cannot initialise libsodium");
	if (err != NULL && err_size > 0)
		err[0] = '\0'; /* the "cannot open" of the first attempt is not an error */
	return create_daemon_id(c, err, err_size);
}

