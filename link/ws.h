/* The link's websocket push channel (issue 14): one socket per host to
 * GET <server_url>/api/daemon/ws?runtime_ids=<every runtime of the host>,
 * framed by libwslay on a libcurl CONNECT_ONLY connection (TLS, ca_file,
 * proxies and the trust store stay libcurl's). A speed-up only: every poll
 * keeps running, stretched while the socket is up (MC_WS_POLL_STRETCH).
 *
 *   ws_url.c      the URL, the upgrade request, the 101 check (pure)
 *   ws_conn.c     one connection: dial, handshake, wslay on curl_easy_*
 *   ws_session.c  the state machine (OFF, WAIT_SET, DIALING, HANDSHAKE,
 *                 UP, BACKOFF), debounce, backoff, liveness, the events
 *
 * Single-threaded, in the link's loop; nothing here blocks. */
#ifndef MC_LINK_WS_H
#define MC_LINK_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/secret.h"

struct mc_link;

/* While the socket is up the claim poll runs this many times slower: a
 * push (daemon:task_available) claims at once, the poll only catches what
 * a push missed. Not more: a socket that died silently is found within
 * 60 s, and the poll after it is due one normal interval after the last. */
#define MC_WS_POLL_STRETCH 2

/* ---- ws_url.c (pure; allocating functions say so) ---- */

/* Where and what to dial. */
struct mc_ws_target {
	char *url;      /* ws(s)://host[:port]/base/api/daemon/ws?runtime_ids=a%2Cb */
	char *origin;   /* http(s)://host[:port]: what libcurl connects to */
	char *host;     /* the Host header: host[:port] */
	char *target;   /* the request target: /base/api/daemon/ws?runtime_ids=... */
	char *set;      /* the sorted, de-duplicated ids joined with ",": the set */
};

/* Builds the target from server_url (http, https, ws or wss; its path is
 * kept without a trailing "/", its query and fragment dropped) and the n
 * runtime ids (any order; sorted ascending and de-duplicated here; n 0: no
 * query). Allocates every string; free with mc_ws_target_clear. 0, or -1
 * with errno (EINVAL: another scheme, no host, credentials in the URL). */
int mc_ws_target_build(const char *server_url, const char (*ids)[40], size_t n,
		       struct mc_ws_target *t);
void mc_ws_target_clear(struct mc_ws_target *t);

#define MC_WS_KEY_LEN 24   /* base64 of 16 bytes */

/* The headers of the upgrade request beyond Host and the standard ones. */
struct mc_ws_req_headers {
	const char *token;           /* Authorization: Bearer <token>; NULL/"": none */
	const char *client_version;  /* X-Client-Version; NULL/"": none */
};

/* Allocates the upgrade request (it holds the token: the caller wipes it
 * with sodium_memzero before freeing) into *out, its length in *len, and
 * a fresh Sec-WebSocket-Key into key. 0, or -1 with errno (EINVAL: a
 * header value with a control character). */
int mc_ws_request_new(const struct mc_ws_target *t, const struct mc_ws_req_headers *h,
		      char key[MC_WS_KEY_LEN + 1], char **out, size_t *len);

/* The Sec-WebSocket-Accept a server must answer key with (RFC 6455 4.2.2). */
void mc_ws_accept_for(const char *key, char out[29]);

enum mc_ws_hs {
	MC_WS_HS_MORE = 0,     /* the header block is not complete yet */
	MC_WS_HS_OK = 1,       /* 101 with a valid upgrade and accept */
	MC_WS_HS_REFUSED = 2,  /* a well-formed answer that is not a valid upgrade */
	MC_WS_HS_BAD = -1,     /* not an HTTP/1.x response, or over MC_WS_HS_MAX */
};
#define MC_WS_HS_MAX 16384

/* Parses the first len bytes the server sent after the request. OK: *used
 * is the length of the header block (what follows is websocket frames).
 * REFUSED or BAD: why says what (status in *status, 0 when none). MORE:
 * call again with more bytes. */
enum mc_ws_hs mc_ws_handshake_parse(const char *buf, size_t len, const char *key,
				    long *status, size_t *used, char *why, size_t why_size);

/* ---- the link's side (ws_session.c) ---- */

/* Allocates the session (OFF until mc_ws_ready). NULL with errno. */
struct mc_ws *mc_ws_new(void);
/* Closes any socket (a CLOSE frame, best effort) and frees. NULL ok. */
void mc_ws_free(struct mc_ws *ws);
/* TOKEN: keeps a copy (rotated: the next dial uses it). */
void mc_ws_set_token(struct mc_link *l, struct mc_secret *tok);
/* The link is ready (CONFIG and TOKEN): leaves OFF unless websocket_off. */
void mc_ws_ready(struct mc_link *l);
/* The runtime set may have changed (debounced). */
void mc_ws_runtimes_changed(struct mc_link *l);
/* Stopping: CLOSE frame best effort, then OFF for good. */
void mc_ws_stop(struct mc_link *l);
bool mc_ws_up(const struct mc_link *l);

#define MC_WS_MAX_FDS 8
/* The fds the loop polls for the channel (dial or socket); returns how many. */
unsigned mc_ws_poll_fds(struct mc_link *l, struct curl_waitfd *fds, unsigned max);
/* After the poll: fds as filled by mc_ws_poll_fds, with revents. */
void mc_ws_on_poll(struct mc_link *l, const struct curl_waitfd *fds, unsigned n);
void mc_ws_timers(struct mc_link *l, mc_ms_t now);
/* The channel's next deadline (0: none). */
mc_ms_t mc_ws_next_deadline(const struct mc_link *l);

/* Counters (tests, debug logs). */
struct mc_ws_stats {
	uint64_t dials, ups, msgs, ignored, violations, dead;
};
const struct mc_ws_stats *mc_ws_stats(const struct mc_link *l);

#endif
