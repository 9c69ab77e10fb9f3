/* One websocket connection (ws_conn.h): libcurl CONNECT_ONLY dials (TCP,
 * proxy CONNECT, TLS with the API's trust settings) in a private multi,
 * then we write the upgrade request and read the 101 ourselves, then
 * libwslay frames messages over curl_easy_send/curl_easy_recv. Every step
 * is non-blocking: CURLE_AGAIN is WSLAY_ERR_WOULDBLOCK.
 *
 * The easy handle stays in its multi after CURLMSG_DONE: libcurl 7.88's
 * curl_multi_remove_handle closes a CONNECT_ONLY connection at once (the
 * handle could no longer find it), and curl_easy_send then fails with
 * CURLE_UNSUPPORTED_PROTOCOL ("Unsupported protocol": verified by removing
 * it after DONE and running test_ws_url's ws_conn tests).
 * The multi is private because mc_multi_dispatch consumes every DONE
 * message of the link's multi. */
#include "link/ws_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <bsd/string.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "common/api_tls.h"

#define CONNECT_TIMEOUT_MS 10000
#define MAX_MSG (64ull << 20)   /* the reference's read limit */

static const char loopback_hosts[] = "127.0.0.1,localhost,::1";

struct mc_ws_conn {
	enum mc_ws_conn_state st;
	CURLM *multi;
	CURL *easy;
	curl_socket_t fd;
	char errbuf[CURL_ERROR_SIZE];
	char *no_proxy;
	/* the upgrade request (holds the token: wiped once sent) */
	char *req;
	size_t req_len, req_off;
	char key[MC_WS_KEY_LEN + 1];
	/* the answer: headers, then the frame bytes read with them */
	char *resp;
	size_t resp_len, resp_off;
	wslay_event_context_ptr ctx;
	bool eof, would_block, more;
	/* the frame headers of the byte stream (sniff): wslay checks its limit
	 * only as a payload arrives, a header alone would sit there */
	uint8_t hdr[14];
	unsigned hlen, hneed;
	uint64_t skip;                  /* payload bytes of the current frame left */
	uint64_t msg_declared;          /* the message's frame lengths so far */
	bool too_big;
	long status;
	char why[256];
	bool violation;
	struct mc_ws_conn_cb cb;
};

/* As common/api.c: CURLOPT_NOPROXY replaces the environment's no_proxy,
 * so it is loopback plus the environment's. Allocates. */
static char *no_proxy_list(void)
{
	const char *env = getenv("no_proxy");
	if (env == NULL || env[0] == '\0')
		env = getenv("NO_PROXY");
	if (env == NULL || env[0] == '\0')
		return strdup(loopback_hosts);
	if (strcmp(env, "*") == 0)
		return strdup("*");
	size_t n = sizeof loopback_hosts + 1 + strlen(env);
	char *list = malloc(n);
	if (list != NULL)
		snprintf(list, n, "%s,%s", loopback_hosts, env);
	return list;
}

__attribute__((format(printf, 4, 5)))
static void fail(struct mc_ws_conn *c, enum mc_ws_conn_state st, bool violation,
		 const char *fmt, ...)
{
	if (c->st == MC_WSC_FAILED || c->st == MC_WSC_CLOSED)
		return;
	c->st = st;
	c->violation = violation;
	char why[sizeof c->why];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	memcpy(c->why, why, sizeof why);
}

static void wipe_request(struct mc_ws_conn *c)
{
	if (c->req != NULL) {
		sodium_memzero(c->req, c->req_len);
		free(c->req);
		c->req = NULL;
	}
}

static bool set_options(struct mc_ws_conn *c, const struct mc_ws_dial *d)
{
	CURL *e = c->easy;
	bool ok = true;
	ok &= curl_easy_setopt(e, CURLOPT_URL, d->target->origin) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L) == CURLE_OK;
	/* An http proxy gets CONNECT: the upgrade is ours, end to end. */
	ok &= curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOPROXY, c->no_proxy) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	/* ALPN offers http/1.1 only: an h2 answer would have no Upgrade. */
	ok &= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, "multicad") == CURLE_OK;
	/* Verification keeps libcurl's strict defaults, as the API's calls. */
	if (d->ca_file != NULL && d->ca_file[0])
		ok &= curl_easy_setopt(e, CURLOPT_CAINFO, d->ca_file) == CURLE_OK;
	else
		ok &= mc_api_tls_use_system_store(e);
	return ok;
}

/* ---- wslay on libcurl ---- */

/* A frame header is complete in c->hdr: its declared length counts
 * against the 64 MiB of its message. */
static void sniffed_header(struct mc_ws_conn *c)
{
	unsigned op = c->hdr[0] & 0x0f, l7 = c->hdr[1] & 0x7f;
	uint64_t len = l7;
	if (l7 == 126)
		len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
	else if (l7 == 127)
		for (unsigned i = 0; i < 8; i++)
			len = len << 8 | c->hdr[2 + i];
	c->skip = len;
	c->hlen = 0;
	if (op & 0x8)
		return; /* control frames: 125 bytes at most, wslay checks */
	if (op != WSLAY_CONTINUATION_FRAME)
		c->msg_declared = 0;
	if (len > MAX_MSG - c->msg_declared)
		c->too_big = true; /* before a byte of its payload is buffered */
	else
		c->msg_declared += len;
}

/* Follows the frame boundaries of the bytes handed to wslay, which reads
 * the stream in order: a header declaring more than 64 MiB is refused at
 * once, not when (if ever) its payload comes. */
static void sniff(struct mc_ws_conn *c, const uint8_t *b, size_t n)
{
	size_t i = 0;
	while (i < n && !c->too_big) {
		if (c->skip > 0) {
			size_t k = n - i < c->skip ? n - i : (size_t)c->skip;
			c->skip -= k;
			i += k;
			continue;
		}
		c->hdr[c->hlen++] = b[i++];
		if (c->hlen == 2) {
			unsigned l7 = c->hdr[1] & 0x7f;
			c->hneed = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (c->hdr[1] & 0x80 ? 4 : 0);
		}
		if (c->hlen >= 2 && c->hlen == c->hneed)
			sniffed_header(c);
	}
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *ud)
{
	(void)flags;
	struct mc_ws_conn *c = ud;
	if (c->too_big) { /* not one more byte of it */
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (c->resp_off < c->resp_len) { /* bytes that came with the 101 */
		size_t n = c->resp_len - c->resp_off;
		n = n < len ? n : len;
		memcpy(buf, c->resp + c->resp_off, n);
		c->resp_off += n;
		sniff(c, buf, n);
		c->cb.on_bytes(c->cb.arg);
		return (ssize_t)n;
	}
	size_t n = 0;
	CURLcode rc = curl_easy_recv(c->easy, buf, len, &n);
	if (rc == CURLE_AGAIN) {
		c->would_block = true;
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (rc != CURLE_OK || n == 0) {
		c->eof = true;
		snprintf(c->why, sizeof c->why, "%s", rc != CURLE_OK ? curl_easy_strerror(rc)
			 : "connection closed by the server");
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	sniff(c, buf, n);
	c->cb.on_bytes(c->cb.arg);
	return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *ud)
{
	(void)flags;
	struct mc_ws_conn *c = ud;
	size_t n = 0;
	CURLcode rc = curl_easy_send(c->easy, data, len, &n);
	if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(c->why, sizeof c->why, "%s", curl_easy_strerror(rc));
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)n;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
	(void)ctx;
	(void)ud;
	randombytes_buf(buf, len);
	return 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
		   void *ud)
{
	(void)ctx;
	struct mc_ws_conn *c = ud;
	if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME)
		c->cb.on_msg(c->cb.arg, a->msg, a->msg_length);
}

static int open_wslay(struct mc_ws_conn *c)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = on_recv,
		.send_callback = on_send,
		.genmask_callback = on_genmask,
		.on_msg_recv_callback = on_msg,
	};
	if (wslay_event_context_client_init(&c->ctx, &cbs, c) != 0)
		return -1;
	wslay_event_config_set_max_recv_msg_length(c->ctx, MAX_MSG);
	return 0;
}

/* ---- the steps ---- */

static void step_connecting(struct mc_ws_conn *c)
{
	int running = 0;
	curl_multi_perform(c->multi, &running);
	int left;
	CURLMsg *m;
	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		if (m->data.result != CURLE_OK) {
			fail(c, MC_WSC_FAILED, false, "%s", c->errbuf[0] ? c->errbuf
			     : curl_easy_strerror(m->data.result));
			return;
		}
		curl_socket_t s = CURL_SOCKET_BAD;
		if (curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK ||
		    s == CURL_SOCKET_BAD) {
			fail(c, MC_WSC_FAILED, false, "%s", "no socket after the connect");
			return;
		}
		c->fd = s;
		c->st = MC_WSC_HANDSHAKE;
	}
}

static void step_handshake(struct mc_ws_conn *c)
{
	while (c->req != NULL && c->req_off < c->req_len) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(c->easy, c->req + c->req_off, c->req_len - c->req_off, &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK)
			return fail(c, MC_WSC_FAILED, false, "sending the upgrade: %s",
				    curl_easy_strerror(rc));
		c->req_off += n;
	}
	wipe_request(c);
	for (;;) {
		if (c->resp == NULL && (c->resp = malloc(MC_WS_HS_MAX)) == NULL)
			return fail(c, MC_WSC_FAILED, false, "%s", "out of memory");
		size_t n = 0;
		CURLcode rc = curl_easy_recv(c->easy, c->resp + c->resp_len,
					     MC_WS_HS_MAX - c->resp_len, &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK || n == 0)
			return fail(c, MC_WSC_FAILED, false, "reading the upgrade answer: %s",
				    rc != CURLE_OK ? curl_easy_strerror(rc) : "connection closed");
		c->resp_len += n;
		size_t used = 0;
		char why[128];
		enum mc_ws_hs hs = mc_ws_handshake_parse(c->resp, c->resp_len, c->key, &c->status,
							 &used, why, sizeof why);
		if (hs == MC_WS_HS_MORE)
			continue;
		if (hs != MC_WS_HS_OK)
			return fail(c, MC_WSC_FAILED, false, "%s", why);
		c->resp_off = used; /* what follows is frames: on_recv serves them first */
		if (open_wslay(c) < 0)
			return fail(c, MC_WSC_FAILED, false, "%s", "out of memory");
		c->st = MC_WSC_OPEN;
		c->cb.on_open(c->cb.arg);
		return;
	}
}

static void flush(struct mc_ws_conn *c)
{
	if (c->st != MC_WSC_OPEN || !wslay_event_want_write(c->ctx))
		return;
	if (wslay_event_send(c->ctx) != 0)
		fail(c, MC_WSC_CLOSED, false, "sending: %.200s", c->why[0] ? c->why : "write error");
}

static void step_open(struct mc_ws_conn *c)
{
	c->would_block = false;
	int rc = wslay_event_recv(c->ctx);
	/* A message handler may have closed us (mc_ws_conn_close). */
	if (c->st != MC_WSC_OPEN)
		return;
	if (c->too_big) {
		wslay_event_queue_close(c->ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
		flush(c);
		fail(c, MC_WSC_CLOSED, true, "%s", "the server sent a message over 64 MiB");
		return;
	}
	flush(c); /* the automatic PONG, our PING or CLOSE */
	if (c->st != MC_WSC_OPEN)
		return;
	/* wslay stopped before the socket said EAGAIN: TLS may hold bytes poll
	 * cannot see. Not while a write is pending (wslay pauses reading while
	 * its queue is long): POLLOUT wakes us then, no spinning. */
	c->more = !c->would_block && rc == 0 && wslay_event_get_read_enabled(c->ctx) &&
		  !wslay_event_want_write(c->ctx);
	if (rc != 0) {
		fail(c, MC_WSC_CLOSED, false, "%s", c->eof ? c->why : "read error");
		return;
	}
	if (wslay_event_get_read_enabled(c->ctx))
		return;
	if (wslay_event_get_close_received(c->ctx)) {
		char code[16];
		snprintf(code, sizeof code, "%u", wslay_event_get_status_code_received(c->ctx));
		fail(c, MC_WSC_CLOSED, false, "closed by the server (code %s)", code);
		return;
	}
	/* wslay stopped reading on its own: it queued a CLOSE naming why. */
	uint16_t sent = wslay_event_get_status_code_sent(c->ctx);
	const char *what = sent == WSLAY_CODE_MESSAGE_TOO_BIG ? "a message over 64 MiB"
			   : sent == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA ? "invalid UTF-8 in a text message"
			   : "a frame that breaks RFC 6455 (bad opcode, masked, bad continuation "
			     "or control frame)";
	fail(c, MC_WSC_CLOSED, true, "the server sent %s", what);
}

/* ---- the API ---- */

struct mc_ws_conn *mc_ws_conn_new(const struct mc_ws_dial *d, const struct mc_ws_conn_cb *cb)
{
	struct mc_ws_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->cb = *cb;
	c->fd = CURL_SOCKET_BAD;
	c->st = MC_WSC_CONNECTING;
	struct mc_ws_req_headers h = { d->token, d->client_version };
	if (mc_ws_request_new(d->target, &h, c->key, &c->req, &c->req_len) < 0)
		goto fail;
	c->no_proxy = no_proxy_list();
	c->multi = curl_multi_init();
	c->easy = curl_easy_init();
	errno = ENOMEM;
	if (c->no_proxy == NULL || c->multi == NULL || c->easy == NULL || !set_options(c, d) ||
	    curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
		goto fail;
	return c;
fail:;
	int e = errno;
	mc_ws_conn_free(c);
	errno = e;
	return NULL;
}

void mc_ws_conn_free(struct mc_ws_conn *c)
{
	if (c == NULL)
		return;
	wipe_request(c);
	if (c->ctx != NULL)
		wslay_event_context_free(c->ctx);
	if (c->multi != NULL && c->easy != NULL)
		curl_multi_remove_handle(c->multi, c->easy); /* closes the connection */
	if (c->easy != NULL)
		curl_easy_cleanup(c->easy);
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	free(c->resp);
	free(c->no_proxy);
	free(c);
}

enum mc_ws_conn_state mc_ws_conn_state(const struct mc_ws_conn *c)
{
	return c->st;
}

const char *mc_ws_conn_why(const struct mc_ws_conn *c)
{
	return c->why;
}

long mc_ws_conn_status(const struct mc_ws_conn *c)
{
	return c->status;
}

bool mc_ws_conn_violation(const struct mc_ws_conn *c)
{
	return c->violation;
}

void mc_ws_conn_step(struct mc_ws_conn *c)
{
	if (c->st == MC_WSC_CONNECTING)
		step_connecting(c);
	if (c->st == MC_WSC_HANDSHAKE)
		step_handshake(c);
	else if (c->st == MC_WSC_OPEN)
		step_open(c);
}

bool mc_ws_conn_more(const struct mc_ws_conn *c)
{
	return c->st == MC_WSC_OPEN && c->more;
}

unsigned mc_ws_conn_fds(struct mc_ws_conn *c, struct curl_waitfd *fds, unsigned max)
{
	unsigned n = 0;
	if (c->st == MC_WSC_CONNECTING) {
		fd_set r, w, x;
		FD_ZERO(&r);
		FD_ZERO(&w);
		FD_ZERO(&x);
		int maxfd = -1;
		if (curl_multi_fdset(c->multi, &r, &w, &x, &maxfd) != CURLM_OK)
			return 0;
		for (int fd = 0; fd <= maxfd && n < max; fd++) {
			short ev = (short)((FD_ISSET(fd, &r) ? CURL_WAIT_POLLIN : 0) |
					   (FD_ISSET(fd, &w) ? CURL_WAIT_POLLOUT : 0) |
					   (FD_ISSET(fd, &x) ? CURL_WAIT_POLLPRI : 0));
			if (ev)
				fds[n++] = (struct curl_waitfd){ .fd = fd, .events = ev };
		}
		return n;
	}
	if ((c->st != MC_WSC_HANDSHAKE && c->st != MC_WSC_OPEN) || max == 0)
		return 0;
	short ev = CURL_WAIT_POLLIN;
	if ((c->st == MC_WSC_HANDSHAKE && c->req != NULL) ||
	    (c->st == MC_WSC_OPEN && wslay_event_want_write(c->ctx)))
		ev |= CURL_WAIT_POLLOUT;
	fds[0] = (struct curl_waitfd){ .fd = c->fd, .events = ev };
	return 1;
}

mc_ms_t mc_ws_conn_curl_timeout(struct mc_ws_conn *c, mc_ms_t now)
{
	long t = -1;
	if (c->st != MC_WSC_CONNECTING || curl_multi_timeout(c->multi, &t) != CURLM_OK || t < 0)
		return 0;
	return now + t;
}

int mc_ws_conn_ping(struct mc_ws_conn *c)
{
	if (c->st != MC_WSC_OPEN)
		return -1;
	struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };
	if (wslay_event_queue_msg(c->ctx, &m) != 0)
		return -1;
	flush(c);
	return 0;
}

void mc_ws_conn_close(struct mc_ws_conn *c, const char *why)
{
	if (c->st == MC_WSC_OPEN && wslay_event_get_write_enabled(c->ctx)) {
		/* Best effort: one send attempt, never a wait. */
		if (wslay_event_queue_close(c->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0) == 0 &&
		    wslay_event_want_write(c->ctx))
			wslay_event_send(c->ctx);
	}
	fail(c, MC_WSC_CLOSED, false, "%s", why);
}
