/* multica-fakeplane: the HTTP server (libmicrohttpd): a few epoll threads
 * serve up to max_connections keep-alive connections. An injected delay
 * suspends its connection and a timer thread resumes it, so it holds up
 * nothing else. Request bodies are gathered up to 1 MiB, admin ones up to
 * 64 MiB (413 beyond).
 * Daemon requests pass the faults, then the API, and are journaled;
 * GET /api/daemon/ws upgrades to the websocket (ws.h), journaled too;
 * /_admin requests go to the admin API only.
 *
 * Error convention: start returns NULL with a message in err. */
#ifndef FP_HTTP_H
#define FP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tests/fakeplane/app.h"

#define FP_BODY_MAX (1u << 20)
#define FP_ADMIN_BODY_MAX (64u << 20)
#define FP_POOL_THREADS 4   /* epoll threads; each serves many connections */
/* A connection's buffer for the request line and headers: the daemon's
 * websocket upgrade names every runtime of the host in its query (about
 * 39 bytes each); MHD's default, 32 KiB, ends at about 800 runtimes, this
 * at about 1600 (the real server takes 1 MB of headers). MHD zeroes the
 * whole buffer after every request, so each keep-alive connection costs
 * this much resident memory: more would weigh on the scale tests. */
#define FP_CONN_MEMORY (64u << 10)

struct fp_server_opts {
	const struct sockaddr *addr;
	socklen_t addrlen;
	const char *tls_cert_pem;      /* both NULL: plain HTTP */
	const char *tls_key_pem;
	unsigned max_connections;      /* past it, new ones wait in the listen queue */
	unsigned listen_backlog;
};

struct fp_server;

/* Allocates and starts the server. */
struct fp_server *fp_server_start(const struct fp_server_opts *o, struct fp_app *app,
				  char *err, size_t errlen);
/* The bound port (useful after port 0). */
uint16_t fp_server_port(const struct fp_server *s);
/* Stops (drops delayed requests, closes connections, joins threads) and
 * frees. NULL is fine. */
void fp_server_stop(struct fp_server *s);

#endif
