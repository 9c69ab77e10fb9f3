/* Fault hooks for the fault-injection suite. They exist only in builds
 * configured with MC_TEST_HOOKS (make test); a production build answers
 * false to every hook and ignores the configuration's test_fault. */
#include <string.h>

#include "worker/worker_int.h"

bool mc_worker_fault(const struct mc_worker *w, const char *name)
{
#ifdef MC_TEST_HOOKS
	return strcmp(w->cfg.test_fault, name) == 0;
#else
	(void)w;
	(void)name;
	return false;
#endif
}
