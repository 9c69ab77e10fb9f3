/* multicactl: the conversation with the daemon. One request line out, one
 * reply line in, then the daemon closes the connection. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "ctl/ctl.h"

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. 0, or -1 with
 * errno (ETIMEDOUT, or poll's own error). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 0; /* ready, or POLLHUP/POLLERR: the next call says which */
	}
}

static void set_timeout(int fd, int opt, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000) };
	(void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* Connects to path. The fd, or -1 with errno. The connect itself is
 * blocking (an AF_UNIX connect only waits when the daemon's backlog is full,
 * and a non-blocking one would fail with EAGAIN instead of waiting), bounded
 * by SO_SNDTIMEO; the conversation after it is non-blocking with poll. */
static int connect_socket(const char *path, int64_t timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlcpy(sa.sun_path, path, sizeof sa.sun_path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_timeout(fd, SO_SNDTIMEO, timeout_ms);
	int r;
	/* An interrupted AF_UNIX connect leaves the socket unconnected, so
	 * trying again is correct (unlike TCP, where it would be EALREADY). */
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		close(fd);
		errno = (e == EAGAIN || e == EWOULDBLOCK) ? ETIMEDOUT : e;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wait_fd(fd, POLLOUT, deadline) < 0)
					return -1;
				continue;
			}
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

enum recv_result { RECV_OK, RECV_UNREACHABLE, RECV_BAD };

/* Reads one line (without its '\n') into a malloc'd NUL-terminated *out.
 * A reply without a final newline is accepted at EOF: the daemon closes
 * after its one line anyway. *why says what went wrong otherwise. */
static enum recv_result recv_line(int fd, int64_t deadline, char **out, const char **why)
{
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL) {
		*why = "out of memory";
		return RECV_BAD;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= REPLY_MAX) {
				free(buf);
				*why = "reply longer than 4 MiB";
				return RECV_BAD;
			}
			size_t ncap = cap * 2 > REPLY_MAX ? REPLY_MAX : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL) {
				free(buf);
				*why = "out of memory";
				return RECV_BAD;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wait_fd(fd, POLLIN, deadline) == 0)
					continue;
			}
			free(buf);
			*why = errno == ETIMEDOUT ? "no reply in time (is multicad stuck?)"
						  : strerror(errno);
			return RECV_UNREACHABLE;
		}
		if (r == 0) {
			if (len == 0) {
				free(buf);
				*why = "the daemon closed the connection without replying";
				return RECV_UNREACHABLE;
			}
			break;
		}
		char *nl = memchr(buf + len, '\n', (size_t)r);
		len += (size_t)r;
		if (nl != NULL) {
			len = (size_t)(nl - buf);
			break;
		}
	}
	buf[len] = '\0';
	*out = buf;
	return RECV_OK;
}

/* Sends req to the daemon and parses its reply into *reply (an object with
 * a boolean "ok"). Returns EXIT_OK, or the exit code after printing why. */
int transact(const char *sock, const cJSON *req, int64_t timeout_ms, cJSON **reply)
{
	*reply = NULL;
	char *text = cJSON_PrintUnformatted(req);
	if (text == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	size_t tlen = strlen(text);
	char *line = malloc(tlen + 2);
	if (line == NULL) {
		free(text);
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	memcpy(line, text, tlen);
	line[tlen] = '\n';
	line[tlen + 1] = '\0';
	free(text);

	/* No timeout (a drain): the connect is still bounded. */
	int64_t deadline = timeout_ms < 0 ? INT64_MAX / 2 : now_ms() + timeout_ms;
	int fd = connect_socket(sock, timeout_ms < 0 ? 10000 : timeout_ms);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s (is multicad running?)\n", prog, sock,
			strerror(errno));
		free(line);
		return EXIT_UNREACHABLE;
	}
	/* A daemon at its client limit answers and closes before the request
	 * is sent: its answer is still there to read. */
	if (send_all(fd, line, tlen + 1, deadline) < 0 && errno != EPIPE && errno != ECONNRESET) {
		fprintf(stderr, "%s: cannot send the request to %s: %s\n", prog, sock,
			strerror(errno));
		free(line);
		close(fd);
		return EXIT_UNREACHABLE;
	}
	free(line);
	/* Half-close: the daemon reads a line, but an EOF after it costs
	 * nothing and tells a future daemon that no more requests follow. */
	(void)shutdown(fd, SHUT_WR);

	char *buf = NULL;
	const char *why = NULL;
	enum recv_result rr = recv_line(fd, deadline, &buf, &why);
	close(fd);
	if (rr != RECV_OK) {
		fprintf(stderr, "%s: %s: %s\n", prog, sock, why);
		return rr == RECV_UNREACHABLE ? EXIT_UNREACHABLE : EXIT_BAD_REPLY;
	}
	cJSON *r = cJSON_Parse(buf);
	free(buf);
	if (r == NULL || !cJSON_IsObject(r) ||
	    !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
		fprintf(stderr, "%s: %s: the reply is not a JSON object with \"ok\"\n", prog, sock);
		cJSON_Delete(r);
		return EXIT_BAD_REPLY;
	}
	*reply = r;
	return EXIT_OK;
}

bool reply_ok(const cJSON *reply)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"));
}

/* Prints the daemon's error ("what: error") and returns EXIT_DAEMON_ERROR. */
int daemon_error(const cJSON *reply, const char *what)
{
	const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "error"));
	char *s = sanitize(e != NULL ? e : "(no error message)");
	fprintf(stderr, "%s: %s%s%s\n", prog, what ? what : "", what ? ": " : "", s);
	free(s);
	return EXIT_DAEMON_ERROR;
}
