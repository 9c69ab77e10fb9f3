/* Exponential backoff with full jitter around the nominal delay:
 * attempt k (k >= 1) waits min(max, min * 2^(k-1)) scaled by [0.8, 1.2],
 * never below min nor above max. Pure; the caller keeps the state. */
#ifndef MC_BACKOFF_H
#define MC_BACKOFF_H

#include "common/clock.h"

struct mc_backoff {
	mc_ms_t min_ms;
	mc_ms_t max_ms;
	unsigned failures;   /* consecutive failures so far */
};

void mc_backoff_init(struct mc_backoff *b, mc_ms_t min_ms, mc_ms_t max_ms);
/* Records one more failure and returns the delay before the next attempt. */
mc_ms_t mc_backoff_next(struct mc_backoff *b);
/* The nominal (un-jittered) delay for the current failure count. */
mc_ms_t mc_backoff_nominal(const struct mc_backoff *b);
void mc_backoff_reset(struct mc_backoff *b);

#endif
