#include "tests/fakeplane/sweep.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

struct fp_sweep {
	struct fp_state *st;
	int64_t interval_ms, stale_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;     /* CLOCK_MONOTONIC */
	bool stopping;
};

static void add_ms(struct timespec *ts, int64_t ms)
{
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void sweep_once(struct fp_sweep *s)
{
	fp_state_lock(s->st);
	int n = fp_state_sweep_stale(s->st, fp_now_ms(), s->stale_ms);
	fp_state_unlock(s->st);
	if (n > 0)
		mc_log(MC_LOG_INFO, "stale sweep", "offline", MC_LOG_NUM(n), NULL);
}

static void *sweep_main(void *arg)
{
	struct fp_sweep *s = arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&s->mu);
	for (;;) {
		add_ms(&next, s->interval_ms);
		while (!s->stopping &&
		       pthread_cond_timedwait(&s->cond, &s->mu, &next) != ETIMEDOUT)
			;
		if (s->stopping)
			break;
		/* Never hold our mutex while taking the state's. */
		pthread_mutex_unlock(&s->mu);
		sweep_once(s);
		pthread_mutex_lock(&s->mu);
		/* Fell behind (a stopped process, a slow sweep): skip the missed
		 * ticks rather than running them back to back. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec ||
		    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

struct fp_sweep *fp_sweep_start(struct fp_state *st, int64_t interval_ms, int64_t stale_ms)
{
	struct fp_sweep *s = fp_xcalloc(1, sizeof *s);
	s->st = st;
	s->interval_ms = interval_ms > 0 ? interval_ms : 1;
	s->stale_ms = stale_ms;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&s->mu, NULL);
	int rc = pthread_create(&s->thread, NULL, sweep_main, s);
	if (rc != 0) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->mu);
		free(s);
		errno = rc;
		return NULL;
	}
	return s;
}

void fp_sweep_stop(struct fp_sweep *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
