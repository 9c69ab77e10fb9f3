/* Test support: the scripted hostile HTTP server (hostile_server.h).
 * Threads: one accepts and reaps, one per connection reads requests and
 * plays their rule. A connection thread owns its socket until it is
 * joined; whoever joins it closes the fd, so no fd number is ever shut
 * down after being reused. */
#include "tests/support/hostile_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "tests/support/tcp_relay.h"

#define MAX_CONNS 512
#define MAX_RULES 32
#define MAX_REQS 8192
#define REQ_MAX (8u << 20)
#define UPSTREAM_TIMEOUT_MS 10000
#define CHUNK_FLAT_OUT 65536

struct conn {
	struct hs *s;
	pthread_t thread;
	int fd;
	bool used;
	atomic_bool done;
};

struct hs {
	int lfd;
	int port;
	char url[64];
	int upstream_port;
	int stop_pipe[2];
	atomic_bool stopping;
	atomic_bool running;            /* the accept thread is in its loop */
	pthread_t accept_thread;
	pthread_mutex_t mu;             /* rules, reqs, connections */
	struct hs_rule rules[MAX_RULES];
	int used[MAX_RULES];
	size_t n_rules;
	struct hs_req *reqs;
	size_t n_reqs;
	int connections;
	struct conn conns[MAX_CONNS];
};

/* One request, pointing into the connection's buffer. */
struct request {
	char method[8];
	char path[256];
	const char *head;               /* request line + headers, "\r\n\r\n" included */
	size_t head_len;
	const char *body;
	size_t body_len;
	bool close;                     /* Connection: close */
};

struct rbuf {
	char *p;
	size_t len, cap;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Waits ms on fd: 1 when the client hung up, 0 when the time passed,
 * -1 when the server is stopping. */
static int wait_or_hangup(struct hs *s, int fd, int ms)
{
	int64_t until = now_ms() + ms;
	for (;;) {
		int64_t left = until - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN | POLLRDHUP },
				       { .fd = s->stop_pipe[0], .events = POLLIN } };
		int n = poll(p, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (p[1].revents || atomic_load(&s->stopping))
			return -1;
		if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR))
			return 1;
		if (p[0].revents & POLLIN) {
			char c;
			if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
				return 1;
			return 0; /* a next request, early: not a hang-up */
		}
	}
}

/* ---- reading a request ---- */

static bool rbuf_fill(struct rbuf *b, int fd)
{
	if (b->cap - b->len < 4096) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		if (cap > REQ_MAX)
			return false;
		char *p = realloc(b->p, cap + 1);
		if (p == NULL)
			return false;
		b->p = p;
		b->cap = cap;
	}
	for (;;) {
		ssize_t r = recv(fd, b->p + b->len, b->cap - b->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b->len += (size_t)r;
		b->p[b->len] = '\0';
		return true;
	}
}

static const char *find_head_end(const struct rbuf *b)
{
	return b->p != NULL ? memmem(b->p, b->len, "\r\n\r\n", 4) : NULL;
}

/* The value of header name in head (first line excluded), or NULL. */
static const char *header_value(const char *head, size_t head_len, const char *name,
				size_t *vlen)
{
	size_t nl = strlen(name);
	const char *end = head + head_len;
	for (const char *line = memchr(head, '\n', head_len); line != NULL && line + 1 < end;
	     line = memchr(line + 1, '\n', (size_t)(end - line - 1))) {
		const char *h = line + 1;
		if ((size_t)(end - h) > nl && strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			const char *v = h + nl + 1;
			while (v < end && *v == ' ')
				v++;
			const char *e = v;
			while (e < end && *e != '\r' && *e != '\n')
				e++;
			*vlen = (size_t)(e - v);
			return v;
		}
	}
	return NULL;
}

static bool parse_request_line(struct request *q)
{
	const char *sp = memchr(q->head, ' ', q->head_len);
	if (sp == NULL || (size_t)(sp - q->head) >= sizeof q->method)
		return false;
	memcpy(q->method, q->head, (size_t)(sp - q->head));
	q->method[sp - q->head] = '\0';
	const char *p = sp + 1;
	const char *sp2 = memchr(p, ' ', q->head_len - (size_t)(p - q->head));
	if (sp2 == NULL)
		return false;
	size_t n = (size_t)(sp2 - p);
	if (n >= sizeof q->path)
		n = sizeof q->path - 1;
	memcpy(q->path, p, n);
	q->path[n] = '\0';
	return true;
}

/* Reads one whole request into b. False at EOF or on a broken request. */
static bool read_request(int fd, struct rbuf *b, struct request *q)
{
	const char *he;
	while ((he = find_head_end(b)) == NULL)
		if (!rbuf_fill(b, fd))
			return false;
	memset(q, 0, sizeof *q);
	q->head_len = (size_t)(he + 4 - b->p);
	size_t cl = 0, vlen = 0;
	const char *v = header_value(b->p, q->head_len, "Content-Length", &vlen);
	if (v != NULL) {
		char num[24];
		char *end;
		strlcpy(num, v, vlen + 1 < sizeof num ? vlen + 1 : sizeof num);
		errno = 0;
		unsigned long long x = strtoull(num, &end, 10);
		if (errno != 0 || end == num || x > REQ_MAX)
			return false;
		cl = (size_t)x;
	}
	while (b->len < q->head_len + cl)
		if (!rbuf_fill(b, fd))
			return false;
	q->head = b->p;
	q->body = b->p + q->head_len;
	q->body_len = cl;
	v = header_value(b->p, q->head_len, "Connection", &vlen);
	q->close = v != NULL && vlen == 5 && strncasecmp(v, "close", 5) == 0;
	return parse_request_line(q);
}

static void rbuf_consume(struct rbuf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	b->p[b->len] = '\0';
}

/* ---- the request log and the rules ---- */

static size_t log_request(struct hs *s, const struct request *q, int rule)
{
	pthread_mutex_lock(&s->mu);
	size_t i = s->n_reqs;
	if (i < MAX_REQS) {
		struct hs_req *r = &s->reqs[i];
		strlcpy(r->method, q->method, sizeof r->method);
		strlcpy(r->path, q->path, sizeof r->path);
		r->rule = rule;
		r->start_ms = now_ms();
		s->n_reqs++;
	}
	pthread_mutex_unlock(&s->mu);
	return i;
}

static void log_end(struct hs *s, size_t i, bool client_left)
{
	pthread_mutex_lock(&s->mu);
	if (i < s->n_reqs) {
		s->reqs[i].end_ms = now_ms();
		s->reqs[i].client_left = client_left;
	}
	pthread_mutex_unlock(&s->mu);
}

static bool span_has(const char *p, size_t n, const char *needle)
{
	return memmem(p, n, needle, strlen(needle)) != NULL;
}

static bool rule_matches(const struct hs_rule *r, const struct request *q)
{
	return (r->method == NULL || strcmp(r->method, q->method) == 0) &&
	       (r->path_prefix == NULL ||
		strncmp(q->path, r->path_prefix, strlen(r->path_prefix)) == 0) &&
	       (r->has == NULL || strstr(q->path, r->has) != NULL ||
		span_has(q->body, q->body_len, r->has));
}

/* The first matching rule (copied into *out) and its index, or -1. */
static int match_rule(struct hs *s, const struct request *q, struct hs_rule *out)
{
	int found = -1;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_rules && found < 0; i++) {
		const struct hs_rule *r = &s->rules[i];
		if ((r->times > 0 && s->used[i] >= r->times) || !rule_matches(r, q))
			continue;
		s->used[i]++;
		*out = *r;
		found = (int)i;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

/* ---- forwarding ---- */

static bool skip_header(const char *line, size_t n)
{
	static const char *const hop[] = { "Connection:", "Keep-Alive:", "Expect:",
					   "Content-Length:", "Transfer-Encoding:" };
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++) {
		size_t k = strlen(hop[i]);
		if (n >= k && strncasecmp(line, hop[i], k) == 0)
			return true;
	}
	return false;
}

/* Appends the header lines of head (after its first line, without the
 * blank line) that are not hop-by-hop or framing. */
static void copy_headers(FILE *out, const char *head, size_t head_len)
{
	const char *end = head + head_len - 2; /* keep the last header's CRLF */
	const char *line = memchr(head, '\n', head_len);
	while (line != NULL && line + 1 < end) {
		const char *h = line + 1;
		const char *nl = memchr(h, '\n', (size_t)(end - h));
		if (nl == NULL)
			break;
		size_t n = (size_t)(nl + 1 - h);
		if (!skip_header(h, n))
			fwrite(h, 1, n, out);
		line = nl;
	}
}

/* Reads fd to EOF (bounded in time and size). Allocates *out. */
static bool read_to_eof(struct hs *s, int fd, char **out, size_t *len)
{
	struct rbuf b = { 0 };
	int64_t until = now_ms() + UPSTREAM_TIMEOUT_MS;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
				       { .fd = s->stop_pipe[0], .events = POLLIN } };
		int64_t left = until - now_ms();
		if (left <= 0 || poll(p, 2, (int)left) <= 0 || p[1].revents)
			break;
		if (!rbuf_fill(&b, fd)) {
			*out = b.p;
			*len = b.len;
			return b.p != NULL;
		}
	}
	free(b.p);
	return false;
}

/* The upstream's answer to q, re-framed for a keep-alive client.
 * Allocates *resp; false when the upstream could not answer. */
static bool forward(struct hs *s, const struct request *q, char **resp, size_t *resp_len)
{
	char *req = NULL, *raw = NULL;
	size_t req_len = 0, raw_len = 0;
	FILE *f = open_memstream(&req, &req_len);
	if (f == NULL)
		return false;
	const char *eol = memchr(q->head, '\n', q->head_len);
	fwrite(q->head, 1, (size_t)(eol + 1 - q->head), f);
	copy_headers(f, q->head, q->head_len);
	fprintf(f, "Connection: close\r\nContent-Length: %zu\r\n\r\n", q->body_len);
	fwrite(q->body, 1, q->body_len, f);
	fclose(f);
	int fd = s->upstream_port > 0 ? tcp_connect_loopback(s->upstream_port) : -1;
	bool ok = fd >= 0 && send_all(fd, req, req_len) && read_to_eof(s, fd, &raw, &raw_len);
	free(req);
	if (fd >= 0)
		close(fd);
	const char *he = ok ? memmem(raw, raw_len, "\r\n\r\n", 4) : NULL;
	if (he == NULL) {
		free(raw);
		return false;
	}
	size_t head_len = (size_t)(he + 4 - raw);
	f = open_memstream(resp, resp_len);
	if (f == NULL) {
		free(raw);
		return false;
	}
	eol = memchr(raw, '\n', head_len);
	fwrite(raw, 1, (size_t)(eol + 1 - raw), f);
	copy_headers(f, raw, head_len);
	fprintf(f, "Content-Length: %zu\r\n\r\n", raw_len - head_len);
	fwrite(raw + head_len, 1, raw_len - head_len, f);
	fclose(f);
	free(raw);
	return true;
}

/* ---- the actions ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 404: return "Not Found";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	default: return "Status";
	}
}

/* The HS_ANSWER response of r (malloc'd into *out). */
static void build_answer(const struct hs_rule *r, char **out, size_t *len)
{
	const char *body = r->body != NULL ? r->body : "{}";
	size_t blen = r->body_len > 0 ? r->body_len : strlen(body);
	int status = r->status > 0 ? r->status : 200;
	const char *ct = r->content_type != NULL ? r->content_type : "application/json";
	FILE *f = open_memstream(out, len);
	if (f == NULL) {
		*out = NULL;
		*len = 0;
		return;
	}
	fprintf(f, "HTTP/1.1 %d %s\r\n", status, reason(status));
	if (ct[0] != '\0')
		fprintf(f, "Content-Type: %s\r\n", ct);
	fprintf(f, "Content-Length: %zu\r\n\r\n", blen);
	fwrite(body, 1, blen, f);
	fclose(f);
}

/* How an answer ended. */
enum sent { SENT_WHOLE, SENT_CUT, CLIENT_LEFT };

/* Sends resp one byte every ms. */
static enum sent drip(struct hs *s, int fd, const char *resp, size_t len, int ms)
{
	for (size_t i = 0; i < len; i++) {
		if (!send_all(fd, resp + i, 1))
			return CLIENT_LEFT;
		int w = wait_or_hangup(s, fd, ms);
		if (w != 0)
			return w > 0 ? CLIENT_LEFT : SENT_CUT;
	}
	return SENT_WHOLE;
}

/* Chunks of r's body until the client leaves (or the server stops). */
static enum sent endless_chunks(struct hs *s, int fd, const struct hs_rule *r)
{
	const char *unit = r->body != NULL ? r->body : "[";
	size_t ulen = r->body_len > 0 ? r->body_len : strlen(unit);
	size_t reps = r->drip_ms > 0 ? 1 : CHUNK_FLAT_OUT / ulen + 1;
	char *chunk = NULL;
	size_t clen = 0;
	FILE *f = open_memstream(&chunk, &clen);
	if (f == NULL)
		return SENT_CUT;
	fprintf(f, "%zx\r\n", reps * ulen);
	for (size_t i = 0; i < reps; i++)
		fwrite(unit, 1, ulen, f);
	fputs("\r\n", f);
	fclose(f);
	const char *ct = r->content_type != NULL ? r->content_type : "application/json";
	char head[256];
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n", ct);
	enum sent out = send_all(fd, head, strlen(head)) ? SENT_CUT : CLIENT_LEFT;
	while (out == SENT_CUT && !atomic_load(&s->stopping)) {
		if (!send_all(fd, chunk, clen))
			out = CLIENT_LEFT;
		else if (r->drip_ms > 0) {
			int w = wait_or_hangup(s, fd, r->drip_ms);
			if (w != 0)
				out = w > 0 ? CLIENT_LEFT : SENT_CUT;
			if (w < 0)
				break;
		}
	}
	free(chunk);
	return out;
}

static enum sent redirect(struct hs *s, int fd, const struct hs_rule *r,
			  const struct request *q)
{
	char resp[1024];
	int status = r->status > 0 ? r->status : 302;
	char self[512];
	snprintf(self, sizeof self, "%s%s", s->url, q->path);
	snprintf(resp, sizeof resp, "HTTP/1.1 %d %s\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n",
		 status, reason(status), r->location != NULL ? r->location : self);
	return send_all(fd, resp, strlen(resp)) ? SENT_WHOLE : CLIENT_LEFT;
}

/* Half of the answer's body, then the close (by the caller). */
static enum sent close_mid_body(int fd, const struct hs_rule *r, const char *resp, size_t len)
{
	const char *body = r->body != NULL ? r->body : "{}";
	size_t blen = r->body_len > 0 ? r->body_len : strlen(body);
	return send_all(fd, resp, len - blen + blen / 2) ? SENT_CUT : CLIENT_LEFT;
}

/* Plays the rule. */
static enum sent play(struct hs *s, int fd, const struct hs_rule *r, const struct request *q)
{
	char *resp = NULL;
	size_t len = 0;
	enum sent out = SENT_CUT;
	if (r->forward_first && forward(s, q, &resp, &len)) {
		free(resp);
		resp = NULL;
	}
	switch (r->act) {
	case HS_ANSWER:
	case HS_DRIP:
	case HS_CLOSE_MID_BODY:
		build_answer(r, &resp, &len);
		if (resp == NULL)
			break;
		if (r->act == HS_ANSWER)
			out = send_all(fd, resp, len) ? SENT_WHOLE : CLIENT_LEFT;
		else if (r->act == HS_DRIP)
			out = drip(s, fd, resp, len, r->drip_ms > 0 ? r->drip_ms : 1000);
		else
			out = close_mid_body(fd, r, resp, len);
		break;
	case HS_CHUNKED_ENDLESS:
		out = endless_chunks(s, fd, r);
		break;
	case HS_REDIRECT:
		out = redirect(s, fd, r, q);
		break;
	case HS_FORWARD:
		break;
	}
	free(resp);
	return out;
}

static enum sent relay_upstream(struct hs *s, int fd, const struct request *q)
{
	char *resp = NULL;
	size_t len = 0;
	enum sent out;
	if (!forward(s, q, &resp, &len)) {
		static const char bad[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
		out = send_all(fd, bad, sizeof bad - 1) ? SENT_WHOLE : CLIENT_LEFT;
	} else {
		out = send_all(fd, resp, len) ? SENT_WHOLE : CLIENT_LEFT;
	}
	free(resp);
	return out;
}

/* One request: its rule, or the upstream. False: close the connection. */
static bool serve(struct hs *s, int fd, const struct request *q)
{
	struct hs_rule r;
	int rule = match_rule(s, q, &r);
	if (rule >= 0 && r.act == HS_FORWARD)
		rule = -1;
	size_t at = log_request(s, q, rule);
	enum sent out = rule >= 0 ? play(s, fd, &r, q) : relay_upstream(s, fd, q);
	log_end(s, at, out == CLIENT_LEFT);
	return out == SENT_WHOLE && !q->close;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct rbuf b = { 0 };
	struct request q;
	while (!atomic_load(&c->s->stopping) && read_request(c->fd, &b, &q)) {
		size_t used = q.head_len + q.body_len;
		if (!serve(c->s, c->fd, &q))
			break;
		rbuf_consume(&b, used);
	}
	free(b.p);
	shutdown(c->fd, SHUT_RDWR); /* the client sees the close now; the fd stays ours */
	atomic_store(&c->done, true);
	return NULL;
}

/* ---- accepting, and the server's life ---- */

static void reap_done(struct hs *s, bool all)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];
		if (!c->used || (!all && !atomic_load(&c->done)))
			continue;
		if (all)
			shutdown(c->fd, SHUT_RDWR);
		pthread_join(c->thread, NULL);
		close(c->fd);
		c->used = false;
	}
}

static void accept_one(struct hs *s)
{
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	pthread_mutex_lock(&s->mu);
	s->connections++;
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];
		if (c->used)
			continue;
		c->s = s;
		c->fd = fd;
		atomic_store(&c->done, false);
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
			break;
		c->used = true;
		return;
	}
	fprintf(stderr, "hostile_server: no room for a connection\n");
	close(fd);
}

static void *accept_main(void *arg)
{
	struct hs *s = arg;
	atomic_store(&s->running, true);
	while (!atomic_load(&s->stopping)) {
		struct pollfd p[2] = { { .fd = s->lfd, .events = POLLIN },
				       { .fd = s->stop_pipe[0], .events = POLLIN } };
		int n = poll(p, 2, 200);
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			accept_one(s);
		reap_done(s, false);
	}
	return NULL;
}

struct hs *hs_start(int upstream_port)
{
	struct hs *s = calloc(1, sizeof *s);
	if (s == NULL || (s->reqs = calloc(MAX_REQS, sizeof *s->reqs)) == NULL) {
		free(s);
		return NULL;
	}
	s->upstream_port = upstream_port;
	pthread_mutex_init(&s->mu, NULL);
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->lfd = tcp_listen_loopback(128, &s->port);
	if (s->lfd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) < 0 ||
	    pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
		fprintf(stderr, "hostile_server: set-up failed: %s\n", strerror(errno));
		if (s->lfd >= 0)
			close(s->lfd);
		if (s->stop_pipe[0] >= 0) {
			close(s->stop_pipe[0]);
			close(s->stop_pipe[1]);
		}
		pthread_mutex_destroy(&s->mu);
		free(s->reqs);
		free(s);
		return NULL;
	}
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
	/* A thread still starting up holds the sanitizers' locks: a worker
	 * forked at that moment would hang in its exit-time leak check. */
	while (!atomic_load(&s->running))
		usleep(1000);
	return s;
}

const char *hs_url(const struct hs *s)
{
	return s->url;
}

void hs_set_rules(struct hs *s, const struct hs_rule *rules, size_t n)
{
	pthread_mutex_lock(&s->mu);
	s->n_rules = n < MAX_RULES ? n : MAX_RULES;
	for (size_t i = 0; i < s->n_rules; i++) {
		s->rules[i] = rules[i];
		s->used[i] = 0;
	}
	pthread_mutex_unlock(&s->mu);
}

int hs_connections(struct hs *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->connections;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int hs_count(struct hs *s, const char *method, const char *prefix, int rule)
{
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_reqs; i++) {
		const struct hs_req *r = &s->reqs[i];
		if ((method == NULL || strcmp(r->method, method) == 0) &&
		    (prefix == NULL || strncmp(r->path, prefix, strlen(prefix)) == 0) &&
		    (rule == HS_ANY_RULE || r->rule == rule))
			n++;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t hs_requests(struct hs *s, struct hs_req *out, size_t max)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->n_reqs < max ? s->n_reqs : max;
	memcpy(out, s->reqs, n * sizeof *out);
	pthread_mutex_unlock(&s->mu);
	return n;
}

void hs_stop(struct hs *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stopping, true);
	if (write(s->stop_pipe[1], "x", 1) < 0)
		fprintf(stderr, "hostile_server: cannot wake the threads\n");
	pthread_join(s->accept_thread, NULL);
	reap_done(s, true);
	close(s->lfd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->mu);
	free(s->reqs);
	free(s);
}
