/* Test support: multica-fakeplane as a child process (see the header).
 * Error convention: -1 (or NULL) on failure, with a line on stderr saying
 * why, so that a failing test shows the cause. */
#include "tests/support/fakeplane_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#ifndef FAKEPLANE_BIN
#error "FAKEPLANE_BIN must be defined (tests/CMakeLists.txt)"
#endif

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 5000
#define MAX_ARGS 64

extern char **environ;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int make_tempdir(char *dir, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(dir, size, "%s/fakeplane-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (n < 0 || (size_t)n >= size || mkdtemp(dir) == NULL) {
		fprintf(stderr, "fakeplane_proc: mkdtemp: %s\n", strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	return 0;
}

static void remove_tempdir(char *dir)
{
	char path[512];
	if (dir[0] == '\0')
		return;
	snprintf(path, sizeof path, "%s/seed.json", dir);
	unlink(path);
	rmdir(dir);
	dir[0] = '\0';
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Writes DIR/seed.json into path. */
static int write_seed(const char *dir, const char *json, char *path, size_t size)
{
	snprintf(path, size, "%s/seed.json", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, json, strlen(json)) < 0) {
		fprintf(stderr, "fakeplane_proc: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return close(fd);
}

/* argv: FAKEPLANE_BIN, head..., ["--seed", seed_path], extra... */
static int build_argv(const char **argv, const char *const *head, const char *seed_path,
		      const char *const *extra)
{
	int n = 0;
	argv[n++] = FAKEPLANE_BIN;
	for (size_t i = 0; head && head[i] && n < MAX_ARGS - 3; i++)
		argv[n++] = head[i];
	if (seed_path != NULL) {
		argv[n++] = "--seed";
		argv[n++] = seed_path;
	}
	for (size_t i = 0; extra && extra[i]; i++) {
		if (n >= MAX_ARGS - 1) {
			fprintf(stderr, "fakeplane_proc: too many arguments\n");
			return -1;
		}
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	return 0;
}

/* Spawns argv with child fd `target` (1 or 2) on a pipe whose read end is
 * returned in *rfd; the other of stdout/stderr is left as ours when
 * quiet is false, else /dev/null. stdin is the read end of a pipe whose
 * write end goes to *wfd when wfd is not NULL (the child sees EOF once we
 * are gone), else /dev/null. Nothing else leaks into the child. */
static int spawn(const char **argv, int target, bool quiet, pid_t *pid, int *rfd, int *wfd)
{
	int p[2], in[2] = { -1, -1 };
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "fakeplane_proc: pipe2: %s\n", strerror(errno));
		return -1;
	}
	if (wfd != NULL && pipe2(in, O_CLOEXEC) < 0) {
		fprintf(stderr, "fakeplane_proc: pipe2: %s\n", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], target);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, target == 1 ? 2 : 1, "/dev/null",
						 O_WRONLY, 0);
	if (wfd != NULL)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	int rc = posix_spawn(pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (in[0] >= 0)
		close(in[0]);
	if (rc != 0) {
		fprintf(stderr, "fakeplane_proc: spawn %s: %s\n", argv[0], strerror(rc));
		close(p[0]);
		if (in[1] >= 0)
			close(in[1]);
		return -1;
	}
	*rfd = p[0];
	if (wfd != NULL)
		*wfd = in[1];
	return 0;
}

/* The write ends of the children's stdin pipes, by pid (struct fp_proc
 * has no room for them). Closing one, or our exit, ends that child. */
#define MAX_WATCHED 64
static struct { pid_t pid; int fd; } watched[MAX_WATCHED];
static pthread_mutex_t watched_mu = PTHREAD_MUTEX_INITIALIZER;

/* Returns 0, or -1 (and closes fd) when the table is full. */
static int watch_add(pid_t pid, int fd)
{
	int rc = -1;
	pthread_mutex_lock(&watched_mu);
	for (int i = 0; i < MAX_WATCHED && rc < 0; i++) {
		if (watched[i].pid == 0) {
			watched[i].pid = pid;
			watched[i].fd = fd;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&watched_mu);
	if (rc < 0)
		close(fd);
	return rc;
}

static void watch_remove(pid_t pid)
{
	pthread_mutex_lock(&watched_mu);
	for (int i = 0; i < MAX_WATCHED; i++) {
		if (watched[i].pid == pid) {
			close(watched[i].fd);
			watched[i].pid = 0;
		}
	}
	pthread_mutex_unlock(&watched_mu);
}

/* Reads from fd into a growing buffer until EOF, a newline (if
 * stop_at_newline) or the deadline. Returns the bytes read (buffer
 * NUL-terminated, malloc'd into *out), or -1 on timeout/error. */
static ssize_t read_until(int fd, bool stop_at_newline, int64_t deadline, char **out)
{
	size_t len = 0, cap = 256;
	char *buf = malloc(cap);
	if (buf == NULL)
		return -1;
	buf[0] = '\0';
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		if (len + 1 >= cap) {
			char *nbuf = realloc(buf, cap * 2);
			if (nbuf == NULL)
				break;
			buf = nbuf;
			cap *= 2;
		}
		/* One byte at a time before the newline: nothing after it may be
		 * consumed, and the line is short. */
		size_t want = stop_at_newline ? 1 : cap - len - 1;
		ssize_t n = read(fd, buf + len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*out = buf;
			return (ssize_t)len;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (stop_at_newline && buf[len - 1] == '\n') {
			*out = buf;
			return (ssize_t)len;
		}
	}
	*out = buf;
	return -1;
}

/* waitpid with a deadline; SIGKILL after it. Returns the status. */
static int reap(pid_t pid, int timeout_ms)
{
	int status = 0;
	int64_t deadline = mono_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (mono_ms() >= deadline)
			break;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

long fp_parse_port_after(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncmp(s, prefix, n) != 0)
		return -1;
	errno = 0;
	char *end;
	long port = strtol(s + n, &end, 10);
	if (errno != 0 || end == s + n || (*end != '\0' && *end != '\n') || port < 1 ||
	    port > 65535)
		return -1;
	return port;
}

int fp_start(struct fp_proc *fp, const char *seed_json, const char *const *extra_args)
{
	/* --exit-on-stdin-eof: should this test process die without fp_stop
	 * (a failed assertion, a timeout), the emulator goes too instead of
	 * holding ctest's output pipe open. */
	static const char *const head[] = { "--listen", "127.0.0.1:0", "--exit-on-stdin-eof",
					    NULL };
	char seed_path[512];
	const char *argv[MAX_ARGS];
	memset(fp, 0, sizeof *fp);
	fp->pid = -1;
	if (make_tempdir(fp->dir, sizeof fp->dir) < 0)
		return -1;
	if ((seed_json && write_seed(fp->dir, seed_json, seed_path, sizeof seed_path) < 0) ||
	    build_argv(argv, head, seed_json ? seed_path : NULL, extra_args) < 0)
		goto fail;
	int rfd, wfd;
	if (spawn(argv, 1, false, &fp->pid, &rfd, &wfd) < 0)
		goto fail;
	if (watch_add(fp->pid, wfd) < 0) {
		fprintf(stderr, "fakeplane_proc: more than %d fakeplanes at once\n", MAX_WATCHED);
		goto fail;
	}
	char *line = NULL;
	ssize_t n = read_until(rfd, true, mono_ms() + START_TIMEOUT_MS, &line);
	close(rfd);
	long port = n > 0 ? fp_parse_port_after(line, "listening on 127.0.0.1:") : -1;
	if (port <= 0) {
		fprintf(stderr, "fakeplane_proc: no \"listening on\" line (got \"%s\")\n",
			line ? line : "");
		free(line);
		goto fail;
	}
	free(line);
	fp->port = (int)port;
	snprintf(fp->url, sizeof fp->url, "http://127.0.0.1:%ld", port);
	return 0;
fail:
	if (fp->pid > 0) {
		kill(fp->pid, SIGKILL);
		reap(fp->pid, STOP_TIMEOUT_MS);
		watch_remove(fp->pid);
		fp->pid = -1;
	}
	remove_tempdir(fp->dir);
	return -1;
}

int fp_stop(struct fp_proc *fp)
{
	int status = -1;
	if (fp->pid > 0) {
		kill(fp->pid, SIGTERM);
		status = reap(fp->pid, STOP_TIMEOUT_MS);
		watch_remove(fp->pid);
		fp->pid = -1;
	}
	remove_tempdir(fp->dir);
	return status;
}

int fp_run(const char *seed_json, const char *const *args, int timeout_ms,
	   int *status, char **out_stderr)
{
	char dir[256] = "", seed_path[512];
	const char *argv[MAX_ARGS];
	int rc = -1, rfd;
	pid_t pid;
	*out_stderr = NULL;
	if (seed_json != NULL && (make_tempdir(dir, sizeof dir) < 0 ||
				  write_seed(dir, seed_json, seed_path, sizeof seed_path) < 0))
		goto out;
	if (build_argv(argv, NULL, seed_json ? seed_path : NULL, args) < 0 ||
	    spawn(argv, 2, true, &pid, &rfd, NULL) < 0)
		goto out;
	char *text = NULL;
	ssize_t n = read_until(rfd, false, mono_ms() + timeout_ms, &text);
	close(rfd);
	*status = reap(pid, n < 0 ? 0 : timeout_ms);
	if (text != NULL)
		fputs(text, stderr);   /* sanitizer reports stay visible to ctest */
	*out_stderr = text;
	rc = 0;
out:
	remove_tempdir(dir);
	return rc;
}

/* ---- HTTP ---- */

struct buf {
	char *data;
	size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;
	char *nd = realloc(b->data, b->len + n + 1);
	if (nd == NULL)
		return 0;
	memcpy(nd + b->len, ptr, n);
	b->data = nd;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

long fp_http_timeout(const struct fp_proc *fp, const char *method, const char *path,
		     const char *body, const char *const *extra_headers, char **out_body,
		     long timeout_ms)
{
	pthread_once(&curl_once, curl_init_once);
	if (out_body)
		*out_body = NULL;
	CURL *h = curl_easy_init();
	if (h == NULL)
		return -1;
	char url[1024];
	snprintf(url, sizeof url, "%s%s", fp->url, path);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
	if (body != NULL)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	for (size_t i = 0; extra_headers && extra_headers[i]; i++)
		hdrs = curl_slist_append(hdrs, extra_headers[i]);
	struct buf b = { NULL, 0 };
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	long status = -1;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (out_body != NULL && status >= 0) {
		*out_body = b.data ? b.data : strdup("");
		b.data = NULL;
	}
	free(b.data);
	return status;
}

long fp_http(const struct fp_proc *fp, const char *method, const char *path,
	     const char *body, const char *const *extra_headers, char **out_body)
{
	return fp_http_timeout(fp, method, path, body, extra_headers, out_body, 30000);
}

static cJSON *get_json(const struct fp_proc *fp, const char *path)
{
	char *body = NULL;
	long st = fp_http(fp, "GET", path, NULL, NULL, &body);
	cJSON *j = st == 200 ? cJSON_Parse(body) : NULL;
	if (j == NULL)
		fprintf(stderr, "fakeplane_proc: GET %s: status %ld\n", path, st);
	free(body);
	return j;
}

cJSON *fp_state(const struct fp_proc *fp) { return get_json(fp, "/_admin/state"); }
cJSON *fp_journal(const struct fp_proc *fp) { return get_json(fp, "/_admin/journal"); }

long fp_fault(const struct fp_proc *fp, const char *fault_json)
{
	return fp_http(fp, "POST", "/_admin/faults", fault_json, NULL, NULL);
}

int fp_journal_count(const struct fp_proc *fp, const char *method, const char *path_prefix)
{
	cJSON *j = fp_journal(fp);
	if (j == NULL)
		return -1;
	int n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		if (m == NULL || p == NULL)
			continue;
		if ((method == NULL || strcmp(m, method) == 0) &&
		    (path_prefix == NULL || strncmp(p, path_prefix, strlen(path_prefix)) == 0))
			n++;
	}
	cJSON_Delete(j);
	return n;
}

char *fp_runtime_status(const struct fp_proc *fp, const char *runtime_id)
{
	cJSON *s = fp_state(fp);
	char *status = NULL;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "runtimes")) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		if (id != NULL && strcmp(id, runtime_id) == 0) {
			const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
			status = st ? strdup(st) : NULL;
			break;
		}
	}
	cJSON_Delete(s);
	return status;
}

/* ---- raw keep-alive connections ---- */

#define CONN_BUF0 2048
#define CONN_SEND_TIMEOUT_MS 5000

void fp_conn_close(struct fp_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->waiting = false;
	free(c->buf);
	c->buf = NULL;
	c->got = c->cap = 0;
}

int fp_conn_open(struct fp_conn *c, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->buf = malloc(CONN_BUF0);
	if (c->fd < 0 || c->buf == NULL) {
		int e = c->buf == NULL ? ENOMEM : errno;
		fp_conn_close(c);
		errno = e;
		return -1;
	}
	c->cap = CONN_BUF0;
	c->buf[0] = '\0';
	int one = 1, rc;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* Blocking connect: on loopback it completes once the listener's
	 * backlog has room, which is what a client sees too. */
	while ((rc = connect(c->fd, (struct sockaddr *)&sin, sizeof sin)) < 0 && errno == EINTR)
		;
	int fl = rc == 0 ? fcntl(c->fd, F_GETFL) : -1;
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		fp_conn_close(c);
		errno = e;
		return -1;
	}
	return 0;
}

/* Writes all of data on a non-blocking socket, polling when it is full. */
static int send_all(int fd, const char *data, size_t len)
{
	int64_t deadline = mono_ms() + CONN_SEND_TIMEOUT_MS;
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -1;
		int64_t left = deadline - mono_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (left <= 0 || (poll(&pfd, 1, (int)left) < 0 && errno != EINTR))
			return -1;
	}
	return 0;
}

int fp_conn_send(struct fp_conn *c, const char *method, const char *path, const char *body,
		 const char *const *extra_headers)
{
	char head[4096];
	size_t blen = body ? strlen(body) : 0;
	int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
	for (size_t i = 0; extra_headers && extra_headers[i] && n > 0 && (size_t)n < sizeof head; i++)
		n += snprintf(head + n, sizeof head - (size_t)n, "%s\r\n", extra_headers[i]);
	if (n > 0 && (size_t)n < sizeof head)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n\r\n", blen);
	if (c->fd < 0 || n < 0 || (size_t)n >= sizeof head) {
		errno = c->fd < 0 ? EBADF : EMSGSIZE;
		return -1;
	}
	/* One write, as clients send a small request. */
	char *req = malloc((size_t)n + blen);
	if (req == NULL)
		return -1;
	memcpy(req, head, (size_t)n);
	if (blen > 0)
		memcpy(req + n, body, blen);
	c->got = 0;
	c->buf[0] = '\0';
	c->status = 0;
	c->body_off = 0;
	c->sent_ms = mono_ms();
	int rc = send_all(c->fd, req, (size_t)n + blen);
	free(req);
	if (rc < 0)
		return -1;
	c->waiting = true;
	return 0;
}

/* 1 when buf holds a whole reply (status and body offset set), 0 when more
 * is needed, -1 when it is no HTTP/1.x reply. */
static int reply_whole(struct fp_conn *c)
{
	const char *end = strstr(c->buf, "\r\n\r\n");
	if (end == NULL)
		return c->got > 65536 ? -1 : 0;
	if (strncmp(c->buf, "HTTP/1.", 7) != 0 || c->got < 12 || c->buf[8] != ' ')
		return -1;
	char *stop;
	long status = strtol(c->buf + 9, &stop, 10);
	if (stop != c->buf + 12 || status < 100 || status > 599)
		return -1;
	unsigned long long cl = 0;
	for (const char *p = strstr(c->buf, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n"))
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			cl = strtoull(p + 17, NULL, 10);
	size_t head = (size_t)(end + 4 - c->buf);
	if (c->got < head + cl)
		return 0;
	c->status = (int)status;
	c->body_off = head;
	return 1;
}

/* Reads what is there. Returns 1 when the reply is whole, 0 for more, -1
 * when the connection is gone or talks garbage (then it is closed). */
static int conn_read(struct fp_conn *c)
{
	for (;;) {
		if (c->cap - c->got < 1024) {
			char *nb = realloc(c->buf, c->cap * 2);
			if (nb == NULL)
				return -1;
			c->buf = nb;
			c->cap *= 2;
		}
		ssize_t n = recv(c->fd, c->buf + c->got, c->cap - c->got - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->got += (size_t)n;
		c->buf[c->got] = '\0';
		int w = reply_whole(c);
		if (w != 0)
			return w;
	}
}

static void conn_settle(struct fp_conn *c, int r)
{
	if (r == 0)
		return;
	c->waiting = false;
	c->done_ms = mono_ms();
	if (r < 0) {
		c->peer_closed = true;
		close(c->fd);
		c->fd = -1;
	}
}

size_t fp_conn_wait(struct fp_conn *cs, size_t n, int timeout_ms)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	size_t left = 0;
	for (size_t i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
		if (cs[i].waiting && ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) == 0)
			left++;
	}
	int64_t deadline = mono_ms() + timeout_ms;
	struct epoll_event evs[256];
	while (left > 0) {
		int64_t ms = deadline - mono_ms();
		if (ms <= 0)
			break;
		int k = epoll_wait(ep, evs, 256, (int)ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break;
		for (int i = 0; i < k; i++) {
			struct fp_conn *c = evs[i].data.ptr;
			int fd = c->fd;
			conn_settle(c, conn_read(c));
			if (!c->waiting) {
				if (c->fd >= 0)
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				left--;
			}
		}
	}
	if (ep >= 0)
		close(ep);
	size_t still = 0;
	for (size_t i = 0; i < n; i++)
		still += cs[i].waiting;
	return still;
}

const char *fp_conn_body(const struct fp_conn *c)
{
	return c->buf != NULL && c->status > 0 ? c->buf + c->body_off : "";
}

bool fp_conn_peer_gone(struct fp_conn *c)
{
	if (c->fd < 0)
		return true;
	char b;
	ssize_t n;
	while ((n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	return n == 0 || (n < 0 && errno != EAGAIN);
}

long fp_raise_nofile(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)want ?
			      (rlim_t)want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX :
	       (long)rl.rlim_cur;
}
