/* test_fakeplane_ws's tiny websocket client and admin helpers: plain
 * sockets, or a libcurl CONNECT_ONLY connection for TLS, and the
 * emulator's own frame codec (tests/fakeplane/ws_frame.h). Asserts with
 * Criterion; parent side only. */
#ifndef MC_TEST_FAKEPLANE_WS_CLIENT_H
#define MC_TEST_FAKEPLANE_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "tests/fakeplane/ws_frame.h"
#include "tests/support/fakeplane_proc.h"

#define AUTH "Bearer tok-u1"   /* the seed's token */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="       /* RFC 6455 section 1.3 */
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

extern struct fp_proc fp;      /* the test's emulator */
extern char tls_url[64];       /* "https://127.0.0.1:PORT" when it runs TLS, else "" */

struct wsc {
	int fd;
	CURL *tls;             /* non-NULL: the bytes go through libcurl's TLS */
	uint8_t *buf;
	size_t len, cap;
	char head[4096];       /* the response's status line and headers */
	int status;
	char *body;            /* a refusal's body (malloc'd) */
};

struct frame {
	struct fp_ws_header h;
	uint8_t *payload;      /* malloc'd, NUL-terminated */
};

/* One admin request, over TLS (certificate unchecked) when tls_url is set.
 * Returns the status; *out (may be NULL) gets the body, malloc'd. */
long admin(const char *method, const char *path, const char *body, char **out);
/* admin asserting 200. */
void admin_ok(const char *method, const char *path, const char *body);
/* GET path parsed (caller deletes), asserting 200. */
cJSON *admin_json(const char *path);
/* The number at key, asserted. */
double num(const cJSON *o, const char *key);
/* The string at key, or NULL. */
const char *jstr(const cJSON *o, const char *key);

/* Connects (TLS when tls_url is set) and sends the upgrade request for
 * query (after "?", may be ""), with this Authorization (NULL: none).
 * Returns the status; a 101 leaves c ready for frames. */
int wsc_open(struct wsc *c, const char *query, const char *auth);
/* wsc_open with the seed's token, asserting 101. */
void open_ok(struct wsc *c, const char *query);
void wsc_close(struct wsc *c);
/* The next frame within timeout_ms: 1, 0 on timeout, -1 when closed.
 * With header_only a frame's payload is not waited for (the oversize one). */
int wsc_frame(struct wsc *c, struct frame *f, int timeout_ms, bool header_only);
/* One frame, masked (as a client must) or not. */
void wsc_send(struct wsc *c, unsigned opcode, bool fin, const void *p, size_t n, bool masked);
/* The next data message, PINGs skipped, as parsed JSON (caller deletes). */
cJSON *wsc_json(struct wsc *c, int timeout_ms);
/* Asserts the next message's type and payload fields (v2 NULL: k2 absent). */
void expect_push(struct wsc *c, const char *type, const char *k1, const char *v1,
		 const char *k2, const char *v2);
/* Waits (3 s at most) for GET /_admin/ws to list n connections. */
void wait_conns(int n);
/* The id of the connection whose first runtime is rt. */
double conn_id(const char *rt);
/* POST /_admin/ws/send {"connection": id, <rest>}, rest ending with "}". */
void send_to(double id, const char *rest);
/* Reads until a CLOSE frame; returns its code (0: none), -1 when closed
 * without one. */
int close_code(struct wsc *c);

int64_t now_ms(void);

#endif
