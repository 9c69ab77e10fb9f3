/* multica-fakeplane: sizing for many connections. Each connection is one
 * file descriptor, so --max-connections must fit RLIMIT_NOFILE: the soft
 * limit is raised as far as needed (up to the hard limit). An explicit
 * --max-connections beyond that is refused; the default shrinks to fit.
 * The listen backlog follows the connection limit, as far as the kernel
 * (net.core.somaxconn) allows. */
#ifndef FP_LIMITS_H
#define FP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#define FP_MAX_CONNECTIONS_DEFAULT 16384
#define FP_MAX_CONNECTIONS_MAX 1000000
/* Descriptors besides the connections: stdio, the listen socket, each pool
 * thread's epoll and wake-up fds, the signalfd, TLS and log files. */
#define FP_FD_RESERVE 64

/* Raises the soft RLIMIT_NOFILE for *max_conns connections. Returns 0 with
 * *max_conns possibly lowered (when !explicit), or -1 with a message. */
int fp_limits_fit(long *max_conns, bool explicit, char *err, size_t errlen);
/* The backlog to ask for (the kernel caps it at somaxconn). */
unsigned fp_listen_backlog(long max_conns);
/* What the kernel will grant of fp_listen_backlog(), for the log. */
long fp_listen_backlog_effective(long max_conns);

#endif
