/* The repository cache's maintenance (stale agent branches, caches
 * unused for 30 days: repocache.h mc_repocache_gc), on a thread of its
 * own a minute after start and then every two hours, so that its git
 * runs never hold the supervisor's liveness pings; joined at exit. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "agentapi/agentapi_int.h"
#include "agentapi/repocache.h"
#include "common/clock.h"
#include "common/log.h"

#define GC_FIRST_MS (60 * 1000)
#define GC_EVERY_MS (2 * 60 * 60 * 1000)

static pthread_t gc_thread;
static bool gc_started;
static atomic_bool gc_running;
static mc_ms_t gc_next;

static void *gc_main(void *arg)
{
	struct mc_repocache *rc = arg;
	mc_repocache_gc(rc, mc_wall_ms());
	atomic_store(&gc_running, false);
	return NULL;
}

void mca_gc_tick(struct mca_ctx *ctx, mc_ms_t now)
{
	if (ctx->rc == NULL)
		return;
	if (gc_next == 0)
		gc_next = now + GC_FIRST_MS;
	if (now < gc_next || atomic_load(&gc_running))
		return;
	if (gc_started)
		pthread_join(gc_thread, NULL); /* the last run: done */
	gc_started = false;
	gc_next = now + GC_EVERY_MS;
	atomic_store(&gc_running, true);
	if (pthread_create(&gc_thread, NULL, gc_main, ctx->rc) != 0) {
		atomic_store(&gc_running, false);
		mc_log(MC_LOG_WARN, "cannot start the repository cache maintenance", NULL);
		return;
	}
	gc_started = true;
}

mc_ms_t mca_gc_next(void)
{
	return gc_next;
}

void mca_gc_join(void)
{
	if (gc_started)
		pthread_join(gc_thread, NULL);
	gc_started = false;
}
