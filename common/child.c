#include "common/child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <bsd/unistd.h>

#ifdef MC_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif

void mc_child_reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
}

int mc_child_take_fds(int ipc_fd, int target, int hold_fd, int hold_target)
{
	int ipc = fcntl(ipc_fd, F_DUPFD_CLOEXEC, 10);
	int hold = hold_fd >= 0 ? fcntl(hold_fd, F_DUPFD_CLOEXEC, 10) : -1;
	if (ipc < 0 || (hold_fd >= 0 && hold < 0))
		return -1;
	if (dup2(ipc, target) < 0)
		return -1;
	if (hold >= 0 && (dup2(hold, hold_target) < 0 ||
			  fcntl(hold_target, F_SETFD, FD_CLOEXEC) < 0))
		return -1;
	int top = hold >= 0 && hold_target > target ? hold_target : target;
	closefrom(top + 1);
	int fl = fcntl(target, F_GETFL);
	if (fl < 0 || fcntl(target, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(target, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

int mc_child_signalfd(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* EINVAL for SIGKILL/SIGSTOP: fine */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_SETMASK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

void mc_child_exit(int code)
{
#ifdef MC_SANITIZE
	/* Prints "ERROR: LeakSanitizer" on leaks, which fails the test run. */
	__lsan_do_recoverable_leak_check();
#endif
	_exit(code);
}
