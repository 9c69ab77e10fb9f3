/* The link's websocket: URL building, the upgrade request, the 101 check
 * (link/ws_url.c), and one connection (link/ws_conn.c) against a tiny
 * in-test websocket server on loopback: the frames a server sends reach
 * the link, its PING is answered, a protocol violation closes the socket,
 * a 404 is a failure with its status; wss verifies as the HTTP calls do. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <sodium.h>

#include "common/api.h"
#include "common/clock.h"
#include "link/ws.h"
#include "link/ws_conn.h"
#include "tests/support/testca.h"

static const char (*ids3)[40] = (const char[][40]){
	"c0000000-0000-4000-8000-000000000003",
	"a0000000-0000-4000-8000-000000000001",
	"b0000000-0000-4000-8000-000000000002",
};

Test(ws_url, scheme_path_and_sorted_query)
{
	struct mc_ws_target t;
	cr_assert_eq(mc_ws_target_build("http://127.0.0.1:8080", ids3, 3, &t), 0);
	cr_assert_str_eq(t.url, "ws://127.0.0.1:8080/api/daemon/ws?runtime_ids="
			 "a0000000-0000-4000-8000-000000000001%2Cb0000000-0000-4000-8000-"
			 "000000000002%2Cc0000000-0000-4000-8000-000000000003");
	cr_assert_str_eq(t.origin, "http://127.0.0.1:8080");
	cr_assert_str_eq(t.host, "127.0.0.1:8080");
	cr_assert(strncmp(t.target, "/api/daemon/ws?runtime_ids=a0000000", 35) == 0);
	cr_assert_str_eq(t.set, "a0000000-0000-4000-8000-000000000001,b0000000-0000-4000-8000-"
			 "000000000002,c0000000-0000-4000-8000-000000000003");
	mc_ws_target_clear(&t);

	cr_assert_eq(mc_ws_target_build("https://h.example/multica/", ids3, 1, &t), 0);
	cr_assert_str_eq(t.url, "wss://h.example/multica/api/daemon/ws?runtime_ids="
			 "c0000000-0000-4000-8000-000000000003");
	cr_assert_str_eq(t.origin, "https://h.example");
	cr_assert_str_eq(t.host, "h.example");
	mc_ws_target_clear(&t);

	/* ws/wss kept; query and fragment dropped; duplicates once. */
	const char (*dup)[40] = (const char[][40]){ "b", "a", "b" };
	cr_assert_eq(mc_ws_target_build("wss://h:9/x?y=1#z", dup, 3, &t), 0);
	cr_assert_str_eq(t.url, "wss://h:9/x/api/daemon/ws?runtime_ids=a%2Cb");
	cr_assert_str_eq(t.origin, "https://h:9");
	mc_ws_target_clear(&t);

	/* No ids: no query at all. */
	cr_assert_eq(mc_ws_target_build("http://h", NULL, 0, &t), 0);
	cr_assert_str_eq(t.url, "ws://h/api/daemon/ws");
	cr_assert_str_eq(t.set, "");
	mc_ws_target_clear(&t);
}

Test(ws_url, refused_urls)
{
	struct mc_ws_target t;
	errno = 0;
	cr_assert_eq(mc_ws_target_build("ftp://h", ids3, 1, &t), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_ws_target_build("http://u:p@h", ids3, 1, &t), -1);
	cr_assert_eq(mc_ws_target_build("not a url", ids3, 1, &t), -1);
	cr_assert_eq(mc_ws_target_build(NULL, ids3, 1, &t), -1);
}

Test(ws_url, upgrade_request)
{
	struct mc_ws_target t;
	cr_assert_eq(mc_ws_target_build("http://127.0.0.1:1", ids3, 2, &t), 0);
	struct mc_ws_req_headers h = { "mdt_secret", "multicad/9.9" };
	char key[MC_WS_KEY_LEN + 1], *req;
	size_t len;
	cr_assert_eq(mc_ws_request_new(&t, &h, key, &req, &len), 0);
	cr_assert_eq(strlen(key), 24);
	cr_assert_eq(strlen(req), len);
	cr_assert(strncmp(req, "GET /api/daemon/ws?runtime_ids=a0000000-0000-4000-8000-"
			  "000000000001%2Cc0000000", 78) == 0, "%s", req);
	cr_assert(strstr(req, "\r\nHost: 127.0.0.1:1\r\n"));
	cr_assert(strstr(req, "\r\nUpgrade: websocket\r\n"));
	cr_assert(strstr(req, "\r\nConnection: Upgrade\r\n"));
	cr_assert(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
	cr_assert(strstr(req, "\r\nAuthorization: Bearer mdt_secret\r\n"));
	cr_assert(strstr(req, "\r\nX-Client-Platform: daemon\r\n"));
	cr_assert(strstr(req, "\r\nX-Client-Version: multicad/9.9\r\n"));
	cr_assert(strstr(req, "\r\nX-Client-OS: linux\r\n"));
	cr_assert(strstr(req, "\r\nX-Client-Capabilities: " MC_CLIENT_CAPABILITIES "\r\n"));
	cr_assert_null(strstr(req, "X-User-ID"));
	cr_assert_null(strstr(req, "rpc-v1"));
	char line[64];
	snprintf(line, sizeof line, "\r\nSec-WebSocket-Key: %s\r\n", key);
	cr_assert(strstr(req, line));
	cr_assert(len > 4 && memcmp(req + len - 4, "\r\n\r\n", 4) == 0);
	free(req);

	/* A token with a line break would inject a header. */
	struct mc_ws_req_headers bad = { "a\r\nX-User-ID: 1", NULL };
	cr_assert_eq(mc_ws_request_new(&t, &bad, key, &req, &len), -1);
	cr_assert_eq(errno, EINVAL);
	mc_ws_target_clear(&t);
}

Test(ws_url, accept_of_rfc6455_example)
{
	char acc[29];
	mc_ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc);
	cr_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static const char key0[] = "dGhlIHNhbXBsZSBub25jZQ==";

static enum mc_ws_hs parse(const char *s, long *status, size_t *used, char *why)
{
	return mc_ws_handshake_parse(s, strlen(s), key0, status, used, why, 128);
}

Test(ws_url, handshake_answers)
{
	long st;
	size_t used;
	char why[128];
	const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
			 "Connection: keep-alive, Upgrade\r\n"
			 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x01" "a";
	cr_assert_eq(parse(ok, &st, &used, why), MC_WS_HS_OK, "%s", why);
	cr_assert_eq(st, 101);
	cr_assert_eq(used, strlen(ok) - 3, "the frame bytes after the headers are not headers");

	char part[64];
	memcpy(part, ok, 40);
	part[40] = '\0';
	cr_assert_eq(parse(part, &st, &used, why), MC_WS_HS_MORE);
	cr_assert_eq(parse("HTT", &st, &used, why), MC_WS_HS_MORE);

	cr_assert_eq(parse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &st, &used, why),
		     MC_WS_HS_REFUSED);
	cr_assert_eq(st, 404);
	cr_assert(strstr(why, "404"));
	cr_assert_eq(parse("HTTP/1.1 401\r\n\r\n", &st, &used, why), MC_WS_HS_REFUSED);
	cr_assert_eq(st, 401);
	cr_assert_eq(parse("HTTP/1.0 503 Unavailable\r\n\r\n", &st, &used, why), MC_WS_HS_REFUSED);
	cr_assert_eq(st, 503);

	cr_assert_eq(parse("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			   "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", &st, &used, why),
		     MC_WS_HS_REFUSED);
	cr_assert(strstr(why, "Accept"), "%s", why);
	cr_assert_eq(parse("HTTP/1.1 101 X\r\nConnection: Upgrade\r\n"
			   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", &st, &used, why),
		     MC_WS_HS_REFUSED);
	cr_assert_eq(parse("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
			   "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", &st, &used, why),
		     MC_WS_HS_REFUSED);

	cr_assert_eq(parse("SSH-2.0-OpenSSH\r\n\r\n", &st, &used, why), MC_WS_HS_BAD);
	cr_assert_eq(parse("HTTP/1.1 1x1\r\n\r\n", &st, &used, why), MC_WS_HS_BAD);
	cr_assert_eq(parse("HTTP/1.1 101 X\r\nno colon here\r\n\r\n", &st, &used, why), MC_WS_HS_BAD);
	char *big = malloc(MC_WS_HS_MAX + 16);
	memset(big, 'a', MC_WS_HS_MAX + 15);
	memcpy(big, "HTTP/1.1 101 X\r\nX: ", 19);
	big[MC_WS_HS_MAX + 15] = '\0';
	cr_assert_eq(parse(big, &st, &used, why), MC_WS_HS_BAD);
	free(big);
}

/* ---- one connection against a tiny server ---- */

enum script { S_PUSH_AND_PING, S_MASKED, S_404, S_FRAGMENTED, S_HUGE };

/* The server's TLS session when it serves TLS (one server per test). */
static SSL *cur_ssl;
static const char *tls_cert, *tls_key;

static ssize_t io_read(int fd, void *b, size_t n)
{
	if (cur_ssl == NULL)
		return read(fd, b, n);
	int r = SSL_read(cur_ssl, b, (int)n);
	return r > 0 ? r : -1;
}

static ssize_t io_write(int fd, const void *b, size_t n)
{
	if (cur_ssl == NULL)
		return write(fd, b, n);
	int r = SSL_write(cur_ssl, b, (int)n);
	return r > 0 ? r : -1;
}

/* TLS on fd with the test's certificate: false when the client refused it. */
static bool tls_accept(int fd)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, tls_key, SSL_FILETYPE_PEM) != 1) {
		SSL_CTX_free(ctx);
		return false;
	}
	cur_ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL keeps a reference */
	SSL_set_fd(cur_ssl, fd);
	if (SSL_accept(cur_ssl) == 1)
		return true;
	SSL_free(cur_ssl);
	cur_ssl = NULL;
	return false;
}

struct server {
	int lfd, port;
	enum script script;
	pthread_t th;
	char req[8192];
	bool got_pong, got_close, pong_masked;
};

static int read_until_headers(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = io_read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return 0;
	}
	return -1;
}

static void header_value(const char *req, const char *name, char *out, size_t cap)
{
	out[0] = '\0';
	const char *p = strstr(req, name);
	if (p == NULL)
		return;
	p += strlen(name);
	size_t i = 0;
	while (p[i] && p[i] != '\r' && i + 1 < cap) {
		out[i] = p[i];
		i++;
	}
	out[i] = '\0';
}

static void write_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n > 0) {
		ssize_t w = io_write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Reads one client frame: its opcode and whether it was masked; -1 at EOF. */
static int read_frame(int fd, bool *masked)
{
	unsigned char h[2];
	if (io_read(fd, h, 2) != 2)
		return -1;
	*masked = (h[1] & 0x80) != 0;
	size_t len = h[1] & 0x7f;
	unsigned char skip[256];
	size_t extra = (len == 126 ? 2 : 0) + (*masked ? 4 : 0);
	if (len >= 126 && len != 126)
		return -1;
	if (extra && io_read(fd, skip, extra) != (ssize_t)extra)
		return -1;
	if (len == 126)
		len = (size_t)skip[0] << 8 | skip[1];
	while (len > 0) {
		ssize_t r = io_read(fd, skip, len < sizeof skip ? len : sizeof skip);
		if (r <= 0)
			return -1;
		len -= (size_t)r;
	}
	return h[0] & 0x0f;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd >= 0 && tls_cert != NULL && !tls_accept(fd))
		goto out;
	if (fd < 0 || read_until_headers(fd, s->req, sizeof s->req) < 0)
		goto out;
	if (s->script == S_404) {
		const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n"
				"{\"error\":\"page not found\"}";
		write_all(fd, r, strlen(r));
		goto out;
	}
	char key[64], acc[29], resp[256];
	header_value(s->req, "Sec-WebSocket-Key: ", key, sizeof key);
	mc_ws_accept_for(key, acc);
	int n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
	/* The first frame in the same write as the 101. */
	const char msg[] = "{\"type\":\"daemon:task_available\",\"payload\":{},\"event_id\":\"x\"}";
	char out[512];
	memcpy(out, resp, (size_t)n);
	size_t k = (size_t)n;
	if (s->script == S_FRAGMENTED) {
		/* "{\"type\":" then the rest in a continuation frame. */
		out[k++] = 0x01;
		out[k++] = 8;
		memcpy(out + k, msg, 8);
		k += 8;
		out[k++] = (char)0x80;
		out[k++] = (char)(sizeof msg - 1 - 8);
		memcpy(out + k, msg + 8, sizeof msg - 1 - 8);
		k += sizeof msg - 1 - 8;
	} else {
		out[k++] = (char)0x81;
		out[k++] = (char)(sizeof msg - 1);
		memcpy(out + k, msg, sizeof msg - 1);
		k += sizeof msg - 1;
	}
	write_all(fd, out, k);
	if (s->script == S_HUGE) {
		/* A text frame header declaring 64 MiB + 1, no payload: over the
		 * limit at once (wslay alone would wait for the payload). */
		const unsigned char huge[] = { 0x81, 0x7f, 0, 0, 0, 0, 0x04, 0, 0, 0x01 };
		write_all(fd, huge, sizeof huge);
	} else if (s->script == S_MASKED) {
		/* A masked server frame: RFC 6455 5.1 says the client must close. */
		const unsigned char bad[] = { 0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2 };
		write_all(fd, bad, sizeof bad);
	} else {
		const unsigned char ping[] = { 0x89, 0x02, 'h', 'i' };
		write_all(fd, ping, sizeof ping);
	}
	bool masked;
	int op;
	while ((op = read_frame(fd, &masked)) >= 0) {
		if (op == 0xA) {
			s->got_pong = true;
			s->pong_masked = masked;
		} else if (op == 0x8) {
			s->got_close = true;
			break;
		}
	}
out:
	if (cur_ssl != NULL) {
		SSL_shutdown(cur_ssl);
		SSL_free(cur_ssl);
		cur_ssl = NULL;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void server_start(struct server *s, enum script sc)
{
	memset(s, 0, sizeof *s);
	s->script = sc;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(s->lfd, 4), 0);
	socklen_t al = sizeof a;
	getsockname(s->lfd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->th, NULL, serve, s);
}

struct seen {
	int opened, bytes, msgs;
	char last[256];
};

static void cb_open(void *arg) { ((struct seen *)arg)->opened++; }
static void cb_bytes(void *arg) { ((struct seen *)arg)->bytes++; }
static void cb_msg(void *arg, const uint8_t *m, size_t n)
{
	struct seen *s = arg;
	s->msgs++;
	snprintf(s->last, sizeof s->last, "%.*s", (int)n, (const char *)m);
}

/* Steps c until pred holds or 5 s pass, polling its fds. */
static bool run_until(struct mc_ws_conn *c, bool (*pred)(struct mc_ws_conn *, struct seen *),
		      struct seen *seen)
{
	mc_ms_t end = mc_now_ms() + 5000;
	while (mc_now_ms() < end) {
		mc_ws_conn_step(c);
		if (pred(c, seen))
			return true;
		struct curl_waitfd w[8];
		unsigned n = mc_ws_conn_fds(c, w, 8);
		struct pollfd p[8];
		for (unsigned i = 0; i < n; i++)
			p[i] = (struct pollfd){ w[i].fd, (short)((w[i].events & CURL_WAIT_POLLIN ? POLLIN : 0) |
						     (w[i].events & CURL_WAIT_POLLOUT ? POLLOUT : 0)), 0 };
		poll(p, n, 20);
	}
	return false;
}

static bool got_msg_and_quiet(struct mc_ws_conn *c, struct seen *s)
{
	return s->msgs > 0 || mc_ws_conn_state(c) >= MC_WSC_FAILED;
}

static bool ended(struct mc_ws_conn *c, struct seen *s)
{
	(void)s;
	return mc_ws_conn_state(c) >= MC_WSC_FAILED;
}

static struct mc_ws_conn *dial_ca(struct server *s, struct mc_ws_target *t, struct seen *seen,
				   const char *ca)
{
	char url[64];
	snprintf(url, sizeof url, "%s://127.0.0.1:%d", tls_cert != NULL ? "https" : "http", s->port);
	cr_assert_eq(mc_ws_target_build(url, ids3, 3, t), 0);
	struct mc_ws_dial d = { t, "mdt_tok", "multicad/test", ca };
	struct mc_ws_conn_cb cb = { cb_open, cb_bytes, cb_msg, seen };
	struct mc_ws_conn *c = mc_ws_conn_new(&d, &cb);
	cr_assert_not_null(c);
	return c;
}

static struct mc_ws_conn *dial(struct server *s, struct mc_ws_target *t, struct seen *seen)
{
	return dial_ca(s, t, seen, NULL);
}

TestSuite(ws_conn, .timeout = 30);

Test(ws_conn, frames_in_pong_out_close)
{
	cr_assert_eq(mc_api_global_init(), 0);
	struct server s;
	server_start(&s, S_PUSH_AND_PING);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial(&s, &t, &seen);
	cr_assert(run_until(c, got_msg_and_quiet, &seen));
	cr_assert_eq(mc_ws_conn_state(c), MC_WSC_OPEN, "%s", mc_ws_conn_why(c));
	cr_assert_eq(seen.opened, 1);
	cr_assert(strstr(seen.last, "daemon:task_available"), "%s", seen.last);
	/* The server's PING is answered (masked, as a client must) once flushed. */
	mc_ms_t end = mc_now_ms() + 3000;
	while (!s.got_pong && mc_now_ms() < end) {
		mc_ws_conn_step(c);
		usleep(5000);
	}
	cr_assert(s.got_pong, "no PONG reached the server");
	cr_assert(s.pong_masked);
	cr_assert(strstr(s.req, "Authorization: Bearer mdt_tok\r\n"));
	mc_ws_conn_close(c, "test over");
	pthread_join(s.th, NULL);
	cr_assert(s.got_close, "no CLOSE frame reached the server");
	mc_ws_conn_free(c);
	mc_ws_target_clear(&t);
	close(s.lfd);
}

Test(ws_conn, continuation_frames_reassembled)
{
	cr_assert_eq(mc_api_global_init(), 0);
	struct server s;
	server_start(&s, S_FRAGMENTED);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial(&s, &t, &seen);
	cr_assert(run_until(c, got_msg_and_quiet, &seen));
	cr_assert_eq(seen.msgs, 1);
	cr_assert_str_eq(seen.last,
			 "{\"type\":\"daemon:task_available\",\"payload\":{},\"event_id\":\"x\"}");
	mc_ws_conn_close(c, "test over");
	pthread_join(s.th, NULL);
	mc_ws_conn_free(c);
	mc_ws_target_clear(&t);
	close(s.lfd);
}

Test(ws_conn, masked_server_frame_is_a_violation)
{
	cr_assert_eq(mc_api_global_init(), 0);
	struct server s;
	server_start(&s, S_MASKED);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial(&s, &t, &seen);
	cr_assert(run_until(c, ended, &seen));
	cr_assert_eq(mc_ws_conn_state(c), MC_WSC_CLOSED);
	cr_assert(mc_ws_conn_violation(c), "%s", mc_ws_conn_why(c));
	cr_assert_eq(seen.msgs, 1, "the valid frame before it was delivered");
	mc_ws_conn_free(c);
	pthread_join(s.th, NULL);
	cr_assert(s.got_close, "wslay's CLOSE (1002) did not reach the server");
	mc_ws_target_clear(&t);
	close(s.lfd);
}

Test(ws_conn, a_message_over_64_mib_is_a_violation)
{
	cr_assert_eq(mc_api_global_init(), 0);
	struct server s;
	server_start(&s, S_HUGE);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial(&s, &t, &seen);
	cr_assert(run_until(c, ended, &seen));
	cr_assert_eq(mc_ws_conn_state(c), MC_WSC_CLOSED);
	cr_assert(mc_ws_conn_violation(c));
	cr_assert(strstr(mc_ws_conn_why(c), "64 MiB"), "%s", mc_ws_conn_why(c));
	mc_ws_conn_free(c);
	pthread_join(s.th, NULL);
	cr_assert(s.got_close);
	mc_ws_target_clear(&t);
	close(s.lfd);
}

Test(ws_conn, refused_upgrade_has_its_status)
{
	cr_assert_eq(mc_api_global_init(), 0);
	struct server s;
	server_start(&s, S_404);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial(&s, &t, &seen);
	cr_assert(run_until(c, ended, &seen));
	cr_assert_eq(mc_ws_conn_state(c), MC_WSC_FAILED);
	cr_assert_eq(mc_ws_conn_status(c), 404);
	cr_assert_eq(seen.opened, 0);
	mc_ws_conn_free(c);
	pthread_join(s.th, NULL);
	mc_ws_target_clear(&t);
	close(s.lfd);
}

Test(ws_conn, nothing_listening_fails)
{
	cr_assert_eq(mc_api_global_init(), 0);
	struct server s;
	server_start(&s, S_404);
	int port = s.port;
	/* Let the thread finish: connect once and hang up. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	connect(fd, (struct sockaddr *)&a, sizeof a);
	close(fd);
	pthread_join(s.th, NULL);
	close(s.lfd);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial(&s, &t, &seen);
	cr_assert(run_until(c, ended, &seen));
	cr_assert_eq(mc_ws_conn_state(c), MC_WSC_FAILED);
	cr_assert_eq(mc_ws_conn_status(c), 0);
	mc_ws_conn_free(c);
	mc_ws_target_clear(&t);
}

/* wss: the same certificate checks as the HTTP calls (ca_file, the name). */
static void tls_case(const struct tca *ca, const char *cert, bool want_open)
{
	tls_cert = cert;
	tls_key = ca->key;
	struct server s;
	server_start(&s, S_PUSH_AND_PING);
	struct mc_ws_target t;
	struct seen seen = { 0 };
	struct mc_ws_conn *c = dial_ca(&s, &t, &seen, ca->ca);
	cr_assert(run_until(c, got_msg_and_quiet, &seen));
	if (want_open) {
		cr_assert_eq(mc_ws_conn_state(c), MC_WSC_OPEN, "%s", mc_ws_conn_why(c));
		cr_assert(strstr(seen.last, "daemon:task_available"));
		mc_ws_conn_close(c, "test over");
	} else {
		cr_assert_eq(mc_ws_conn_state(c), MC_WSC_FAILED, "%s: opened", cert);
		cr_assert_eq(mc_ws_conn_status(c), 0);
	}
	mc_ws_conn_free(c);
	pthread_join(s.th, NULL);
	/* The upgrade request (it holds the token) never reached it: the
	 * chain is refused in the handshake, the name right after it. */
	if (!want_open)
		cr_assert_eq(s.req[0], '\0', "%s: the request reached the server", cert);
	mc_ws_target_clear(&t);
	close(s.lfd);
	tls_cert = NULL;
}

Test(ws_conn, wss_verifies_like_https)
{
	signal(SIGPIPE, SIG_IGN); /* the server's close_notify to a client gone (as the daemon) */
	cr_assert_eq(mc_api_global_init(), 0);
	struct tca ca;
	cr_assert_eq(tca_make(&ca), 0);
	tls_case(&ca, ca.good, true);
	tls_case(&ca, ca.untrusted, false);
	tls_case(&ca, ca.wronghost, false);
	tls_case(&ca, ca.expired, false);
	tca_free(&ca);
}
