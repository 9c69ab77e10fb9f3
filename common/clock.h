/* Monotonic time in milliseconds and the jitter helpers every timer uses. */
#ifndef MC_CLOCK_H
#define MC_CLOCK_H

#include <stdint.h>

typedef int64_t mc_ms_t;

/* CLOCK_MONOTONIC in ms: never jumps with the wall clock. */
mc_ms_t mc_now_ms(void);
/* CLOCK_REALTIME in ms: for what is written down (files, reports). */
mc_ms_t mc_wall_ms(void);

/* The earlier of two deadlines, where <= 0 means none. */
mc_ms_t mc_ms_earliest(mc_ms_t a, mc_ms_t b);
/* A poll timeout: ms until deadline (<= 0: none), at most max_ms. */
int mc_ms_wait(mc_ms_t deadline, mc_ms_t now, int max_ms);

/* Uniform random integer in [0, n) (libsodium's unbiased generator); 0 when n <= 0. */
mc_ms_t mc_rand_below(mc_ms_t n);

/* base scaled by a uniform factor in [1 - frac, 1 + frac]; frac in [0, 1). */
mc_ms_t mc_jitter(mc_ms_t base, double frac);

#endif
