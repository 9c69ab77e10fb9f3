/* The link process as the supervisor holds it (link_proc.c, over
 * hostproc.c: its life; route.c: what it sends and what it is sent).
 * Private to those two and the few hooks sv.h declares. Error convention: 0 / -1 with errno. */
#ifndef MC_SV_LINK_PROC_H
#define MC_SV_LINK_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/backoff.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "supervisor/hostproc.h"
#include "supervisor/sv.h"

struct mc_link_proc {
	struct mc_hostproc hp;          /* its life (hostproc.c) */
	unsigned reloads_seen;          /* sv->reloads when its CONFIG was checked */
	char cfg_digest[65];            /* of the CONFIG it was given */

	/* route.c */
	int outstanding;                /* granted by the last SLOTS, not yet accounted */
	bool claim_open;                /* SLOTS sent, CLAIM_DONE not yet seen */
	char (*dirty)[MC_ID_MAX];       /* workspaces whose RUNTIMES are due (heap) */
	size_t n_dirty, cap_dirty;
	bool wake_due;
	char wake_reason[32];
};


/* link_proc.c */
bool mc_link_proc_running(const struct mc_sv *sv);
/* A reload or a new token: the link gets the token, or restarts for a
 * changed CONFIG. Cheap when nothing changed (once per loop turn). */
void mc_link_proc_follow(struct mc_sv *sv);
/* A frame was queued with rc: flush. A full queue kills the link (it
 * stopped reading); -1 then, and for any other rc < 0 (that frame only). */
int mc_link_proc_queued(struct mc_sv *sv, int rc);
void mc_link_proc_kill_why(struct mc_sv *sv, const char *why);
void mc_link_proc_on_hello(struct mc_sv *sv, const struct mc_ipc_frame *f);
void mc_link_proc_on_pong(struct mc_sv *sv, const struct mc_ipc_frame *f);
/* The link's CONFIG: the worker's, workspace_id "". */
void mc_link_proc_build_config(const struct mc_sv *sv, struct mc_worker_config *c);

/* route.c */
void mc_route_link_frame(struct mc_sv *sv, const struct mc_ipc_frame *f);
/* The handshake is done: every workspace's RUNTIMES, then a WAKE. */
void mc_route_link_ready(struct mc_sv *sv);
/* The link died or was killed: the grant it held goes back. */
void mc_route_link_gone(struct mc_sv *sv);

#endif
