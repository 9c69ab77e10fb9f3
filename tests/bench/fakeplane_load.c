/* fakeplane_load: a small keep-alive load generator for multica-fakeplane.
 *
 * N connections on loopback, each sending POST /api/daemon/heartbeat for a
 * registered runtime back to back (one request in flight per connection),
 * for a bounded duration; one thread, epoll. Prints requests/s and latency
 * percentiles. With -C N it first opens N more keep-alive connections,
 * each answered once, holds them idle through the run and checks them
 * afterwards: how many connections the emulator sustains. Without --url it
 * starts its own fakeplane (FAKEPLANE_BIN). See tests/bench/README.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/support/fakeplane_proc.h"

#define WS "11111111-1111-4111-8111-111111111111"
#define TOKEN "bench-token"
#define RBUF 8192
#define MAX_CONNS 1024
#define MAX_IDLE 1000000
#define FD_SPARE 64
#define FP_DEFAULT_MAX_CONNS 16384   /* the emulator's --max-connections default */

static const char SEED[] =
	"{\"tokens\":{\"" TOKEN "\":\"bench\"},"
	"\"workspaces\":[{\"id\":\"" WS "\",\"name\":\"bench\",\"members\":[\"bench\"]}]}";

struct opts {
	const char *url;        /* NULL: start our own fakeplane */
	const char *token;
	const char *workspace;
	int conns;
	long idle;              /* -C: idle keep-alive connections held through the run */
	double seconds;
	double min_rps;         /* exit 1 below this */
};

struct conn {
	int fd;
	size_t sent;            /* bytes of the request written */
	char buf[RBUF];
	size_t got;             /* bytes of the reply read */
	int64_t started_us;
};

struct stats {
	uint64_t ok, bad_status, io_errors;
	uint32_t *lat_us;       /* one per completed request */
	size_t nlat, caplat;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void usage(FILE *f)
{
	fputs("usage: fakeplane_load [-c CONNS] [-C IDLE] [-d SECONDS] [--min-rps N]\n"
	      "                      [--url http://127.0.0.1:PORT --token T --workspace UUID]\n"
	      "Without --url a fakeplane (" FAKEPLANE_BIN ") is started for the run.\n", f);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token", required_argument, NULL, 't' },
		{ "workspace", required_argument, NULL, 'w' },
		{ "connections", required_argument, NULL, 'c' },
		{ "idle", required_argument, NULL, 'C' },
		{ "duration", required_argument, NULL, 'd' },
		{ "min-rps", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){ NULL, TOKEN, WS, 8, 0, 5.0, 0.0 };
	int c;
	while ((c = getopt_long(argc, argv, "c:C:d:h", lo, NULL)) != -1) {
		char *end = NULL;
		errno = 0;
		switch (c) {
		case 'u': o->url = optarg; break;
		case 't': o->token = optarg; break;
		case 'w': o->workspace = optarg; break;
		case 'c': o->conns = (int)strtol(optarg, &end, 10); break;
		case 'C': o->idle = strtol(optarg, &end, 10); break;
		case 'd': o->seconds = strtod(optarg, &end); break;
		case 'm': o->min_rps = strtod(optarg, &end); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (end != NULL && (errno != 0 || *end != '\0' || end == optarg)) {
			fprintf(stderr, "fakeplane_load: bad number \"%s\"\n", optarg);
			return -1;
		}
	}
	if (o->conns < 1 || o->conns > MAX_CONNS || o->seconds <= 0 || o->seconds > 600 ||
	    o->idle < 0 || o->idle > MAX_IDLE) {
		fprintf(stderr, "fakeplane_load: need 1..%d connections, 0..%d idle ones and "
			"0..600 s\n", MAX_CONNS, MAX_IDLE);
		return -1;
	}
	return 0;
}

/* Loopback only: http://127.0.0.1:PORT. */
static int parse_url(const char *url, struct fp_proc *fp)
{
	long port = fp_parse_port_after(url, "http://127.0.0.1:");
	if (port < 0) {
		fprintf(stderr, "fakeplane_load: --url must be http://127.0.0.1:PORT\n");
		return -1;
	}
	fp->port = (int)port;
	snprintf(fp->url, sizeof fp->url, "http://127.0.0.1:%ld", port);
	return 0;
}

/* Registers one built-in runtime; its id goes into id. */
static int register_runtime(const struct fp_proc *fp, const struct opts *o, char id[64])
{
	char auth[512], body[512];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
	const char *hdrs[] = { auth, NULL };
	snprintf(body, sizeof body,
		 "{\"workspace_id\":\"%s\",\"daemon_id\":\"bench-daemon\",\"device_name\":\"bench\","
		 "\"runtimes\":[{\"name\":\"\",\"type\":\"claude\",\"version\":\"1\","
		 "\"status\":\"online\"}],\"failed_profiles\":null}", o->workspace);
	char *reply = NULL;
	long st = fp_http(fp, "POST", "/api/daemon/register", body, hdrs, &reply);
	cJSON *j = st == 200 ? cJSON_Parse(reply) : NULL;
	const cJSON *rt = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "runtimes"), 0);
	const char *rid = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "id"));
	int rc = -1;
	if (rid != NULL) {
		snprintf(id, 64, "%s", rid);
		rc = 0;
	} else {
		fprintf(stderr, "fakeplane_load: register failed: %ld %s\n", st, reply ? reply : "");
	}
	cJSON_Delete(j);
	free(reply);
	return rc;
}

/* The request bytes, built once (data is malloc'd). */
struct request {
	char *data;
	size_t len;
};

/* Allocates rq->data. */
static int build_request(struct request *rq, int port, const char *token, const char *rid)
{
	char body[128];
	int blen = snprintf(body, sizeof body,
			    "{\"runtime_id\":\"%s\",\"supports_batch_import\":true}", rid);
	size_t cap = 1024 + strlen(token);
	rq->data = malloc(cap);
	if (rq->data == NULL)
		return -1;
	int n = snprintf(rq->data, cap,
			 "POST /api/daemon/heartbeat HTTP/1.1\r\n"
			 "Host: 127.0.0.1:%d\r\n"
			 "Authorization: Bearer %s\r\n"
			 "Content-Type: application/json\r\n"
			 "Content-Length: %d\r\n\r\n%s", port, token, blen, body);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	rq->len = (size_t)n;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);   /* also leaves the epoll set */
	c->fd = -1;
}

static int conn_open(struct conn *c, int ep, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	c->sent = c->got = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* A blocking connect on loopback completes at once; I/O is non-blocking. */
	int rc;
	while ((rc = connect(c->fd, (struct sockaddr *)&sin, sizeof sin)) < 0 && errno == EINTR)
		;
	int fl = rc == 0 ? fcntl(c->fd, F_GETFL) : -1;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_close(c);
		return -1;
	}
	c->started_us = now_us();
	return 0;
}

/* 1 when buf holds a whole reply (status in *status), 0 when more is
 * needed, -1 when it cannot be parsed. */
static int reply_complete(const char *buf, size_t got, int *status)
{
	const char *end = strstr(buf, "\r\n\r\n");
	if (end == NULL)
		return got >= RBUF - 1 ? -1 : 0;
	if (strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -1;
	*status = (int)strtol(buf + 9, NULL, 10);
	long cl = 0;
	for (const char *p = strstr(buf, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n"))
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			cl = strtol(p + 17, NULL, 10);
	size_t need = (size_t)(end + 4 - buf) + (size_t)cl;
	if (need >= RBUF)
		return -1;
	return got >= need ? 1 : 0;
}

static void record(struct stats *st, int status, int64_t lat)
{
	if (status == 200)
		st->ok++;
	else
		st->bad_status++;
	if (st->nlat == st->caplat) {
		size_t ncap = st->caplat ? st->caplat * 2 : 65536;
		uint32_t *n = realloc(st->lat_us, ncap * sizeof *n);
		if (n == NULL)
			return;
		st->lat_us = n;
		st->caplat = ncap;
	}
	st->lat_us[st->nlat++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
}

/* Moves one connection as far as it can go without blocking. Returns -1
 * when the connection broke (the caller reopens it). */
static int conn_pump(struct conn *c, const struct request *rq, struct stats *st,
		     int64_t deadline)
{
	for (;;) {
		if (c->sent < rq->len) {
			ssize_t n = send(c->fd, rq->data + c->sent, rq->len - c->sent, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN ? 0 : -1;
			c->sent += (size_t)n;
			continue;
		}
		ssize_t n = recv(c->fd, c->buf + c->got, RBUF - 1 - c->got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		if (n == 0)
			return -1;
		c->got += (size_t)n;
		c->buf[c->got] = '\0';
		int status = 0;
		int done = reply_complete(c->buf, c->got, &status);
		if (done < 0)
			return -1;
		if (done == 0)
			continue;
		int64_t t = now_us();
		record(st, status, t - c->started_us);
		c->sent = c->got = 0;
		c->started_us = t;
		if (t >= deadline)
			return 0;   /* no new request after the deadline */
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t percentile(const struct stats *st, double p)
{
	if (st->nlat == 0)
		return 0;
	size_t i = (size_t)(p * (double)(st->nlat - 1));
	return st->lat_us[i];
}

/* The load loop proper. Returns the measured seconds. */
static double run_load(int port, const struct opts *o, const struct request *rq,
		       struct stats *st)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct conn *conns = calloc((size_t)o->conns, sizeof *conns);
	if (ep < 0 || conns == NULL) {
		fprintf(stderr, "fakeplane_load: epoll/calloc failed\n");
		exit(1);
	}
	int64_t t0 = now_us();
	int64_t deadline = t0 + (int64_t)(o->seconds * 1e6);
	for (int i = 0; i < o->conns; i++) {
		conns[i].fd = -1;
		if (conn_open(&conns[i], ep, port) < 0)
			st->io_errors++;
	}
	struct epoll_event evs[64];
	while (now_us() < deadline) {
		int n = epoll_wait(ep, evs, 64, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (conn_pump(c, rq, st, deadline) < 0) {
				st->io_errors++;
				conn_close(c);
				if (now_us() < deadline && conn_open(c, ep, port) < 0)
					st->io_errors++;
			}
		}
	}
	double secs = (double)(now_us() - t0) / 1e6;
	for (int i = 0; i < o->conns; i++)
		conn_close(&conns[i]);
	free(conns);
	close(ep);
	return secs;
}

/* The idle keep-alive connections of -C. */
struct idle_set {
	struct fp_conn *c;
	long n;
	long ok_before, ok_after;   /* answered 200 before and after the run */
};

/* One heartbeat on every open idle connection at once; returns how many
 * were answered 200 (within 60 s). */
static long idle_round(struct idle_set *is, const struct fp_proc *fp, const char *token,
		       const char *rid)
{
	char auth[512], body[128];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	snprintf(body, sizeof body, "{\"runtime_id\":\"%s\",\"supports_batch_import\":true}", rid);
	const char *hdrs[] = { auth, NULL };
	for (long i = 0; i < is->n; i++)
		if (is->c[i].fd >= 0 && fp_conn_send(&is->c[i], "POST", "/api/daemon/heartbeat",
						     body, hdrs) < 0)
			fp_conn_close(&is->c[i]);
	fp_conn_wait(is->c, (size_t)is->n, 60000);
	long ok = 0;
	for (long i = 0; i < is->n; i++)
		ok += is->c[i].fd >= 0 && !is->c[i].waiting && is->c[i].status == 200;
	return ok;
}

/* Opens -C connections and has each answered once; returns -1 when this
 * process cannot hold them. */
static int idle_open(struct idle_set *is, const struct fp_proc *fp, const struct opts *o,
		     const char *rid)
{
	is->n = o->idle;
	if (is->n == 0)
		return 0;
	long need = is->n + o->conns + FD_SPARE;
	long lim = fp_raise_nofile(need);
	if (lim < need) {
		fprintf(stderr, "fakeplane_load: -C %ld needs %ld open files, RLIMIT_NOFILE allows "
			"%ld\n", is->n, need, lim);
		return -1;
	}
	is->c = calloc((size_t)is->n, sizeof *is->c);
	if (is->c == NULL)
		return -1;
	long failed = 0;
	for (long i = 0; i < is->n; i++)
		if (fp_conn_open(&is->c[i], fp->port) < 0)
			failed++;
	if (failed > 0)
		fprintf(stderr, "fakeplane_load: %ld of %ld idle connections failed to connect\n",
			failed, is->n);
	is->ok_before = idle_round(is, fp, o->token, rid);
	return 0;
}

static void idle_close(struct idle_set *is)
{
	for (long i = 0; i < is->n && is->c != NULL; i++)
		fp_conn_close(&is->c[i]);
	free(is->c);
}

/* Starts our own fakeplane, with room for every connection of the run. */
static int start_own(struct fp_proc *fp, const struct opts *o)
{
	char max[32];
	long total = o->idle + o->conns + 16;
	snprintf(max, sizeof max, "%ld", total);
	const char *args[] = { "--max-connections", max, NULL };
	return fp_start(fp, SEED, total > FP_DEFAULT_MAX_CONNS ? args : NULL);
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	struct fp_proc fp = { .pid = -1 };
	if (o.url != NULL ? parse_url(o.url, &fp) < 0 : start_own(&fp, &o) < 0)
		return 1;
	char rid[64];
	struct request rq = { 0 };
	struct stats st = { 0 };
	struct idle_set idle = { 0 };
	int rc = 1;
	if (register_runtime(&fp, &o, rid) < 0 || build_request(&rq, fp.port, o.token, rid) < 0 ||
	    idle_open(&idle, &fp, &o, rid) < 0)
		goto out;
	double secs = run_load(fp.port, &o, &rq, &st);
	if (idle.n > 0)
		idle.ok_after = idle_round(&idle, &fp, o.token, rid);
	qsort(st.lat_us, st.nlat, sizeof *st.lat_us, cmp_u32);
	double rps = (double)st.ok / secs;
	printf("connections=%d duration=%.2fs ok=%llu bad_status=%llu io_errors=%llu "
	       "rps=%.0f p50=%uus p99=%uus max=%uus\n", o.conns, secs,
	       (unsigned long long)st.ok, (unsigned long long)st.bad_status,
	       (unsigned long long)st.io_errors, rps, percentile(&st, 0.5),
	       percentile(&st, 0.99), percentile(&st, 1.0));
	if (idle.n > 0)
		printf("idle=%ld answered_before=%ld answered_after=%ld\n", idle.n, idle.ok_before,
		       idle.ok_after);
	rc = (st.bad_status == 0 && rps >= o.min_rps && idle.ok_before == idle.n &&
	      idle.ok_after == idle.n) ? 0 : 1;
out:
	idle_close(&idle);
	free(rq.data);
	free(st.lat_us);
	if (fp.pid > 0)
		fp_stop(&fp);
	return rc;
}
