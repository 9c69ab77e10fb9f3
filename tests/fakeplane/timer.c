#include "tests/fakeplane/timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "tests/fakeplane/util.h"

struct entry {
	int64_t due_ns;      /* CLOCK_MONOTONIC */
	uint64_t seq;        /* ties go to the first added */
	fp_timer_fn fn;
	void *arg;
};

struct fp_timer {
	pthread_mutex_t mu;
	pthread_cond_t cond;     /* CLOCK_MONOTONIC; a new first deadline, or stop */
	pthread_t thread;
	bool stopping, joined;
	struct entry *heap;      /* binary min-heap on (due_ns, seq) */
	size_t len, cap;
	uint64_t next_seq;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool before(const struct entry *a, const struct entry *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void swap(struct entry *a, struct entry *b)
{
	struct entry t = *a;
	*a = *b;
	*b = t;
}

static void heap_push(struct fp_timer *t, struct entry e)
{
	if (t->len == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->heap = fp_xrealloc(t->heap, t->cap * sizeof *t->heap);
	}
	size_t i = t->len++;
	t->heap[i] = e;
	while (i > 0 && before(&t->heap[i], &t->heap[(i - 1) / 2])) {
		swap(&t->heap[i], &t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

static struct entry heap_pop(struct fp_timer *t)
{
	struct entry top = t->heap[0];
	t->heap[0] = t->heap[--t->len];
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < t->len && before(&t->heap[l], &t->heap[m]))
			m = l;
		if (r < t->len && before(&t->heap[r], &t->heap[m]))
			m = r;
		if (m == i)
			break;
		swap(&t->heap[i], &t->heap[m]);
		i = m;
	}
	return top;
}

static void *timer_main(void *arg)
{
	struct fp_timer *t = arg;
	pthread_mutex_lock(&t->mu);
	while (!t->stopping) {
		if (t->len == 0) {
			pthread_cond_wait(&t->cond, &t->mu);
			continue;
		}
		int64_t due = t->heap[0].due_ns;
		if (due > mono_ns()) {
			struct timespec ts = { (time_t)(due / 1000000000), (long)(due % 1000000000) };
			pthread_cond_timedwait(&t->cond, &t->mu, &ts);
			continue;
		}
		struct entry e = heap_pop(t);
		pthread_mutex_unlock(&t->mu);
		e.fn(e.arg, false);
		pthread_mutex_lock(&t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

struct fp_timer *fp_timer_start(void)
{
	struct fp_timer *t = fp_xcalloc(1, sizeof *t);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&t->mu, NULL);
	int rc = pthread_create(&t->thread, NULL, timer_main, t);
	if (rc != 0) {
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->mu);
		free(t);
		errno = rc;
		return NULL;
	}
	return t;
}

bool fp_timer_add(struct fp_timer *t, int64_t delay_ms, fp_timer_fn fn, void *arg)
{
	struct entry e = { mono_ns() + delay_ms * 1000000, 0, fn, arg };
	pthread_mutex_lock(&t->mu);
	bool ok = !t->stopping;
	if (ok) {
		e.seq = t->next_seq++;
		heap_push(t, e);
		if (t->heap[0].seq == e.seq)
			pthread_cond_signal(&t->cond);   /* a new first deadline */
	}
	pthread_mutex_unlock(&t->mu);
	return ok;
}

void fp_timer_stop(struct fp_timer *t)
{
	pthread_mutex_lock(&t->mu);
	t->stopping = true;
	pthread_cond_signal(&t->cond);
	bool join = !t->joined;
	t->joined = true;
	pthread_mutex_unlock(&t->mu);
	if (join)
		pthread_join(t->thread, NULL);
	pthread_mutex_lock(&t->mu);
	while (t->len > 0) {
		struct entry e = heap_pop(t);
		pthread_mutex_unlock(&t->mu);
		e.fn(e.arg, true);
		pthread_mutex_lock(&t->mu);
	}
	pthread_mutex_unlock(&t->mu);
}

void fp_timer_free(struct fp_timer *t)
{
	if (t == NULL)
		return;
	fp_timer_stop(t);
	free(t->heap);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
