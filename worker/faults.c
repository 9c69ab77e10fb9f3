/* Fault hooks for the fault-injection suite. They exist only in builds
 * configured with MC_TEST_HOOKS (make test); a production build has no hook
 * and ignores the configuration's test_fault (worker_int.h). */
#include <string.h>

#include "worker/worker_int.h"

#ifdef MC_TEST_HOOKS
bool mc_worker_fault(const struct mc_worker *w, const char *name)
{
	return strcmp(w->cfg.test_fault, name) == 0;
}
#endif
