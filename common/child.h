/* What every forked child of the daemon (fork server, helper) does first and
 * last. */
#ifndef MC_CHILD_H
#define MC_CHILD_H

/* Right after fork: no signal blocked (the supervisor blocks the ones its
 * signalfd reads), SIGTERM, SIGINT and SIGHUP at their defaults, SIGPIPE
 * ignored (a closed peer is an EPIPE, not a death). */
void mc_child_reset_signals(void);

/* A worker's or the link's start: the socket ipc_fd moved to fd target
 * (non-blocking, close-on-exec) and, when hold_fd >= 0, hold_fd to
 * hold_target (close-on-exec); every other fd above stdio closed. Both
 * are first moved out of the way so that neither dup2 can clobber the
 * other. 0, or -1 with errno. */
int mc_child_take_fds(int ipc_fd, int target, int hold_fd, int hold_target);

/* Every disposition at its default, SIGPIPE ignored, and SIGTERM, SIGINT
 * and SIGHUP blocked and read through the returned signalfd
 * (non-blocking, close-on-exec). -1 with errno. */
int mc_child_signalfd(void);

/* Ending a forked child without running the parent's atexit handlers or
 * flushing its stdio buffers twice. Under the sanitizer build the child's
 * leaks are checked first, since _exit skips LeakSanitizer. */
__attribute__((noreturn)) void mc_child_exit(int code);

#endif
