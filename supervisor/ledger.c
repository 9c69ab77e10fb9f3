/* The ledger (see ledger.h). Memory: a red-black tree of entries keyed by
 * workspace UUID. Disk: one small file per workspace in a directory the
 * ledger keeps open, so every file operation is relative to that fd
 * (openat/renameat/unlinkat) and the directory can be fsynced cheaply. */
#include "supervisor/ledger.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/sys/tree.h>

#include "common/fdio.h"
#include "common/log.h"
#include "ipc/messages.h"

#define UUID_LEN 36
#define LINE_LEN (UUID_LEN + 1)                       /* with its '\n' */
#define FILE_MAX ((size_t)MC_LEDGER_MAX_IDS * LINE_LEN) /* larger: corrupt */
#define TMP_SUFFIX ".tmp"
#define BAD_SUFFIX ".bad"
#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_MANY "more than " STR(MC_LEDGER_MAX_IDS) " runtime IDs"

struct entry {
	RB_ENTRY(entry) link;
	char ws[MC_ID_MAX];         /* lowercase */
	size_t n;                   /* >= 1 */
	const char **ids;           /* n pointers followed by their strings: one allocation */
	bool synced;                /* the file holds exactly this set */
};

static int entry_cmp(const struct entry *a, const struct entry *b)
{
	return strcasecmp(a->ws, b->ws);
}

RB_HEAD(ledger_tree, entry);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined */
RB_GENERATE_INTERNAL(ledger_tree, entry, link, entry_cmp, __attribute__((unused)) static)

struct mc_ledger {
	struct ledger_tree tree;
	size_t count;
	int dirfd;                  /* <state_dir>/ledger, O_DIRECTORY|O_CLOEXEC */
	char dir[MC_PATH_MAX];      /* its path, for messages */
};

/* ---- helpers ---- */

static bool is_lower_uuid(const char *s)
{
	if (!mc_is_uuid(s))
		return false;
	for (; *s; s++)
		if (isupper((unsigned char)*s))
			return false;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* <dir>/<name> for log messages. */
static const char *path_of(const struct mc_ledger *l, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", l->dir, name);
	return buf;
}

/* Logs a failed operation on name with the current errno, keeping errno. */
static void log_io(const struct mc_ledger *l, enum mc_log_level level, const char *msg,
		   const char *name, const char *op)
{
	int e = errno;
	char path[MC_PATH_MAX + 64];
	mc_log(level, msg, "path", path_of(l, name, path, sizeof path), "op", op,
	       "error", strerror(e), NULL);
	errno = e;
}

/* Allocates the pointer array and the lowercase copies of ids in one block
 * (freed with free()). NULL with errno=ENOMEM. */
static const char **ids_new(size_t n, const char *const *ids)
{
	char **v = malloc(n * sizeof *v + n * MC_ID_MAX);
	if (v == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	char *store = (char *)(v + n);
	for (size_t i = 0; i < n; i++) {
		v[i] = store + i * MC_ID_MAX;
		strlcpy(v[i], ids[i], MC_ID_MAX);
		for (char *c = v[i]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	return (const char **)v;
}

static bool same_ids(const struct entry *e, size_t n, const char *const *ids)
{
	if (e->n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(e->ids[i], ids[i]) != 0)
			return false;
	return true;
}

static struct entry *find(const struct mc_ledger *l, const char *ws)
{
	struct entry key;
	if (strlcpy(key.ws, ws, sizeof key.ws) >= sizeof key.ws)
		return NULL;
	return RB_FIND(ledger_tree, (struct ledger_tree *)&l->tree, &key);
}

static void entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->ids);
	free(e);
}

/* ---- disk ---- */

/* Creates tmp (mode 0600) holding len bytes of buf, flushed to disk.
 * Returns NULL, or the name of the step that failed with errno set. */
static const char *write_tmp(int dirfd, const char *tmp, const char *buf, size_t len)
{
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return "open";
	const char *op = NULL;
	if (mc_write_all(fd, buf, len) < 0)
		op = "write";
	else if (fsync(fd) < 0)
		op = "fsync";
	int e = errno;
	if (close(fd) < 0 && op == NULL) {
		op = "close";
		e = errno;
	}
	errno = e;
	return op;
}

/* Writes ids to <ws>.tmp, renames it over <ws>, fsyncs the directory.
 * 0, or -1 with errno (logged; the temp file is removed). */
static int write_file(struct mc_ledger *l, const char *ws, size_t n, const char *const *ids)
{
	char tmp[MC_ID_MAX + sizeof TMP_SUFFIX];
	snprintf(tmp, sizeof tmp, "%s%s", ws, TMP_SUFFIX);
	char *buf = malloc(n * LINE_LEN);
	if (buf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + i * LINE_LEN, ids[i], UUID_LEN);
		buf[i * LINE_LEN + UUID_LEN] = '\n';
	}
	const char *op = write_tmp(l->dirfd, tmp, buf, n * LINE_LEN);
	if (op == NULL && renameat(l->dirfd, tmp, l->dirfd, ws) < 0)
		op = "rename";
	int e = errno;
	free(buf);
	if (op != NULL) {
		errno = e;
		log_io(l, MC_LOG_ERROR, "ledger write failed", tmp, op);
		unlinkat(l->dirfd, tmp, 0);
		errno = e;
		return -1;
	}
	if (fsync(l->dirfd) < 0) {
		log_io(l, MC_LOG_ERROR, "ledger write failed", ".", "fsync");
		return -1;
	}
	return 0;
}

/* Removes <ws>; a missing file is fine. 0, or -1 with errno (logged). */
static int remove_file(struct mc_ledger *l, const char *ws)
{
	if (unlinkat(l->dirfd, ws, 0) < 0) {
		if (errno == ENOENT)
			return 0;
		log_io(l, MC_LOG_ERROR, "ledger remove failed", ws, "unlink");
		return -1;
	}
	if (fsync(l->dirfd) < 0) {
		log_io(l, MC_LOG_ERROR, "ledger remove failed", ".", "fsync");
		return -1;
	}
	return 0;
}

/* ---- loading ---- */

/* Reads the file name (at most FILE_MAX + 1 bytes) into buf. Returns its
 * length, or -1 with a reason in *why. */
static ssize_t read_small(struct mc_ledger *l, const char *name, char *buf, const char **why)
{
	int fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*why = "cannot open (not a regular file?)";
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		*why = "not a regular file";
		return -1;
	}
	size_t used = 0;
	while (used <= FILE_MAX) {
		ssize_t r = read(fd, buf + used, FILE_MAX + 1 - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			*why = "read error";
			return -1;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	close(fd);
	if (used > FILE_MAX) {
		*why = TOO_MANY;
		return -1;
	}
	return (ssize_t)used;
}

/* Splits buf (len bytes) into UUID lines, NUL-terminating them in place.
 * Returns the count, or 0 with a reason in *why. */
static size_t split_ids(char *buf, size_t len, const char **ids, const char **why)
{
	size_t n = 0, pos = 0;
	while (pos < len) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		buf[end] = '\0';
		if (memchr(buf + pos, '\0', end - pos) != NULL || !mc_is_uuid(buf + pos)) {
			*why = "a line is not a runtime UUID";
			return 0;
		}
		if (n == MC_LEDGER_MAX_IDS) {
			*why = TOO_MANY;
			return 0;
		}
		ids[n++] = buf + pos;
		pos = end + 1;
	}
	if (n == 0)
		*why = "empty";
	return n;
}

static void quarantine(struct mc_ledger *l, const char *name, const char *why)
{
	char bad[NAME_MAX + 1], path[MC_PATH_MAX + 64];
	mc_log(MC_LOG_WARN, "ledger: skipping a corrupt file", "path",
	       path_of(l, name, path, sizeof path), "reason", why, NULL);
	if ((size_t)snprintf(bad, sizeof bad, "%s%s", name, BAD_SUFFIX) >= sizeof bad ||
	    renameat(l->dirfd, name, l->dirfd, bad) < 0)
		log_io(l, MC_LOG_WARN, "ledger: cannot rename a corrupt file", name, "rename");
}

/* Loads one <ws> file into the tree (allocating its entry), or quarantines
 * it. buf is scratch (FILE_MAX + 1 bytes),
 * ids scratch for MC_LEDGER_MAX_IDS pointers. -1 only on ENOMEM. */
static int load_file(struct mc_ledger *l, const char *name, char *buf, const char **ids)
{
	const char *why = NULL;
	ssize_t len = read_small(l, name, buf, &why);
	size_t n = len < 0 ? 0 : split_ids(buf, (size_t)len, ids, &why);
	if (n == 0) {
		quarantine(l, name, why);
		return 0;
	}
	struct entry *e = calloc(1, sizeof *e);
	if (e == NULL || (e->ids = ids_new(n, ids)) == NULL) {
		free(e);
		errno = ENOMEM;
		return -1;
	}
	strlcpy(e->ws, name, sizeof e->ws);
	e->n = n;
	e->synced = true;
	RB_INSERT(ledger_tree, &l->tree, e);
	l->count++;
	return 0;
}

struct names {
	char **v;
	size_t n, cap;
};

static void names_free(struct names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
}

/* Appends a copy of name (allocated) to nm. -1 with errno=ENOMEM. */
static int names_add(struct names *nm, const char *name)
{
	if (nm->n == nm->cap) {
		size_t cap = nm->cap ? nm->cap * 2 : 64;
		char **v = reallocarray(nm->v, cap, sizeof *v);
		if (v == NULL)
			return -1;
		nm->v = v;
		nm->cap = cap;
	}
	if ((nm->v[nm->n] = strdup(name)) == NULL)
		return -1;
	nm->n++;
	return 0;
}

/* The directory's entry names (allocated into nm; names_free), read before
 * any of them is renamed or removed. */
static int list_dir(struct mc_ledger *l, struct names *nm)
{
	int fd = openat(l->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	int rc = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			rc = errno ? -1 : 0;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (names_add(nm, de->d_name) < 0) {
			rc = -1;
			break;
		}
	}
	int e = errno;
	closedir(d);
	errno = e;
	return rc;
}

static int load_name(struct mc_ledger *l, const char *name, char *buf, const char **ids)
{
	if (has_suffix(name, BAD_SUFFIX))
		return 0; /* quarantined earlier, left for the operator */
	if (has_suffix(name, TMP_SUFFIX)) {
		/* a write interrupted by a crash: the final file is still intact */
		if (unlinkat(l->dirfd, name, 0) < 0)
			log_io(l, MC_LOG_WARN, "ledger: cannot remove a leftover temp file", name, "unlink");
		return 0;
	}
	if (!is_lower_uuid(name)) {
		quarantine(l, name, "name is not a lowercase workspace UUID");
		return 0;
	}
	return load_file(l, name, buf, ids);
}

static int load_dir(struct mc_ledger *l)
{
	struct names nm = { 0 };
	char *buf = malloc(FILE_MAX + 1);
	const char **ids = calloc(MC_LEDGER_MAX_IDS, sizeof *ids);
	int rc = buf != NULL && ids != NULL ? list_dir(l, &nm) : -1;
	if (buf == NULL || ids == NULL)
		errno = ENOMEM;
	for (size_t i = 0; rc == 0 && i < nm.n; i++)
		rc = load_name(l, nm.v[i], buf, ids);
	int e = errno;
	names_free(&nm);
	free(buf);
	free(ids);
	errno = e;
	return rc;
}

/* ---- public ---- */

static struct mc_ledger *open_fail(struct mc_ledger *l, char *err, size_t err_size,
				   const char *what, const char *path)
{
	int e = errno;
	if (err != NULL && err_size > 0)
		snprintf(err, err_size, "%s: %s: %s", path, what, strerror(e));
	mc_ledger_free(l);
	errno = e;
	return NULL;
}

struct mc_ledger *mc_ledger_open(const char *state_dir, char *err, size_t err_size)
{
	struct mc_ledger *l = calloc(1, sizeof *l);
	if (l == NULL)
		return open_fail(NULL, err, err_size, "cannot open the ledger", state_dir);
	RB_INIT(&l->tree);
	l->dirfd = -1;
	int n = snprintf(l->dir, sizeof l->dir, "%s/ledger", state_dir);
	if (n < 0 || (size_t)n >= sizeof l->dir) {
		errno = ENAMETOOLONG;
		return open_fail(l, err, err_size, "cannot open the ledger", state_dir);
	}
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
		return open_fail(l, err, err_size, "cannot create", state_dir);
	if (mkdir(l->dir, 0700) < 0 && errno != EEXIST)
		return open_fail(l, err, err_size, "cannot create", l->dir);
	l->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0)
		return open_fail(l, err, err_size, "cannot open", l->dir);
	if (load_dir(l) < 0)
		return open_fail(l, err, err_size, "cannot load", l->dir);
	return l;
}

void mc_ledger_free(struct mc_ledger *l)
{
	if (l == NULL)
		return;
	struct entry *e;
	while ((e = RB_MIN(ledger_tree, &l->tree)) != NULL) {
		RB_REMOVE(ledger_tree, &l->tree, e);
		entry_free(e);
	}
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l);
}

static bool valid_set(const char *ws, size_t n, const char *const *ids)
{
	if (!mc_is_uuid(ws) || n > MC_LEDGER_MAX_IDS || (n > 0 && ids == NULL))
		return false;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == NULL || !mc_is_uuid(ids[i]))
			return false;
	return true;
}

int mc_ledger_set(struct mc_ledger *l, const char *ws, size_t n, const char *const *ids)
{
	if (!valid_set(ws, n, ids)) {
		errno = EINVAL;
		return -1;
	}
	if (n == 0)
		return mc_ledger_clear(l, ws);
	struct entry *e = find(l, ws);
	if (e != NULL && e->synced && same_ids(e, n, ids))
		return 0;
	/* allocate everything first: ENOMEM must leave the ledger as it was */
	const char **v = ids_new(n, ids);
	struct entry *fresh = e == NULL ? calloc(1, sizeof *fresh) : NULL;
	if (v == NULL || (e == NULL && fresh == NULL)) {
		free(v);
		free(fresh);
		errno = ENOMEM;
		return -1;
	}
	if (fresh != NULL) {
		strlcpy(fresh->ws, ws, sizeof fresh->ws);
		for (char *c = fresh->ws; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		RB_INSERT(ledger_tree, &l->tree, fresh);
		l->count++;
		e = fresh;
	}
	free(e->ids);
	e->ids = v;
	e->n = n;
	int rc = write_file(l, e->ws, n, v);
	int err = errno;
	e->synced = rc == 0;
	errno = err;
	return rc;
}

int mc_ledger_clear(struct mc_ledger *l, const char *ws)
{
	if (!mc_is_uuid(ws)) {
		errno = EINVAL;
		return -1;
	}
	struct entry *e = find(l, ws);
	char name[MC_ID_MAX];
	strlcpy(name, ws, sizeof name);
	for (char *c = name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (e != NULL) {
		RB_REMOVE(ledger_tree, &l->tree, e);
		l->count--;
		entry_free(e);
	}
	return remove_file(l, name);
}

size_t mc_ledger_get(const struct mc_ledger *l, const char *ws, const char *const **ids)
{
	const struct entry *e = mc_is_uuid(ws) ? find(l, ws) : NULL;
	if (ids != NULL)
		*ids = e != NULL ? e->ids : NULL;
	return e != NULL ? e->n : 0;
}

size_t mc_ledger_count(const struct mc_ledger *l)
{
	return l->count;
}

int mc_ledger_foreach(const struct mc_ledger *l, mc_ledger_cb cb, void *arg)
{
	struct entry *e;
	RB_FOREACH(e, ledger_tree, (struct ledger_tree *)&l->tree) {
		int rc = cb(e->ws, e->n, e->ids, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}
