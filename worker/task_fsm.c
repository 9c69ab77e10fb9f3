/* One task's life as a state x event table
 * (reference/multica-task-execution.md section 1, steps 4-17):
 *
 *   PREPARING -> STARTING -> RUNNING -> FLUSHING -> CHECKING -> REPORTING -> DONE
 *                              |  ^
 *                              v  | (fresh-session retry)
 *                        STOPPING_AGENT -> FLUSHING
 *
 * Fail closed: only a run whose result is "completed" goes to /complete;
 * everything else is a /fail with a reason, or a cancel-ack when the server
 * ended the task itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/classify.h"
#include "common/log.h"
#include "worker/outbox.h"
#include "worker/task_int.h"
#include "worker/worker_int.h"

static const char *const state_names[XT_STATE_COUNT] = {
	[XT_PREPARING] = "preparing",   [XT_STARTING] = "starting",
	[XT_RUNNING] = "running",       [XT_STOPPING_AGENT] = "stopping-agent",
	[XT_FLUSHING] = "flushing",     [XT_CHECKING] = "checking",
	[XT_REPORTING] = "reporting",   [XT_DONE] = "done",
};

const char *mc_xt_state_name(enum xt_state s)
{
	return s < XT_STATE_COUNT ? state_names[s] : "?";
}

static void set_state(struct mc_xtask *x, enum xt_state s)
{
	x->st = s;
	x->deadline = 0;
}

/* What the agents' local API knows a running task by (never its token). */
static void agent_fields(struct mc_xtask *x, struct mc_task_state_msg *m)
{
	if (x->token == NULL || x->work_dir == NULL)
		return;
	strlcpy(m->work_dir, x->work_dir, sizeof m->work_dir);
	strlcpy(m->agent_id, x->t.agent_id, sizeof m->agent_id);
	strlcpy(m->agent_name, x->t.agent_name != NULL ? x->t.agent_name : "", sizeof m->agent_name);
	for (char *c = m->agent_name; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' '; /* the parser refuses control bytes */
	for (size_t i = 0; i < x->t.n_repos && i < MC_TASK_REPOS_MAX; i++)
		m->repos[m->n_repos++] = x->t.repos[i];
	mc_task_token_hash(x->token, m->token_hash);
}

void mc_xt_report_state(struct mc_xtask *x, enum mc_task_state s)
{
	if (x->replay || (x->reported == s && s != MC_TS_RUNNING))
		return;
	x->reported = s;
	struct mc_task_state_msg m = { .state = s };
	strlcpy(m.task_id, x->t.id, sizeof m.task_id);
	strlcpy(m.runtime_id, x->t.runtime_id, sizeof m.runtime_id);
	m.pid = mc_xt_agent_pid(x);
	m.pgid = m.pid;
	if (x->family != NULL)
		strlcpy(m.family, x->family, sizeof m.family);
	strlcpy(m.last_output, x->last_output, sizeof m.last_output);
	strlcpy(m.outcome, x->outcome, sizeof m.outcome);
	if (s == MC_TS_RUNNING)
		agent_fields(x, &m);
	int rc = mc_ipc_send_task_state(&x->w->wr, &m);
	if (rc < 0 && errno == EMSGSIZE && m.n_repos > 0) {
		/* repos of pathological urls past the frame: the local API then
		 * allows the workspace's list only */
		mc_log(MC_LOG_WARN, "the task's repos do not fit a task state; sent without them",
		       "task", x->t.id, NULL);
		m.n_repos = 0;
		rc = mc_ipc_send_task_state(&x->w->wr, &m);
	}
	if (rc < 0)
		mc_log(MC_LOG_WARN, "cannot queue a task state for the supervisor", "task", x->t.id,
		       NULL);
}

/* ---- the terminal decision ---- */

static void ack_cancel(struct mc_xtask *x)
{
	strlcpy(x->outcome, "cancelled", sizeof x->outcome);
	mc_xt_report(x, MC_TASK_OP_CANCEL_ACK, mc_outbox_cancel_ack_body(NULL, NULL, NULL, NULL));
	set_state(x, XT_REPORTING);
}

void mc_xt_fail(struct mc_xtask *x, const char *error, const char *reason)
{
	if (reason == NULL || reason[0] == '\0')
		reason = mc_failure_classify(error);
	snprintf(x->outcome, sizeof x->outcome, "failed:%s", reason);
	mc_log(MC_LOG_INFO, "task failed", "task", x->t.id, "reason", reason, "error", error, NULL);
	struct mc_outbox_extra ex = { .session_id = x->session_id, .work_dir = x->work_dir };
	char *body = mc_outbox_fail_body(error, reason, &ex);
	mc_xt_report(x, MC_TASK_OP_FAIL, body);
	set_state(x, XT_REPORTING);
}

static void complete(struct mc_xtask *x)
{
	strlcpy(x->outcome, "completed", sizeof x->outcome);
	mc_log(MC_LOG_INFO, "task completed", "task", x->t.id, NULL);
	struct mc_outbox_extra ex = { .session_id = x->session_id, .work_dir = x->work_dir };
	const char *out = x->r_output ? x->r_output : "";
	char *body = mc_outbox_complete_body(out, strlen(out), &ex);
	mc_xt_report(x, MC_TASK_OP_COMPLETE, body);
	set_state(x, XT_REPORTING);
}

/* The run is over and the server still holds the task: route its result. */
void mc_xt_finish(struct mc_xtask *x)
{
	const char *st = x->r_status ? x->r_status : "failed";
	if (strcmp(st, "completed") == 0) {
		complete(x);
		return;
	}
	const char *err = x->r_error && x->r_error[0] ? x->r_error : "agent run failed";
	const char *reason = NULL;
	if (strcmp(st, "timeout") == 0)
		reason = "timeout";
	mc_xt_fail(x, err, reason);
}

/* After the agent is done and the messages are flushed. */
static void decide(struct mc_xtask *x)
{
	if (x->stop_why == XS_CANCEL || x->server_ended) {
		ack_cancel(x);
		return;
	}
	if (x->stop_why == XS_WORKER_STOP) {
		mc_xt_fail(x, "the daemon stopped while the task was running", "runtime_offline");
		return;
	}
	if (x->stop_why == XS_IDLE) {
		char e[128];
		snprintf(e, sizeof e, "agent produced no output for %lds and was stopped",
			 x->w->cfg.task_idle_timeout_ms / 1000);
		mc_xt_fail(x, e, "timeout");
		return;
	}
	/* Before reporting, one last look: a task the server ended meanwhile
	 * gets its cancel-ack instead (multica's post-run check). */
	struct mc_call *c = mc_call_task_status(x->w->exec.api, x->t.id);
	set_state(x, XT_CHECKING);
	if (mc_xt_start_call(x, c, NULL) < 0) {
		mc_call_free(c);
		mc_xt_finish(x);
	}
}

/* ---- handlers ---- */

static void begin(struct mc_xtask *x)
{
	if (mc_xt_prepare(x) < 0)
		return; /* the task was failed by the pre-flight */
	if (mc_worker_fault(x->w, "exit_before_start"))
		_exit(99);
	struct mc_call *c = mc_call_task_op(x->w->exec.api, MC_TASK_OP_START, x->t.id, NULL);
	set_state(x, XT_STARTING);
	if (mc_xt_start_call(x, c, NULL) < 0) {
		mc_call_free(c);
		mc_xt_fail(x, "start task failed: out of memory", NULL);
	}
}

static void on_preparing(struct mc_xtask *x, enum xt_event ev)
{
	if (ev == XE_BEGIN)
		begin(x);
	else if (ev == XE_STOP)
		mc_xt_fail(x, "the daemon stopped before the task started", "runtime_offline");
	else if (ev == XE_CANCEL)
		ack_cancel(x);
}

static void launch(struct mc_xtask *x)
{
	if (mc_worker_fault(x->w, "exit_before_spawn"))
		_exit(99);
	char body[160];
	snprintf(body, sizeof body, "{\"summary\":\"Launching %s\",\"step\":1,\"total\":2}",
		 x->family);
	mc_xt_send_aux(x, MC_TASK_OP_PROGRESS, body);
	char err[512];
	if (mc_xt_agent_spawn(x, err, sizeof err) < 0) {
		mc_xt_fail(x, err, NULL);
		return;
	}
	set_state(x, XT_RUNNING);
	mc_xt_report_state(x, MC_TS_RUNNING);
}

static void on_starting(struct mc_xtask *x, enum xt_event ev)
{
	if (ev == XE_CALL_DONE) {
		struct mc_call *c = x->op_call;
		x->op_call = NULL;
		if (mc_call_ok(c)) {
			mc_call_free(c);
			launch(x);
			return;
		}
		char e[MC_API_ERROR_TEXT_MAX + 32];
		snprintf(e, sizeof e, "start task failed: %s", mc_call_error(c)->message);
		mc_call_free(c);
		mc_xt_fail(x, e, NULL);
	} else if (ev == XE_STOP) {
		mc_call_free(x->op_call);
		x->op_call = NULL;
		mc_xt_fail(x, "the daemon stopped before the task started", "runtime_offline");
	} else if (ev == XE_CANCEL) {
		mc_call_free(x->op_call);
		x->op_call = NULL;
		ack_cancel(x);
	}
}

static void flush_then_decide(struct mc_xtask *x)
{
	if (x->result_in && mc_worker_fault(x->w, "exit_after_result"))
		_exit(99);
	mc_xt_send_usage(x);          /* before any cancel handling (#1180) */
	if (x->stop_why == XS_NONE && !x->server_ended)
		mc_xt_send_aux(x, MC_TASK_OP_PROGRESS,
			       "{\"summary\":\"Finishing task\",\"step\":2,\"total\":2}");
	set_state(x, XT_FLUSHING);
	x->deadline = mc_now_ms() + MC_TASK_FINAL_FLUSH_MS;
	mc_xt_flush_messages(x, mc_now_ms(), true);
	if (mc_xt_messages_idle(x))
		decide(x);
}

/* The resume was refused and nothing ran: one fresh session (step 11.5),
 * the seq counter carrying on. */
static bool retry_fresh(struct mc_xtask *x)
{
	if (x->fresh_retry_done || x->resume_id == NULL || x->tools_ran || !x->resume_rejected ||
	    x->stop_why != XS_NONE || x->r_status == NULL || strcmp(x->r_status, "completed") == 0)
		return false;
	x->fresh_retry_done = true;
	mc_log(MC_LOG_INFO, "the agent refused to resume its session: retrying with a fresh one",
	       "task", x->t.id, NULL);
	free(x->resume_id);
	x->resume_id = NULL;
	x->resume_dropped = true;
	mc_xt_agent_free(x);
	char err[512];
	if (mc_xt_agent_spawn(x, err, sizeof err) < 0) {
		mc_xt_fail(x, err, NULL);
		return true;
	}
	return true;
}

static void on_running(struct mc_xtask *x, enum xt_event ev)
{
	long grace = x->w->cfg.task_stop_grace_ms;
	switch (ev) {
	case XE_AGENT_DONE:
		if (!retry_fresh(x))
			flush_then_decide(x);
		break;
	case XE_CANCEL:
		mc_xt_agent_stop(x, XS_CANCEL, grace);
		set_state(x, XT_STOPPING_AGENT);
		mc_xt_report_state(x, MC_TS_CANCELLING);
		break;
	case XE_IDLE:
		mc_xt_agent_stop(x, XS_IDLE, grace);
		set_state(x, XT_STOPPING_AGENT);
		break;
	case XE_STOP:
		mc_xt_agent_stop(x, XS_WORKER_STOP, x->w->exec.stop_deadline > 0 ?
				 mc_xt_stop_grace(x) : grace);
		set_state(x, XT_STOPPING_AGENT);
		break;
	default:
		break;
	}
}

static void on_stopping_agent(struct mc_xtask *x, enum xt_event ev)
{
	if (ev == XE_AGENT_DONE)
		flush_then_decide(x);
	else if (ev == XE_CANCEL)
		x->stop_why = XS_CANCEL; /* the server's word wins: cancel-ack */
	else if (ev == XE_STOP)
		mc_xt_agent_stop(x, x->stop_why == XS_CANCEL ? XS_CANCEL : XS_WORKER_STOP,
				 mc_xt_stop_grace(x));
}

static void on_flushing(struct mc_xtask *x, enum xt_event ev)
{
	if (ev == XE_FLUSHED || ev == XE_TIMER || ev == XE_STOP) {
		if (ev == XE_TIMER)
			mc_log(MC_LOG_WARN, "last message batch still out: reporting anyway",
			       "task", x->t.id, NULL);
		if (ev == XE_STOP && x->stop_why == XS_NONE && !x->result_in)
			x->stop_why = XS_WORKER_STOP;
		decide(x);
	} else if (ev == XE_CANCEL) {
		x->server_ended = true;
	}
}

static void on_checking(struct mc_xtask *x, enum xt_event ev)
{
	if (ev == XE_CALL_DONE) {
		struct mc_call *c = x->op_call;
		x->op_call = NULL;
		const char *s = mc_call_task_status_value(c);
		bool ended = mc_call_task_not_found(c) || (s != NULL && mc_task_status_terminal(s));
		mc_call_free(c);
		if (ended)
			ack_cancel(x);
		else
			mc_xt_finish(x);
	} else if (ev == XE_STOP) {
		mc_call_free(x->op_call);
		x->op_call = NULL;
		mc_xt_finish(x);
	}
}

static void on_reporting(struct mc_xtask *x, enum xt_event ev)
{
	(void)x;
	(void)ev; /* task_report.c drives it through its own callbacks */
}

static void on_done(struct mc_xtask *x, enum xt_event ev)
{
	(void)x;
	(void)ev;
}

typedef void (*xt_handler)(struct mc_xtask *x, enum xt_event ev);

static const xt_handler handlers[XT_STATE_COUNT] = {
	[XT_PREPARING] = on_preparing,
	[XT_STARTING] = on_starting,
	[XT_RUNNING] = on_running,
	[XT_STOPPING_AGENT] = on_stopping_agent,
	[XT_FLUSHING] = on_flushing,
	[XT_CHECKING] = on_checking,
	[XT_REPORTING] = on_reporting,
	[XT_DONE] = on_done,
};

void mc_xt_event(struct mc_xtask *x, enum xt_event ev)
{
	handlers[x->st](x, ev);
}
