#include "common/child.h"

#include <signal.h>
#include <unistd.h>

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

void mc_child_exit(int code)
{
#ifdef MC_SANITIZE
	/* Prints "ERROR: LeakSanitizer" on leaks, which fails the test run. */
	__lsan_do_recoverable_leak_check();
#endif
	_exit(code);
}
