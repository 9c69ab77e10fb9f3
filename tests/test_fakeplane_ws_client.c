#include "tests/test_fakeplane_ws_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>

struct fp_proc fp;
char tls_url[64];

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- admin ---- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *d, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	b->p = realloc(b->p, b->n + sz * n + 1);
	memcpy(b->p + b->n, d, sz * n);
	b->n += sz * n;
	b->p[b->n] = '\0';
	return sz * n;
}

/* One admin request, over TLS (certificate unchecked) when the emulator
 * runs it. Returns the status; *out (may be NULL) gets the body. */
long admin(const char *method, const char *path, const char *body, char **out)
{
	if (tls_url[0] == '\0')
		return fp_http(&fp, method, path, body, NULL, out);
	CURL *h = curl_easy_init();
	char url[256];
	snprintf(url, sizeof url, "%s%s", tls_url, path);
	struct buf b = { NULL, 0 };
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	if (body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	long status = -1;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (out != NULL)
		*out = b.p;
	else
		free(b.p);
	return status;
}

void admin_ok(const char *method, const char *path, const char *body)
{
	char *out = NULL;
	long st = admin(method, path, body, &out);
	cr_assert_eq(st, 200, "%s %s -> %ld %s", method, path, st, out ? out : "");
	free(out);
}

cJSON *admin_json(const char *path)
{
	char *out = NULL;
	cr_assert_eq(admin("GET", path, NULL, &out), 200);
	cJSON *j = cJSON_Parse(out);
	free(out);
	cr_assert_not_null(j);
	return j;
}

double num(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsNumber(j), "no number %s", key);
	return j->valuedouble;
}

/* ---- the client ---- */


static ssize_t io_send(struct wsc *c, const void *p, size_t n)
{
	if (c->tls == NULL)
		return send(c->fd, p, n, MSG_NOSIGNAL);
	size_t sent = 0;
	CURLcode rc = curl_easy_send(c->tls, p, n, &sent);
	if (rc == CURLE_AGAIN) {
		errno = EAGAIN;
		return -1;
	}
	return rc == CURLE_OK ? (ssize_t)sent : -1;
}

/* Reads what comes within timeout_ms into c->buf. Returns bytes read, 0
 * on timeout, -1 when the peer closed. */
static ssize_t io_fill(struct wsc *c, int timeout_ms)
{
	if (c->cap - c->len < 65536) {
		c->cap = c->cap * 2 + 65536;
		c->buf = realloc(c->buf, c->cap);
	}
	int64_t end = now_ms() + timeout_ms;
	for (;;) {
		ssize_t n;
		if (c->tls == NULL) {
			n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
		} else {
			size_t got = 0;
			CURLcode rc = curl_easy_recv(c->tls, c->buf + c->len, c->cap - c->len,
						     &got);
			n = rc == CURLE_OK ? (ssize_t)got : rc == CURLE_AGAIN ? -1 : 0;
			if (rc == CURLE_OK && got == 0)
				n = 0;
			else if (rc != CURLE_OK && rc != CURLE_AGAIN)
				return -1;
		}
		if (n == 0)
			return -1;
		if (n > 0) {
			c->len += (size_t)n;
			return n;
		}
		int left = (int)(end - now_ms());
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		poll(&p, 1, left);
	}
}

/* Connects (TLS when tls_url is set) and sends the upgrade request for
 * query (after "?", may be ""), with this Authorization (NULL: none).
 * Returns the status; a 101 leaves c ready for frames. */
int wsc_open(struct wsc *c, const char *query, const char *auth)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	if (tls_url[0] != '\0') {
		c->tls = curl_easy_init();
		curl_easy_setopt(c->tls, CURLOPT_URL, tls_url);
		curl_easy_setopt(c->tls, CURLOPT_CONNECT_ONLY, 1L);
		curl_easy_setopt(c->tls, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(c->tls, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->tls, CURLOPT_SSL_VERIFYHOST, 0L);
		cr_assert_eq(curl_easy_perform(c->tls), CURLE_OK, "TLS connect");
		curl_socket_t s;
		curl_easy_getinfo(c->tls, CURLINFO_ACTIVESOCKET, &s);
		c->fd = (int)s;
	} else {
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(fp.port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
	}
	char req[2048], authh[256] = "";
	if (auth != NULL)
		snprintf(authh, sizeof authh, "Authorization: %s\r\n", auth);
	int n = snprintf(req, sizeof req,
			 "GET /api/daemon/ws%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n"
			 "%s\r\n", query[0] ? "?" : "", query, authh);
	for (int off = 0; off < n;) {
		ssize_t w = io_send(c, req + off, (size_t)(n - off));
		if (w < 0 && errno == EAGAIN) {
			usleep(1000);
			continue;
		}
		cr_assert_gt(w, 0);
		off += (int)w;
	}
	int64_t end = now_ms() + 5000;
	char *eoh = NULL;
	while (eoh == NULL) {
		cr_assert_lt(now_ms(), end, "no response to the upgrade");
		if (io_fill(c, 200) < 0 && c->len == 0)
			cr_assert_fail("closed before a response");
		if (c->len > 0) {
			c->buf[c->len < c->cap ? c->len : c->cap - 1] = '\0';
			eoh = memmem(c->buf, c->len, "\r\n\r\n", 4);
		}
	}
	size_t hl = (size_t)(eoh + 4 - (char *)c->buf);
	cr_assert_lt(hl, sizeof c->head);
	memcpy(c->head, c->buf, hl);
	c->head[hl] = '\0';
	memmove(c->buf, c->buf + hl, c->len - hl);
	c->len -= hl;
	cr_assert_eq(sscanf(c->head, "HTTP/1.1 %d", &c->status), 1);
	if (c->status != 101) {
		const char *cl = strcasestr(c->head, "Content-Length:");
		long want = cl ? strtol(cl + 15, NULL, 10) : 0;
		while ((long)c->len < want && io_fill(c, 2000) > 0)
			;
		c->body = strndup((char *)c->buf, c->len);
	}
	return c->status;
}

void wsc_close(struct wsc *c)
{
	if (c->tls != NULL)
		curl_easy_cleanup(c->tls);
	else if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c->body);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}


/* The next frame within timeout_ms: 1, 0 on timeout, -1 when closed.
 * With header_only a frame's payload is not waited for (the oversize one). */
int wsc_frame(struct wsc *c, struct frame *f, int timeout_ms, bool header_only)
{
	int64_t end = now_ms() + timeout_ms;
	for (;;) {
		int hl = fp_ws_header_parse(c->buf, c->len, &f->h);
		cr_assert_geq(hl, 0);
		if (hl > 0 && (header_only || c->len - (size_t)hl >= f->h.len)) {
			size_t pl = header_only ? 0 : (size_t)f->h.len;
			f->payload = malloc(pl + 1);
			memcpy(f->payload, c->buf + hl, pl);
			f->payload[pl] = '\0';
			memmove(c->buf, c->buf + hl + pl, c->len - hl - pl);
			c->len -= (size_t)hl + pl;
			return 1;
		}
		int left = (int)(end - now_ms());
		if (left <= 0)
			return 0;
		if (io_fill(c, left) < 0)
			return -1;
	}
}

void wsc_send(struct wsc *c, unsigned opcode, bool fin, const void *p, size_t n,
		     bool masked)
{
	static const uint8_t mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	size_t fl;
	uint8_t *f = fp_ws_frame_build(opcode, fin, p, n, masked ? mask : NULL, &fl);
	for (size_t off = 0; off < fl;) {
		ssize_t w = io_send(c, f + off, fl - off);
		if (w < 0 && errno == EAGAIN) {
			usleep(1000);
			continue;
		}
		if (w <= 0)
			break;   /* the server may have closed: the test reads that */
		off += (size_t)w;
	}
	free(f);
}

/* The next data message, PINGs skipped, as parsed JSON (caller deletes). */
cJSON *wsc_json(struct wsc *c, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	struct frame f;
	for (;;) {
		int left = (int)(end - now_ms());
		cr_assert_gt(left, 0, "no message within %d ms", timeout_ms);
		cr_assert_eq(wsc_frame(c, &f, left, false), 1, "no message within %d ms",
			     timeout_ms);
		if (f.h.opcode == FP_WS_TEXT)
			break;
		free(f.payload);
	}
	cr_assert(f.h.fin);
	cJSON *j = cJSON_Parse((char *)f.payload);
	free(f.payload);
	cr_assert_not_null(j);
	return j;
}

const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Asserts the message's type and payload fields (NULL value: absent). */
void expect_push(struct wsc *c, const char *type, const char *k1, const char *v1,
			const char *k2, const char *v2)
{
	cJSON *m = wsc_json(c, 3000);
	cr_assert_str_eq(jstr(m, "type"), type);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "payload");
	cr_assert(cJSON_IsObject(p));
	if (k1 != NULL)
		cr_assert_str_eq(jstr(p, k1), v1, "%s", k1);
	if (k2 != NULL && v2 != NULL)
		cr_assert_str_eq(jstr(p, k2), v2, "%s", k2);
	if (k2 != NULL && v2 == NULL)
		cr_assert_null(cJSON_GetObjectItemCaseSensitive(p, k2), "%s present", k2);
	cJSON_Delete(m);
}

void open_ok(struct wsc *c, const char *query)
{
	int st = wsc_open(c, query, AUTH);
	cr_assert_eq(st, 101, "upgrade answered %d: %s", st, c->body ? c->body : "");
}

/* The connection count of GET /_admin/ws reaching n within 3 s. */
void wait_conns(int n)
{
	int64_t end = now_ms() + 3000;
	for (;;) {
		cJSON *j = admin_json("/_admin/ws");
		int got = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "connections"));
		cJSON_Delete(j);
		if (got == n)
			return;
		cr_assert_lt(now_ms(), end, "%d connections, not %d", got, n);
		usleep(20000);
	}
}

/* The id of the connection whose first runtime is rt (the hub lists
 * sockets as their threads start, not in connect order). */
double conn_id(const char *rt)
{
	cJSON *j = admin_json("/_admin/ws");
	const cJSON *c;
	double id = -1;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "connections")) {
		const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "runtime_ids");
		const cJSON *r = cJSON_GetArrayItem(ids, 0);
		if (strcmp(r->valuestring, rt) == 0)
			id = num(c, "id");
	}
	cJSON_Delete(j);
	cr_assert_gt(id, 0, "no connection of %s", rt);
	return id;
}

/* POST /_admin/ws/send {"connection": id, <rest>, where rest ends with "}". */
void send_to(double id, const char *rest)
{
	char body[512];
	snprintf(body, sizeof body, "{\"connection\":%.0f,%s", id, rest);
	admin_ok("POST", "/_admin/ws/send", body);
}

/* Reads until a CLOSE frame; returns its code (0: none), -1 when closed
 * without one. */
int close_code(struct wsc *c)
{
	struct frame f;
	for (;;) {
		int rc = wsc_frame(c, &f, 3000, false);
		if (rc != 1)
			return -1;
		if (f.h.opcode == FP_WS_CLOSE) {
			int code = f.h.len >= 2 ? f.payload[0] << 8 | f.payload[1] : 0;
			free(f.payload);
			return code;
		}
		free(f.payload);
	}
}

