/* The worker's register step: the one place that sends REG and the DEREG of
 * dropped ids, serialized like multica's per-workspace register lock, as an
 * explicit state x event machine.
 *
 *   IDLE --KICK--> FETCHING --FETCH_DONE--> [PROBING] --> REGISTERING
 *        --REG_DONE--> [DRAINING --BEATS_DONE-->] [DEREGISTERING] --> IDLE
 *   IDLE --KICK (a failed DEREG's retry is due)--> [DRAINING] --> DEREGISTERING
 *   any --STOP--> STOPPING (after waiting for an in-flight REG) --> DONE
 *
 * Dropped ids stay pending (and reported) until a DEREG of them works;
 * a failed one is retried on its own backoff between steps (dropped.c).
 *
 * Purposes: FIRST (REG then recover-orphans for every id), DRIFT (REG only
 * when the signature changed; never recover-orphans), RECOVERY (after a
 * runtime-gone; recover-orphans only for ids not tracked before), BUILTINS
 * (the supervisor's probe result changed). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/task_exec.h"
#include "worker/worker_int.h"

static const char *const purpose_names[PURPOSE_COUNT] = {
	[PURPOSE_FIRST] = "first", [PURPOSE_DRIFT] = "drift",
	[PURPOSE_RECOVERY] = "recovery", [PURPOSE_BUILTINS] = "builtins",
};

static void call_done(struct mc_call *call, void *arg);
static void begin_final_dereg(struct mc_worker *w);
static void send_register(struct mc_worker *w);
static void remember_resolution(struct mc_worker *w);

/* ---- small helpers ---- */

static void set_state(struct mc_worker *w, enum mc_reg_state s)
{
	w->reg = s;
}

static void cancel_reg_call(struct mc_worker *w)
{
	mc_call_free(w->reg_call);
	w->reg_call = NULL;
}

static void clear_step(struct mc_worker *w)
{
	cancel_reg_call(w);
	mc_profile_list_clear(&w->fetched);
	w->fetched_ok = false;
	w->fetched_sig = mc_signature_unknown();
	mc_payload_clear(&w->payload);
	mc_ids_free(w->ids_before, w->n_ids_before);
	w->ids_before = NULL;
	w->n_ids_before = 0;
}

/* msg is a string literal: it also keys the repeat suppression, so a
 * flapping server yields one line a minute per kind of failure. */
static void log_call_error(const char *msg, const struct mc_call *call)
{
	const struct mc_api_error *e = mc_call_error(call);
	mc_log_rl(MC_LOG_REPEAT_WINDOW_MS, MC_LOG_WARN, msg, "error", e->message,
		  "kind", mc_api_error_kind_name(e->kind), NULL);
}

static bool start(struct mc_worker *w, struct mc_call *call)
{
	if (call == NULL || mc_worker_start_call(w, call, call_done) < 0) {
		mc_call_free(call);
		return false;
	}
	w->reg_call = call;
	return true;
}

/* Ends the current step without judging it. A pending stop takes over. */
static void end_step(struct mc_worker *w)
{
	clear_step(w);
	set_state(w, REG_IDLE);
	if (w->stop_requested)
		begin_final_dereg(w);
}

/* Success resets the step backoff, failure delays the next step. The DEREG
 * of dropped ids is judged apart (worker/dropped.c has its own backoff). */
static void judge_step(struct mc_worker *w, bool success)
{
	if (success) {
		mc_backoff_reset(&w->step_backoff);
		w->step_retry_at = 0;
	} else {
		w->step_retry_at = mc_now_ms() + mc_backoff_next(&w->step_backoff);
	}
}

static void finish_step(struct mc_worker *w, bool success)
{
	judge_step(w, success);
	end_step(w);
}

/* ---- the DEREG of dropped ids (the pending set: worker/dropped.c) ---- */

/* Takes ownership of ids: they stay in every REPORT until a DEREG of them
 * works. An id registered again leaves the set. */
static void keep_dropped(struct mc_worker *w, char **ids, size_t n)
{
	if (mc_dropped_add(&w->dropped, ids, n) < 0)
		mc_log(MC_LOG_ERROR, "out of memory: dropped runtimes left to the server's sweep",
		       NULL);
	mc_dropped_forget_tracked(&w->dropped, &w->tracked);
}

/* call: the failed DEREG, or NULL when it could not start. The ids stay
 * pending; the step ends, so a REG or a drift check is not held back. */
static void dereg_dropped_failed(struct mc_worker *w, const struct mc_call *call)
{
	mc_ms_t delay = mc_dropped_failed(&w->dropped, mc_now_ms());
	mc_log_rl(MC_LOG_REPEAT_WINDOW_MS, MC_LOG_WARN, "deregistering dropped runtimes failed",
		  "error", call != NULL ? mc_call_error(call)->message : "could not start it",
		  "count", MC_LOG_NUM(w->dropped.n), "retry_in_ms", MC_LOG_NUM(delay), NULL);
}

static void send_dereg_dropped(struct mc_worker *w)
{
	/* Re-check right before sending: never take offline what we host. */
	mc_dropped_forget_tracked(&w->dropped, &w->tracked);
	struct mc_dropped *d = &w->dropped;
	if (d->n == 0) {
		end_step(w);
		return;
	}
	mc_log(MC_LOG_INFO, "deregistering runtimes no longer hosted",
	       "count", MC_LOG_NUM(d->n), "first", d->ids[0], NULL);
	if (!start(w, mc_call_deregister(w->api, d->n, (const char *const *)d->ids))) {
		dereg_dropped_failed(w, NULL);
		end_step(w);
		return;
	}
	d->n_sent = d->n;
	set_state(w, REG_DEREGISTERING);
}

/* The pending ids' beats still out land first (bounded): a beat landing
 * after the DEREG would revive its row. Stopping: the final DEREG, about
 * to be sent, takes them. */
static void start_dereg_dropped(struct mc_worker *w)
{
	if (w->stop_requested || w->dropped.n == 0) {
		end_step(w);
		return;
	}
	if (mc_heartbeat_strays_in_flight(w)) {
		w->drain_deadline = mc_now_ms() + MC_WORKER_BEAT_WAIT_MS;
		set_state(w, REG_DRAINING);
		return;
	}
	send_dereg_dropped(w);
}

/* After a step that changed the tracked set: the DEREG if it is due (a
 * fresh drop is), else the ids wait for their retry. */
static void dereg_dropped_if_due(struct mc_worker *w)
{
	if (mc_dropped_due(&w->dropped, mc_now_ms()))
		start_dereg_dropped(w);
	else
		end_step(w);
}

/* ---- the step's phases ---- */

/* Remembers the fetched list as the one the server has now. */
static void commit_signature(struct mc_worker *w)
{
	if (!w->fetched_ok)
		return;
	w->sig = w->fetched_sig;
	mc_profile_list_clear(&w->cached_profiles);
	w->cached_profiles = w->fetched;
	memset(&w->fetched, 0, sizeof w->fetched);
	w->cached_profiles_known = true;
}

static void complete_recovery(struct mc_worker *w, bool success)
{
	if (w->purpose != PURPOSE_RECOVERY)
		return;
	mc_gone_slot_complete(&w->gone, success, mc_now_ms());
	w->recovery_retry = !success;
}

/* Nothing to register at all: converge to zero (deregister everything,
 * remember the signature, stay quiet until it changes). */
static void converge_to_zero(struct mc_worker *w)
{
	commit_signature(w);
	remember_resolution(w);
	complete_recovery(w, true);
	/* build_payload retries a FIRST whose fetch failed, so the list is known. */
	w->first_done = true;
	if (w->tracked.n == 0) {
		finish_step(w, true);
		return;
	}
	char **ids;
	size_t n;
	mc_heartbeat_detach_dropped(w, NULL);
	if (mc_tracked_take_all(&w->tracked, &ids, &n) < 0) {
		finish_step(w, false);
		return;
	}
	keep_dropped(w, ids, n);
	mc_log(MC_LOG_INFO, "no runtimes left to host", "dropped", MC_LOG_NUM(n), NULL);
	mc_peer_report(w);
	judge_step(w, true);
	dereg_dropped_if_due(w);
}

/* Fills the custom runtimes' versions from the probe cache. Returns true when
 * all are known. */
static bool fill_versions(struct mc_worker *w)
{
	bool all = true;
	for (size_t i = 0; i < w->payload.n_rt; i++) {
		struct mc_payload_rt *rt = &w->payload.rt[i];
		if (rt->version_known)
			continue;
		const char *v = "";
		int rc = mc_vprobe_get(w->vprobes, rt->path, rt->args, rt->n_args, &v);
		if (rc == 0) {
			all = false;
			continue;
		}
		char *copy = strdup(v);
		if (copy != NULL) {
			free(rt->version);
			rt->version = copy;
		}
		rt->version_known = true;
	}
	return all;
}

static void remember_resolution(struct mc_worker *w)
{
	mc_payload_fingerprint(&w->payload, w->resolution_fp);
	w->resolution_known = true;
}

static bool resolution_changed(const struct mc_worker *w)
{
	unsigned char fp[MC_PAYLOAD_FP_BYTES];
	mc_payload_fingerprint(&w->payload, fp);
	return !w->resolution_known || memcmp(fp, w->resolution_fp, sizeof fp) != 0;
}

static bool make_payload(struct mc_worker *w, const struct mc_profile_list *profiles)
{
	mc_payload_clear(&w->payload);
	if (mc_payload_build(&w->payload, &w->builtins, profiles, &w->cfg, getenv("PATH")) < 0) {
		mc_log(MC_LOG_ERROR, "out of memory building the registration", NULL);
		finish_step(w, false);
		return false;
	}
	if (profiles != NULL)
		mc_payload_warn_limits(&w->payload, profiles->n);
	w->payload_builtins_gen = w->builtins_gen;
	return true;
}

/* A REG creates rows only the next REPORT tells the supervisor of: one
 * that could not hold them all (a pending DEREG of dropped ids plus a new
 * set) waits, on the step's backoff, until that DEREG worked. */
static bool report_would_overflow(struct mc_worker *w)
{
	size_t n = mc_payload_ids_after(&w->payload, &w->tracked, w->dropped.n);
	if (n <= MC_MAX_REPORT)
		return false;
	mc_log_rl(MC_LOG_REPEAT_WINDOW_MS, MC_LOG_WARN,
		  "registration deferred until dropped runtimes are deregistered: "
		  "the report to the supervisor would be over its limit",
		  "ids_after", MC_LOG_NUM(n), "report_max", MC_LOG_NUM(MC_MAX_REPORT),
		  "dropped_pending", MC_LOG_NUM(w->dropped.n), NULL);
	complete_recovery(w, false);
	finish_step(w, false);
	return true;
}

/* With a payload built: converge, probe versions, or register. */
static void proceed_with_payload(struct mc_worker *w)
{
	if (!mc_payload_empty(&w->payload) && report_would_overflow(w))
		return;
	if (mc_payload_empty(&w->payload)) {
		if (w->purpose == PURPOSE_FIRST && !w->fetched_ok) {
			/* Nothing known to host and the profiles are unknown: retry. */
			finish_step(w, false);
			return;
		}
		converge_to_zero(w);
		return;
	}
	if (!fill_versions(w)) {
		set_state(w, REG_PROBING);
		return;
	}
	send_register(w);
}

static void build_payload(struct mc_worker *w, const struct mc_profile_list *profiles)
{
	if (make_payload(w, profiles))
		proceed_with_payload(w);
}

static void send_register(struct mc_worker *w)
{
	struct mc_register_request req;
	struct mc_reg_runtime *rt_buf;
	struct mc_reg_failed *failed_buf;
	if (mc_payload_request(&w->payload, &w->cfg, &req, &rt_buf, &failed_buf) < 0) {
		finish_step(w, false);
		return;
	}
	struct mc_call *call = mc_call_register(w->api, &req);
	free(rt_buf);
	free(failed_buf);
	/* Snapshot what we host now, for recovery's recover-orphans rule. */
	const char **view = mc_tracked_id_view(&w->tracked);
	w->n_ids_before = 0;
	if (w->tracked.n > 0 && view != NULL &&
	    (w->ids_before = calloc(w->tracked.n, sizeof *w->ids_before)) != NULL) {
		for (size_t i = 0; i < w->tracked.n; i++)
			if ((w->ids_before[w->n_ids_before] = strdup(view[i])) != NULL)
				w->n_ids_before++;
	}
	free(view);
	mc_log(MC_LOG_INFO, "registering runtimes", "purpose", purpose_names[w->purpose],
	       "runtimes", MC_LOG_NUM(w->payload.n_rt),
	       "failed_profiles", MC_LOG_NUM(w->payload.n_failed), NULL);
	if (!start(w, call)) {
		finish_step(w, false);
		return;
	}
	set_state(w, REG_REGISTERING);
}

static void begin(struct mc_worker *w, enum mc_reg_purpose purpose)
{
	w->purpose = purpose;
	switch (purpose) {
	case PURPOSE_RECOVERY: w->recovery_due = false; break;
	case PURPOSE_BUILTINS: w->builtins_changed = false; break;
	case PURPOSE_DRIFT: w->drift_due = false; break;
	default: break;
	}
	if (!start(w, mc_call_runtime_profiles(w->api, w->cfg.workspace_id))) {
		finish_step(w, false);
		return;
	}
	set_state(w, REG_FETCHING);
}

static void start_next(struct mc_worker *w)
{
	if (w->stop_requested) {
		begin_final_dereg(w);
		return;
	}
	if (w->peer != PEER_READY)
		return;
	if (mc_dropped_due(&w->dropped, mc_now_ms())) {
		start_dereg_dropped(w); /* a retry: on its own backoff */
		return;
	}
	if (mc_now_ms() < w->step_retry_at)
		return;
	if (!w->first_done)
		begin(w, PURPOSE_FIRST);
	else if (w->recovery_due)
		begin(w, PURPOSE_RECOVERY);
	else if (w->builtins_changed && mc_now_ms() >= w->builtins_due_at)
		begin(w, PURPOSE_BUILTINS); /* jittered: see apply_probes */
	else if (w->drift_due)
		begin(w, PURPOSE_DRIFT);
}

static void on_fetch_done(struct mc_worker *w)
{
	struct mc_call *call = w->reg_call;
	w->reg_call = NULL;
	bool fatal = mc_worker_note_auth(w, mc_call_error(call));
	if (mc_call_ok(call) && mc_call_take_profiles(call, &w->fetched) == 0 &&
	    mc_signature_compute(&w->fetched, &w->fetched_sig) == 0)
		w->fetched_ok = true;
	else if (!mc_call_ok(call))
		log_call_error("fetching runtime profiles failed", call);
	mc_call_free(call);
	if (fatal) {
		clear_step(w);
		set_state(w, REG_IDLE); /* so the stop it triggers is not held back */
		mc_worker_fatal(w, "the server rejects this daemon's token or workspace");
		return;
	}

	switch (w->purpose) {
	case PURPOSE_DRIFT:
		if (!w->fetched_ok) {
			/* Best effort: keep the cached signature, no REG, no DEREG. */
			finish_step(w, false);
			return;
		}
		if (mc_signature_equal(&w->fetched_sig, &w->sig)) {
			/* Same profiles; but did a command appear or vanish here? */
			if (!make_payload(w, &w->fetched))
				return;
			/* A changed built-in set has its own step, jittered so that
			 * every worker (told at once) does not re-register at once:
			 * an early check (a push's, a reconnect's) leaves it to it. */
			if (!resolution_changed(w) ||
			    (w->builtins_changed && mc_now_ms() < w->builtins_due_at)) {
				finish_step(w, true);
				return;
			}
			mc_log(MC_LOG_INFO, "a profile command changed on this host", NULL);
			proceed_with_payload(w);
			return;
		}
		mc_log(MC_LOG_INFO, "runtime profiles changed on the server",
		       "profiles", MC_LOG_NUM(w->fetched.n), NULL);
		build_payload(w, &w->fetched);
		return;
	case PURPOSE_FIRST:
		/* A failed fetch registers the built-ins alone, as multica does;
		 * the drift loop adds the custom runtimes once a fetch works. */
		build_payload(w, w->fetched_ok ? &w->fetched : NULL);
		return;
	default:
		/* Recovery and built-in changes must not tear down custom runtimes
		 * because one fetch failed: fall back to the last known list. */
		build_payload(w, w->fetched_ok ? &w->fetched
				 : w->cached_profiles_known ? &w->cached_profiles : NULL);
		return;
	}
}

static void on_register_done(struct mc_worker *w)
{
	struct mc_call *call = w->reg_call;
	w->reg_call = NULL;
	struct mc_runtime_list resp = { 0 };
	bool ok = mc_call_ok(call) && mc_call_take_runtimes(call, &resp) == 0;
	if (ok && mc_worker_fault(w, "exit_after_register"))
		_exit(99); /* the rows exist on the server; nobody was told */
	bool fatal = mc_worker_note_auth(w, mc_call_error(call));
	if (!ok)
		log_call_error("register failed", call);
	mc_call_free(call);
	if (fatal) {
		mc_runtime_list_clear(&resp);
		clear_step(w);
		set_state(w, REG_IDLE); /* so the stop it triggers is not held back */
		mc_worker_fatal(w, "the server rejects this daemon's token or workspace");
		return;
	}
	if (!ok) {
		/* The signature stays as it was, so the next tick retries. */
		complete_recovery(w, false);
		finish_step(w, false);
		return;
	}

	char **dropped, **added;
	size_t n_dropped, n_added;
	mc_heartbeat_detach_dropped(w, &resp);
	int rc = mc_tracked_replace(&w->tracked, &resp, &dropped, &n_dropped, &added, &n_added);
	mc_runtime_list_clear(&resp);
	if (rc < 0) {
		complete_recovery(w, false);
		finish_step(w, false);
		return;
	}
	mc_ids_free(added, n_added);
	keep_dropped(w, dropped, n_dropped);
	mc_log(MC_LOG_INFO, "registered runtimes", "purpose", purpose_names[w->purpose],
	       "runtimes", MC_LOG_NUM(w->tracked.n), "dropped", MC_LOG_NUM(n_dropped), NULL);
	/* Written before anything else runs: a worker dying from here on
	 * leaves no row the supervisor does not know of. */
	mc_peer_report(w);
	commit_signature(w);
	remember_resolution(w);
	mc_exec_registered(w);
	mc_orphans_after_register(w);
	complete_recovery(w, true);
	/* Any REG built from the current built-in set (a drift that noticed the
	 * change first, say) makes the pending BUILTINS step redundant. */
	if (w->payload_builtins_gen == w->builtins_gen)
		w->builtins_changed = false;
	w->first_done = true;
	judge_step(w, true);
	dereg_dropped_if_due(w);
}

static void on_dereg_done(struct mc_worker *w)
{
	struct mc_call *call = w->reg_call;
	w->reg_call = NULL;
	const struct mc_api_error *e = mc_call_error(call);
	bool fatal = mc_worker_note_auth(w, e);
	if (mc_call_ok(call) || e->kind == MC_API_ERR_RUNTIME_NOT_FOUND) {
		mc_log(MC_LOG_INFO, "deregistered runtimes no longer hosted",
		       "count", MC_LOG_NUM(w->dropped.n_sent), NULL);
		mc_dropped_succeeded(&w->dropped);
		mc_peer_report(w); /* only now may the supervisor forget them */
	} else {
		dereg_dropped_failed(w, call);
	}
	mc_call_free(call);
	end_step(w);
	if (fatal)
		mc_worker_fatal(w, "the server rejects this daemon's token or workspace");
}

/* ---- stopping ---- */

static void finish_stop(struct mc_worker *w, bool deregistered)
{
	cancel_reg_call(w);
	/* The last report says what is still online: nothing, or the ids whose
	 * DEREG failed, which the supervisor's ledger keeps for its cleanup. */
	if (deregistered || w->n_final_ids == 0)
		mc_peer_report(w);
	else if (mc_ipc_send_report(&w->wr, w->n_final_ids, (const char *const *)w->final_ids) < 0)
		mc_log(MC_LOG_ERROR, "cannot queue the last report", NULL);
	mc_ids_free(w->final_ids, w->n_final_ids);
	w->final_ids = NULL;
	w->n_final_ids = 0;
	w->stop_deregistered = deregistered;
	mc_ipc_send_stopped(&w->wr, deregistered);
	mc_log(MC_LOG_INFO, "worker stopped", "deregistered", deregistered ? "true" : "false",
	       NULL);
	set_state(w, REG_DONE);
	w->exit_now = true;
}

static void cancel_side_calls(struct mc_worker *w)
{
	mc_orphans_cancel(w);
	if (w->vprobes != NULL)
		mc_vprobe_abort(w->vprobes);
}

/* One DEREG with every id we hold (tracked, plus dropped ids whose DEREG
 * is pending), bounded by what is left of the stop budget. */
static void begin_final_dereg(struct mc_worker *w)
{
	cancel_side_calls(w);
	cancel_reg_call(w);
	/* A heartbeat already on the wire revives its row if it lands after the
	 * DEREG (the server revives offline rows): let in-flight beats land
	 * first, for at most MC_WORKER_BEAT_WAIT_MS of the stop budget. */
	if (mc_heartbeat_in_flight(w) &&
	    mc_now_ms() < w->stop_deadline - MC_WORKER_STOP_BUDGET_MS + MC_WORKER_BEAT_WAIT_MS) {
		w->waiting_beats = true;
		set_state(w, REG_STOPPING);
		return;
	}
	w->waiting_beats = false;
	mc_heartbeat_cancel_all(w);
	char **ids;
	size_t n;
	if (mc_tracked_take_all(&w->tracked, &ids, &n) < 0) {
		finish_stop(w, false);
		return;
	}
	/* On failure they stay pending, so the last report still lists them. */
	if (mc_dropped_take_all(&w->dropped, &ids, &n) < 0)
		mc_log(MC_LOG_ERROR, "out of memory: the final deregister leaves dropped runtimes out",
		       NULL);
	mc_payload_clear(&w->payload);
	set_state(w, REG_STOPPING);
	if (n == 0) {
		free(ids);
		finish_stop(w, true);
		return;
	}
	w->final_ids = ids;
	w->n_final_ids = n;
	mc_log(MC_LOG_INFO, "deregistering every runtime before exit", "count", MC_LOG_NUM(n),
	       NULL);
	struct mc_call *call = mc_call_deregister(w->api, n, (const char *const *)ids);
	mc_ms_t left = w->stop_deadline - mc_now_ms();
	if (call != NULL)
		mc_call_set_timeout(call, left > 1000 ? (long)left : 1000);
	if (!start(w, call))
		finish_stop(w, false);
}

static void on_final_dereg_done(struct mc_worker *w)
{
	bool ok = mc_call_ok(w->reg_call);
	if (!ok)
		log_call_error("deregister at stop failed", w->reg_call);
	finish_stop(w, ok);
}

/* ---- the state x event table ---- */

static void on_idle(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_KICK)
		start_next(w);
	else if (ev == EV_STOP)
		begin_final_dereg(w);
}

static void on_fetching(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_FETCH_DONE)
		on_fetch_done(w);
	else if (ev == EV_STOP)
		begin_final_dereg(w); /* nothing was sent that could create rows */
}

static void on_probing(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_PROBES_DONE && fill_versions(w))
		send_register(w);
	else if (ev == EV_STOP)
		begin_final_dereg(w);
}

static void on_registering(struct mc_worker *w, enum mc_reg_event ev)
{
	/* A REG in flight may create rows we do not know yet: on STOP, wait
	 * for its answer (bounded) so the final DEREG can include them. */
	if (ev == EV_REG_DONE)
		on_register_done(w);
	else if (ev == EV_STOP_DEADLINE)
		begin_final_dereg(w);
}

static void on_draining(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_BEATS_DONE)
		send_dereg_dropped(w);
	else if (ev == EV_STOP)
		begin_final_dereg(w); /* it waits for the beats, then takes the ids */
}

static void on_deregistering(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_DEREG_DONE)
		on_dereg_done(w);
	else if (ev == EV_STOP)
		begin_final_dereg(w); /* the dropped ids join the final DEREG */
}

static void on_stopping(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_BEATS_DONE && w->waiting_beats)
		begin_final_dereg(w);
	else if (ev == EV_DEREG_DONE)
		on_final_dereg_done(w);
	else if (ev == EV_STOP_DEADLINE)
		finish_stop(w, false);
}

static void on_done(struct mc_worker *w, enum mc_reg_event ev)
{
	(void)w;
	(void)ev;
}

typedef void (*reg_handler)(struct mc_worker *w, enum mc_reg_event ev);

static const reg_handler handlers[REG_STATE_COUNT] = {
	[REG_IDLE] = on_idle,
	[REG_FETCHING] = on_fetching,
	[REG_PROBING] = on_probing,
	[REG_REGISTERING] = on_registering,
	[REG_DRAINING] = on_draining,
	[REG_DEREGISTERING] = on_deregistering,
	[REG_STOPPING] = on_stopping,
	[REG_DONE] = on_done,
};

void mc_registrar_event(struct mc_worker *w, enum mc_reg_event ev)
{
	if (ev == EV_STOP && !w->stop_requested && mc_exec_defer_stop(w))
		return; /* the executor raises EV_STOP again once its tasks have ended */
	if (ev == EV_STOP && !w->stop_requested) {
		w->stop_requested = true;
		w->stop_deadline = mc_now_ms() + MC_WORKER_STOP_BUDGET_MS;
	}
	handlers[w->reg](w, ev);
}

static void call_done(struct mc_call *call, void *arg)
{
	struct mc_worker *w = arg;
	if (call != w->reg_call) {
		mc_call_free(call); /* a stale answer of a cancelled step */
		return;
	}
	switch (mc_call_endpoint(call)) {
	case MC_EP_RUNTIME_PROFILES: mc_registrar_event(w, EV_FETCH_DONE); break;
	case MC_EP_REGISTER:
		mc_registrar_event(w, EV_REG_DONE);
		if (mc_worker_fault(w, "exit_after_register_done"))
			_exit(99); /* as if the next callback crashed */
		break;
	case MC_EP_DEREGISTER: mc_registrar_event(w, EV_DEREG_DONE); break;
	default: break;
	}
}

/* ---- inputs from the rest of the worker ---- */

void mc_registrar_runtime_gone(struct mc_worker *w, const char *runtime_id, mc_ms_t entry_at)
{
	if (w->stop_requested)
		return;
	if (!mc_tracked_remove(&w->tracked, runtime_id))
		return; /* a straggler for a runtime we no longer track */
	mc_log(MC_LOG_WARN, "runtime gone on the server", "runtime", runtime_id, NULL);
	mc_peer_report(w);
	if (mc_gone_slot_try_claim(&w->gone, entry_at, mc_now_ms()))
		w->recovery_due = true;
}

void mc_registrar_timers(struct mc_worker *w, mc_ms_t now)
{
	if (w->stop_requested) {
		if (w->waiting_beats &&
		    now >= w->stop_deadline - MC_WORKER_STOP_BUDGET_MS + MC_WORKER_BEAT_WAIT_MS) {
			begin_final_dereg(w); /* the beats took too long: DEREG now */
			return;
		}
		if (now >= w->stop_deadline ||
		    (w->reg == REG_REGISTERING && now >= w->stop_deadline - 2000))
			mc_registrar_event(w, EV_STOP_DEADLINE);
		return;
	}
	if (w->reg == REG_DRAINING && now >= w->drain_deadline) {
		mc_log(MC_LOG_WARN, "heartbeats of dropped runtimes are slow; deregistering anyway",
		       NULL);
		send_dereg_dropped(w);
	}
	if (w->peer != PEER_READY)
		return;
	if (w->next_drift_at == 0)
		w->next_drift_at = mc_push_next_drift_at(w, now); /* push.c: maybe stretched */
	if (now >= w->next_drift_at) {
		if (w->first_done)
			w->drift_due = true;
		w->next_drift_at = mc_push_next_drift_at(w, now);
	}
	if (w->recovery_retry && now >= w->gone.next_attempt) {
		w->recovery_retry = false;
		if (mc_gone_slot_try_claim(&w->gone, now, now))
			w->recovery_due = true;
	}
	if (w->reg == REG_PROBING && !mc_vprobe_busy(w->vprobes))
		mc_registrar_event(w, EV_PROBES_DONE);
	mc_registrar_event(w, EV_KICK);
}

mc_ms_t mc_registrar_next_deadline(const struct mc_worker *w)
{
	if (w->stop_requested) {
		if (w->waiting_beats)
			return w->stop_deadline - MC_WORKER_STOP_BUDGET_MS + MC_WORKER_BEAT_WAIT_MS;
		return w->reg == REG_REGISTERING ? w->stop_deadline - 2000 : w->stop_deadline;
	}
	mc_ms_t d = w->next_drift_at;
	if (w->reg == REG_DRAINING && (d == 0 || w->drain_deadline < d))
		d = w->drain_deadline;
	if (w->step_retry_at > 0 && (d == 0 || w->step_retry_at < d))
		d = w->step_retry_at;
	if (w->recovery_retry && (d == 0 || w->gone.next_attempt < d))
		d = w->gone.next_attempt;
	if (w->dropped.n > 0 && w->dropped.retry_at > 0 && (d == 0 || w->dropped.retry_at < d))
		d = w->dropped.retry_at;
	mc_ms_t p = w->vprobes ? mc_vprobe_next_deadline(w->vprobes) : -1;
	if (p >= 0 && (d == 0 || p < d))
		d = p;
	return d;
}
