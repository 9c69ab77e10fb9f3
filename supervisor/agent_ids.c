/* The agents' identity of each workspace (supervisor/agent_ids.h): the
 * slots file and the fallback decision. */
#include "supervisor/agent_ids.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/fdio.h"
#include "common/log.h"

#define IDS_FILE "agent-ids"
#define IDS_FILE_MAX (8L * 1024 * 1024)  /* 100000 slots take 4 MiB */
#define INDEX_MAX 99999999u              /* slots are never reused, but not that many */

struct slot {
	char ws[MC_ID_MAX];   /* lowercase */
	unsigned index;
};

struct mc_agent_ids {
	char path[MC_PATH_MAX];   /* "" : nothing persisted (multicad -t) */
	struct slot *v;           /* heap, sorted by ws */
	size_t n, cap;
	unsigned next;            /* the next free index: one past the highest ever */

	/* mc_agent_ids_configure */
	enum mc_agent_mode mode;
	char reason[160];         /* fallback: why */
	char user[MC_NAME_MAX];   /* agent_user, "" when it does not exist (uid mode) */
	uid_t user_uid;
	gid_t user_gid;           /* its primary group: a supplementary one; -1: none */
	char home[MC_PATH_MAX];
	unsigned uid_lo, uid_hi, gid_lo, gid_hi;
};

static int fail(char *err, size_t n, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t n, int e, const char *fmt, ...)
{
	if (err != NULL && n > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, n, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return -1;
}

static int cmp_slot(const void *a, const void *b)
{
	return strcmp(((const struct slot *)a)->ws, ((const struct slot *)b)->ws);
}

static struct slot *find(const struct mc_agent_ids *a, const char *ws)
{
	char key[MC_ID_MAX];
	strlcpy(key, ws, sizeof key);
	for (char *q = key; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	struct slot k;
	memcpy(k.ws, key, sizeof k.ws);
	return a->n ? bsearch(&k, a->v, a->n, sizeof *a->v, cmp_slot) : NULL;
}

/* Appends a slot, growing a->v (heap, freed by mc_agent_ids_free); unsorted:
 * the caller sorts. */
static int push(struct mc_agent_ids *a, const char *ws, unsigned index)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct slot *v = reallocarray(a->v, cap, sizeof *v);
		if (v == NULL)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	memset(&a->v[a->n], 0, sizeof a->v[a->n]);
	strlcpy(a->v[a->n].ws, ws, sizeof a->v[a->n].ws);
	a->v[a->n].index = index;
	a->n++;
	if (index >= a->next)
		a->next = index + 1;
	return 0;
}

/* Reads the file into buf (heap, NUL-terminated). NULL with errno
 * (ENOENT: there is none yet). */
static char *slurp(const char *path, char *err, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (e != ENOENT)
			fail(err, n, e, "%s: cannot open: %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > IDS_FILE_MAX) {
		close(fd);
		fail(err, n, EINVAL, "%s: not a regular file of at most %ld bytes", path, IDS_FILE_MAX);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t used = 0;
	while (buf != NULL && used < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + used, (size_t)st.st_size - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		used += (size_t)r;
	}
	close(fd);
	if (buf == NULL || used != (size_t)st.st_size) {
		free(buf);
		fail(err, n, buf == NULL ? ENOMEM : EIO, "%s: cannot read", path);
		return NULL;
	}
	buf[used] = '\0';
	return buf;
}

/* "<uuid> <index>" lines; anything else is a corrupt file (named, with the
 * line): guessing would hand a workspace another's group. */
static int parse_file(struct mc_agent_ids *a, char *buf, char *err, size_t n)
{
	unsigned line = 0;
	for (char *s = buf, *nl; *s != '\0'; s = nl + 1) {
		line++;
		nl = strchr(s, '\n');
		if (nl == NULL)
			return fail(err, n, EINVAL, "%s:%u: corrupt (the last line has no newline: "
				    "a torn write?)", a->path, line);
		*nl = '\0';
		char *sp = strchr(s, ' ');
		if (sp == NULL)
			return fail(err, n, EINVAL, "%s:%u: corrupt (expected \"<workspace-uuid> "
				    "<index>\")", a->path, line);
		*sp = '\0';
		const char *ix = sp + 1;
		char *end;
		errno = 0;
		unsigned long v = strtoul(ix, &end, 10);
		if (!mc_is_uuid(s) || ix[0] < '0' || ix[0] > '9' || *end != '\0' || errno != 0 ||
		    v > INDEX_MAX)
			return fail(err, n, EINVAL, "%s:%u: corrupt (expected \"<workspace-uuid> "
				    "<index>\")", a->path, line);
		for (char *q = s; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		if (push(a, s, (unsigned)v) < 0)
			return fail(err, n, ENOMEM, "%s: out of memory", a->path);
	}
	if (a->n > 1)
		qsort(a->v, a->n, sizeof *a->v, cmp_slot);
	for (size_t i = 1; i < a->n; i++)
		if (strcmp(a->v[i - 1].ws, a->v[i].ws) == 0)
			return fail(err, n, EINVAL, "%s: corrupt (workspace %s twice)", a->path,
				    a->v[i].ws);
	/* an index twice: two workspaces sharing a group */
	unsigned *ix = malloc((a->n ? a->n : 1) * sizeof *ix);
	if (ix == NULL)
		return fail(err, n, ENOMEM, "%s: out of memory", a->path);
	for (size_t i = 0; i < a->n; i++)
		ix[i] = a->v[i].index;
	int rc = 0;
	for (size_t i = 0; i < a->n && rc == 0; i++)
		for (size_t j = i + 1; j < a->n && rc == 0; j++)
			if (ix[i] == ix[j])
				rc = fail(err, n, EINVAL, "%s: corrupt (index %u given to %s and %s)",
					  a->path, ix[i], a->v[i].ws, a->v[j].ws);
	free(ix);
	return rc;
}

struct mc_agent_ids *mc_agent_ids_new(const char *state_dir, char *err, size_t err_size)
{
	struct mc_agent_ids *a = calloc(1, sizeof *a);
	if (a == NULL) {
		fail(err, err_size, ENOMEM, "out of memory");
		return NULL;
	}
	a->mode = MC_AGENT_MODE_DAEMON;
	strlcpy(a->reason, "not configured", sizeof a->reason);
	a->user_gid = (gid_t)-1;
	if (state_dir == NULL)
		return a;
	if ((size_t)snprintf(a->path, sizeof a->path, "%s/" IDS_FILE,
			     strcmp(state_dir, "/") == 0 ? "" : state_dir) >= sizeof a->path) {
		fail(err, err_size, ENAMETOOLONG, "%s/" IDS_FILE ": path too long", state_dir);
		free(a);
		return NULL;
	}
	char *buf = slurp(a->path, err, err_size);
	if (buf == NULL && errno == ENOENT)
		return a;
	int rc = buf == NULL ? -1 : parse_file(a, buf, err, err_size);
	int e = errno;
	free(buf);
	if (rc < 0) {
		mc_agent_ids_free(a);
		errno = e;
		return NULL;
	}
	return a;
}

void mc_agent_ids_free(struct mc_agent_ids *a)
{
	if (a == NULL)
		return;
	free(a->v);
	free(a);
}

static int fsync_dir_of(const char *path)
{
	char dir[MC_PATH_MAX];
	strlcpy(dir, path, sizeof dir);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* The whole file, rewritten: temp file, fsync, rename, dir fsync. Sorted
 * by index (the order slots were given). */
static int save(const struct mc_agent_ids *a, char *err, size_t n)
{
	if (a->path[0] == '\0')
		return 0;
	char tmp[MC_PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", a->path);
	size_t cap = a->n * (MC_ID_MAX + 12) + 1, used = 0;
	char *text = malloc(cap);
	if (text == NULL)
		return fail(err, n, ENOMEM, "%s: out of memory", a->path);
	for (size_t i = 0; i < a->n; i++)
		used += (size_t)snprintf(text + used, cap - used, "%s %u\n", a->v[i].ws, a->v[i].index);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc = fd < 0 ? -1 : 0;
	if (rc == 0 && (mc_write_all(fd, text, used) < 0 || fsync(fd) < 0))
		rc = -1;
	int e = errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	free(text);
	if (rc == 0 && rename(tmp, a->path) < 0) {
		rc = -1;
		e = errno;
	}
	if (rc < 0) {
		unlink(tmp);
		return fail(err, n, e, "%s: cannot write: %s", a->path, strerror(e));
	}
	if (fsync_dir_of(a->path) < 0) {
		e = errno;
		return fail(err, n, e, "%s: cannot sync its directory: %s", a->path, strerror(e));
	}
	return 0;
}

static void set_fallback(struct mc_agent_ids *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_fallback(struct mc_agent_ids *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->reason, sizeof a->reason, fmt, ap);
	va_end(ap);
	a->mode = MC_AGENT_MODE_DAEMON;
}

static bool in_range(unsigned long v, unsigned lo, unsigned hi)
{
	return hi != 0 && v >= lo && v <= hi;
}

int mc_agent_ids_configure(struct mc_agent_ids *a, const struct mc_config *cfg, char *err,
			   size_t err_size)
{
	bool uid_mode = cfg->agent_uid_hi != 0;
	const char *name = cfg->agent_user;
	/* the decision is built aside: a refused configuration keeps the old */
	struct mc_agent_ids next = *a;
	struct mc_agent_ids *b = &next;
	b->reason[0] = '\0';
	b->user[0] = '\0';
	b->home[0] = '\0';
	b->user_uid = (uid_t)-1;
	b->user_gid = (gid_t)-1;
	b->uid_lo = cfg->agent_uid_lo;
	b->uid_hi = cfg->agent_uid_hi;
	b->gid_lo = cfg->agent_gid_lo;
	b->gid_hi = cfg->agent_gid_hi;
	b->mode = uid_mode ? MC_AGENT_MODE_UID_RANGE : MC_AGENT_MODE_USER;

	if (name[0] == '\0' && uid_mode)
		return fail(err, err_size, EINVAL, "agent_user is empty (agents as the daemon's own "
			    "user) but agent_uid_range is set: remove one of the two");
	const struct passwd *pw = NULL;
	if (name[0] != '\0') {
		errno = 0;
		pw = getpwnam(name);
		if (pw == NULL && errno != 0 && errno != ENOENT && errno != ESRCH)
			return fail(err, err_size, errno, "agent_user %s: cannot look it up: %s", name,
				    strerror(errno));
		if (pw == NULL && cfg->agent_user_given)
			return fail(err, err_size, EINVAL, "agent_user %s: no such user (create it, "
				    "or leave agent_user out)", name);
		if (pw != NULL && pw->pw_uid == 0)
			return fail(err, err_size, EINVAL, "agent_user %s has uid 0: agents must not "
				    "run as root", name);
		if (pw != NULL && in_range(pw->pw_uid, b->uid_lo, b->uid_hi))
			return fail(err, err_size, EINVAL, "agent_user %s (uid %u) is inside "
				    "agent_uid_range %u-%u", name, (unsigned)pw->pw_uid, b->uid_lo,
				    b->uid_hi);
	}
	uid_t me = geteuid();
	gid_t mygid = getegid();
	if (uid_mode && (in_range(me, b->uid_lo, b->uid_hi) || in_range(mygid, b->uid_lo, b->uid_hi)))
		return fail(err, err_size, EINVAL, "the daemon's own uid %u / gid %u is inside "
			    "agent_uid_range %u-%u", (unsigned)me, (unsigned)mygid, b->uid_lo, b->uid_hi);
	if (!uid_mode && in_range(mygid, b->gid_lo, b->gid_hi))
		return fail(err, err_size, EINVAL, "the daemon's own gid %u is inside "
			    "agent_gid_range %u-%u", (unsigned)mygid, b->gid_lo, b->gid_hi);

	if (pw != NULL) {
		strlcpy(b->user, name, sizeof b->user);
		b->user_uid = pw->pw_uid;
		/* its group is shared by every agent: never root's or the daemon's */
		if (pw->pw_gid != 0 && pw->pw_gid != mygid)
			b->user_gid = pw->pw_gid;
		if (!uid_mode && pw->pw_dir != NULL)
			strlcpy(b->home, pw->pw_dir, sizeof b->home);
	}
	if (name[0] == '\0')
		set_fallback(b, "agent_user is empty");
	else if (!uid_mode && pw == NULL)
		set_fallback(b, "no user %s", name);
	else if (!uid_mode && pw->pw_uid == me)
		set_fallback(b, "agent_user %s is the daemon's own user", name);
	else if (!mc_identity_can_switch())
		set_fallback(b, "the daemon lacks CAP_SETUID and CAP_SETGID (uid %u)", (unsigned)me);
	if (b->mode == MC_AGENT_MODE_DAEMON)
		b->home[0] = '\0';
	*a = next;
	return 0;
}

/* The identity of slot index (within the range: checked by the caller). */
static void identity_of(const struct mc_agent_ids *a, unsigned index, struct mc_identity *out)
{
	bool uid_mode = a->mode == MC_AGENT_MODE_UID_RANGE;
	out->sw = true;
	out->uid = uid_mode ? (uid_t)(a->uid_lo + index) : a->user_uid;
	out->gid = (gid_t)((uid_mode ? a->uid_lo : a->gid_lo) + index);
	out->extra_gid = a->user_gid;
}

int mc_agent_ids_get(struct mc_agent_ids *a, const char *ws, struct mc_identity *out,
		     char *err, size_t err_size)
{
	memset(out, 0, sizeof *out);
	out->sw = false;
	out->uid = (uid_t)-1;
	out->gid = (gid_t)-1;
	out->extra_gid = (gid_t)-1;
	if (a->mode == MC_AGENT_MODE_DAEMON)
		return 0;
	if (!mc_is_uuid(ws))
		return fail(err, err_size, EINVAL, "\"%s\" is not a workspace id", ws);
	bool uid_mode = a->mode == MC_AGENT_MODE_UID_RANGE;
	unsigned lo = uid_mode ? a->uid_lo : a->gid_lo, hi = uid_mode ? a->uid_hi : a->gid_hi;
	const char *key = uid_mode ? "agent_uid_range" : "agent_gid_range";
	struct slot *s = find(a, ws);
	unsigned index;
	if (s != NULL) {
		index = s->index;
	} else {
		index = a->next;
		if (index > INDEX_MAX || (unsigned long)lo + index > hi)
			return fail(err, err_size, ENOSPC, "workspace %s: %s %u-%u is exhausted (%u "
				    "slots given, never reused): widen it", ws, key, lo, hi, index);
		if (push(a, ws, index) < 0)
			return fail(err, err_size, ENOMEM, "out of memory");
		qsort(a->v, a->n, sizeof *a->v, cmp_slot);
		if (save(a, err, err_size) < 0) {
			int e = errno;
			/* not given: the next try may save it */
			s = find(a, ws);
			size_t at = (size_t)(s - a->v);
			memmove(&a->v[at], &a->v[at + 1], (a->n - at - 1) * sizeof *a->v);
			a->n--;
			a->next = index;
			errno = e;
			return -1;
		}
	}
	if ((unsigned long)lo + index > hi)
		return fail(err, err_size, ENOSPC, "workspace %s: its slot %u is past %s %u-%u "
			    "(narrowed since?): widen it", ws, index, key, lo, hi);
	identity_of(a, index, out);
	return 0;
}

int mc_agent_ids_peek(const struct mc_agent_ids *a, const char *ws, struct mc_identity *out)
{
	memset(out, 0, sizeof *out);
	out->uid = (uid_t)-1;
	out->gid = out->extra_gid = (gid_t)-1;
	if (a->mode == MC_AGENT_MODE_DAEMON)
		return 0;
	const struct slot *s = find(a, ws);
	bool uid_mode = a->mode == MC_AGENT_MODE_UID_RANGE;
	unsigned lo = uid_mode ? a->uid_lo : a->gid_lo, hi = uid_mode ? a->uid_hi : a->gid_hi;
	if (s == NULL || (unsigned long)lo + s->index > hi) {
		errno = ENOENT;
		return -1;
	}
	identity_of(a, s->index, out);
	return 0;
}

const char *mc_agent_ids_fallback_reason(const struct mc_agent_ids *a)
{
	return a->mode == MC_AGENT_MODE_DAEMON ? a->reason : NULL;
}

const char *mc_agent_ids_home(const struct mc_agent_ids *a)
{
	return a->home;
}

void mc_agent_ids_info(const struct mc_agent_ids *a, struct mc_agent_ids_info *out)
{
	memset(out, 0, sizeof *out);
	out->mode = a->mode;
	out->user = a->mode != MC_AGENT_MODE_DAEMON && a->user[0] != '\0' ? a->user : NULL;
	out->uid = a->mode == MC_AGENT_MODE_USER ? (long)a->user_uid
		   : a->mode == MC_AGENT_MODE_DAEMON ? (long)geteuid() : -1;
	out->uid_lo = a->mode == MC_AGENT_MODE_UID_RANGE ? a->uid_lo : 0;
	out->uid_hi = a->mode == MC_AGENT_MODE_UID_RANGE ? a->uid_hi : 0;
	out->gid_lo = a->mode == MC_AGENT_MODE_USER ? a->gid_lo : 0;
	out->gid_hi = a->mode == MC_AGENT_MODE_USER ? a->gid_hi : 0;
	out->reason = mc_agent_ids_fallback_reason(a);
}

const char *mc_agent_mode_name(enum mc_agent_mode m)
{
	return m == MC_AGENT_MODE_USER ? "user" : m == MC_AGENT_MODE_UID_RANGE ? "uid_range" : "daemon";
}
