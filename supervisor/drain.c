/* Drains: letting running tasks finish before a stop or a restart.
 *
 *  - host-wide (multicactl drain [--timeout D]): no more slot grants
 *    (claiming_stopped), wait until no task is in flight (routed, or being
 *    claimed: reserved slots), then stop like SIGTERM; at the timeout, stop
 *    anyway (the workers fail what still runs with runtime_offline at STOP);
 *  - one workspace (a reload changed its worker's configuration while it
 *    runs tasks): the worker keeps running but gets no new task and its
 *    runtimes leave the link's claim set, until its tasks ended or
 *    task_drain_timeout passed; then it is restarted as a reload does.
 *
 * One timer ticks every DRAIN_TICK_MS while any drain is on: a task's end
 * is seen within a tick, without a hook in every path that ends one. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "supervisor/sv.h"

#define DRAIN_TICK_MS 100

size_t mc_sv_tasks_in_flight(const struct mc_sv *sv)
{
	return sv->tasks.n + (size_t)(sv->tasks.reserved > 0 ? sv->tasks.reserved : 0);
}

static bool any_ws_draining(struct mc_sv *sv)
{
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->draining)
			return true;
	return false;
}

static void arm(struct mc_sv *sv, mc_ms_t now)
{
	if (!mc_timer_armed(&sv->drain_timer))
		mc_timerq_arm(&sv->timers, &sv->drain_timer, now + DRAIN_TICK_MS);
}

void mc_sv_tasks_changed(struct mc_sv *sv)
{
	if (sv->draining || any_ws_draining(sv))
		arm(sv, mc_now_ms());
}

/* ---- host-wide ---- */

static void host_drain_over(struct mc_sv *sv, bool timed_out)
{
	size_t left = mc_sv_tasks_in_flight(sv);
	mc_ms_t took = mc_now_ms() - sv->drain_started_at;
	char msg[256];
	if (timed_out) {
		mc_log(MC_LOG_WARN, "drain timed out; stopping the tasks still running", "tasks",
		       MC_LOG_NUM(left), "after_ms", MC_LOG_NUM(took), NULL);
		snprintf(msg, sizeof msg, "drain timed out after %.1f s with %zu task%s running: "
			 "stopping them (failed as runtime_offline, which the server retries) and "
			 "multicad", (double)took / 1000.0, left, left == 1 ? "" : "s");
	} else {
		mc_log(MC_LOG_INFO, "drained: no task running; stopping", "after_ms",
		       MC_LOG_NUM(took), NULL);
		snprintf(msg, sizeof msg, "drained after %.1f s: no task running; stopping multicad",
			 (double)took / 1000.0);
	}
	mc_control_drain_done(sv, msg, timed_out, left);
	mc_sv_shutdown(sv);
}

void mc_sv_drain_abort(struct mc_sv *sv)
{
	if (!sv->draining)
		return;
	size_t left = mc_sv_tasks_in_flight(sv);
	char msg[256];
	snprintf(msg, sizeof msg, "stopped by a signal before the drain was over: %zu task%s "
		 "still running (failed as runtime_offline, which the server retries)", left,
		 left == 1 ? "" : "s");
	mc_control_drain_done(sv, msg, left > 0, left);
}

int mc_sv_drain(struct mc_sv *sv, mc_ms_t timeout_ms)
{
	if (sv->shutting_down)
		return -1;
	mc_ms_t now = mc_now_ms();
	mc_ms_t deadline = timeout_ms > 0 ? now + timeout_ms : 0;
	if (!sv->draining) {
		sv->draining = true;
		sv->drain_started_at = now;
		sv->drain_deadline = deadline;
		sv->tasks.claiming_stopped = true;
		mc_log(MC_LOG_INFO, "draining: no more claims; stopping once no task runs", "tasks",
		       MC_LOG_NUM(mc_sv_tasks_in_flight(sv)), "timeout_ms",
		       MC_LOG_NUM(timeout_ms), NULL);
	} else if (deadline != 0 && (sv->drain_deadline == 0 || deadline < sv->drain_deadline)) {
		sv->drain_deadline = deadline; /* a second drain may only shorten the wait */
	}
	if (mc_sv_tasks_in_flight(sv) == 0) {
		host_drain_over(sv, false);
		return 0;
	}
	arm(sv, now);
	return 0;
}

/* ---- one workspace (reload) ---- */

void mc_wk_drain_start(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->draining)
		return;
	mc_ms_t now = mc_now_ms();
	wk->draining = true;
	wk->drain_deadline = now + sv->cfg.task_drain_timeout_ms;
	mc_log(MC_LOG_INFO, "configuration changed; draining the worker's tasks before its "
	       "restart", "ws", wk->ws, "tasks",
	       MC_LOG_NUM(mc_sv_tasks_count_ws(&sv->tasks, wk->ws)), "timeout_ms",
	       MC_LOG_NUM(sv->cfg.task_drain_timeout_ms), NULL);
	mc_sv_claimset_changed(sv, wk);
	arm(sv, now);
}

static void ws_drain_tick(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t now)
{
	size_t n = mc_sv_tasks_count_ws(&sv->tasks, wk->ws);
	if (n > 0 && now < wk->drain_deadline && wk->state == WK_RUNNING)
		return;
	wk->draining = false;
	mc_sv_claimset_changed(sv, wk);
	if (n > 0)
		mc_log(MC_LOG_WARN, "drain of a changed workspace timed out; restarting it with "
		       "tasks running", "ws", wk->ws, "tasks", MC_LOG_NUM(n), NULL);
	else
		mc_log(MC_LOG_INFO, "workspace drained; restarting it", "ws", wk->ws, NULL);
	if (wk->state == WK_RUNNING && wk->next != NEXT_REMOVE)
		mc_wk_restart(sv, wk);
}

void mc_sv_on_drain_timer(struct mc_sv *sv)
{
	mc_ms_t now = mc_now_ms();
	if (sv->draining && !sv->shutting_down) {
		if (mc_sv_tasks_in_flight(sv) == 0) {
			host_drain_over(sv, false);
			return;
		}
		if (sv->drain_deadline != 0 && now >= sv->drain_deadline) {
			host_drain_over(sv, true);
			return;
		}
	}
	bool more = sv->draining && !sv->shutting_down;
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		if (!wk->draining)
			continue;
		if (sv->shutting_down) {
			wk->draining = false; /* the stop takes over */
			continue;
		}
		ws_drain_tick(sv, wk, now);
		more = more || wk->draining;
	}
	if (more)
		arm(sv, now);
}

void mc_sv_claimset_changed(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_route_runtimes_dirty(sv, wk->ws); /* route.c offers none while it drains */
}
