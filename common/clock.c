#include "common/clock.h"

#include <time.h>

#include <sodium.h>

mc_ms_t mc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (mc_ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mc_ms_t mc_rand_below(mc_ms_t n)
{
	if (n <= 0)
		return 0;
	if (n <= (mc_ms_t)UINT32_MAX)
		return (mc_ms_t)randombytes_uniform((uint32_t)n);
	uint64_t r;
	randombytes_buf(&r, sizeof r);
	return (mc_ms_t)(r % (uint64_t)n);
}

mc_ms_t mc_jitter(mc_ms_t base, double frac)
{
	if (base <= 0 || frac <= 0)
		return base;
	mc_ms_t span = (mc_ms_t)((double)base * frac);
	return base - span + mc_rand_below(2 * span + 1);
}

mc_ms_t mc_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (mc_ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
