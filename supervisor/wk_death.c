/* A worker's death and what follows: its agents' process groups killed at
 * once (reaper.c), the cleanup (its outbox delivered, recover-orphans on
 * the runtimes that had tasks in flight, the DEREG of the ids the ledger
 * holds for it), its tasks dropped from the table, the DEREG's
 * confirmation, and the choice between respawn (after backoff), the failed
 * and config-error parkings (retried ever more slowly / slowly) and
 * removal.
 *
 * The confirmation: a killed worker may have had requests in flight (a
 * heartbeat held at the server) that land after our DEREG and bring a row
 * back online. Any such request is over http_timeout after the death, so
 * the DEREG is sent again then, the ledger keeping the ids until it went
 * through, unless the workspace runs again before that: its new REG
 * re-owns the same (upserted) ids. A respawn never overlaps a DEREG on
 * the wire: it waits for it, like for the first cleanup. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/outbox_deliver.h"
#include "supervisor/wk_int.h"
#include "worker/worker.h"

#define CRASH_LOOP_STREAK     5       /* consecutive crashes that park a worker */
#define HEALTHY_AFTER_MS      10000   /* a run this long resets the backoff */
#define FAILED_MAX_FACTOR     16      /* failed: the retry doubles up to 16 x max */
#define CONFIG_RETRY_FACTOR   5       /* config-error: retried every ~5 x max */

void mc_wk_kill(struct mc_sv *sv, struct mc_wk *wk, const char *why)
{
	(void)sv;
	if (wk->pid <= 0 || wk->pidfd < 0)
		return; /* never signal a pid we hold no pidfd for */
	mc_wk_set_error(wk, why);
	mc_wk_log(MC_LOG_WARN, wk, "killing worker", "reason", why);
	if (mc_pidfd_kill(wk->pidfd, SIGKILL) < 0 && errno != ESRCH)
		mc_wk_log(MC_LOG_ERROR, wk, "cannot kill the worker", "error", strerror(errno));
}

void mc_wk_violation(struct mc_sv *sv, struct mc_wk *wk, const char *why)
{
	mc_wk_kill(sv, wk, why);
	wk->untrusted = true;
	if (wk->fd >= 0)
		mc_sv_epoll_mod(sv, wk->fd, 0, &wk->ipc_src); /* ignore the rest; its exit follows */
}

bool mc_wk_config_parked(const struct mc_wk *wk)
{
	return wk->state == WK_CONFIG_ERROR ||
	       (wk->state == WK_CLEANUP && wk->next == NEXT_PARK_CONFIG);
}

/* ---- the cleanup and the DEREGs ---- */

/* The distinct runtime ids of ws's tasks in flight (borrowed from the
 * table, valid until it changes). */
struct rt_set {
	size_t n;
	const char *v[MC_MAX_RUNTIMES];
};

static void add_task_runtime(struct mc_sv_task *task, void *arg)
{
	struct rt_set *s = arg;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], task->runtime_id) == 0)
			return;
	if (s->n < MC_MAX_RUNTIMES && task->runtime_id[0])
		s->v[s->n++] = task->runtime_id;
}

/* Sends the cleanup (the first one: outbox, recover-orphans, DEREG) or the
 * confirming DEREG; false when none could start (the caller retries after
 * backoff). */
static bool send_dereg(struct mc_sv *sv, struct mc_wk *wk, bool confirm)
{
	const char *const *ids;
	size_t n = mc_ledger_get(sv->ledger, wk->ws, &ids);
	wk->confirming = confirm;
	if (confirm) {
		wk->cleanup = mc_helper_dereg(sv, HELPER_CLEANUP, wk, n, ids,
					      sv->cfg.http_timeout_ms);
	} else {
		struct rt_set rt = { 0 };
		mc_sv_tasks_foreach_ws(&sv->tasks, wk->ws, add_task_runtime, &rt);
		wk->cleanup = mc_helper_cleanup(sv, wk, n, ids, rt.n, rt.v);
	}
	return wk->cleanup != NULL;
}

/* Whether a dead worker left anything for a cleanup helper to do. */
static bool cleanup_needed(struct mc_sv *sv, const struct mc_wk *wk)
{
	const char *const *ids;
	return mc_ledger_get(sv->ledger, wk->ws, &ids) > 0 ||
	       mc_sv_tasks_count_ws(&sv->tasks, wk->ws) > 0 ||
	       mc_outbox_pending(sv->cfg.state_dir, wk->ws, 1) > 0;
}

/* The cleanup is over: the dead worker's tasks leave the table, their
 * slots free for the link's next claim. */
static void drop_tasks(struct mc_sv *sv, struct mc_wk *wk)
{
	if (mc_sv_tasks_count_ws(&sv->tasks, wk->ws) == 0)
		return;
	mc_wk_log(MC_LOG_INFO, wk, "dropping the dead worker's tasks", "count",
		  MC_LOG_NUM(mc_sv_tasks_count_ws(&sv->tasks, wk->ws)));
	mc_route_drop_ws(sv, wk->ws); /* slots freed, journal updated, the link woken */
	mc_sv_tasks_changed(sv);
}

void mc_wk_start_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	wk->state = WK_CLEANUP;
	wk->confirm_at = 0;
	if (!cleanup_needed(sv, wk) || sv->shutting_down) {
		/* Nothing to take offline, or the final DEREG covers the ledger. */
		wk->confirm_owed = false;
		mc_wk_after_cleanup(sv, wk);
		return;
	}
	/* A reload re-added a workspace whose orphan cleanup is still on the
	 * wire: wait for that DEREG rather than race it, or it could land
	 * after our worker's REG and take the same (upserted) ids offline. */
	wk->cleanup = mc_helper_adopt_orphan_cleanup(sv, wk);
	if (wk->cleanup != NULL) {
		wk->confirming = false;
		mc_wk_log(MC_LOG_INFO, wk, "waiting for the running cleanup of this workspace", NULL,
			  NULL);
		return;
	}
	if (!send_dereg(sv, wk, false))
		mc_wk_arm(sv, wk, mc_now_ms() + mc_backoff_next(&wk->cleanup_backoff));
}

/* No confirmation any more: the ids are a new worker's, or deregistered. */
static void drop_confirm(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->confirm_at != 0)
		mc_ledger_clear(sv->ledger, wk->ws);
	wk->confirm_at = 0;
	wk->confirm_owed = false;
}

/* BACKOFF/FAILED/CONFIG_ERROR: the earlier of the respawn and the
 * confirmation. */
static void arm_parked(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_ms_t at = wk->wake_at;
	if (wk->confirm_at != 0 && wk->confirm_at < at)
		at = wk->confirm_at;
	mc_wk_arm(sv, wk, at);
}

static void start_confirm(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_wk_log(MC_LOG_INFO, wk, "confirming the dead worker's deregistration", NULL, NULL);
	if (send_dereg(sv, wk, true))
		return;
	wk->confirm_at = mc_now_ms() + mc_backoff_next(&wk->cleanup_backoff);
	if (wk->state == WK_CLEANUP)
		mc_wk_arm(sv, wk, wk->confirm_at);
	else
		arm_parked(sv, wk);
}

/* A failed DEREG: try again after backoff; the ledger keeps the ids. */
static void dereg_failed(struct mc_sv *sv, struct mc_wk *wk, int result)
{
	mc_ms_t delay = mc_backoff_next(&wk->cleanup_backoff);
	mc_wk_log(MC_LOG_WARN, wk, result == MC_HELPER_AUTH
		  ? "server refused the cleanup (token rejected); retrying"
		  : "cleanup failed; retrying", "in_ms", MC_LOG_NUM(delay));
	if (!wk->confirming) {
		mc_wk_arm(sv, wk, mc_now_ms() + delay);
		return;
	}
	wk->confirm_at = mc_now_ms() + delay;
	if (wk->state == WK_CLEANUP)
		mc_wk_arm(sv, wk, wk->confirm_at);
	else
		arm_parked(sv, wk);
}

/* The confirmation went through: the worker is dead and all is offline. */
static void confirmed(struct mc_sv *sv, struct mc_wk *wk)
{
	drop_confirm(sv, wk);
	if (wk->state == WK_CLEANUP) {
		mc_wk_after_cleanup(sv, wk);
		return;
	}
	if (mc_now_ms() >= wk->wake_at)
		mc_wk_parked_timer(sv, wk, mc_now_ms());
	else
		arm_parked(sv, wk);
}

void mc_wk_on_cleanup_done(struct mc_sv *sv, struct mc_wk *wk, int result, mc_ms_t sent_at)
{
	wk->cleanup = NULL;
	if (result == MC_HELPER_TRANSIENT || result == MC_HELPER_AUTH) {
		if (sv->shutting_down)
			mc_wk_after_cleanup(sv, wk); /* the final DEREG retries the ledger */
		else
			dereg_failed(sv, wk, result);
		return;
	}
	mc_backoff_reset(&wk->cleanup_backoff);
	if (result == MC_HELPER_PERMANENT)
		mc_wk_log(MC_LOG_ERROR, wk, "server refused the cleanup; giving up on it", NULL, NULL);
	if (wk->confirming) {
		confirmed(sv, wk);
		return;
	}
	/* The first DEREG: one sent within http_timeout of the death may have
	 * overtaken the dead worker's last requests. */
	mc_ms_t settled_at = wk->died_at + sv->cfg.http_timeout_ms;
	if (wk->confirm_owed && result == MC_HELPER_OK && sent_at < settled_at) {
		wk->confirm_at = settled_at;
	} else {
		mc_ledger_clear(sv->ledger, wk->ws);
		wk->confirm_owed = false;
	}
	mc_wk_after_cleanup(sv, wk);
}

void mc_wk_abandon_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->cleanup != NULL)
		wk->cleanup->wk = NULL;
	wk->cleanup = NULL;
	mc_timerq_cancel(&sv->timers, &wk->timer);
	mc_wk_after_cleanup(sv, wk);
}

void mc_wk_kick_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	/* Only a first DEREG waiting to retry: a confirmation keeps its time. */
	if (wk->state != WK_CLEANUP || wk->cleanup != NULL || wk->confirm_at != 0 ||
	    !mc_timer_armed(&wk->timer))
		return;
	mc_timerq_cancel(&sv->timers, &wk->timer);
	mc_wk_cleanup_timer(sv, wk);
}

/* ---- what follows ---- */

/* Failed lives after parking wait max, 2 max, 4 max ... 16 max (jittered):
 * each respawn's REG refreshes rows a dead worker may never have reported,
 * so the wait must outgrow the server's stale threshold. */
static mc_ms_t failed_delay(const struct mc_sv *sv, const struct mc_wk *wk)
{
	mc_ms_t max = sv->cfg.restart_backoff_max_ms, d = max;
	for (unsigned i = CRASH_LOOP_STREAK; i < wk->crash_streak && d < FAILED_MAX_FACTOR * max; i++)
		d *= 2;
	return mc_jitter(d < FAILED_MAX_FACTOR * max ? d : FAILED_MAX_FACTOR * max, 0.2);
}

static void park_config(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_ms_t delay = mc_jitter(CONFIG_RETRY_FACTOR * sv->cfg.restart_backoff_max_ms, 0.2);
	wk->state = WK_CONFIG_ERROR;
	wk->wake_at = mc_now_ms() + delay;
	mc_log(MC_LOG_ERROR, "worker has a configuration error; retrying slowly (at once on a "
	       "reload or a token file change)", "ws", wk->ws, "state", mc_wk_state_name(wk->state),
	       "retry_in_ms", MC_LOG_NUM(delay), "error", wk->last_error, NULL);
	arm_parked(sv, wk);
}

static void respawn_later(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_ms_t delay = mc_backoff_next(&wk->backoff);
	if (wk->crash_streak >= CRASH_LOOP_STREAK) {
		wk->state = WK_FAILED;
		delay = failed_delay(sv, wk);
		mc_wk_log(MC_LOG_ERROR, wk, "worker is crash-looping; retrying slowly",
			  "retry_in_ms", MC_LOG_NUM(delay));
	} else {
		wk->state = WK_BACKOFF;
	}
	wk->wake_at = mc_now_ms() + delay;
	if (wk->confirm_at != 0 && wk->wake_at < wk->confirm_at)
		drop_confirm(sv, wk); /* running again by then: the new REG re-owns the ids */
	arm_parked(sv, wk);
}

/* state CLEANUP (or parked) x "first DEREG done": next decides. */
void mc_wk_after_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	drop_tasks(sv, wk);
	if (sv->shutting_down) {
		wk->next = NEXT_REMOVE;
		wk->confirm_at = 0; /* the final DEREG covers the ledger */
	}
	if (wk->cleanup != NULL) {
		wk->state = WK_CLEANUP; /* a DEREG is on the wire: its end decides */
		return;
	}
	switch (wk->next) {
	case NEXT_REMOVE:
		if (wk->confirm_at != 0) {
			wk->state = WK_CLEANUP;
			mc_wk_arm(sv, wk, wk->confirm_at);
			return;
		}
		wk->state = WK_GONE;
		mc_wk_free(sv, wk);
		mc_sv_shutdown_progress(sv);
		return;
	case NEXT_PARK_CONFIG:
		park_config(sv, wk);
		return;
	case NEXT_RESPAWN:
		break;
	}
	if (wk->crash_streak == 0) {
		drop_confirm(sv, wk);
		mc_wk_queue_start(sv, wk);
		return;
	}
	respawn_later(sv, wk);
}

/* ---- death ---- */

static void describe_exit(const siginfo_t *si, char *buf, size_t n)
{
	if (si->si_code == CLD_EXITED)
		snprintf(buf, n, "exited with status %d", si->si_status);
	else
		snprintf(buf, n, "killed by signal %d (%s)", si->si_status, strsignal(si->si_status));
}

/* What the exit means for next, the restart count and the crash streak. */
static void judge_exit(struct mc_wk *wk, const siginfo_t *si, const char *how)
{
	mc_ms_t ran = mc_now_ms() - wk->started_at;
	/* After FATAL the exit code may be lost (killed meanwhile): the
	 * worker's own verdict counts. */
	bool config_error = wk->fatal_msg ||
			    (si->si_code == CLD_EXITED && si->si_status == MC_WORKER_EXIT_CONFIG);
	if (wk->state != WK_STOPPING) {
		if (!wk->fatal_msg && wk->last_error[0] == '\0')
			mc_wk_set_error(wk, how);
		if (config_error) {
			wk->next = NEXT_PARK_CONFIG;
		} else {
			wk->next = NEXT_RESPAWN;
			if (ran >= HEALTHY_AFTER_MS) {
				mc_backoff_reset(&wk->backoff);
				wk->crash_streak = 0;
			}
			wk->crash_streak++;
		}
	}
	if (wk->next == NEXT_RESPAWN)
		wk->restarts++;
}

void mc_wk_on_exit(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->state == WK_GONE || wk->pidfd < 0)
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)wk->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return; /* not yet */
	/* Whatever the dead worker still had in flight (its last REPORT); the
	 * pidfd stays open meanwhile, so a kill here cannot reach a new pid. */
	if (wk->fd >= 0 && wk->rd_ready && !wk->untrusted)
		mc_wk_read_frames(sv, wk, MC_WK_NO_BUDGET);
	mc_sv_epoll_del(sv, wk->pidfd);
	close(wk->pidfd);
	wk->pidfd = -1;
	mc_wk_close_channel(sv, wk);
	mc_timerq_cancel(&sv->timers, &wk->timer);

	char how[128];
	describe_exit(&si, how, sizeof how);
	mc_wk_log(wk->state == WK_STOPPING ? MC_LOG_INFO : MC_LOG_WARN, wk, "worker exited", "how",
		  how);
	wk->pid = 0;
	wk->died_at = mc_now_ms();
	/* Its agents are ours now (subreaper): none outlives it. */
	mc_reaper_kill_ws_agents(sv, wk->ws);
	wk->draining = false; /* a death restarts it anyway */
	/* Exiting by itself, a worker lets its requests land first. */
	wk->confirm_owed = si.si_code != CLD_EXITED;
	judge_exit(wk, &si, how);
	mc_wk_start_cleanup(sv, wk);
}

/* ---- timers ---- */

void mc_wk_cleanup_timer(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->cleanup != NULL)
		return; /* its end decides */
	if (wk->confirm_at != 0)
		start_confirm(sv, wk); /* removed: waiting to confirm */
	else
		mc_wk_start_cleanup(sv, wk); /* retry after backoff */
}

void mc_wk_parked_timer(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t now)
{
	if (sv->shutting_down || wk->cleanup != NULL)
		return; /* a confirmation on the wire: its end re-arms */
	if (now < wk->wake_at) {
		if (wk->confirm_at != 0 && now >= wk->confirm_at)
			start_confirm(sv, wk);
		else
			arm_parked(sv, wk);
		return;
	}
	drop_confirm(sv, wk); /* not sent yet: the new REG re-owns the ids */
	mc_wk_spawn(sv, wk);
}
