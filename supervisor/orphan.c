/* Retries of orphan cleanups: the DEREG of what the ledger holds for a
 * workspace no worker serves (a previous run's leftovers, or a removed
 * workspace whose cleanup was given up at shutdown). A failed one is tried
 * again with backoff, per workspace, until it goes through or a worker
 * serves the workspace again (whose own cleanup then takes over). */
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "common/log.h"
#include "supervisor/sv.h"

static struct mc_orphan **find(struct mc_sv *sv, const char *ws)
{
	struct mc_orphan **p = &sv->orphans;
	while (*p != NULL && strcmp((*p)->ws, ws) != 0)
		p = &(*p)->next;
	return p;
}

/* Allocates ws's record (owned by sv->orphans) unless there is one. */
static struct mc_orphan *get(struct mc_sv *sv, const char *ws)
{
	struct mc_orphan **p = find(sv, ws);
	if (*p != NULL)
		return *p;
	struct mc_orphan *o = calloc(1, sizeof *o);
	if (o == NULL)
		return NULL;
	strlcpy(o->ws, ws, sizeof o->ws);
	mc_backoff_init(&o->backoff, sv->cfg.restart_backoff_min_ms, sv->cfg.restart_backoff_max_ms);
	mc_timer_init(&o->timer, TIMER_ORPHAN, o);
	*p = o;
	return o;
}

void mc_orphan_forget(struct mc_sv *sv, const char *ws)
{
	struct mc_orphan **p = find(sv, ws);
	struct mc_orphan *o = *p;
	if (o == NULL)
		return;
	*p = o->next;
	mc_timerq_cancel(&sv->timers, &o->timer);
	free(o);
}

void mc_orphan_forget_all(struct mc_sv *sv)
{
	while (sv->orphans != NULL)
		mc_orphan_forget(sv, sv->orphans->ws);
}

static void retry_later(struct mc_sv *sv, const char *ws)
{
	struct mc_orphan *o = get(sv, ws);
	if (o == NULL) {
		mc_log(MC_LOG_ERROR, "out of memory scheduling a cleanup retry", "ws", ws, NULL);
		return;
	}
	mc_ms_t delay = mc_backoff_next(&o->backoff);
	mc_log(MC_LOG_WARN, "cleanup of leftovers failed; retrying", "ws", ws,
	       "in_ms", MC_LOG_NUM(delay), NULL);
	if (mc_timerq_arm(&sv->timers, &o->timer, mc_now_ms() + delay) < 0)
		mc_log(MC_LOG_ERROR, "out of memory arming a timer", "ws", ws, NULL);
}

void mc_orphan_on_done(struct mc_sv *sv, const char *ws, int result)
{
	if (result == MC_HELPER_OK || result == MC_HELPER_PERMANENT) {
		mc_ledger_clear(sv->ledger, ws);
		mc_orphan_forget(sv, ws);
		return;
	}
	/* A worker serving ws again has its own cleanup; at shutdown the
	 * final DEREG covers the ledger. */
	if (sv->shutting_down || mc_wk_find(sv, ws) != NULL)
		return;
	retry_later(sv, ws);
}

void mc_orphan_on_timer(struct mc_sv *sv, struct mc_orphan *o)
{
	char ws[MC_ID_MAX];
	strlcpy(ws, o->ws, sizeof ws); /* o may go below */
	if (sv->shutting_down || mc_wk_find(sv, ws) != NULL) {
		mc_orphan_forget(sv, ws);
		return;
	}
	const char *const *ids;
	if (mc_ledger_get(sv->ledger, ws, &ids) == 0) {
		mc_orphan_forget(sv, ws); /* nothing left to take offline */
		return;
	}
	if (mc_helper_orphan_cleanup(sv, ws) == NULL)
		retry_later(sv, ws); /* could not even start one */
}

void mc_orphan_kick_all(struct mc_sv *sv)
{
	for (struct mc_orphan *o = sv->orphans; o != NULL; o = o->next)
		if (mc_timer_armed(&o->timer))
			mc_timerq_arm(&sv->timers, &o->timer, mc_now_ms());
}
