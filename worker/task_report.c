/* The terminal report of a task (step 16): written to the outbox (fsync)
 * before it is sent, removed after a 2xx; transient failures retried 4, 8,
 * 16, 32, 64 s apart; a permanent 4xx on /complete falls back to /fail; a
 * report still undelivered after the schedule stays in the outbox and is
 * retried every minute (and by the supervisor's cleanup if we die). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <unistd.h>

#include "common/classify.h"
#include "common/log.h"
#include "worker/outbox.h"
#include "worker/workdir.h"
#include "worker/task_int.h"
#include "worker/worker_int.h"

static const mc_ms_t retry_after_ms[MC_TASK_REPORT_ATTEMPTS] = { 4000, 8000, 16000, 32000,
								 64000, 0 };

static void send_report(struct mc_xtask *x);

static enum mc_outbox_op outbox_op(int op)
{
	return op == MC_TASK_OP_COMPLETE ? MC_OUTBOX_COMPLETE :
	       op == MC_TASK_OP_FAIL ? MC_OUTBOX_FAIL : MC_OUTBOX_CANCEL_ACK;
}

/* On disk before it is on the wire. */
static bool outbox_put(struct mc_xtask *x)
{
	if (x->w->cfg.state_dir[0] == '\0' || x->report_body == NULL)
		return false;
	struct mc_outbox_entry e = { .op = outbox_op(x->report_op), .body = x->report_body,
				     .attempts = x->attempts, .created_at = mc_wall_ms() };
	strlcpy(e.task_id, x->t.id, sizeof e.task_id);
	strlcpy(e.runtime_id, x->t.runtime_id, sizeof e.runtime_id);
	char err[256];
	if (mc_outbox_write(x->w->cfg.state_dir, x->t.workspace_id, &e, err, sizeof err) == 0)
		return true;
	mc_log(MC_LOG_WARN, "cannot write the task's report to the outbox: sending it anyway",
	       "task", x->t.id, "error", err, NULL);
	return false;
}

/* The task dir may go after the retention from now (step 17). */
static void mark_finished(struct mc_xtask *x)
{
	if (x->task_dir == NULL)
		return;
	static struct mc_workdir wd; /* PATH_MAX arrays: not on the stack */
	memset(&wd, 0, sizeof wd);
	strlcpy(wd.task_dir, x->task_dir, sizeof wd.task_dir);
	if (x->task_name != NULL)
		strlcpy(wd.name, x->task_name, sizeof wd.name);
	if (x->work_dir != NULL)
		strlcpy(wd.workdir, x->work_dir, sizeof wd.workdir);
	char err[256];
	if (mc_workdir_finish(&wd, &x->t, mc_wall_ms(), err, sizeof err) < 0)
		mc_log(MC_LOG_WARN, "cannot mark the task dir finished", "task", x->t.id,
		       "error", err, NULL);
}

static void done_ok(struct mc_xtask *x)
{
	if (x->outbox_written &&
	    mc_outbox_remove(x->w->cfg.state_dir, x->t.workspace_id, x->t.id) < 0)
		mc_log(MC_LOG_WARN, "cannot remove a delivered outbox entry", "task", x->t.id, NULL);
	free(x->report_body);
	x->report_body = NULL;
	mark_finished(x);
	x->st = XT_DONE;
	mc_xt_report_state(x, MC_TS_ENDED);
}

/* /complete refused for good: report it as a failure instead, keeping the
 * session and work dir (multica's fallback). */
static void fall_back_to_fail(struct mc_xtask *x, const char *why)
{
	char e[MC_API_ERROR_TEXT_MAX + 32];
	snprintf(e, sizeof e, "complete task failed: %s", why);
	const char *reason = mc_failure_classify(e);
	snprintf(x->outcome, sizeof x->outcome, "failed:%s", reason);
	struct mc_outbox_extra ex = { .session_id = x->session_id, .work_dir = x->work_dir };
	char *body = mc_outbox_fail_body(e, reason, &ex);
	free(x->report_body);
	x->report_body = body;
	x->report_op = MC_TASK_OP_FAIL;
	x->attempts = 0;
	if (x->outbox_written)
		mc_outbox_remove(x->w->cfg.state_dir, x->t.workspace_id, x->t.id);
	x->outbox_written = outbox_put(x);
	send_report(x);
}

static void report_done(struct mc_call *c, void *arg)
{
	struct mc_xtask *x = arg;
	if (c != x->op_call) {
		mc_call_free(c);
		return;
	}
	x->op_call = NULL;
	const struct mc_api_error *e = mc_call_error(c);
	if (mc_call_ok(c)) {
		mc_call_free(c);
		done_ok(x);
		return;
	}
	char msg[MC_API_ERROR_TEXT_MAX];
	strlcpy(msg, e->message, sizeof msg);
	bool transient = mc_api_error_is_transient(e);
	mc_call_free(c);
	if (!transient && x->report_op == MC_TASK_OP_COMPLETE) {
		fall_back_to_fail(x, msg);
		return;
	}
	if (!transient) {
		/* The server will never take it: keeping it would retry forever. */
		mc_log(MC_LOG_ERROR, "the server refused the task's report", "task", x->t.id,
		       "op", mc_task_op_name(x->report_op), "error", msg, NULL);
		done_ok(x);
		return;
	}
	mc_ms_t wait = x->attempts <= MC_TASK_REPORT_ATTEMPTS - 1 ?
		retry_after_ms[x->attempts - 1] : 0;
	if (wait == 0) {
		mc_log(MC_LOG_ERROR, "task report undelivered after every retry: kept in the outbox",
		       "task", x->t.id, "op", mc_task_op_name(x->report_op), "error", msg, NULL);
		wait = MC_TASK_RETRY_OUTBOX_MS;
	} else {
		mc_log(MC_LOG_WARN, "task report failed, retrying", "task", x->t.id,
		       "op", mc_task_op_name(x->report_op), "error", msg,
		       "retry_in_ms", MC_LOG_NUM(wait), NULL);
	}
	x->retry_at = mc_now_ms() + wait;
}

static void send_report(struct mc_xtask *x)
{
	x->retry_at = 0;
	x->attempts++;
	struct mc_call *c = x->report_body == NULL ? NULL :
		mc_call_task_op(x->w->exec.api, x->report_op, x->t.id, x->report_body);
	if (c == NULL || mc_xt_start_call(x, c, NULL) < 0) {
		mc_call_free(c);
		x->op_call = NULL;
		x->retry_at = mc_now_ms() + retry_after_ms[0];
		return;
	}
	mc_call_set_done(c, report_done, x);
}

void mc_xt_report(struct mc_xtask *x, int op, char *body)
{
	mc_xt_cancel_calls_but_aux(x);
	x->report_op = op;
	free(x->report_body);
	x->report_body = body;
	x->attempts = 0;
	mc_xt_report_state(x, MC_TS_REPORTING);
	if (body == NULL) {
		mc_log(MC_LOG_ERROR, "out of memory building a task report", "task", x->t.id, NULL);
		x->retry_at = mc_now_ms() + retry_after_ms[0];
		return;
	}
	/* On disk before it is on the wire: a worker killed from here on
	 * leaves it to its cleanup, which delivers it first. */
	x->outbox_written = outbox_put(x);
	if (mc_worker_fault(x->w, "exit_after_outbox"))
		_exit(99);
	send_report(x);
}

void mc_xt_report_timer(struct mc_xtask *x, mc_ms_t now)
{
	if (x->st == XT_REPORTING && x->op_call == NULL && x->retry_at > 0 && now >= x->retry_at)
		send_report(x);
}
