/* Test support: a counting byte relay (tcp_relay.h). */
#include "tests/support/tcp_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void close_pair(int *pair)
{
	for (int k = 0; k < 2; k++) {
		if (pair[k] >= 0)
			close(pair[k]);
		pair[k] = -1;
	}
}

static void accept_one(struct relay *r)
{
	int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	atomic_fetch_add(&r->accepts, 1);
	for (int i = 0; i < RELAY_MAX_CONNS; i++) {
		if (r->fds[i][0] >= 0)
			continue;
		int u = tcp_connect_loopback(r->upstream_port);
		if (u < 0)
			break;
		r->fds[i][0] = c;
		r->fds[i][1] = u;
		return;
	}
	close(c);
}

/* Moves what is readable on from to to (loopback: a blocking write is
 * short). False when either side is done. */
static bool pump(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof buf);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	atomic_store(&r->running, true);
	for (;;) {
		struct pollfd p[2 + 2 * RELAY_MAX_CONNS];
		int map[2 + 2 * RELAY_MAX_CONNS];
		nfds_t n = 0;
		p[n++] = (struct pollfd){ .fd = r->stop_pipe[0], .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = r->lfd, .events = POLLIN };
		for (int i = 0; i < RELAY_MAX_CONNS; i++) {
			if (r->fds[i][0] < 0)
				continue;
			for (int k = 0; k < 2; k++) {
				map[n] = i * 2 + k;
				p[n++] = (struct pollfd){ .fd = r->fds[i][k], .events = POLLIN };
			}
		}
		if (poll(p, n, 1000) < 0 && errno != EINTR)
			return NULL;
		if (p[0].revents)
			return NULL;
		if (p[1].revents & POLLIN)
			accept_one(r);
		for (nfds_t j = 2; j < n; j++) {
			if (p[j].revents == 0)
				continue;
			int i = map[j] / 2, k = map[j] % 2;
			if (r->fds[i][k] >= 0 && !pump(r->fds[i][k], r->fds[i][1 - k]))
				close_pair(r->fds[i]);
		}
	}
}

int relay_start(struct relay *r, int upstream_port)
{
	memset(r, 0, sizeof *r);
	r->upstream_port = upstream_port;
	for (int i = 0; i < RELAY_MAX_CONNS; i++)
		r->fds[i][0] = r->fds[i][1] = -1;
	r->lfd = tcp_listen_loopback(64, &r->port);
	if (r->lfd < 0 || pipe2(r->stop_pipe, O_CLOEXEC) < 0) {
		fprintf(stderr, "tcp_relay: set-up failed: %s\n", strerror(errno));
		if (r->lfd >= 0)
			close(r->lfd);
		return -1;
	}
	if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
		close(r->lfd);
		close(r->stop_pipe[0]);
		close(r->stop_pipe[1]);
		return -1;
	}
	/* A thread still starting up holds the sanitizers' locks: a worker
	 * forked at that moment would hang in its exit-time leak check. */
	while (!atomic_load(&r->running))
		usleep(1000);
	return 0;
}

int relay_accepts(struct relay *r)
{
	return atomic_load(&r->accepts);
}

void relay_stop(struct relay *r)
{
	if (write(r->stop_pipe[1], "x", 1) < 0)
		fprintf(stderr, "tcp_relay: cannot stop the thread\n");
	pthread_join(r->thread, NULL);
	for (int i = 0; i < RELAY_MAX_CONNS; i++)
		close_pair(r->fds[i]);
	close(r->lfd);
	close(r->stop_pipe[0]);
	close(r->stop_pipe[1]);
}
