/* The link role of multicad: one long-lived process per host that claims
 * tasks for the whole host (DESIGN.md "Tasks"). The supervisor forks it
 * like a worker and talks to it on fd 3: HELLO, then CONFIG (workspace_id
 * "") and TOKEN; RUNTIMES say what each workspace's worker hosts; the claim
 * cycle is slot before claim (ipc/task_msgs.h). It holds no runtimes and no
 * task once handed over: its death loses nothing (the server re-delivers a
 * claim whose answer was lost). */
#ifndef MC_LINK_H
#define MC_LINK_H

#include <sys/types.h>

#define MC_LINK_EXIT_OK      0
#define MC_LINK_EXIT_FAILURE 1   /* protocol violation or internal error */

/* Runs the link on ipc_fd in a freshly forked child: moves the socket to
 * fd 3, closes every other fd but stdio, resets signals, sets its title
 * and PR_SET_PDEATHSIG (stopping at once if parent is already gone), then
 * serves until stopped. Returns the exit code; the caller _exit()s. */
int mc_link_main(int ipc_fd, pid_t parent);

#endif
