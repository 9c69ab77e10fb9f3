/* One websocket connection of the link (ws_conn.c): dial, upgrade, frames.
 * The session (ws_session.c) owns it and reads its state after each step. */
#ifndef MC_LINK_WS_CONN_H
#define MC_LINK_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "link/ws.h"

enum mc_ws_conn_state {
	MC_WSC_CONNECTING,   /* TCP, proxy CONNECT, TLS (libcurl) */
	MC_WSC_HANDSHAKE,    /* our upgrade request out, the 101 in */
	MC_WSC_OPEN,
	MC_WSC_FAILED,       /* never opened: why, status (0: no HTTP answer) */
	MC_WSC_CLOSED,       /* was open: why, violation */
};

struct mc_ws_dial {
	const struct mc_ws_target *target;
	const char *token;           /* opened secret: copied into the request only */
	const char *client_version;
	const char *ca_file;         /* NULL/"": the system's store (api_tls.h) */
};

struct mc_ws_conn_cb {
	void (*on_open)(void *arg);
	void (*on_bytes)(void *arg);                              /* liveness */
	void (*on_msg)(void *arg, const uint8_t *msg, size_t len); /* text or binary */
	void *arg;
};

/* Allocates a connection and starts its dial. NULL with errno. */
struct mc_ws_conn *mc_ws_conn_new(const struct mc_ws_dial *d, const struct mc_ws_conn_cb *cb);
/* Closes the socket at once (no CLOSE frame: see mc_ws_conn_close). NULL ok. */
void mc_ws_conn_free(struct mc_ws_conn *c);
/* Drives whatever can progress without blocking; callbacks run from here. */
void mc_ws_conn_step(struct mc_ws_conn *c);
/* Data may be buffered (TLS) beyond what poll shows: step again at once. */
bool mc_ws_conn_more(const struct mc_ws_conn *c);
unsigned mc_ws_conn_fds(struct mc_ws_conn *c, struct curl_waitfd *fds, unsigned max);
/* libcurl's own next timer while connecting (0: none). */
mc_ms_t mc_ws_conn_curl_timeout(struct mc_ws_conn *c, mc_ms_t now);
enum mc_ws_conn_state mc_ws_conn_state(const struct mc_ws_conn *c);
const char *mc_ws_conn_why(const struct mc_ws_conn *c);
long mc_ws_conn_status(const struct mc_ws_conn *c);
bool mc_ws_conn_violation(const struct mc_ws_conn *c);
/* Queues our PING and sends what it can. 0, or -1 when not open. */
int mc_ws_conn_ping(struct mc_ws_conn *c);
/* A CLOSE frame, best effort (one send attempt), then CLOSED with why. */
void mc_ws_conn_close(struct mc_ws_conn *c, const char *why);

#endif
