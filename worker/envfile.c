/* agent_env_file: read, checked, kept for the agents (envfile.h). */
#include "worker/envfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/log.h"
#include "worker/agent_env.h"

void mc_envfile_init(struct mc_envfile *f, const char *path)
{
	memset(f, 0, sizeof *f);
	if (path != NULL)
		strlcpy(f->path, path, sizeof f->path);
}

static void free_vars(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sodium_memzero(v[i], strlen(v[i]));
		free(v[i]);
	}
	free(v);
}

void mc_envfile_clear(struct mc_envfile *f)
{
	free_vars(f->vars, f->n);
	f->vars = NULL;
	f->n = 0;
}

char *const *mc_envfile_vars(const struct mc_envfile *f)
{
	return f->vars;
}

static void bad_line(const char *name, unsigned line, const char *what)
{
	char where[PATH_MAX + 32];
	snprintf(where, sizeof where, "%s:%u", name, line);
	mc_log(MC_LOG_WARN, "agent_env_file: line skipped", "at", where, "problem", what, NULL);
}

static bool key_ok(const char *k, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)k[i]) || k[i] == '_'))
			return false;
	return true;
}

static const char *trim(const char *p, const char *end, const char **out_end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*out_end = end;
	return p;
}

/* One line: appended to v, or logged. Returns -1 on ENOMEM only. */
static int parse_line(char ***v, size_t *n, const char *name, unsigned ln, const char *p,
		      const char *end)
{
	p = trim(p, end, &end);
	if (p == end || *p == '#')
		return 0;
	const char *eq = memchr(p, '=', (size_t)(end - p));
	if (eq == NULL) {
		bad_line(name, ln, "no '=' (expected KEY=VALUE)");
		return 0;
	}
	const char *kend;
	const char *k = trim(p, eq, &kend);
	if (!key_ok(k, (size_t)(kend - k))) {
		bad_line(name, ln, "invalid key (expected [A-Za-z_][A-Za-z0-9_]*)");
		return 0;
	}
	char key[256];
	if ((size_t)(kend - k) >= sizeof key) {
		bad_line(name, ln, "key too long");
		return 0;
	}
	memcpy(key, k, (size_t)(kend - k));
	key[kend - k] = '\0';
	if (mc_agent_env_blocked(key)) {
		char what[320];
		snprintf(what, sizeof what, "key %s is refused (multicad sets it)", key);
		bad_line(name, ln, what);
		return 0;
	}
	const char *vend;
	const char *val = trim(eq + 1, end, &vend);
	if (vend - val >= 2 && val[0] == '"' && vend[-1] == '"') {
		val++;
		vend--;
	}
	if (memchr(val, '\0', (size_t)(vend - val)) != NULL) {
		bad_line(name, ln, "NUL byte in the value");
		return 0;
	}
	if (*n >= MC_ENVFILE_VARS_MAX) {
		bad_line(name, ln, "too many variables");
		return 0;
	}
	size_t kl = strlen(key), vl = (size_t)(vend - val);
	char *kv = malloc(kl + vl + 2);
	char **nv = kv ? realloc(*v, (*n + 2) * sizeof *nv) : NULL;
	if (nv == NULL) {
		free(kv);
		return -1;
	}
	*v = nv;
	memcpy(kv, key, kl);
	kv[kl] = '=';
	memcpy(kv + kl + 1, val, vl);
	kv[kl + 1 + vl] = '\0';
	/* a later line of the same key wins */
	for (size_t i = 0; i < *n; i++)
		if (strncmp((*v)[i], kv, kl + 1) == 0) {
			sodium_memzero((*v)[i], strlen((*v)[i]));
			free((*v)[i]);
			(*v)[i] = kv;
			return 0;
		}
	(*v)[(*n)++] = kv;
	(*v)[*n] = NULL;
	return 0;
}

int mc_envfile_parse(struct mc_envfile *f, const char *name, const char *text, size_t len)
{
	char **v = NULL;
	size_t n = 0;
	unsigned ln = 0;
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		if (parse_line(&v, &n, name, ++ln, p, le) < 0) {
			free_vars(v, n);
			errno = ENOMEM;
			return -1;
		}
		p = le + 1;
	}
	mc_envfile_clear(f);
	f->vars = v;
	f->n = n;
	return 0;
}

int mc_envfile_refresh(struct mc_envfile *f)
{
	if (f->path[0] == '\0')
		return 0;
	struct stat st;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), e = 0;
	if (fd < 0 || fstat(fd, &st) < 0)
		e = errno;
	else if (!S_ISREG(st.st_mode))
		e = EINVAL;
	else if ((size_t)st.st_size > MC_ENVFILE_MAX)
		e = EFBIG;
	if (e != 0) {
		if (fd >= 0)
			close(fd);
		if (!f->failed)
			mc_log(MC_LOG_ERROR, "agent_env_file cannot be read: agents get none of it",
			       "file", f->path, "error", strerror(e), NULL);
		f->failed = true;
		f->seen = false;
		mc_envfile_clear(f);
		errno = e;
		return -1;
	}
	if (f->seen && !f->failed && st.st_dev == f->dev && st.st_ino == f->ino &&
	    st.st_size == f->size && st.st_mtim.tv_sec == f->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == f->mtime.tv_nsec) {
		close(fd);
		return 0;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf != NULL && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	int rc = buf != NULL ? mc_envfile_parse(f, f->path, buf, got) : -1;
	if (buf != NULL) {
		sodium_memzero(buf, got);
		free(buf);
	}
	if (rc < 0) {
		errno = ENOMEM;
		return -1;
	}
	if (f->failed)
		mc_log(MC_LOG_INFO, "agent_env_file readable again", "file", f->path, NULL);
	f->failed = false;
	f->seen = true;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
	mc_log(MC_LOG_INFO, "agent_env_file loaded", "file", f->path,
	       "variables", MC_LOG_NUM(f->n), NULL);
	return 0;
}
