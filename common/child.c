#include "common/child.h"

#include <unistd.h>

#ifdef MC_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif

void mc_child_exit(int code)
{
#ifdef MC_SANITIZE
	/* Prints "ERROR: LeakSanitizer" on leaks, which fails the test run. */
	__lsan_do_recoverable_leak_check();
#endif
	_exit(code);
}
