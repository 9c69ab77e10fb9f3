/* Test support: a byte relay on 127.0.0.1 in front of another local port,
 * counting the connections clients open through it (TLS handshakes
 * included, which no HTTP-level journal sees). One thread; parent side. */
#ifndef MC_TEST_TCP_RELAY_H
#define MC_TEST_TCP_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

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
