/* multica-fakeplane: the stale-heartbeat sweeper (protocol 4.4). Every
 * interval, online rows whose last_seen is older than stale_after go
 * offline. Stops promptly: it waits on a condition variable, not sleep(). */
#ifndef FP_SWEEP_H
#define FP_SWEEP_H

#include <stdint.h>

#include "tests/fakeplane/state.h"

struct fp_sweep;

/* Allocates and starts the sweeper thread. NULL (errno set) on failure. */
struct fp_sweep *fp_sweep_start(struct fp_state *st, int64_t interval_ms, int64_t stale_ms);
/* Stops and joins the thread, then frees it. NULL is fine. */
void fp_sweep_stop(struct fp_sweep *s);

#endif
