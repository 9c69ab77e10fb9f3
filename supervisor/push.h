/* The push channel seen from the supervisor (push.c): what the link says
 * about its websocket (PUSH_STATE) and what the server pushed (PUSH), routed
 * to the workers as PUSH_STATE and SYNC_NOW (ipc/ws_msgs.h).
 *
 *   PUSH profiles_changed ws   SYNC_NOW "push" to ws's running worker
 *   PUSH workspaces_changed    membership refresh now (workspaces = all)
 *   PUSH_STATE up              forwarded to every running worker, then one
 *                              SYNC_NOW "reconnect" each, spread at
 *                              MC_PUSH_SPREAD_PER_S; a membership refresh
 *   PUSH_STATE down, the link  forwarded; the spread still pending is
 *   dead or restarted          dropped (the workers' polls run normally)
 *
 * Single-threaded (the supervisor's loop); nothing here allocates but the
 * status JSON. */
#ifndef MC_SV_PUSH_H
#define MC_SV_PUSH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/clock.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "supervisor/timerq.h"

/* The reconnect's profile checks: at most this many SYNC_NOWs a second, so
 * a thousand workspaces cost the server 2 s of 500 GETs/s, not one burst. */
#define MC_PUSH_SPREAD_PER_S 500
/* The spread's timer fires at most this often (a batch each time). */
#define MC_PUSH_SPREAD_TICK_MS 10

struct mc_sv;
struct cJSON;

struct mc_sv_push {
	bool up;                        /* the link's socket is connected */
	mc_ms_t since;                  /* when it last went up or down (0: never) */
	unsigned long connects;         /* how many times it came up */
	/* the reconnect's SYNC_NOWs, to the running workers in id order */
	struct mc_timer timer;
	bool spreading;
	mc_ms_t spread_start;
	size_t spread_sent;
	char spread_after[MC_ID_MAX];   /* the last workspace sent ("" : none yet) */
};

/* How long after the reconnect the i-th (0-based) SYNC_NOW goes out:
 * i / MC_PUSH_SPREAD_PER_S seconds (10 workspaces: within 18 ms; 1000:
 * within 2 s). Pure, for the unit test. */
static inline mc_ms_t mc_push_spread_delay_ms(size_t i)
{
	return (mc_ms_t)(i * 1000 / MC_PUSH_SPREAD_PER_S);
}

/* push.c */
void mc_push_init(struct mc_sv *sv);
/* A PUSH or PUSH_STATE from the link. One that does not parse is the
 * link's protocol violation: it is killed, as for its other bad frames. */
void mc_push_link_frame(struct mc_sv *sv, const struct mc_ipc_frame *f);
/* The link died or is being replaced: its socket is gone. */
void mc_push_link_gone(struct mc_sv *sv);
void mc_push_on_timer(struct mc_sv *sv);
/* The state a worker gets right after its handshake: queues PUSH_STATE
 * {up:true} when the socket is up (nothing otherwise). rc of the send. */
int mc_push_handshake(struct mc_sv *sv, struct mc_ipc_writer *wr);
/* status --json: link.websocket {"state","since_s","connects"}. */
void mc_push_status(struct mc_sv *sv, struct cJSON *link);

#endif
