/* The frames of the websocket push channel (issue 14). The link holds the
 * one socket of the host; the supervisor routes what it hears:
 *
 *   L->S PUSH        {"event":"profiles_changed","workspace_id":"<uuid>"}
 *                    {"event":"workspaces_changed"}
 *                    (daemon:task_available never leaves the link: it claims)
 *   L->S PUSH_STATE  {"up":true|false}  the socket connected / went away
 *   S->W PUSH_STATE  {"up":true|false}  forwarded to every worker (a new
 *                    worker gets the current state after its CONFIG):
 *                    while up, its drift poll stretches (DESIGN: x10)
 *   S->W SYNC_NOW    {"reason":"push"|"reconnect"}  run the drift check at
 *                    once: one profile fetch, signature compare, REG only on
 *                    drift, as the poll does (coalesced with one in flight)
 *
 * Error convention of ipc/messages.h: 0, or -1 with errno (EPROTO and why
 * in err for an invalid payload). */
#ifndef MC_IPC_WS_MSGS_H
#define MC_IPC_WS_MSGS_H

#include <stdbool.h>
#include <stddef.h>

#include "ipc/frame.h"
#include "ipc/messages.h"

enum mc_push_event {
	MC_PUSH_PROFILES_CHANGED = 1,
	MC_PUSH_WORKSPACES_CHANGED = 2,
};

struct mc_push_msg {
	enum mc_push_event event;
	char workspace_id[40];            /* PROFILES_CHANGED: a UUID; else "" */
};

#define MC_SYNC_REASON_MAX 32

/* EINVAL (nothing queued): a PROFILES_CHANGED without a UUID. */
int mc_ipc_send_push(struct mc_ipc_writer *w, const struct mc_push_msg *m);
int mc_ipc_parse_push(const struct mc_ipc_frame *f, struct mc_push_msg *m, char *err,
		      size_t err_size);
int mc_ipc_send_push_state(struct mc_ipc_writer *w, bool up);
int mc_ipc_parse_push_state(const struct mc_ipc_frame *f, bool *up, char *err, size_t err_size);
/* reason: non-empty, < MC_SYNC_REASON_MAX bytes. */
int mc_ipc_send_sync_now(struct mc_ipc_writer *w, const char *reason);
int mc_ipc_parse_sync_now(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
			  char *err, size_t err_size);

#endif
