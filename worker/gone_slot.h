/* The runtime-gone coalescing gate of one workspace (multica's
 * tryClaimRegisterSlot / recordRegisterCompletion): a wave of "runtime not
 * found" heartbeats produces one re-registration, a failure backs off, and a
 * genuinely later deletion recovers at once. Pure: times are passed in. */
#ifndef MC_WORKER_GONE_SLOT_H
#define MC_WORKER_GONE_SLOT_H

#include <stdbool.h>

#include "common/clock.h"

#define MC_GONE_COALESCE_MS      30000  /* a claimed slot blocks peers this long */
#define MC_GONE_FAILURE_BACKOFF_MS 60000

struct mc_gone_slot {
	mc_ms_t next_attempt;    /* 0: free */
	mc_ms_t last_completed;  /* time of the last successful recovery; 0: none */
};

/* entry_at: when the gone signal was observed (for a heartbeat, when it was
 * sent). Claims the slot and returns true unless a peer holds it, a failure
 * backoff runs, or a recovery succeeded at or after entry_at. */
bool mc_gone_slot_try_claim(struct mc_gone_slot *s, mc_ms_t entry_at, mc_ms_t now);
/* Success frees the slot and stamps last_completed; failure backs off and
 * does not stamp it, so a same-wave straggler retries after the backoff. */
void mc_gone_slot_complete(struct mc_gone_slot *s, bool success, mc_ms_t now);

#endif
