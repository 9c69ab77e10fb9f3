/* What every forked child of the daemon (fork server, helper) does first and
 * last. */
#ifndef MC_CHILD_H
#define MC_CHILD_H

/* Right after fork: no signal blocked (the supervisor blocks the ones its
 * signalfd reads), SIGTERM, SIGINT and SIGHUP at their defaults, SIGPIPE
 * ignored (a closed peer is an EPIPE, not a death). */
void mc_child_reset_signals(void);

/* Ending a forked child without running the parent's atexit handlers or
 * flushing its stdio buffers twice. Under the sanitizer build the child's
 * leaks are checked first, since _exit skips LeakSanitizer. */
__attribute__((noreturn)) void mc_child_exit(int code);

#endif
