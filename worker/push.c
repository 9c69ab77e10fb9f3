/* The worker's half of the push channel (ipc/ws_msgs.h). The supervisor
 * forwards the host websocket's state (PUSH_STATE) and asks for a drift
 * check when the server pushed a profile change or the socket came back
 * (SYNC_NOW). A SYNC_NOW runs the poll's own step (PURPOSE_DRIFT: one
 * fetch, signature compare, REG only on drift): it only sets drift_due
 * earlier, so any number of them while a step is out is one more check
 * right after it. */
#include <stdbool.h>
#include <string.h>

#include "common/log.h"
#include "ipc/ws_msgs.h"
#include "worker/worker_int.h"

/* While the socket is up the server pushes every profile change, and the
 * poll is only the safety net against a push that got lost: it runs this
 * many times less often. Down, it is back at profile_sync_interval. */
#define MC_PUSH_POLL_STRETCH 10
/* Socket down and the normal interval already past since the last check:
 * the check comes within this, jittered, so a thousand workers told at
 * the same instant do not fetch together. */
#define MC_PUSH_CATCHUP_MS 1000

static mc_ms_t interval(const struct mc_worker *w)
{
	mc_ms_t i = w->cfg.profile_sync_interval_ms;
	return w->push_up ? i * MC_PUSH_POLL_STRETCH : i;
}

/* Jittered downwards only ([0.9, 1.0] x interval), so workspaces do not
 * poll in lockstep and a change still reaches the server within one
 * interval (plus the request itself). */
static mc_ms_t jittered(const struct mc_worker *w)
{
	mc_ms_t i = interval(w);
	return i - mc_rand_below(i / 10 + 1);
}

mc_ms_t mc_push_next_drift_at(struct mc_worker *w, mc_ms_t now)
{
	w->last_check_at = now;
	return now + jittered(w);
}

static void on_state(struct mc_worker *w, bool up)
{
	if (w->push_up == up)
		return;
	w->push_up = up;
	mc_log(MC_LOG_DEBUG, up ? "websocket up: the profile poll stretches"
			       : "websocket down: the profile poll is back to normal", NULL);
	if (w->next_drift_at == 0)
		return; /* not armed yet: the first arming uses the new interval */
	if (up) {
		w->next_drift_at = w->last_check_at + jittered(w);
		return;
	}
	/* Nothing waits for a reconnect: due one normal interval after the
	 * last check at the latest. */
	mc_ms_t now = mc_now_ms(), due = w->last_check_at + w->cfg.profile_sync_interval_ms;
	if (due <= now)
		due = now + mc_rand_below(MC_PUSH_CATCHUP_MS);
	if (due < w->next_drift_at)
		w->next_drift_at = due;
}

static void on_sync_now(struct mc_worker *w, const char *reason)
{
	/* The first registration reads fresh profiles anyway; a stopping
	 * worker checks nothing. */
	if (!w->first_done || w->stop_requested) {
		mc_log(MC_LOG_DEBUG, w->stop_requested ? "sync now: ignored while stopping"
						  : "sync now: ignored before the first registration",
		       "reason", reason, NULL);
		return;
	}
	mc_log(MC_LOG_DEBUG, "sync now: checking the profiles", "reason", reason,
	       "coalesced", w->drift_due || w->reg != REG_IDLE ? "yes" : "no", NULL);
	w->drift_due = true;
	w->last_check_at = mc_now_ms();
	mc_registrar_event(w, EV_KICK);
}

int mc_push_on_frame(struct mc_worker *w, const struct mc_ipc_frame *f, char *err,
		     size_t err_size)
{
	if (f->type == MC_IPC_PUSH_STATE) {
		bool up;
		if (mc_ipc_parse_push_state(f, &up, err, err_size) < 0)
			return -1;
		on_state(w, up);
		return 0;
	}
	char reason[MC_SYNC_REASON_MAX];
	if (mc_ipc_parse_sync_now(f, reason, sizeof reason, err, err_size) < 0)
		return -1;
	on_sync_now(w, reason);
	return 0;
}
