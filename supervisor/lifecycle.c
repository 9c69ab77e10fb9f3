/* The supervisor's whole-host transitions: matching the running workers to
 * what is wanted, reload (validate fully, keep the old configuration on
 * error, then diff per workspace; a changed workspace with tasks running
 * drains first, drain.c), and shutdown (no more claims, stop all, kill
 * stragglers, one final DEREG of whatever is left, bounded in time). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <bsd/string.h>

#include "supervisor/agentapi_proc.h"
#include "common/log.h"
#include "supervisor/notify.h"
#include "supervisor/outbox_deliver.h"
#include "supervisor/sv.h"

#define FINAL_DEREG_TIMEOUT_MS 1500

/* ---- wanted workspaces ---- */

static bool listed(char (*ids)[MC_ID_MAX], size_t n, const char *ws)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], ws) == 0)
			return true;
	return false;
}

static bool wanted(const struct mc_sv *sv, const char *ws)
{
	if (sv->cfg.all_workspaces && !listed(sv->members, sv->n_members, ws))
		return false;
	return mc_config_wants_workspace(&sv->cfg, ws);
}

static int cleanup_orphan(const char *ws, size_t n, const char *const *ids, void *arg)
{
	struct mc_sv *sv = arg;
	(void)n;
	(void)ids;
	if (mc_wk_find(sv, ws) == NULL && !wanted(sv, ws))
		mc_helper_orphan_cleanup(sv, ws);
	return 0;
}

static void outbox_orphan(const char *ws, void *arg)
{
	cleanup_orphan(ws, 0, NULL, arg);
}

void mc_sv_apply_wanted(struct mc_sv *sv)
{
	if (sv->shutting_down)
		return;
	if (sv->cfg.all_workspaces && !sv->membership_known)
		return; /* nothing is known to be wanted or unwanted yet */
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		if (!wanted(sv, wk->ws) && wk->next != NEXT_REMOVE) {
			mc_log(MC_LOG_INFO, "workspace no longer served here", "ws", wk->ws, NULL);
			mc_wk_remove(sv, wk);
		}
	}
	size_t n = sv->cfg.all_workspaces ? sv->n_members : sv->cfg.n_workspaces;
	for (size_t i = 0; i < n; i++) {
		const char *ws = sv->cfg.all_workspaces ? sv->members[i] : sv->cfg.workspaces[i];
		if (!wanted(sv, ws) || (wk = mc_wk_find(sv, ws)) != NULL) {
			if (wk != NULL && wk->next == NEXT_REMOVE)
				mc_wk_restart(sv, wk); /* removed, then wanted again */
			continue;
		}
		if (mc_wk_add(sv, ws) == NULL)
			mc_log(MC_LOG_ERROR, "out of memory adding a workspace", "ws", ws, NULL);
	}
	/* Ledger entries nobody serves: a previous run's leftovers. */
	mc_ledger_foreach(sv->ledger, cleanup_orphan, sv);
	/* And reports in the outbox of a workspace nobody serves (a served
	 * one's worker delivers its own first). */
	mc_outbox_foreach_ws(sv->cfg.state_dir, outbox_orphan, sv);
}

/* ---- reload ---- */

static void reload_failed(struct mc_sv *sv, const char *why)
{
	sv->last_reload_ok = false;
	strlcpy(sv->last_reload_error, why, sizeof sv->last_reload_error);
	mc_log(MC_LOG_ERROR, "reload rejected; keeping the running configuration", "error", why,
	       NULL);
}

/* Loads and checks everything a reload needs before touching anything. */
static int load_candidate(struct mc_sv *sv, struct mc_config *nc, struct mc_secret **token,
			  char *err, size_t n)
{
	if (mc_config_load(sv->config_path, nc, err, n) < 0)
		return -1;
	if (strcmp(nc->state_dir, sv->cfg.state_dir) != 0) {
		snprintf(err, n, "%.400s: state_dir cannot change on reload (restart multicad)",
			 sv->config_path);
		return -1;
	}
	if (strcmp(nc->control_socket, sv->cfg.control_socket) != 0) {
		snprintf(err, n, "%.400s: control_socket cannot change on reload (restart multicad)",
			 sv->config_path);
		return -1;
	}
	if (nc->daemon_id_file[0] && strcmp(nc->daemon_id_file, sv->cfg.daemon_id_file) == 0)
		strlcpy(nc->daemon_id, sv->cfg.daemon_id, sizeof nc->daemon_id);
	else if (mc_config_resolve_daemon_id(nc, err, n) < 0)
		return -1;
	*token = mc_secret_from_file(nc->token_file, err, n);
	return *token == NULL ? -1 : 0;
}

static bool same_providers(const struct mc_config *a, const struct mc_config *b)
{
	if (a->n_providers != b->n_providers)
		return false;
	for (size_t i = 0; i < a->n_providers; i++)
		if (strcmp(a->providers[i].key, b->providers[i].key) != 0 ||
		    strcmp(a->providers[i].command, b->providers[i].command) != 0)
			return false;
	return true;
}

static int reload(struct mc_sv *sv);

/* A reload as systemd sees it: RELOADING=1 ... READY=1, whatever the result. */
int mc_sv_reload(struct mc_sv *sv)
{
	mc_notify_reloading(sv);
	int rc = reload(sv);
	mc_notify_reloaded(sv);
	return rc;
}

static int reload(struct mc_sv *sv)
{
	struct mc_config nc;
	struct mc_secret *token = NULL;
	char err[512];
	sv->reloads++;
	if (load_candidate(sv, &nc, &token, err, sizeof err) < 0 ||
	    mc_sv_agents_reconfigure(sv, &nc, err, sizeof err) < 0) {
		mc_config_free(&nc);
		mc_secret_free(token);
		reload_failed(sv, err);
		return -1;
	}
	bool token_changed = !mc_secret_equal(sv->token, token);
	bool providers_changed = !same_providers(&sv->cfg, &nc);
	bool was_all = sv->cfg.all_workspaces;
	mc_config_free(&sv->cfg);
	sv->cfg = nc;
	mc_secret_free(sv->token);
	sv->token = token;
	mc_tokwatch_rebase(sv); /* just read: not a change for the watcher */
	if (sv->tasks.max != sv->cfg.max_concurrent_tasks &&
	    mc_sv_tasks_resize(&sv->tasks, sv->cfg.max_concurrent_tasks) < 0)
		mc_log(MC_LOG_ERROR, "cannot resize the task slots; keeping the old number", "max",
		       MC_LOG_NUM(sv->tasks.max), NULL);
	mc_log_set_level(sv->cfg.log_level);
	mc_sv_agents_settle(sv); /* agents.c: before the CONFIGs are compared */

	unsigned restarted = 0, updated = 0, drained = 0;
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		char digest[65];
		mc_wk_config_digest(sv, wk->ws, digest);
		bool changed = wk->cfg_digest[0] && strcmp(digest, wk->cfg_digest) != 0;
		mc_backoff_init(&wk->backoff, sv->cfg.restart_backoff_min_ms,
				sv->cfg.restart_backoff_max_ms);
		if (changed && wk->next != NEXT_REMOVE && wk->state == WK_RUNNING &&
		    mc_sv_tasks_count_ws(&sv->tasks, wk->ws) > 0) {
			mc_wk_drain_start(sv, wk); /* restarted once its tasks ended */
			if (token_changed)
				mc_wk_push_token(sv, wk);
			drained++;
		} else if (mc_wk_config_parked(wk) || (changed && wk->next != NEXT_REMOVE)) {
			mc_wk_restart(sv, wk);
			restarted++;
		} else if (token_changed) {
			mc_wk_push_token(sv, wk); /* live: no restart for a rotated token */
			updated++;
		}
	}
	if (sv->cfg.all_workspaces && !was_all) {
		sv->membership_known = false;
		mc_membership_on_timer(sv);
	}
	mc_sv_apply_wanted(sv);
	/* Every reload re-probes: it also finds CLIs installed since. */
	mc_probes_start_round(sv);
	if (providers_changed)
		mc_log(MC_LOG_INFO, "providers changed; probing again", NULL);
	sv->last_reload_ok = true;
	sv->last_reload_error[0] = '\0';
	if (drained > 0)
		snprintf(sv->last_reload_summary, sizeof sv->last_reload_summary,
			 "configuration reloaded: %zu workspaces, %u restarted, %u draining first, "
			 "%u token updates", sv->n_workers, restarted, drained, updated);
	else
		snprintf(sv->last_reload_summary, sizeof sv->last_reload_summary,
			 "configuration reloaded: %zu workspaces, %u restarted, %u token updates",
			 sv->n_workers, restarted, updated);
	mc_log(MC_LOG_INFO, "configuration reloaded", "workers", MC_LOG_NUM(sv->n_workers),
	       "restarted", MC_LOG_NUM(restarted), "draining", MC_LOG_NUM(drained),
	       "token_updates", MC_LOG_NUM(updated), NULL);
	return 0;
}

/* ---- shutdown ---- */

void mc_sv_shutdown(struct mc_sv *sv)
{
	if (sv->shutting_down)
		return;
	mc_sv_drain_abort(sv); /* a SIGTERM in the middle of a drain */
	sv->shutting_down = true;
	sv->tasks.claiming_stopped = true; /* no slot granted while stopping */
	mc_link_proc_stop(sv); /* first: no claim may race the stop */
	mc_aapi_stop(sv);
	mc_notify_stopping(sv);
	sv->shutdown_deadline = mc_now_ms() + sv->cfg.stop_timeout_ms;
	mc_timerq_arm(&sv->timers, &sv->shutdown_timer, sv->shutdown_deadline);
	mc_timerq_cancel(&sv->timers, &sv->membership_timer);
	mc_timerq_cancel(&sv->timers, &sv->probe_timer);
	mc_probes_free(sv);
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp)
		mc_wk_remove(sv, wk);
	mc_sv_shutdown_progress(sv);
}

struct id_collect {
	size_t n, cap;
	const char **ids;
};

static int collect_ids(const char *ws, size_t n, const char *const *ids, void *arg)
{
	struct id_collect *c = arg;
	(void)ws;
	if (c->n + n > c->cap) {
		size_t cap = (c->n + n) * 2;
		const char **nv = realloc(c->ids, cap * sizeof *nv);
		if (nv == NULL)
			return -1;
		c->ids = nv;
		c->cap = cap;
	}
	memcpy(c->ids + c->n, ids, n * sizeof *ids);
	c->n += n;
	return 0;
}

static void start_final(struct mc_sv *sv)
{
	sv->final_cleanup_started = true;
	mc_helper_kill_all(sv); /* cleanup helpers still running: the final DEREG covers them */
	struct id_collect c = { 0 };
	mc_ledger_foreach(sv->ledger, collect_ids, &c);
	if (c.n == 0) {
		sv->final_cleanup_done = true;
		sv->final_cleanup_result = MC_HELPER_OK;
		free(c.ids);
		return;
	}
	mc_log(MC_LOG_INFO, "deregistering runtimes left by workers", "count", MC_LOG_NUM(c.n), NULL);
	if (mc_helper_dereg(sv, HELPER_FINAL, NULL, c.n, c.ids, FINAL_DEREG_TIMEOUT_MS) == NULL) {
		sv->final_cleanup_done = true;
		sv->final_cleanup_result = MC_HELPER_TRANSIENT;
	}
	free(c.ids);
}

static int note_ws(const char *ws, size_t n, const char *const *ids, void *arg)
{
	struct id_collect *c = arg;
	(void)n;
	(void)ids;
	return collect_ids(ws, 1, &ws, c);
}

/* Everything is offline: an empty ledger for the next start. */
static void clear_ledger(struct mc_sv *sv)
{
	struct id_collect c = { 0 };
	mc_ledger_foreach(sv->ledger, note_ws, &c); /* not modified while walked */
	for (size_t i = 0; i < c.n; i++) {
		char ws[MC_ID_MAX];
		strlcpy(ws, c.ids[i], sizeof ws); /* the string dies with its entry */
		mc_ledger_clear(sv->ledger, ws);
	}
	free(c.ids);
}

void mc_sv_shutdown_progress(struct mc_sv *sv)
{
	if (!sv->shutting_down || sv->done)
		return;
	if (sv->n_workers > 0 || !mc_link_proc_done(sv) || !mc_aapi_done(sv))
		return;
	if (!sv->final_cleanup_started)
		start_final(sv);
	if (!sv->final_cleanup_done)
		return;
	if (sv->final_cleanup_result == MC_HELPER_OK)
		clear_ledger(sv);
	else
		mc_log(MC_LOG_WARN, "final deregister failed; the ledger keeps the ids for the next start",
		       NULL);
	mc_log(MC_LOG_INFO, "stopped", NULL);
	sv->done = true;
}

/* At stop_timeout: whoever has not stopped is killed and reaped here, its
 * last reports read, so the final DEREG covers it. */
void mc_sv_on_shutdown_timer(struct mc_sv *sv)
{
	struct mc_wk *wk, *tmp;
	if (sv->n_workers == 0 && sv->final_cleanup_started) {
		/* The final DEREG overran its bound: give up on it. */
		mc_helper_kill_all(sv);
		sv->final_cleanup_done = true;
		sv->final_cleanup_result = MC_HELPER_TRANSIENT;
		mc_sv_shutdown_progress(sv);
		return;
	}
	if (sv->stragglers_killed) {
		/* Killed a bound ago and still not gone (uninterruptible sleep):
		 * stop waiting; the final DEREG covers its ledger ids. */
		RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp)
			mc_wk_free(sv, wk);
		mc_sv_shutdown_progress(sv);
		if (!sv->done)
			mc_timerq_arm(&sv->timers, &sv->shutdown_timer,
				      mc_now_ms() + FINAL_DEREG_TIMEOUT_MS + 500);
		return;
	}
	sv->stragglers_killed = true;
	mc_link_proc_kill(sv);
	mc_aapi_kill(sv);
	/* Kill every straggler first, then wait for them together, bounded: a
	 * process stuck in uninterruptible sleep must not hang the shutdown. */
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		if (wk->pid > 0) {
			mc_log(MC_LOG_WARN, "worker did not stop in time; killing it", "ws", wk->ws,
			       "worker_pid", MC_LOG_NUM(wk->pid), NULL);
			mc_pidfd_kill(wk->pidfd, SIGKILL);
		}
	}
	mc_ms_t until = mc_now_ms() + 1000;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		while (wk->pid > 0 && wk->pidfd >= 0) {
			mc_ms_t left = until - mc_now_ms();
			struct pollfd p = { .fd = wk->pidfd, .events = POLLIN };
			int r = poll(&p, 1, left > 0 ? (int)left : 0);
			if (r > 0 || left <= 0)
				break;
			if (r < 0 && errno != EINTR)
				break;
		}
	}
	/* Process the exits through the normal path, which frees them (their
	 * cleanup is left to the final DEREG). A cleanup still running is
	 * detached first: its exit must not report to a freed worker. */
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		if (wk->pid > 0)
			mc_wk_on_exit(sv, wk);
		else if (wk->state == WK_CLEANUP)
			mc_wk_abandon_cleanup(sv, wk);
	}
	mc_sv_shutdown_progress(sv);
	/* The final DEREG gets its own short bound. */
	if (!sv->done)
		mc_timerq_arm(&sv->timers, &sv->shutdown_timer,
			      mc_now_ms() + FINAL_DEREG_TIMEOUT_MS + 500);
}
