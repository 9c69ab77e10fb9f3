/* multica-fakeplane: GET /api/daemon/ws, the daemon's websocket
 * (reference/multica-websocket.md sections 1, 2, 5, 7).
 *
 * The hub holds every open socket, each served by a thread of its own
 * (the socket comes from libmicrohttpd's upgrade, http.c). Pushes are
 * encoded frames queued per connection, at most FP_WS_QUEUE_MAX as the
 * real server's send channel: a push into a full queue evicts the
 * connection (CLOSE, then closed), as H:475-481 does.
 *
 * Locking: the hub has its own mutex. Pushes are called with the state
 * lock held (state lock, then hub lock); the hub never takes the state
 * lock while holding its own. */
#ifndef FP_WS_H
#define FP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tests/fakeplane/app.h"
#include "tests/fakeplane/util.h"

#define FP_WS_PATH "/api/daemon/ws"
#define FP_WS_QUEUE_MAX 16               /* H:302 */
#define FP_WS_READ_LIMIT (64u << 10)     /* H:710: bigger client messages get 1009 */
#define FP_WS_PING_INTERVAL_MS 54000     /* pongWait * 9 / 10 */
#define FP_WS_PONG_WAIT_MS 60000

/* Run-time switches (POST /_admin/ws/faults). */
struct fp_ws_faults {
	unsigned refuse;          /* != 0: every upgrade answered with it */
	bool silent;              /* send nothing at all, answer nothing */
	bool ignore_pongs;        /* pongs do not re-arm the pong deadline */
	int64_t pong_delay_ms;    /* client pings answered this late */
	int64_t ping_interval_ms;
	int64_t pong_wait_ms;
};

/* A connection's scope, fixed at upgrade (DW:24-57). */
struct fp_ws_scope {
	struct fp_vec runtime_ids;    /* char *, canonical, first-seen order */
	struct fp_vec workspace_ids;  /* char *, distinct, in order */
};

struct fp_ws_hub;

/* Allocates a hub with these ping timings (the flags' values). */
struct fp_ws_hub *fp_ws_hub_new(int64_t ping_interval_ms, int64_t pong_wait_ms);
/* Closes every connection (no CLOSE frame) and waits for their threads;
 * later upgrades are closed at once. Must run before the HTTP server stops
 * (libmicrohttpd wants its upgraded connections closed first). NULL is
 * fine; idempotent. */
void fp_ws_hub_shutdown(struct fp_ws_hub *h);
/* Shuts down (if not yet) and frees. NULL is fine. */
void fp_ws_hub_free(struct fp_ws_hub *h);

/* Appends the ids in one runtime_id / runtime_ids value: split on ',',
 * trimmed, empties dropped, duplicates skipped. Allocates into *ids. */
void fp_ws_ids_add(struct fp_vec *ids, const char *value);
void fp_ws_scope_release(struct fp_ws_scope *s);

/* The upgrade's checks, in the server's order: the daemon routes' bearer
 * auth (401), then ids (400 none, then for each id 400 malformed, 404
 * "runtime not found", 404 "not found"). ids holds the raw split ids and
 * is consumed. Takes the state lock. Returns true with *scope filled
 * (release it), or false with the error in *out. */
bool fp_ws_check(struct fp_app *app, const struct fp_request *rq, struct fp_vec *ids,
		 struct fp_ws_scope *scope, struct fp_reply *out);

/* Counts one upgrade answered with status (GET /_admin/ws "upgrades"). */
void fp_ws_count_upgrade(struct fp_ws_hub *h, unsigned status);
void fp_ws_get_faults(struct fp_ws_hub *h, struct fp_ws_faults *out);
void fp_ws_set_faults(struct fp_ws_hub *h, const struct fp_ws_faults *f);
/* Back to the flags' timings and no faults. */
void fp_ws_clear_faults(struct fp_ws_hub *h);

/* Takes over an upgraded socket: scope is moved in, extra (bytes already
 * read past the request) fed to the reader first, and release(arg) is
 * called once, on the connection's thread, when it is closed (the socket
 * is libmicrohttpd's: it closes it). */
void fp_ws_attach(struct fp_ws_hub *h, struct fp_ws_scope *scope, int sock,
		  const char *extra, size_t extra_len, void (*release)(void *), void *arg);

/* Pushes (lock order: see above). h NULL: nothing. */
/* daemon:task_available {runtime_id, task_id}; task_id NULL: omitted. */
void fp_ws_push_task(struct fp_ws_hub *h, const char *runtime_id, const char *task_id);
/* daemon:runtime_profiles_changed {workspace_id, runtime_profile_id}. */
void fp_ws_push_profiles(struct fp_ws_hub *h, const char *workspace_id, const char *profile_id);
/* daemon:workspaces_changed {} to every socket. */
void fp_ws_push_workspaces(struct fp_ws_hub *h);

/* Admin: allocates {connections:[..], upgrades:{..}, closed}. */
cJSON *fp_ws_render(struct fp_ws_hub *h);
/* Closes every connection now, with or without a CLOSE frame. Returns how
 * many. */
int fp_ws_drop(struct fp_ws_hub *h, bool close_frame);
/* Queues bytes (one or more frames, counted as nframes) on connection id
 * (0: every one); copied. Returns how many connections got them. */
int fp_ws_send_raw(struct fp_ws_hub *h, uint64_t id, const uint8_t *bytes, size_t len,
		   unsigned nframes);

#endif
