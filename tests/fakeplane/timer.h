/* multica-fakeplane: one thread that runs callbacks at deadlines. An
 * injected delay suspends its connection and leaves the resuming to this
 * thread, so that no server thread sleeps while its other connections
 * wait. Callbacks run on the timer thread, in deadline order (first added
 * first among equal deadlines), without the timer's lock held.
 * Thread-safe (own mutex). */
#ifndef FP_TIMER_H
#define FP_TIMER_H

#include <stdbool.h>
#include <stdint.h>

/* cancelled: run by fp_timer_stop before its deadline. */
typedef void (*fp_timer_fn)(void *arg, bool cancelled);

struct fp_timer;

/* Allocates the timer and starts its thread. NULL (errno set) on failure. */
struct fp_timer *fp_timer_start(void);
/* Runs fn(arg, false) in delay_ms. Returns false, and fn never runs, once
 * fp_timer_stop has begun. */
bool fp_timer_add(struct fp_timer *t, int64_t delay_ms, fp_timer_fn fn, void *arg);
/* Joins the thread, then runs every pending callback with cancelled set;
 * later adds fail. Safe to repeat. */
void fp_timer_stop(struct fp_timer *t);
/* Stops (if needed) and frees. NULL is fine. */
void fp_timer_free(struct fp_timer *t);

#endif
