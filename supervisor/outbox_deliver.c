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
#include "worker/outbox.h"

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

static enum mc_task_op task_op(enum mc_outbox_op op)
{
	return op == MC_OUTBOX_COMPLETE ? MC_TASK_OP_COMPLETE :
	       op == MC_OUTBOX_FAIL ? MC_TASK_OP_FAIL : MC_TASK_OP_CANCEL_ACK;
}

enum outcome { OUT_DELIVERED, OUT_REFUSED, OUT_KEPT };

/* One report: the POST of its stored body, and what the answer means for
 * the file (removed after a 2xx or a permanent refusal). */
static enum outcome deliver_one(struct mc_api *api, const char *state_dir, const char *ws,
				const struct mc_outbox_entry *e)
{
	enum mc_task_op op = task_op(e->op);
	struct mc_call *call = mc_call_task_op(api, op, e->task_id, e->body);
	if (call == NULL)
		return OUT_KEPT;
	mc_call_perform(call);
	enum outcome o;
	const struct mc_api_error *err = mc_call_error(call);
	if (mc_call_ok(call)) {
		o = OUT_DELIVERED;
		mc_log(MC_LOG_INFO, "delivered a dead worker's task report", "task", e->task_id,
		       "op", mc_task_op_name(op), NULL);
	} else if (!mc_api_error_is_transient(err) && err->status != 401 && err->status != 403) {
		o = OUT_REFUSED;
		mc_log(MC_LOG_WARN, "the server refused a dead worker's task report; dropped",
		       "task", e->task_id, "op", mc_task_op_name(op), "error", err->message, NULL);
	} else {
		o = OUT_KEPT;
		mc_log(MC_LOG_WARN, "task report not delivered; kept for the retry",
		       "task", e->task_id, "error", err->message, NULL);
	}
	mc_call_free(call);
	if ((o == OUT_DELIVERED || o == OUT_REFUSED) &&
	    mc_outbox_remove(state_dir, ws, e->task_id) < 0)
		mc_log(MC_LOG_ERROR, "cannot remove a delivered outbox report", "task", e->task_id,
		       "error", strerror(errno), NULL);
	return o;
}

void mc_outbox_deliver(struct mc_api *api, const char *state_dir, const char *ws,
		       struct mc_outbox_result *res)
{
	memset(res, 0, sizeof *res);
	struct mc_outbox_list l = { 0 };
	/* Oldest first; corrupt files are set aside (.bad) and logged there. */
	if (mc_outbox_list(state_dir, ws, &l) < 0) {
		if (errno != ENOENT)
			res->kept++;
		return;
	}
	size_t n = l.n < MC_OUTBOX_DELIVER_MAX ? l.n : MC_OUTBOX_DELIVER_MAX;
	for (size_t i = 0; i < n; i++) {
		switch (deliver_one(api, state_dir, ws, &l.v[i])) {
		case OUT_DELIVERED: res->delivered++; break;
		case OUT_REFUSED: res->refused++; break;
		case OUT_KEPT: res->kept++; break;
		}
	}
	res->kept += l.n - n; /* more than one run takes: the retry */
	mc_outbox_list_clear(&l);
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
