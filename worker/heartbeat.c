/* Heartbeats: one per tracked runtime every heartbeat_interval, the first
 * one after a uniform random delay in [0, interval) so a fleet does not beat
 * in lockstep. At most one beat per runtime in flight. A 404 "runtime not
 * found" means the row is gone on the server (runtime-gone recovery); any
 * other failure is logged once per failing streak and the runtime is kept.
 * The beat of a runtime that is dropped while it is out becomes a stray:
 * it is left to land, and the dropped ids' DEREG waits for it. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/worker_int.h"

static struct mc_tracked_rt *find_rt(struct mc_worker *w, const char *id)
{
	long i = id ? mc_tracked_find(&w->tracked, id) : -1;
	return i >= 0 ? &w->tracked.v[i] : NULL;
}

/* Tells the registrar when the beats it waits for have all landed. */
static void beats_landed(struct mc_worker *w)
{
	if ((w->waiting_beats && !mc_heartbeat_in_flight(w)) ||
	    (w->reg == REG_DRAINING && w->n_stray_beats == 0))
		mc_registrar_event(w, EV_BEATS_DONE);
}

static bool take_stray(struct mc_worker *w, struct mc_call *call)
{
	for (size_t i = 0; i < w->n_stray_beats; i++) {
		if (w->stray_beats[i] == call) {
			w->stray_beats[i] = w->stray_beats[--w->n_stray_beats];
			return true;
		}
	}
	return false;
}

static void beat_done(struct mc_call *call, void *arg)
{
	struct mc_worker *w = arg;
	if (take_stray(w, call)) {
		/* A dropped runtime's beat: whatever it says, it has landed. */
		mc_call_free(call);
		beats_landed(w);
		return;
	}
	const char *id = mc_call_runtime_id(call);
	struct mc_tracked_rt *rt = find_rt(w, id);
	if (rt == NULL || rt->beat != call) {
		mc_call_free(call); /* cannot happen: dropped beats are strays */
		return;
	}
	if (w->stop_requested) {
		/* Landed: the final DEREG can now be the last word on this row. */
		rt->beat = NULL;
		mc_call_free(call);
		beats_landed(w);
		return;
	}
	rt->beat = NULL;
	const struct mc_api_error *e = mc_call_error(call);
	bool fatal = mc_worker_note_auth(w, e);
	if (e->kind == MC_API_OK) {
		if (rt->beat_failing)
			mc_log(MC_LOG_INFO, "heartbeats succeed again", "runtime", id, NULL);
		rt->beat_failing = false;
	} else if (e->kind == MC_API_ERR_RUNTIME_NOT_FOUND) {
		/* Entry time = when the beat was sent, so a recovery that completed
		 * after this beat left counts as covering it. */
		mc_ms_t sent_at = mc_now_ms() - mc_call_elapsed_us(call) / 1000;
		char *copy = strdup(id);
		mc_call_free(call);
		if (copy != NULL) {
			mc_registrar_runtime_gone(w, copy, sent_at);
			free(copy);
		}
		return;
	} else {
		if (!rt->beat_failing)
			mc_log(MC_LOG_WARN, "heartbeat failed", "runtime", id,
			       "error", e->message, NULL);
		rt->beat_failing = true;
		if (mc_api_error_is_transient(e) && e->kind != MC_API_ERR_HTTP)
			mc_api_close_idle(w->api);
	}
	mc_call_free(call);
	if (fatal)
		mc_worker_fatal(w, "the server rejects this daemon's token");
	else
		beats_landed(w);
}

void mc_heartbeat_tick(struct mc_worker *w, mc_ms_t now)
{
	if (w->stop_requested || w->peer != PEER_READY)
		return;
	mc_ms_t interval = w->cfg.heartbeat_interval_ms;
	for (size_t i = 0; i < w->tracked.n; i++) {
		struct mc_tracked_rt *rt = &w->tracked.v[i];
		if (rt->next_beat == 0) {
			rt->next_beat = now + mc_rand_below(interval);
			continue;
		}
		if (now < rt->next_beat)
			continue;
		rt->next_beat = now + interval;
		if (rt->beat != NULL)
			continue; /* the previous beat is still out: skip this one */
		struct mc_call *call = mc_call_heartbeat(w->api, rt->id);
		if (call == NULL || mc_worker_start_call(w, call, beat_done) < 0) {
			mc_call_free(call);
			continue;
		}
		rt->beat = call;
	}
}

mc_ms_t mc_heartbeat_next_deadline(const struct mc_worker *w)
{
	mc_ms_t d = 0;
	for (size_t i = 0; i < w->tracked.n; i++) {
		mc_ms_t t = w->tracked.v[i].next_beat;
		if (t == 0)
			return mc_now_ms(); /* needs scheduling now */
		if (d == 0 || t < d)
			d = t;
	}
	return d;
}

bool mc_heartbeat_in_flight(const struct mc_worker *w)
{
	if (w->n_stray_beats > 0)
		return true;
	for (size_t i = 0; i < w->tracked.n; i++)
		if (w->tracked.v[i].beat != NULL)
			return true;
	return false;
}

bool mc_heartbeat_strays_in_flight(const struct mc_worker *w)
{
	return w->n_stray_beats > 0;
}

void mc_heartbeat_cancel_all(struct mc_worker *w)
{
	for (size_t i = 0; i < w->tracked.n; i++) {
		mc_call_free(w->tracked.v[i].beat);
		w->tracked.v[i].beat = NULL;
	}
	for (size_t i = 0; i < w->n_stray_beats; i++)
		mc_call_free(w->stray_beats[i]);
	free(w->stray_beats);
	w->stray_beats = NULL;
	w->n_stray_beats = 0;
}

static bool kept(const struct mc_runtime_list *keep, const char *id)
{
	for (size_t i = 0; keep != NULL && i < keep->n; i++)
		if (strcmp(keep->v[i].id, id) == 0)
			return true;
	return false;
}

void mc_heartbeat_detach_dropped(struct mc_worker *w, const struct mc_runtime_list *keep)
{
	for (size_t i = 0; i < w->tracked.n; i++) {
		struct mc_tracked_rt *rt = &w->tracked.v[i];
		if (rt->beat == NULL || kept(keep, rt->id))
			continue;
		struct mc_call **grown =
			realloc(w->stray_beats, (w->n_stray_beats + 1) * sizeof *grown);
		if (grown == NULL)
			continue; /* out of memory: the entry's removal cancels it */
		w->stray_beats = grown;
		w->stray_beats[w->n_stray_beats++] = rt->beat;
		rt->beat = NULL;
	}
}
