/* The ledger (see ledger.h). Memory: a red-black tree of entries keyed by
 * workspace UUID, plus the set of workspaces whose file is not yet what
 * memory says (dirty). Disk: one small file per workspace in a directory the
 * ledger keeps open, so every file operation is relative to that fd
 * (openat/renameat/unlinkat); loading happens here at open, writing in the
 * writer thread (ledger_writer.c), one batch of dirty files at a time. */
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

#include "common/clock.h"
#include "common/log.h"
#include "ipc/messages.h"
#include "supervisor/ledger_writer.h"

#define UUID_LEN 36
#define LINE_LEN (UUID_LEN + 1)                       /* with its '\n' */
#define FILE_MAX ((size_t)MC_LEDGER_MAX_IDS * LINE_LEN) /* larger: corrupt */
#define TMP_SUFFIX ".tmp"
#define BAD_SUFFIX ".bad"
#define TASKS_SUFFIX ".tasks"   /* <ws>.tasks: the workspace's tasks in flight */
#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_MANY "more than " STR(MC_LEDGER_MAX_IDS) " runtime IDs"

struct entry {
	RB_ENTRY(entry) link;
	char ws[MC_ID_MAX];         /* lowercase */
	size_t n;                   /* >= 1 */
	const char **ids;           /* n pointers followed by their strings: one allocation */
};

/* A workspace whose file must be rewritten (or removed: no entry). */
struct dirty {
	RB_ENTRY(dirty) link;
	char ws[MC_ID_MAX];         /* lowercase */
};

static int entry_cmp(const struct entry *a, const struct entry *b)
{
	return strcasecmp(a->ws, b->ws);
}

static int dirty_cmp(const struct dirty *a, const struct dirty *b)
{
	return strcmp(a->ws, b->ws);
}

RB_HEAD(ledger_tree, entry);
RB_HEAD(dirty_tree, dirty);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined */
RB_GENERATE_INTERNAL(ledger_tree, entry, link, entry_cmp, __attribute__((unused)) static)
RB_GENERATE_INTERNAL(dirty_tree, dirty, link, dirty_cmp, __attribute__((unused)) static)

#define RETRY_AFTER_MS 1000   /* a failed write is retried this much later */
#define FREE_SYNC_MS   3000   /* mc_ledger_free: how long to wait for the disk */

struct mc_ledger {
	struct ledger_tree tree;
	size_t count;
	struct ledger_tree tasks;   /* the same shape: task ids per workspace */
	mc_ledger_observer observer;
	void *observer_arg;
	struct dirty_tree dirty;
	size_t n_dirty;
	struct mc_ledger_writer *writer;
	mc_ms_t retry_at;           /* after a failed batch: no new one before */
	int last_error;             /* errno of the last batch's first failure, 0: none */
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

static struct entry *find_in(const struct ledger_tree *t, const char *ws)
{
	struct entry key;
	if (strlcpy(key.ws, ws, sizeof key.ws) >= sizeof key.ws)
		return NULL;
	return RB_FIND(ledger_tree, (struct ledger_tree *)t, &key);
}

static struct entry *find(const struct mc_ledger *l, const char *ws)
{
	return find_in(&l->tree, ws);
}

/* The entry a file name stands for: <ws> or <ws>.tasks. */
static struct entry *entry_for_name(const struct mc_ledger *l, const char *name)
{
	size_t n = strlen(name), m = strlen(TASKS_SUFFIX);
	if (n > m && strcmp(name + n - m, TASKS_SUFFIX) == 0) {
		char ws[MC_ID_MAX];
		if (n - m >= sizeof ws)
			return NULL;
		memcpy(ws, name, n - m);
		ws[n - m] = '\0';
		return find_in(&l->tasks, ws);
	}
	return find(l, name);
}

static void entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->ids);
	free(e);
}

/* ---- dirty set and batches ---- */

static int mark_dirty(struct mc_ledger *l, const char *lower_ws, struct dirty *spare)
{
	struct dirty key;
	strlcpy(key.ws, lower_ws, sizeof key.ws);
	if (RB_FIND(dirty_tree, &l->dirty, &key) != NULL) {
		free(spare);
		return 0;
	}
	struct dirty *d = spare != NULL ? spare : malloc(sizeof *d);
	if (d == NULL) {
		errno = ENOMEM;
		return -1;
	}
	strlcpy(d->ws, lower_ws, sizeof d->ws);
	RB_INSERT(dirty_tree, &l->dirty, d);
	l->n_dirty++;
	return 0;
}

/* The file content of e (allocated, n lines), or NULL with ENOMEM. */
static char *render(const struct entry *e, size_t *len)
{
	char *buf = malloc(e->n * LINE_LEN);
	if (buf == NULL)
		return NULL;
	for (size_t i = 0; i < e->n; i++) {
		memcpy(buf + i * LINE_LEN, e->ids[i], UUID_LEN);
		buf[i * LINE_LEN + UUID_LEN] = '\n';
	}
	*len = e->n * LINE_LEN;
	return buf;
}

/* Turns the dirty set into a batch (allocated; the dirty set is emptied).
 * NULL with ENOMEM, leaving the dirty set as it was. */
static struct mc_ledger_job *take_batch(struct mc_ledger *l, size_t *n_out)
{
	struct mc_ledger_job *jobs = calloc(l->n_dirty, sizeof *jobs);
	if (jobs == NULL)
		return NULL;
	size_t n = 0;
	struct dirty *d;
	RB_FOREACH(d, dirty_tree, &l->dirty) {
		struct mc_ledger_job *j = &jobs[n++];
		strlcpy(j->ws, d->ws, sizeof j->ws);
		const struct entry *e = entry_for_name(l, d->ws);
		if (e != NULL && (j->data = render(e, &j->len)) == NULL) {
			mc_ledger_jobs_free(jobs, n);
			errno = ENOMEM;
			return NULL;
		}
	}
	while ((d = RB_MIN(dirty_tree, &l->dirty)) != NULL) {
		RB_REMOVE(dirty_tree, &l->dirty, d);
		free(d);
	}
	l->n_dirty = 0;
	*n_out = n;
	return jobs;
}

static void start_batch(struct mc_ledger *l, bool force)
{
	if (l->writer == NULL || l->n_dirty == 0 || mc_ledger_writer_busy(l->writer) ||
	    (!force && mc_now_ms() < l->retry_at))
		return;
	size_t n = 0;
	struct mc_ledger_job *jobs = take_batch(l, &n);
	if (jobs == NULL) {
		l->retry_at = mc_now_ms() + RETRY_AFTER_MS;
		return;
	}
	if (mc_ledger_writer_submit(l->writer, jobs, n) < 0)
		mc_ledger_jobs_free(jobs, n); /* cannot happen: not busy */
}

/* A finished batch: failed files are logged and become dirty again. */
static void finish_batch(struct mc_ledger *l, struct mc_ledger_job *jobs, size_t n)
{
	l->last_error = 0;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].failed_op == NULL)
			continue;
		errno = jobs[i].error;
		log_io(l, MC_LOG_ERROR, jobs[i].data ? "ledger write failed" : "ledger remove failed",
		       jobs[i].ws, jobs[i].failed_op);
		if (l->last_error == 0)
			l->last_error = jobs[i].error ? jobs[i].error : EIO;
		if (mark_dirty(l, jobs[i].ws, NULL) < 0)
			mc_log(MC_LOG_ERROR, "ledger: out of memory; a write is lost until the "
			       "next report of that workspace", "ws", jobs[i].ws, NULL);
	}
	if (l->last_error != 0)
		l->retry_at = mc_now_ms() + RETRY_AFTER_MS;
	mc_ledger_jobs_free(jobs, n);
}

static void collect(struct mc_ledger *l, int timeout_ms)
{
	struct mc_ledger_job *jobs;
	size_t n;
	if (l->writer != NULL && mc_ledger_writer_collect(l->writer, timeout_ms, &jobs, &n))
		finish_batch(l, jobs, n);
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
static int load_file(struct mc_ledger *l, struct ledger_tree *tree, size_t *count,
		     const char *name, size_t key_len, char *buf, const char **ids)
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
	strlcpy(e->ws, name, key_len + 1 < sizeof e->ws ? key_len + 1 : sizeof e->ws);
	e->n = n;
	RB_INSERT(ledger_tree, tree, e);
	if (count != NULL)
		(*count)++;
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
	if (has_suffix(name, TASKS_SUFFIX)) {
		char ws[MC_ID_MAX];
		size_t k = strlen(name) - strlen(TASKS_SUFFIX);
		strlcpy(ws, name, k + 1 < sizeof ws ? k + 1 : sizeof ws);
		if (k >= sizeof ws || !is_lower_uuid(ws)) {
			quarantine(l, name, "name is not a lowercase workspace UUID + .tasks");
			return 0;
		}
		return load_file(l, &l->tasks, NULL, name, k, buf, ids);
	}
	if (!is_lower_uuid(name)) {
		quarantine(l, name, "name is not a lowercase workspace UUID");
		return 0;
	}
	return load_file(l, &l->tree, &l->count, name, strlen(name), buf, ids);
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
	RB_INIT(&l->tasks);
	RB_INIT(&l->dirty);
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
	if ((l->writer = mc_ledger_writer_start(l->dirfd)) == NULL)
		return open_fail(l, err, err_size, "cannot start the writer thread", l->dir);
	return l;
}

void mc_ledger_free(struct mc_ledger *l)
{
	if (l == NULL)
		return;
	if (l->writer != NULL) {
		mc_ledger_sync(l, FREE_SYNC_MS);
		if (!mc_ledger_writer_stop(l->writer, FREE_SYNC_MS)) {
			/* The disk is stalled: the thread may still use the directory
			 * and its batch, so leave both to the exit that follows. */
			mc_log(MC_LOG_ERROR, "ledger: the disk did not finish writing; leaving it",
			       "path", l->dir, NULL);
			return;
		}
	}
	struct entry *e;
	while ((e = RB_MIN(ledger_tree, &l->tree)) != NULL) {
		RB_REMOVE(ledger_tree, &l->tree, e);
		entry_free(e);
	}
	while ((e = RB_MIN(ledger_tree, &l->tasks)) != NULL) {
		RB_REMOVE(ledger_tree, &l->tasks, e);
		entry_free(e);
	}
	struct dirty *d;
	while ((d = RB_MIN(dirty_tree, &l->dirty)) != NULL) {
		RB_REMOVE(dirty_tree, &l->dirty, d);
		free(d);
	}
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l);
}

int mc_ledger_fd(const struct mc_ledger *l)
{
	return l->writer != NULL ? mc_ledger_writer_fd(l->writer) : -1;
}

void mc_ledger_on_ready(struct mc_ledger *l)
{
	collect(l, 0);
	start_batch(l, false);
}

void mc_ledger_flush(struct mc_ledger *l)
{
	start_batch(l, false);
}

int mc_ledger_sync(struct mc_ledger *l, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	/* What is out first, then everything dirty, failures included: two
	 * batches at most. */
	collect(l, timeout_ms);
	start_batch(l, true);
	mc_ms_t left = until - mc_now_ms();
	collect(l, left > 0 ? (int)left : 0);
	if (l->writer != NULL && mc_ledger_writer_busy(l->writer)) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (l->last_error != 0 || l->n_dirty > 0) {
		errno = l->last_error ? l->last_error : EIO;
		return -1;
	}
	return 0;
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

/* ws in lowercase into out. */
static void lower_ws(const char *ws, char out[MC_ID_MAX])
{
	strlcpy(out, ws, MC_ID_MAX);
	for (char *c = out; *c; c++)
		*c = (char)tolower((unsigned char)*c);
}

/* The file name of ws's entry in tree: <ws> or <ws>.tasks. */
static void file_name(const struct mc_ledger *l, const struct ledger_tree *tree, const char *ws,
		      char out[MC_ID_MAX])
{
	lower_ws(ws, out);
	if (tree == &l->tasks)
		strlcat(out, TASKS_SUFFIX, MC_ID_MAX);
}

static int clear_in(struct mc_ledger *l, struct ledger_tree *tree, size_t *count, const char *ws)
{
	if (!mc_is_uuid(ws)) {
		errno = EINVAL;
		return -1;
	}
	struct entry *e = find_in(tree, ws);
	if (e == NULL)
		return 0; /* no file, or a pending write that now removes it */
	struct dirty *spare = malloc(sizeof *spare);
	if (spare == NULL) {
		errno = ENOMEM;
		return -1;
	}
	char name[MC_ID_MAX];
	file_name(l, tree, ws, name);
	RB_REMOVE(ledger_tree, tree, e);
	if (count != NULL)
		(*count)--;
	entry_free(e);
	return mark_dirty(l, name, spare);
}

/* 1: changed (the file is queued), 0: unchanged, -1 with errno. */
static int set_in(struct mc_ledger *l, struct ledger_tree *tree, size_t *count, const char *ws,
		  size_t n, const char *const *ids)
{
	if (!valid_set(ws, n, ids)) {
		errno = EINVAL;
		return -1;
	}
	if (n == 0) {
		bool had = find_in(tree, ws) != NULL;
		int rc = clear_in(l, tree, count, ws);
		return rc < 0 ? -1 : had;
	}
	struct entry *e = find_in(tree, ws);
	if (e != NULL && same_ids(e, n, ids))
		return 0; /* the file has it, or a write of it is pending */
	/* allocate everything first: ENOMEM must leave the ledger as it was */
	const char **v = ids_new(n, ids);
	struct entry *fresh = e == NULL ? calloc(1, sizeof *fresh) : NULL;
	struct dirty *spare = malloc(sizeof *spare);
	if (v == NULL || (e == NULL && fresh == NULL) || spare == NULL) {
		free(v);
		free(fresh);
		free(spare);
		errno = ENOMEM;
		return -1;
	}
	if (fresh != NULL) {
		lower_ws(ws, fresh->ws);
		RB_INSERT(ledger_tree, tree, fresh);
		if (count != NULL)
			(*count)++;
		e = fresh;
	}
	free(e->ids);
	e->ids = v;
	e->n = n;
	char name[MC_ID_MAX];
	file_name(l, tree, e->ws, name);
	return mark_dirty(l, name, spare) < 0 ? -1 : 1;
}

static void observe(struct mc_ledger *l, const char *ws)
{
	if (l->observer != NULL)
		l->observer(l->observer_arg, ws);
}

int mc_ledger_set(struct mc_ledger *l, const char *ws, size_t n, const char *const *ids)
{
	int rc = set_in(l, &l->tree, &l->count, ws, n, ids);
	if (rc > 0)
		observe(l, ws);
	return rc < 0 ? -1 : 0;
}

int mc_ledger_clear(struct mc_ledger *l, const char *ws)
{
	return mc_ledger_set(l, ws, 0, NULL);
}

void mc_ledger_set_observer(struct mc_ledger *l, mc_ledger_observer fn, void *arg)
{
	l->observer = fn;
	l->observer_arg = arg;
}

int mc_ledger_set_tasks(struct mc_ledger *l, const char *ws, size_t n, const char *const *ids)
{
	return set_in(l, &l->tasks, NULL, ws, n, ids) < 0 ? -1 : 0;
}

size_t mc_ledger_get_tasks(const struct mc_ledger *l, const char *ws, const char *const **ids)
{
	const struct entry *e = mc_is_uuid(ws) ? find_in(&l->tasks, ws) : NULL;
	if (ids != NULL)
		*ids = e != NULL ? e->ids : NULL;
	return e != NULL ? e->n : 0;
}

int mc_ledger_foreach_tasks(const struct mc_ledger *l, mc_ledger_cb cb, void *arg)
{
	struct entry *e;
	RB_FOREACH(e, ledger_tree, (struct ledger_tree *)&l->tasks) {
		int rc = cb(e->ws, e->n, e->ids, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
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
