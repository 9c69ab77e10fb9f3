/* The executor's calls besides the terminal one: the state's own call
 * (start, final status), the cancel poll, message batches, and the
 * fire-and-forget progress, session and usage calls. All go through the
 * executor's own api, one at a time on its own keep-alive connection, so
 * a task's traffic never delays the worker's heartbeats behind it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "worker/msgbatch.h"
#include "worker/task_int.h"
#include "worker/worker_int.h"

static void op_done(struct mc_call *c, void *arg)
{
	struct mc_xtask *x = arg;
	if (c != x->op_call) {
		mc_call_free(c);
		return;
	}
	mc_xt_event(x, XE_CALL_DONE);
}

int mc_xt_start_call(struct mc_xtask *x, struct mc_call *c, void (*done)(struct mc_call *, void *))
{
	if (c == NULL)
		return -1;
	if (done == NULL) {
		x->op_call = c;
		done = op_done;
	}
	mc_call_set_done(c, done, x);
	/* The task's own lane: a call held at the server delays this task's
	 * next calls only, never another task's. */
	mc_call_set_lane(c, &x->lane);
	if (mc_call_enqueue(c, x->w->multi) < 0) {
		if (x->op_call == c)
			x->op_call = NULL;
		return -1;
	}
	return 0;
}

/* ---- fire and forget ---- */

static void aux_done(struct mc_call *c, void *arg)
{
	struct mc_xtask *x = arg;
	for (size_t i = 0; i < sizeof x->aux / sizeof x->aux[0]; i++)
		if (x->aux[i] == c)
			x->aux[i] = NULL;
	if (!mc_call_ok(c))
		mc_log(MC_LOG_DEBUG, "task call failed (not retried)", "task", x->t.id,
		       "error", mc_call_error(c)->message, NULL);
	mc_call_free(c);
}

void mc_xt_send_aux(struct mc_xtask *x, enum mc_task_op op, const char *body)
{
	size_t slot = sizeof x->aux / sizeof x->aux[0];
	for (size_t i = 0; i < sizeof x->aux / sizeof x->aux[0]; i++)
		if (x->aux[i] == NULL) {
			slot = i;
			break;
		}
	if (slot == sizeof x->aux / sizeof x->aux[0]) {
		mc_log(MC_LOG_DEBUG, "task call dropped: too many in flight", "task", x->t.id,
		       "op", mc_task_op_name(op), NULL);
		return;
	}
	struct mc_call *c = mc_call_task_op(x->w->exec.api, op, x->t.id, body);
	if (c == NULL)
		return;
	mc_call_set_timeout(c, MC_TASK_SMALL_CALL_MS);
	x->aux[slot] = c;
	if (mc_xt_start_call(x, c, aux_done) < 0) {
		x->aux[slot] = NULL;
		mc_call_free(c);
	}
}

/* ---- the cancel poll (step 15) ---- */

static void status_done(struct mc_call *c, void *arg)
{
	struct mc_xtask *x = arg;
	if (c != x->status_call) {
		mc_call_free(c);
		return;
	}
	x->status_call = NULL;
	const char *s = mc_call_task_status_value(c);
	/* Only a terminal status or a real "task not found" interrupts:
	 * transport errors and 5xx never do (fix ae985ae2a3). */
	bool ended = mc_call_task_not_found(c) || (s != NULL && mc_task_status_terminal(s));
	if (ended) {
		mc_log(MC_LOG_INFO, "the server ended the task: stopping it", "task", x->t.id,
		       "status", s != NULL ? s : "not found", NULL);
		x->server_ended = true;
	}
	mc_call_free(c);
	if (ended)
		mc_xt_event(x, XE_CANCEL);
}

void mc_xt_poll_status(struct mc_xtask *x, mc_ms_t now)
{
	if (x->server_ended || x->status_call != NULL || now < x->next_status_at)
		return;
	if (x->st != XT_STARTING && x->st != XT_RUNNING && x->st != XT_STOPPING_AGENT)
		return;
	x->next_status_at = now + MC_TASK_CANCEL_POLL_MS;
	struct mc_call *c = mc_call_task_status(x->w->exec.api, x->t.id);
	if (c == NULL)
		return;
	x->status_call = c;
	if (mc_xt_start_call(x, c, status_done) < 0) {
		x->status_call = NULL;
		mc_call_free(c);
	}
}

/* ---- messages (step 9) ---- */

static void msgs_done(struct mc_call *c, void *arg)
{
	struct mc_xtask *x = arg;
	if (c != x->msg_call) {
		mc_call_free(c);
		return;
	}
	x->msg_call = NULL;
	if (!mc_call_ok(c))
		mc_log(MC_LOG_DEBUG, "message batch failed (dropped, as multica does)",
		       "task", x->t.id, "error", mc_call_error(c)->message, NULL);
	mc_call_free(c);
	if (x->st == XT_FLUSHING) {
		mc_xt_flush_messages(x, mc_now_ms(), true);
		if (mc_xt_messages_idle(x))
			mc_xt_event(x, XE_FLUSHED);
	}
}

void mc_xt_flush_messages(struct mc_xtask *x, mc_ms_t now, bool force)
{
	if (x->msgs == NULL || x->msg_call != NULL)
		return;
	mc_ms_t due = mc_msgbatch_deadline(x->msgs);
	if (due < 0 || (!force && now < due))
		return;
	char *body = mc_msgbatch_flush(x->msgs, NULL);
	if (body == NULL)
		return;
	struct mc_call *c = mc_call_task_op(x->w->exec.api, MC_TASK_OP_MESSAGES, x->t.id, body);
	free(body);
	if (c == NULL)
		return;
	mc_call_set_timeout(c, MC_TASK_SMALL_CALL_MS);
	x->msg_call = c;
	if (mc_xt_start_call(x, c, msgs_done) < 0) {
		x->msg_call = NULL;
		mc_call_free(c);
	}
}

bool mc_xt_messages_idle(const struct mc_xtask *x)
{
	return x->msg_call == NULL && (x->msgs == NULL || !mc_msgbatch_pending(x->msgs));
}

/* ---- usage (step 14): once, right after the run ---- */

void mc_xt_send_usage(struct mc_xtask *x)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "usage");
	size_t n = 0;
	for (size_t i = 0; a != NULL && i < x->n_usage; i++) {
		const struct mc_usage_row *u = &x->usage[i];
		if (u->input == 0 && u->output == 0 && u->cache_read == 0 && u->cache_write == 0)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "provider", x->family);
		cJSON_AddStringToObject(e, "model", u->model[0] ? u->model : "unknown");
		cJSON_AddNumberToObject(e, "input_tokens", (double)u->input);
		cJSON_AddNumberToObject(e, "output_tokens", (double)u->output);
		cJSON_AddNumberToObject(e, "cache_read_tokens", (double)u->cache_read);
		cJSON_AddNumberToObject(e, "cache_write_tokens", (double)u->cache_write);
		cJSON_AddItemToArray(a, e);
		n++;
	}
	char *body = n > 0 ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (body != NULL)
		mc_xt_send_aux(x, MC_TASK_OP_USAGE, body);
	free(body);
}

void mc_xt_cancel_calls(struct mc_xtask *x)
{
	mc_call_free(x->op_call);
	x->op_call = NULL;
	mc_call_free(x->status_call);
	x->status_call = NULL;
	mc_call_free(x->msg_call);
	x->msg_call = NULL;
	for (size_t i = 0; i < sizeof x->aux / sizeof x->aux[0]; i++) {
		mc_call_free(x->aux[i]);
		x->aux[i] = NULL;
	}
}

void mc_xt_cancel_calls_but_aux(struct mc_xtask *x)
{
	mc_call_free(x->op_call);
	x->op_call = NULL;
	mc_call_free(x->status_call);
	x->status_call = NULL;
}
