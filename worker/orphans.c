/* Recover-orphans after a registration: fire and forget, outside the
 * register step (an answer changes nothing we host), cancelled on stop. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/worker_int.h"

/* The first registration's recover-orphans have all answered (or could
 * not be sent): the supervisor may let the link claim for our runtimes. */
static void tasks_ready_if_done(struct mc_worker *w)
{
	if (w->tasks_ready_sent || !w->first_ro_sent || w->n_ro > 0)
		return;
	w->tasks_ready_sent = true;
	if (mc_ipc_send_tasks_ready(&w->wr) < 0)
		mc_log(MC_LOG_WARN, "cannot queue TASKS_READY for the supervisor", NULL);
}

static void ro_done(struct mc_call *call, void *arg)
{
	struct mc_worker *w = arg;
	if (!mc_call_ok(call)) {
		const struct mc_api_error *e = mc_call_error(call);
		mc_log_rl(MC_LOG_REPEAT_WINDOW_MS, MC_LOG_WARN, "recover-orphans failed",
			  "error", e->message, "kind", mc_api_error_kind_name(e->kind), NULL);
	} else {
		mc_log(MC_LOG_INFO, "recovered orphaned tasks", "runtime", mc_call_runtime_id(call),
		       "orphaned", MC_LOG_NUM(mc_call_orphaned(call)), NULL);
	}
	for (size_t i = 0; i < w->n_ro; i++) {
		if (w->ro[i] == call) {
			w->ro[i] = w->ro[--w->n_ro];
			break;
		}
	}
	mc_call_free(call);
	tasks_ready_if_done(w);
}

static void send_recover_orphans(struct mc_worker *w, const char *id)
{
	struct mc_call **grown = realloc(w->ro, (w->n_ro + 1) * sizeof *grown);
	if (grown == NULL)
		return;
	w->ro = grown;
	struct mc_call *call = mc_call_recover_orphans(w->api, id);
	if (call == NULL || mc_worker_start_call(w, call, ro_done) < 0) {
		mc_log(MC_LOG_WARN, "could not start recover-orphans", "runtime", id, NULL);
		mc_call_free(call);
		return;
	}
	w->ro[w->n_ro++] = call;
}

static bool was_tracked_before(const struct mc_worker *w, const char *id)
{
	for (size_t i = 0; i < w->n_ids_before; i++)
		if (strcmp(w->ids_before[i], id) == 0)
			return true;
	return false;
}

/* First registration of the worker's life: every returned id (tasks left in
 * flight by a dead predecessor are failed and retried by the server).
 * Recovery: only ids that were not tracked before (deliberate difference 4).
 * Drift and built-in changes: never. */
void mc_orphans_after_register(struct mc_worker *w)
{
	bool all = w->ro_on_next_reg;
	if (w->stop_requested || (!all && w->purpose != PURPOSE_RECOVERY))
		return;
	for (size_t i = 0; i < w->tracked.n; i++) {
		const char *id = w->tracked.v[i].id;
		if (all || !was_tracked_before(w, id))
			send_recover_orphans(w, id);
	}
	if (all)
		w->first_ro_sent = true;
	w->ro_on_next_reg = false;
	tasks_ready_if_done(w);
}

void mc_orphans_cancel(struct mc_worker *w)
{
	for (size_t i = 0; i < w->n_ro; i++)
		mc_call_free(w->ro[i]);
	w->n_ro = 0;
}
