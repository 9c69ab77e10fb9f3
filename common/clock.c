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

mc_ms_t mc_ms_earliest(mc_ms_t a, mc_ms_t b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

int mc_ms_wait(mc_ms_t deadline, mc_ms_t now, int max_ms)
{
	if (deadline <= 0)
		return max_ms;
	mc_ms_t t = deadline - now;
	if (t < 0)
		t = 0;
	return t > max_ms ? max_ms : (int)t;
}
