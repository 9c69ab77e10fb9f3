/* A dead worker's outbox, delivered by its cleanup helper before anything
 * else: a report the worker wrote but could not send (or whose 2xx it
 * never saw) reaches the server before recover-orphans could fail that
 * task as an orphan. Same request as the worker's: the stored body. */
#include "supervisor/outbox_deliver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/api.h"
#include "common/api_task.h"
#include "common/log.h"
#include "ipc/messages.h"

#define REPORT_MAX (8u * 1024u * 1024u)  /* a report file larger than this is corrupt */

static bool is_report_name(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && strcmp(name + n - 5, ".json") == 0 && name[0] != '.';
}

static int dir_path(char *out, size_t n, const char *state_dir, const char *ws)
{
	int r = snprintf(out, n, "%s/outbox/%s", state_dir, ws);
	return r < 0 || (size_t)r >= n ? -1 : 0;
}

size_t mc_outbox_pending(const char *state_dir, const char *ws, size_t max)
{
	char path[4200];
	if (dir_path(path, sizeof path, state_dir, ws) < 0)
		return 0;
	DIR *d = opendir(path);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while (n < max && (de = readdir(d)) != NULL)
		if (is_report_name(de->d_name))
			n++;
	closedir(d);
	return n;
}

struct entry {
	char name[256];
	double created;   /* created_at if the file says, else its mtime */
};

static int by_age(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Reads a whole small file (malloc'd, NUL-terminated) or NULL. */
static char *slurp(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > REPORT_MAX) {
		close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t off = 0;
	while (buf != NULL && off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	if (buf != NULL)
		buf[off] = '\0';
	*len = off;
	return buf;
}

static int op_of(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "complete") == 0)
		return MC_TASK_OP_COMPLETE;
	if (strcmp(s, "fail") == 0)
		return MC_TASK_OP_FAIL;
	if (strcmp(s, "cancel-ack") == 0 || strcmp(s, "cancel_ack") == 0)
		return MC_TASK_OP_CANCEL_ACK;
	return -1;
}

static void set_aside(int dirfd, const char *name, const char *why)
{
	char bad[300];
	snprintf(bad, sizeof bad, "%s.bad", name);
	mc_log(MC_LOG_ERROR, "corrupt outbox report set aside", "file", name, "error", why, NULL);
	if (renameat(dirfd, name, dirfd, bad) < 0)
		unlinkat(dirfd, name, 0);
}

enum outcome { OUT_DELIVERED, OUT_REFUSED, OUT_KEPT, OUT_BAD };

/* One report: the POST, and what its answer means for the file. */
static enum outcome deliver_one(struct mc_api *api, int dirfd, const char *name)
{
	size_t len = 0;
	char *text = slurp(dirfd, name, &len);
	if (text == NULL)
		return OUT_KEPT; /* vanished or unreadable now: a retry sees */
	cJSON *j = cJSON_ParseWithLength(text, len);
	free(text);
	const char *tid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "task_id"));
	int op = op_of(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "op")));
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "body");
	char *body = cJSON_IsString(b) ? strdup(b->valuestring)
		     : cJSON_IsObject(b) ? cJSON_PrintUnformatted(b) : NULL;
	if (!cJSON_IsObject(j) || tid == NULL || !mc_is_uuid(tid) || op < 0 || body == NULL) {
		free(body);
		cJSON_Delete(j);
		set_aside(dirfd, name, "not an outbox report {op, task_id, body}");
		return OUT_BAD;
	}
	char id[40];
	strlcpy(id, tid, sizeof id);
	cJSON_Delete(j);
	struct mc_call *call = mc_call_task_op(api, (enum mc_task_op)op, id, body);
	free(body);
	if (call == NULL)
		return OUT_KEPT;
	mc_call_perform(call);
	enum outcome o;
	const struct mc_api_error *e = mc_call_error(call);
	if (mc_call_ok(call)) {
		o = OUT_DELIVERED;
		mc_log(MC_LOG_INFO, "delivered a dead worker's task report", "task", id, "op",
		       mc_task_op_name((enum mc_task_op)op), NULL);
	} else if (!mc_api_error_is_transient(e) && e->status != 401 && e->status != 403) {
		o = OUT_REFUSED;
		mc_log(MC_LOG_WARN, "the server refused a dead worker's task report; dropped",
		       "task", id, "op", mc_task_op_name((enum mc_task_op)op), "error", e->message,
		       NULL);
	} else {
		o = OUT_KEPT;
		mc_log(MC_LOG_WARN, "task report not delivered; kept for the retry", "task", id,
		       "error", e->message, NULL);
	}
	mc_call_free(call);
	if ((o == OUT_DELIVERED || o == OUT_REFUSED) && unlinkat(dirfd, name, 0) < 0 &&
	    errno != ENOENT)
		mc_log(MC_LOG_ERROR, "cannot remove a delivered outbox report", "file", name,
		       "error", strerror(errno), NULL);
	return o;
}

/* The reports of dir, oldest first (at most max). *n entries, malloc'd. */
static struct entry *list_reports(DIR *d, size_t max, size_t *n)
{
	struct entry *v = calloc(max, sizeof *v);
	*n = 0;
	if (v == NULL)
		return NULL;
	struct dirent *de;
	while (*n < max && (de = readdir(d)) != NULL) {
		if (!is_report_name(de->d_name) || strlen(de->d_name) >= sizeof v[0].name)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		strlcpy(v[*n].name, de->d_name, sizeof v[*n].name);
		v[*n].created = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
		(*n)++;
	}
	qsort(v, *n, sizeof *v, by_age);
	return v;
}

void mc_outbox_deliver(struct mc_api *api, const char *state_dir, const char *ws,
		       struct mc_outbox_result *res)
{
	memset(res, 0, sizeof *res);
	char path[4200];
	if (dir_path(path, sizeof path, state_dir, ws) < 0)
		return;
	DIR *d = opendir(path);
	if (d == NULL)
		return; /* no outbox: nothing was left */
	size_t n;
	struct entry *v = list_reports(d, MC_OUTBOX_DELIVER_MAX, &n);
	for (size_t i = 0; v != NULL && i < n; i++) {
		switch (deliver_one(api, dirfd(d), v[i].name)) {
		case OUT_DELIVERED: res->delivered++; break;
		case OUT_REFUSED: res->refused++; break;
		case OUT_KEPT: res->kept++; break;
		case OUT_BAD: res->bad++; break;
		}
	}
	/* More than one run takes: the rest counts as kept (the retry). */
	if (v != NULL && n == MC_OUTBOX_DELIVER_MAX)
		res->kept += mc_outbox_pending(state_dir, ws, 1);
	if (v == NULL)
		res->kept++;
	free(v);
	closedir(d);
}

void mc_outbox_foreach_ws(const char *state_dir, void (*cb)(const char *ws, void *arg),
			  void *arg)
{
	char path[4200];
	if (snprintf(path, sizeof path, "%s/outbox", state_dir) >= (int)sizeof path)
		return;
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!mc_is_uuid(de->d_name))
			continue;
		if (mc_outbox_pending(state_dir, de->d_name, 1) > 0)
			cb(de->d_name, arg);
	}
	closedir(d);
}
