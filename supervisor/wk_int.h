/* Private to the worker lifecycle (wk.c: spawn, stop, timers;
 * wk_frames.c: what a worker sends; wk_death.c: death, cleanup and what
 * follows). The rest of the supervisor uses sv.h. */
#ifndef MC_SV_WK_INT_H
#define MC_SV_WK_INT_H

#include <limits.h>

#include "common/log.h"
#include "supervisor/sv.h"

#define MC_WK_FRAME_BUDGET 32          /* frames per wakeup per worker */
#define MC_WK_NO_BUDGET    UINT_MAX    /* a dead worker's last frames */

/* wk.c */
void mc_wk_log(enum mc_log_level lvl, const struct mc_wk *wk, const char *msg, const char *k1,
	       const char *v1);
void mc_wk_set_error(struct mc_wk *wk, const char *text);
void mc_wk_arm(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t at);
/* A frame was queued with result rc (of mc_ipc_send_*): flush, or kill the
 * worker whose queue is full. */
void mc_wk_queued(struct mc_sv *sv, struct mc_wk *wk, int rc);
void mc_wk_send_handshake(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_close_channel(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_spawn(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_queue_start(struct mc_sv *sv, struct mc_wk *wk);

/* wk_frames.c */
/* A new life: nothing answered, a full REPORT allowance. */
void mc_wk_frames_reset(struct mc_wk *wk, mc_ms_t now);
/* Handles what the socket holds, up to budget frames (plus what one read
 * already buffered). */
void mc_wk_read_frames(struct mc_sv *sv, struct mc_wk *wk, unsigned budget);
/* RUNNING: pings and the liveness deadline. */
void mc_wk_running_timer(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t now);

/* wk_death.c */
void mc_wk_kill(struct mc_sv *sv, struct mc_wk *wk, const char *why);
/* Killed for breaking the protocol: nothing more it sends is believed. */
void mc_wk_violation(struct mc_sv *sv, struct mc_wk *wk, const char *why);
void mc_wk_start_cleanup(struct mc_sv *sv, struct mc_wk *wk);
/* The worker is dead and its first DEREG is done (or not needed). */
void mc_wk_after_cleanup(struct mc_sv *sv, struct mc_wk *wk);
/* Timer of a CLEANUP worker, and of a BACKOFF/FAILED/CONFIG_ERROR one. */
void mc_wk_cleanup_timer(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_parked_timer(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t now);

#endif
