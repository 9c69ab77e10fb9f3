/* Process handles. A pid names a process only until it is reaped; after
 * that it may name anyone. The supervisor holds a pidfd for each child and
 * signals through it, so a signal can never reach a recycled pid. */
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "supervisor/sv.h"

int mc_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int mc_pidfd_kill(int pidfd, int sig)
{
	if (pidfd < 0) {
		errno = EBADF;
		return -1;
	}
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
