/* The fork server: a small process the supervisor forks right after library
 * initialisation (libcurl, libsodium, the OpenSSL warm-up) and before it
 * loads any configuration, ledger or token. Workers are cloned from it, so
 * what a worker inherits does not grow with the fleet or its start order.
 *
 * It clones each worker with CLONE_PARENT: the worker is the supervisor's
 * child from birth (PR_SET_PDEATHSIG, the getppid() check and
 * waitid(P_PIDFD) work as for a worker the supervisor forks itself) and the
 * fork server never has a child to reap. Protocol, one SOCK_SEQPACKET
 * socketpair: the supervisor sends {seq, its pid} with the generation lock
 * fd (SCM_RIGHTS); the fork server answers {seq, pid, errno} with the
 * supervisor's end of the worker's socketpair and the worker's pidfd. It
 * says READY once after start.
 *
 * Dies with the supervisor (PDEATHSIG SIGKILL). Lost (dead, silent for
 * FS_REPLY_MS, or talking nonsense): killed, reaped, restarted by
 * re-executing multicad as a fresh fork server (a fork of the running
 * supervisor would carry its per-workspace heap and token pages), and
 * meanwhile the supervisor forks workers itself. */
#ifndef MC_SV_FORKSERVER_H
#define MC_SV_FORKSERVER_H

#include <sys/types.h>

#include "supervisor/sv.h"

/* argv[1] of a re-executed fork server (its socket on fd 3). */
#define MC_FS_EXEC_ARG "--internal-forkserver"

/* main.c, right after library init and before anything per-workspace is
 * loaded: forks the first fork server. Failure is logged; workers are then
 * forked directly until a restart succeeds. */
void mc_fs_start(void);
/* Once the supervisor's epoll exists: watches the fork server's pidfd. */
void mc_fs_watch(struct mc_sv *sv);
/* A new worker: 1 with *pid, *sock (the supervisor's end, non-blocking,
 * close-on-exec) and *pidfd, all the caller's; 0 when no fork server can
 * serve now (fork it directly); -1 with errno when the fork server could
 * not make one (this spawn fails). Blocks at most FS_REPLY_MS. */
int mc_fs_spawn(struct mc_sv *sv, pid_t *pid, int *sock, int *pidfd);
/* Its pidfd is readable: reaps it, logs, restarts it (not during shutdown). */
void mc_fs_on_exit(struct mc_sv *sv);
/* Kills and reaps it (supervisor exit). */
void mc_fs_stop(struct mc_sv *sv);
/* main() of a re-executed fork server; never returns. */
__attribute__((noreturn)) void mc_fs_exec_main(void);

#endif
