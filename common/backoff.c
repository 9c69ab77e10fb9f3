#include "common/backoff.h"

void mc_backoff_init(struct mc_backoff *b, mc_ms_t min_ms, mc_ms_t max_ms)
{
	b->min_ms = min_ms > 0 ? min_ms : 1;
	b->max_ms = max_ms >= b->min_ms ? max_ms : b->min_ms;
	b->failures = 0;
}

mc_ms_t mc_backoff_nominal(const struct mc_backoff *b)
{
	if (b->failures == 0)
		return 0;
	mc_ms_t d = b->min_ms;
	for (unsigned i = 1; i < b->failures && d < b->max_ms; i++)
		d *= 2;
	return d < b->max_ms ? d : b->max_ms;
}

mc_ms_t mc_backoff_next(struct mc_backoff *b)
{
	if (b->failures < 64)
		b->failures++;
	mc_ms_t d = mc_jitter(mc_backoff_nominal(b), 0.2);
	if (d < b->min_ms)
		d = b->min_ms;
	if (d > b->max_ms)
		d = b->max_ms;
	return d;
}

void mc_backoff_reset(struct mc_backoff *b)
{
	b->failures = 0;
}
