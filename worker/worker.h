/* The worker role of multicad: one workspace's runtimes toward the server.
 * The supervisor forks and calls mc_worker_main in the child (DESIGN.md
 * "Processes"); a test harness does the same. Everything the worker needs
 * (configuration, token, built-in probe results) arrives over the socket. */
#ifndef MC_WORKER_H
#define MC_WORKER_H

#include <sys/types.h>

/* Exit codes of a worker process. */
#define MC_WORKER_EXIT_OK       0   /* stopped: everything deregistered */
#define MC_WORKER_EXIT_FAILURE  1   /* protocol violation or internal error */
#define MC_WORKER_EXIT_CONFIG   78  /* EX_CONFIG: not restarted until a reload */

/* Runs the worker on ipc_fd in a freshly forked child: moves the socket to
 * fd 3 and hold_fd (if >= 0) to fd 4, closes every other fd but stdio,
 * resets signal handlers and mask, sets PR_SET_PDEATHSIG (stopping at once
 * if parent, the supervisor's pid, is already gone: the fork server clones
 * workers with CLONE_PARENT, so the supervisor is the parent either way), then
 * serves until stopped. hold_fd is the supervisor's generation lock: held
 * (shared) until this process exits, so a new supervisor can wait for the
 * last DEREG of the old workers. Returns the exit code; the caller
 * _exit()s with it (mc_child_exit). */
int mc_worker_main(int ipc_fd, pid_t parent, int hold_fd);

#endif
