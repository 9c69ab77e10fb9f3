/* Terminal reports on disk, and the bodies of the terminal calls. */
#include "worker/outbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/log.h"
#include "ipc/messages.h"
#include "worker/safefs.h"
#include "worker/textbuf.h"

static const char *const op_names[] = {"complete", "fail", "cancel-ack"};

const char *mc_outbox_op_name(enum mc_outbox_op op)
{
	return (unsigned)op < 3 ? op_names[op] : "?";
}

int mc_outbox_op_parse(const char *s, enum mc_outbox_op *op)
{
	for (unsigned i = 0; i < 3; i++)
		if (s && strcmp(s, op_names[i]) == 0) {
			*op = (enum mc_outbox_op)i;
			return 0;
		}
	errno = EINVAL;
	return -1;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens <state_dir>/outbox/<ws> (created 0700 with create); the outbox
 * dir's fd goes to *parent when parent is non-NULL. */
static int open_box(const char *state_dir, const char *ws, bool create, int *parent)
{
	if (!mc_is_uuid(ws)) {
		errno = EINVAL;
		return -1;
	}
	int sfd = create ? mc_fs_open_root(state_dir, 0700)
			 : open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return -1;
	int ofd = mc_fs_subdir(sfd, "outbox", create, 0700, false);
	int e = errno;
	close(sfd);
	if (ofd < 0) {
		errno = e;
		return -1;
	}
	int wfd = mc_fs_subdir(ofd, ws, create, 0700, false);
	e = errno;
	if (parent && wfd >= 0)
		*parent = ofd;
	else
		close(ofd);
	errno = e;
	return wfd;
}

static int file_name(char *dst, size_t size, const char *task_id)
{
	if (!mc_is_uuid(task_id)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(dst, size, "%s.json", task_id);
	return 0;
}

static char *entry_json(const struct mc_outbox_entry *e)
{
	cJSON *body = e->body ? cJSON_Parse(e->body) : NULL;
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		errno = EINVAL;
		return NULL;
	}
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "op", mc_outbox_op_name(e->op)) &&
		  cJSON_AddStringToObject(o, "task_id", e->task_id) &&
		  cJSON_AddStringToObject(o, "runtime_id", e->runtime_id) &&
		  cJSON_AddItemToObject(o, "body", body);
	if (!ok)
		cJSON_Delete(body);
	ok = ok && cJSON_AddNumberToObject(o, "attempts", e->attempts) &&
	     cJSON_AddNumberToObject(o, "created_at",
				     (double)(e->created_at ? e->created_at : wall_ms()));
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s && ok)
		errno = ENOMEM;
	return s;
}

int mc_outbox_write(const char *state_dir, const char *workspace_id,
		    const struct mc_outbox_entry *e, char *err, size_t err_size)
{
	char name[64];
	if (file_name(name, sizeof name, e->task_id) < 0) {
		snprintf(err, err_size, "outbox: task id is not a UUID");
		return -1;
	}
	char *s = entry_json(e);
	if (!s) {
		snprintf(err, err_size, "outbox: %s", errno == EINVAL ? "body is not a JSON object"
								  : "out of memory");
		return -1;
	}
	int ofd = -1;
	int wfd = open_box(state_dir, workspace_id, true, &ofd);
	int rc = wfd < 0 ? -1 : mc_fs_write_at(wfd, name, s, strlen(s), 0600, true);
	/* the workspace dir may be new: make its entry durable too */
	if (rc == 0 && fsync(ofd) < 0)
		rc = -1;
	int er = errno;
	if (wfd >= 0)
		close(wfd);
	if (ofd >= 0)
		close(ofd);
	free(s);
	if (rc < 0)
		snprintf(err, err_size, "outbox: write %s: %s", name, strerror(er));
	errno = er;
	return rc;
}

int mc_outbox_put(const char *state_dir, const char *workspace_id, const char *task_id,
		  const char *runtime_id, enum mc_outbox_op op, const char *body)
{
	struct mc_outbox_entry e = {.op = op, .body = (char *)body, .created_at = wall_ms()};
	char err[160];
	if (strlcpy(e.task_id, task_id, sizeof e.task_id) >= sizeof e.task_id ||
	    strlcpy(e.runtime_id, runtime_id ? runtime_id : "", sizeof e.runtime_id) >=
		    sizeof e.runtime_id) {
		errno = EINVAL;
		return -1;
	}
	if (mc_outbox_write(state_dir, workspace_id, &e, err, sizeof err) < 0) {
		int er = errno;
		mc_log(MC_LOG_ERROR, "outbox write failed", "task", e.task_id, "error", err, NULL);
		errno = er;
		return -1;
	}
	return 0;
}

void mc_outbox_entry_clear(struct mc_outbox_entry *e)
{
	free(e->body);
	memset(e, 0, sizeof *e);
}

/* Decodes one file's text into e; -1 (EBADMSG) with a reason. */
static int decode(const char *text, size_t len, const char *want_id, struct mc_outbox_entry *e,
		  char *err, size_t err_size)
{
	memset(e, 0, sizeof *e);
	cJSON *o = cJSON_ParseWithLength(text, len);
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
	const cJSON *tid = cJSON_GetObjectItemCaseSensitive(o, "task_id");
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "runtime_id");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(o, "body");
	const cJSON *att = cJSON_GetObjectItemCaseSensitive(o, "attempts");
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "created_at");
	const char *why = NULL;
	if (!cJSON_IsObject(o))
		why = "not a JSON object";
	else if (!cJSON_IsString(op) || mc_outbox_op_parse(op->valuestring, &e->op) < 0)
		why = "bad op";
	else if (!cJSON_IsString(tid) || !mc_is_uuid(tid->valuestring) ||
		 (want_id && strcmp(tid->valuestring, want_id) != 0))
		why = "bad task_id";
	else if (!cJSON_IsString(rid) || strlen(rid->valuestring) >= sizeof e->runtime_id)
		why = "bad runtime_id";
	else if (!cJSON_IsObject(body))
		why = "body is not an object";
	else if (!cJSON_IsNumber(att) || !(att->valuedouble >= 0) || !cJSON_IsNumber(at) ||
		 !(at->valuedouble >= 0 && at->valuedouble < 9e15))
		why = "bad attempts or created_at"; /* in range before the casts below */
	if (!why) {
		strlcpy(e->task_id, tid->valuestring, sizeof e->task_id);
		strlcpy(e->runtime_id, rid->valuestring, sizeof e->runtime_id);
		e->attempts = att->valuedouble > 1e6 ? 1000000 : (int)att->valuedouble;
		e->created_at = (int64_t)at->valuedouble;
		e->body = cJSON_PrintUnformatted(body);
		if (!e->body)
			why = "out of memory";
	}
	cJSON_Delete(o);
	if (why) {
		snprintf(err, err_size, "outbox entry: %s", why);
		mc_outbox_entry_clear(e);
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

static int read_at(int wfd, const char *name, const char *want_id, struct mc_outbox_entry *e,
		   char *err, size_t err_size)
{
	size_t len;
	char *s = mc_fs_read_at(wfd, name, MC_OUTBOX_FILE_MAX, &len);
	if (!s) {
		int er = errno;
		snprintf(err, err_size, "outbox: read %s: %s", name, strerror(er));
		errno = er == EFBIG || er == EINVAL || er == ELOOP ? EBADMSG : er;
		return -1;
	}
	int rc = decode(s, len, want_id, e, err, err_size);
	free(s);
	return rc;
}

int mc_outbox_read(const char *state_dir, const char *workspace_id, const char *task_id,
		   struct mc_outbox_entry *e, char *err, size_t err_size)
{
	char name[64];
	memset(e, 0, sizeof *e);
	if (file_name(name, sizeof name, task_id) < 0) {
		snprintf(err, err_size, "outbox: task id is not a UUID");
		return -1;
	}
	int wfd = open_box(state_dir, workspace_id, false, NULL);
	if (wfd < 0) {
		snprintf(err, err_size, "outbox: %s", strerror(errno));
		return -1;
	}
	int rc = read_at(wfd, name, task_id, e, err, err_size);
	int er = errno;
	close(wfd);
	errno = er;
	return rc;
}

int mc_outbox_remove(const char *state_dir, const char *workspace_id, const char *task_id)
{
	char name[64];
	if (file_name(name, sizeof name, task_id) < 0)
		return -1;
	int wfd = open_box(state_dir, workspace_id, false, NULL);
	if (wfd < 0)
		return errno == ENOENT ? 0 : -1;
	int rc = 0;
	if (unlinkat(wfd, name, 0) < 0)
		rc = errno == ENOENT ? 0 : -1;
	else if (fsync(wfd) < 0)
		rc = -1;
	int er = errno;
	close(wfd);
	errno = er;
	return rc;
}

void mc_outbox_list_clear(struct mc_outbox_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		mc_outbox_entry_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int by_age(const void *a, const void *b)
{
	const struct mc_outbox_entry *x = a, *y = b;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return strcmp(x->task_id, y->task_id);
}

/* One directory entry: a leftover .tmp removed, a corrupt file set aside,
 * a good one appended to out. */
static int list_one(int wfd, const char *name, struct mc_outbox_list *out, size_t *cap)
{
	if (ends_with(name, ".tmp")) {
		unlinkat(wfd, name, 0);   /* an interrupted write: its rename never happened */
		return 0;
	}
	if (!ends_with(name, ".json"))
		return 0;
	char id[64];
	strlcpy(id, name, sizeof id);
	id[strlen(id) - 5] = '\0';
	struct mc_outbox_entry e;
	char err[160];
	if (read_at(wfd, name, id, &e, err, sizeof err) < 0) {
		if (errno != EBADMSG)
			return 0;       /* vanished or unreadable now: try again next time */
		char bad[80];
		snprintf(bad, sizeof bad, "%s.bad", name);
		renameat(wfd, name, wfd, bad);
		mc_log(MC_LOG_ERROR, "outbox: corrupt report set aside", "file", bad, "error", err,
		       NULL);
		return 0;
	}
	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct mc_outbox_entry *v = realloc(out->v, ncap * sizeof *v);
		if (!v) {
			mc_outbox_entry_clear(&e);
			return -1;
		}
		out->v = v;
		*cap = ncap;
	}
	out->v[out->n++] = e;
	return 0;
}

int mc_outbox_list(const char *state_dir, const char *workspace_id, struct mc_outbox_list *out)
{
	out->n = 0;
	out->v = NULL;
	int wfd = open_box(state_dir, workspace_id, false, NULL);
	if (wfd < 0)
		return errno == ENOENT ? 0 : -1;
	DIR *d = mc_fs_opendir(wfd);
	if (!d) {
		close(wfd);
		return -1;
	}
	size_t cap = 0;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && out->n < MC_OUTBOX_LIST_MAX && (de = readdir(d)))
		if (de->d_name[0] != '.')
			rc = list_one(wfd, de->d_name, out, &cap);
	closedir(d);
	close(wfd);
	if (rc < 0) {
		mc_outbox_list_clear(out);
		errno = ENOMEM;
		return -1;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, by_age);
	return 0;
}

int mc_outbox_foreach(const char *state_dir, const char *workspace_id,
		      int (*fn)(const struct mc_outbox_entry *e, void *arg), void *arg)
{
	struct mc_outbox_list l;
	if (mc_outbox_list(state_dir, workspace_id, &l) < 0)
		return -1;
	for (size_t i = 0; i < l.n; i++)
		if (fn(&l.v[i], arg) != 0)
			break;
	mc_outbox_list_clear(&l);
	return 0;
}

/* ---- bodies ---- */

static bool add_str(cJSON *o, const char *key, const char *s, size_t n, bool always)
{
	if (!s || (!always && n == 0)) {
		if (!always)
			return true;
		s = "";
		n = 0;
	}
	char *clean = mc_text_sanitize(s, n, NULL);
	bool ok = clean && cJSON_AddStringToObject(o, key, clean);
	free(clean);
	return ok;
}

static bool add_opt(cJSON *o, const char *key, const char *s)
{
	return add_str(o, key, s, s ? strlen(s) : 0, false);
}

static bool add_extra(cJSON *o, const struct mc_outbox_extra *x)
{
	if (!x)
		return true;
	return add_opt(o, "branch_name", x->branch_name) && add_opt(o, "session_id", x->session_id) &&
	       add_opt(o, "work_dir", x->work_dir) &&
	       add_opt(o, "durable_work_dir", x->durable_work_dir) &&
	       (!x->session_rollout_missing ||
		cJSON_AddTrueToObject(o, "session_rollout_missing")) &&
	       add_opt(o, "retired_session_id", x->retired_session_id);
}

static char *finish(cJSON *o, bool ok)
{
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s)
		errno = ENOMEM;
	return s;
}

char *mc_outbox_complete_body(const char *output, size_t len, const struct mc_outbox_extra *x)
{
	cJSON *o = cJSON_CreateObject();
	size_t clen = 0;
	char *clean = mc_text_sanitize(output ? output : "", output ? len : 0, &clen);
	bool ok = o && clean;
	if (ok) {
		clean[mc_utf8_cut(clean, clen, MC_OUTBOX_OUTPUT_MAX)] = '\0';
		ok = cJSON_AddStringToObject(o, "output", clean) && add_extra(o, x);
	}
	free(clean);
	return finish(o, ok);
}

char *mc_outbox_fail_body(const char *error, const char *failure_reason,
			  const struct mc_outbox_extra *x)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && add_str(o, "error", error, error ? strlen(error) : 0, true) &&
		  add_opt(o, "failure_reason", failure_reason) && add_extra(o, x);
	return finish(o, ok);
}

char *mc_outbox_cancel_ack_body(const char *branch_name, const char *durable_work_dir,
				const char *error_message, const char *failure_reason)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && add_opt(o, "branch_name", branch_name) &&
		  add_opt(o, "durable_work_dir", durable_work_dir) &&
		  add_opt(o, "error_message", error_message) &&
		  add_opt(o, "failure_reason", failure_reason);
	return finish(o, ok);
}
