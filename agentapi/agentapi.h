/* The agent-api process (the agents' local API, reference
 * multica-local-api.md): forked by the supervisor like the link, its
 * supervisor socket on fd 3 and the listening socket the supervisor bound
 * on fd 4. */
#ifndef MC_AGENTAPI_H
#define MC_AGENTAPI_H

#include <sys/types.h>

#define MC_AGENTAPI_IPC_FD       3
#define MC_AGENTAPI_LISTEN_FD    4
#define MC_AGENTAPI_EXIT_OK      0
#define MC_AGENTAPI_EXIT_FAILURE 1   /* protocol violation or internal error */

/* Runs the process in a freshly forked child: takes ipc_fd and listen_fd
 * to fds 3 and 4, handshakes (HELLO -> CONFIG, TOKEN), serves HTTP on the
 * listen fd until STOP, SIGTERM or the supervisor's socket closes. Returns
 * the exit code (the caller passes it to mc_child_exit). */
int mc_agentapi_main(int ipc_fd, int listen_fd, pid_t parent);

#endif
