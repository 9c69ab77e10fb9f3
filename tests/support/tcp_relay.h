/* Test support: a byte relay on 127.0.0.1 in front of another local port,
 * counting the connections clients open through it (TLS handshakes
 * included, which no HTTP-level journal sees). One thread; parent side. */
#ifndef MC_TEST_TCP_RELAY_H
#define MC_TEST_TCP_RELAY_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/* The loopback sockets of the test servers (this relay, hostile_server.c).
 * Inline: each server is compiled into its own test binary. */

/* A listening socket on 127.0.0.1 at an ephemeral port (close-on-exec),
 * its port in *port. The fd, or -1 with errno set. */
static inline int tcp_listen_loopback(int backlog, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sin;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(fd, backlog) < 0 || getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A blocking connection to 127.0.0.1:port (close-on-exec), or -1. */
static inline int tcp_connect_loopback(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

#define RELAY_MAX_CONNS 64

struct relay {
	int lfd;
	int port;                   /* where clients connect */
	int upstream_port;
	int stop_pipe[2];
	pthread_t thread;
	int fds[RELAY_MAX_CONNS][2]; /* client, upstream; -1: free */
	atomic_int accepts;
	atomic_bool running;
};

/* Listens on an ephemeral port and starts the thread. 0 or -1. */
int relay_start(struct relay *r, int upstream_port);
/* Connections accepted so far. */
int relay_accepts(struct relay *r);
/* Stops the thread, closes every socket. */
void relay_stop(struct relay *r);

#endif
