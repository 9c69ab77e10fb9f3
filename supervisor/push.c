/* Pushes routed to the workers (push.h). The link holds the host's one
 * websocket; a push is only ever a hint to do now what a poll does anyway,
 * so anything that cannot be delivered (no such worker, one still in its
 * handshake) is dropped with a debug line: its poll catches up. */
#include "supervisor/push.h"

#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/log.h"
#include "ipc/ws_msgs.h"
#include "supervisor/link_proc.h"
#include "supervisor/wk_int.h"

#define SPREAD_BATCH_MAX (2 * MC_PUSH_SPREAD_PER_S * MC_PUSH_SPREAD_TICK_MS / 1000)

void mc_push_init(struct mc_sv *sv)
{
	memset(&sv->push, 0, sizeof sv->push);
	mc_timer_init(&sv->push.timer, TIMER_PUSH, sv);
}

/* Handshake done and believed: it may be sent a push frame. */
static bool reachable(const struct mc_wk *wk)
{
	return wk->state == WK_RUNNING && wk->fd >= 0 && !wk->untrusted;
}

static void sync_now(struct mc_sv *sv, struct mc_wk *wk, const char *reason)
{
	mc_wk_queued(sv, wk, mc_ipc_send_sync_now(&wk->wr, reason));
}

/* ---- the reconnect's spread ---- */

static void spread_stop(struct mc_sv *sv)
{
	mc_timerq_cancel(&sv->timers, &sv->push.timer);
	sv->push.spreading = false;
}

/* The next reachable worker after the cursor, in id order (a worker that
 * came or went since the last batch is simply found or not). */
static struct mc_wk *spread_next(struct mc_sv *sv)
{
	struct mc_wk key, *wk;
	strlcpy(key.ws, sv->push.spread_after, sizeof key.ws);
	wk = sv->push.spread_after[0] ? RB_NFIND(mc_wk_tree, &sv->workers, &key)
				      : RB_MIN(mc_wk_tree, &sv->workers);
	if (wk != NULL && strcmp(wk->ws, key.ws) == 0)
		wk = RB_NEXT(mc_wk_tree, &sv->workers, wk);
	while (wk != NULL && !reachable(wk))
		wk = RB_NEXT(mc_wk_tree, &sv->workers, wk);
	return wk;
}

/* Sends what is due by now, then waits for the next batch. */
static void spread_step(struct mc_sv *sv)
{
	struct mc_sv_push *p = &sv->push;
	mc_ms_t now = mc_now_ms();
	if (!p->spreading || !p->up || sv->shutting_down) {
		spread_stop(sv);
		return;
	}
	/* A loop that fell behind catches up by SPREAD_BATCH_MAX a tick at
	 * most, never with one burst. */
	for (unsigned batch = 0; batch < SPREAD_BATCH_MAX; batch++) {
		if (p->spread_start + mc_push_spread_delay_ms(p->spread_sent) > now)
			break;
		struct mc_wk *wk = spread_next(sv);
		if (wk == NULL) {
			mc_log(MC_LOG_DEBUG, "reconnect: every worker asked to check its profiles",
			       "workers", MC_LOG_NUM(p->spread_sent), NULL);
			spread_stop(sv);
			return;
		}
		strlcpy(p->spread_after, wk->ws, sizeof p->spread_after);
		p->spread_sent++;
		sync_now(sv, wk, "reconnect");
	}
	mc_ms_t at = p->spread_start + mc_push_spread_delay_ms(p->spread_sent);
	if (at < now + MC_PUSH_SPREAD_TICK_MS)
		at = now + MC_PUSH_SPREAD_TICK_MS;
	if (mc_timerq_arm(&sv->timers, &p->timer, at) < 0) {
		mc_log(MC_LOG_ERROR, "out of memory arming the reconnect's profile checks", NULL);
		p->spreading = false; /* the workers' polls still run */
	}
}

void mc_push_on_timer(struct mc_sv *sv)
{
	spread_step(sv);
}

/* ---- the socket's state ---- */

static void forward_state(struct mc_sv *sv, bool up)
{
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp)
		if (reachable(wk))
			mc_wk_queued(sv, wk, mc_ipc_send_push_state(&wk->wr, up));
}

static void set_state(struct mc_sv *sv, bool up)
{
	struct mc_sv_push *p = &sv->push;
	if (!up && !p->up)
		return; /* down and down again: nothing changes */
	if (up && p->up)
		mc_log(MC_LOG_DEBUG, "the link's socket is up again without a down", NULL);
	p->up = up;
	p->since = mc_now_ms();
	p->connects += up;
	spread_stop(sv);
	mc_log(MC_LOG_INFO, up ? "websocket up: the workers' profile polls stretch"
			       : "websocket down: the workers' profile polls back to normal",
	       "connects", MC_LOG_NUM(p->connects), NULL);
	forward_state(sv, up);
	if (!up || sv->shutting_down)
		return;
	/* What was pushed while the socket was down is lost: every worker
	 * checks its profiles once, spread, and the membership list is read. */
	p->spreading = true;
	p->spread_start = p->since;
	p->spread_sent = 0;
	p->spread_after[0] = '\0';
	spread_step(sv);
	mc_membership_refresh_now(sv);
}

void mc_push_link_gone(struct mc_sv *sv)
{
	set_state(sv, false);
}

int mc_push_handshake(struct mc_sv *sv, struct mc_ipc_writer *wr)
{
	return sv->push.up ? mc_ipc_send_push_state(wr, true) : 0;
}

/* ---- what the server pushed ---- */

static void on_push(struct mc_sv *sv, const struct mc_push_msg *m)
{
	if (m->event == MC_PUSH_WORKSPACES_CHANGED) {
		if (!sv->cfg.all_workspaces) {
			mc_log(MC_LOG_DEBUG, "push: workspaces changed; the list is the configuration's",
			       NULL);
			return;
		}
		mc_log(MC_LOG_DEBUG, "push: workspaces changed; refreshing the list", NULL);
		mc_membership_refresh_now(sv);
		return;
	}
	struct mc_wk *wk = mc_wk_find(sv, m->workspace_id);
	if (wk == NULL || !reachable(wk)) {
		mc_log(MC_LOG_DEBUG, wk == NULL ? "push: profiles changed in a workspace not served here"
						: "push: profiles changed; its worker is not running",
		       "ws", m->workspace_id, NULL);
		return;
	}
	mc_wk_log(MC_LOG_DEBUG, wk, "push: profiles changed; checking now", NULL, NULL);
	sync_now(sv, wk, "push");
}

void mc_push_link_frame(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	char err[256];
	if (f->type == MC_IPC_PUSH_STATE) {
		bool up;
		if (mc_ipc_parse_push_state(f, &up, err, sizeof err) < 0) {
			mc_link_proc_kill_why(sv, err);
			return;
		}
		set_state(sv, up);
		return;
	}
	struct mc_push_msg m;
	if (mc_ipc_parse_push(f, &m, err, sizeof err) < 0) {
		mc_link_proc_kill_why(sv, err);
		return;
	}
	if (!sv->shutting_down)
		on_push(sv, &m);
}

/* ---- status ---- */

void mc_push_status(struct mc_sv *sv, cJSON *link)
{
	const struct mc_sv_push *p = &sv->push;
	cJSON *o = cJSON_AddObjectToObject(link, "websocket");
	if (o == NULL)
		return;
	mc_ms_t since = p->since != 0 ? p->since : sv->started_at;
	cJSON_AddStringToObject(o, "state", !sv->cfg.websocket ? "off" : p->up ? "up" : "down");
	cJSON_AddNumberToObject(o, "since_s", (double)((mc_now_ms() - since) / 1000));
	cJSON_AddNumberToObject(o, "connects", (double)p->connects);
}
