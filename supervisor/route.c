/* Slots and routing: what the link sends (SLOTS_REQ, TASK, CLAIM_DONE) and
 * what it is told (SLOTS, RUNTIMES, WAKE, TASK_FAIL); what workers say about
 * the tasks routed to them (TASK_STATE); the tasks' journal.
 *
 * Slots: a SLOTS_REQ is granted min(want, free) (0 while claiming is
 * stopped: drain, shutdown) and reserved; each TASK then takes one
 * reservation (routed: it becomes the task's slot; not: it is released),
 * and CLAIM_DONE releases the rest. The link may hold one grant at a time
 * and send at most that many TASKs: anything else is a protocol violation
 * (it is killed and respawned; its grant goes back).
 *
 * Routing: the RUNNING worker, not draining, whose ledger set holds the
 * task's runtime_id; else the task goes back to the link as TASK_FAIL
 * runtime_offline (retryable). A worker whose queue cannot take the TASK
 * keeps running: that one task goes back the same way.
 *
 * Once per loop turn (mc_route_turn): RUNTIMES of the workspaces whose set
 * changed, the tasks' journal when the table changed, and a WAKE for the
 * link when a slot was freed or the runtime set changed. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "supervisor/agentapi_proc.h"
#include "common/api_task.h"
#include "common/log.h"
#include "ipc/task_msgs.h"
#include "supervisor/link_proc.h"
#include "supervisor/wk_int.h"

#define OFFLINE_ERROR "runtime went offline before the task started"

/* What route.c last journaled and woke for (one supervisor per process). */
static unsigned long journaled_gen, woke_removed;
static bool observer_set;

/* ---- RUNTIMES and WAKE ---- */

static void wake(struct mc_sv *sv, const char *reason)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL)
		return;
	lp->wake_due = true;
	strlcpy(lp->wake_reason, reason, sizeof lp->wake_reason);
}

void mc_route_runtimes_dirty(struct mc_sv *sv, const char *ws)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL || lp->hp.state != MC_HP_RUNNING)
		return; /* the handshake sends every set */
	for (size_t i = 0; i < lp->n_dirty; i++)
		if (strcmp(lp->dirty[i], ws) == 0)
			return;
	if (lp->n_dirty == lp->cap_dirty) {
		size_t cap = lp->cap_dirty ? lp->cap_dirty * 2 : 16;
		char (*v)[MC_ID_MAX] = reallocarray(lp->dirty, cap, sizeof *v);
		if (v == NULL) {
			mc_log(MC_LOG_ERROR, "out of memory noting a runtime set change", "ws", ws, NULL);
			return;
		}
		lp->dirty = v;
		lp->cap_dirty = cap;
	}
	strlcpy(lp->dirty[lp->n_dirty++], ws, MC_ID_MAX);
	wake(sv, "runtimes");
}

static void on_ledger_change(void *arg, const char *ws)
{
	mc_route_runtimes_dirty(arg, ws);
}

/* ws's claimable runtime ids: its ledger set, none while it drains. */
static size_t claimable(struct mc_sv *sv, const char *ws, const char *const **ids)
{
	struct mc_wk *wk = mc_wk_find(sv, ws);
	*ids = NULL;
	if (wk != NULL && wk->draining)
		return 0;
	/* A live worker's runtimes are claimed for only once its first
	 * recover-orphans are done: a claim landing before them would be
	 * failed by them (runtime_recovery) before it ever started. */
	if (wk != NULL && (wk->state == WK_STARTING || wk->state == WK_RUNNING) && !wk->tasks_ready)
		return 0;
	return mc_ledger_get(sv->ledger, ws, ids);
}

static void send_runtimes(struct mc_sv *sv, const char *ws)
{
	const char *const *ids;
	size_t n = claimable(sv, ws, &ids);
	if (mc_link_proc_queued(sv, mc_ipc_send_runtimes(&sv->link->hp.wr, ws, n, ids)) < 0 &&
	    sv->link->hp.fd >= 0 && !sv->link->hp.untrusted)
		mc_log(MC_LOG_ERROR, "cannot send RUNTIMES to the link", "ws", ws, NULL);
}

static int send_one(const char *ws, size_t n, const char *const *ids, void *arg)
{
	(void)n;
	(void)ids;
	send_runtimes(arg, ws);
	return mc_link_proc_running(arg) ? 0 : 1;
}

void mc_route_link_ready(struct mc_sv *sv)
{
	sv->link->n_dirty = 0;
	mc_ledger_foreach(sv->ledger, send_one, sv);
	wake(sv, "start");
}

/* The open claim is over: what it did not use of its grant goes back. */
static void release_grant(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (lp->outstanding > 0) {
		sv->tasks.reserved -= lp->outstanding;
		if (sv->tasks.reserved < 0)
			sv->tasks.reserved = 0;
	}
	lp->outstanding = 0;
	lp->claim_open = false;
}

void mc_route_link_gone(struct mc_sv *sv)
{
	release_grant(sv);
	sv->link->n_dirty = 0;
	sv->link->wake_due = false;
}

/* ---- the tasks' journal ---- */

struct ws_names {
	size_t n, cap;
	char (*v)[MC_ID_MAX];
};

static int note_name(const char *ws, size_t n, const char *const *ids, void *arg)
{
	struct ws_names *w = arg;
	(void)n;
	(void)ids;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		char (*v)[MC_ID_MAX] = reallocarray(w->v, cap, sizeof *v);
		if (v == NULL)
			return -1;
		w->v = v;
		w->cap = cap;
	}
	strlcpy(w->v[w->n++], ws, MC_ID_MAX);
	return 0;
}

/* ws's task ids, as the table has them now, go to the journal. */
static void journal_ws(struct mc_sv *sv, const char *ws)
{
	size_t n = 0;
	const char **ids = sv->tasks.n ? calloc(sv->tasks.n, sizeof *ids) : NULL;
	for (struct mc_sv_task *k = sv->tasks.head; ids != NULL && k != NULL; k = k->next)
		if (strcmp(k->ws, ws) == 0)
			ids[n++] = k->id;
	if (sv->tasks.n > 0 && ids == NULL)
		return; /* out of memory: the next change writes it */
	if (mc_ledger_set_tasks(sv->ledger, ws, n, ids) < 0)
		mc_log(MC_LOG_ERROR, "cannot journal the tasks", "ws", ws, "error", strerror(errno),
		       NULL);
	free(ids);
}

static void journal(struct mc_sv *sv)
{
	struct ws_names w = { 0 };
	if (mc_ledger_foreach_tasks(sv->ledger, note_name, &w) < 0) {
		free(w.v);
		return;
	}
	for (struct mc_sv_task *k = sv->tasks.head; k != NULL; k = k->next) {
		bool seen = false;
		for (size_t i = 0; i < w.n && !seen; i++)
			seen = strcmp(w.v[i], k->ws) == 0;
		if (!seen && note_name(k->ws, 0, NULL, &w) < 0)
			break;
	}
	for (size_t i = 0; i < w.n; i++)
		journal_ws(sv, w.v[i]);
	free(w.v);
}

/* ---- once per turn ---- */

void mc_route_turn(struct mc_sv *sv)
{
	if (!observer_set && sv->ledger != NULL) {
		mc_ledger_set_observer(sv->ledger, on_ledger_change, sv);
		observer_set = true;
	}
	mc_link_proc_tick(sv);
	mc_link_proc_follow(sv);
	mc_aapi_tick(sv);
	if (sv->tasks.gen != journaled_gen) {
		journaled_gen = sv->tasks.gen;
		journal(sv);
	}
	if (sv->tasks.removed != woke_removed) {
		woke_removed = sv->tasks.removed;
		wake(sv, "task ended");
	}
	struct mc_link_proc *lp = sv->link;
	if (!mc_link_proc_running(sv))
		return;
	for (size_t i = 0; i < lp->n_dirty && mc_link_proc_running(sv); i++)
		send_runtimes(sv, lp->dirty[i]);
	lp->n_dirty = 0;
	if (lp->wake_due && mc_link_proc_running(sv)) {
		lp->wake_due = false;
		mc_link_proc_queued(sv, mc_ipc_send_wake(&lp->hp.wr, lp->wake_reason));
	}
}

/* ---- what the link sends ---- */

static void on_slots_req(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	struct mc_link_proc *lp = sv->link;
	char err[256];
	int want;
	if (mc_ipc_parse_slots_req(f, &want, err, sizeof err) < 0) {
		mc_link_proc_kill_why(sv, err);
		return;
	}
	if (lp->claim_open) {
		mc_link_proc_kill_why(sv, "SLOTS_REQ while a claim is open");
		return;
	}
	int free_slots = mc_sv_tasks_free_slots(&sv->tasks);
	int grant = sv->tasks.claiming_stopped || sv->shutting_down ? 0
		    : (want < free_slots ? want : free_slots);
	if (grant > MC_CLAIM_MAX_TASKS)
		grant = MC_CLAIM_MAX_TASKS;
	sv->tasks.reserved += grant;
	lp->outstanding = grant;
	lp->claim_open = grant > 0;
	if (mc_link_proc_queued(sv, mc_ipc_send_slots(&lp->hp.wr, grant)) < 0)
		mc_route_link_gone(sv);
}

/* One reservation of the open claim is settled (routed or not). */
static void settle_one(struct mc_sv *sv, bool routed)
{
	sv->link->outstanding--;
	if (!routed && sv->tasks.reserved > 0)
		sv->tasks.reserved--;
}

static void fail_back(struct mc_sv *sv, const char *tid, const char *rid, const char *error)
{
	mc_log(MC_LOG_WARN, "task not routed; failing it (runtime_offline)", "task", tid,
	       "runtime", rid, "error", error, NULL);
	int rc = mc_ipc_send_task_fail(&sv->link->hp.wr, tid, rid, "runtime_offline", error);
	mc_link_proc_queued(sv, rc);
}

static bool hosts(struct mc_sv *sv, const struct mc_wk *wk, const char *rid)
{
	const char *const *ids;
	size_t n = mc_ledger_get(sv->ledger, wk->ws, &ids);
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(ids[i], rid) == 0)
			return true;
	return false;
}

/* The worker that may take a task of runtime rid, or NULL. */
static struct mc_wk *route_to(struct mc_sv *sv, const char *rid)
{
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->state == WK_RUNNING && !wk->draining && !wk->untrusted && wk->fd >= 0 &&
		    hosts(sv, wk, rid))
			return wk;
	return NULL;
}

static void on_task(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	struct mc_link_proc *lp = sv->link;
	char tid[40], rid[40], err[256];
	int slot;
	if (!lp->claim_open || lp->outstanding <= 0) {
		mc_link_proc_kill_why(sv, "TASK beyond the slots granted");
		return;
	}
	if (mc_ipc_peek_task(f, tid, rid, &slot, err, sizeof err) < 0) {
		mc_link_proc_kill_why(sv, err);
		return;
	}
	if (mc_sv_task_find(&sv->tasks, tid) != NULL) {
		/* Re-delivered while it is still ours: the worker has it. */
		mc_log(MC_LOG_WARN, "task claimed again while in flight here; ignored", "task", tid,
		       NULL);
		settle_one(sv, false);
		return;
	}
	struct mc_wk *wk = sv->shutting_down ? NULL : route_to(sv, rid);
	if (wk == NULL) {
		settle_one(sv, false);
		fail_back(sv, tid, rid, OFFLINE_ERROR);
		return;
	}
	struct mc_sv_task *t = mc_sv_task_add(&sv->tasks, tid, rid, wk->ws, mc_now_ms());
	if (t == NULL) {
		settle_one(sv, false);
		fail_back(sv, tid, rid, "no free task slot on this host");
		return;
	}
	settle_one(sv, true);
	if (mc_ipc_forward_task(&wk->wr, f, t->slot) < 0) {
		/* The worker's queue cannot take it: this task only goes back. */
		char why[128];
		snprintf(why, sizeof why, "the worker could not take the task (%s)", strerror(errno));
		mc_sv_task_remove(&sv->tasks, t);
		fail_back(sv, tid, rid, why);
		return;
	}
	mc_wk_log(MC_LOG_INFO, wk, "task routed", "task", tid);
	mc_wk_queued(sv, wk, 0);
}

static void on_claim_done(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	struct mc_link_proc *lp = sv->link;
	char err[256];
	int claimed;
	if (mc_ipc_parse_claim_done(f, &claimed, err, sizeof err) < 0) {
		mc_link_proc_kill_why(sv, err);
		return;
	}
	if (!lp->claim_open) {
		mc_link_proc_kill_why(sv, "CLAIM_DONE without a claim");
		return;
	}
	if (claimed < lp->outstanding)
		mc_log(MC_LOG_DEBUG, "claim done", "claimed", MC_LOG_NUM(claimed), NULL);
	release_grant(sv);
}

void mc_route_link_frame(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	struct mc_link_proc *lp = sv->link;
	char err[256];
	bool flag;
	switch (f->type) {
	case MC_IPC_HELLO:
		mc_link_proc_on_hello(sv, f);
		return;
	case MC_IPC_PONG:
		mc_link_proc_on_pong(sv, f);
		return;
	case MC_IPC_STOPPED:
		if (lp->hp.stopped_msg || mc_ipc_parse_stopped(f, &flag, err, sizeof err) < 0)
			mc_link_proc_kill_why(sv, "bad or repeated STOPPED");
		lp->hp.stopped_msg = true;
		return;
	case MC_IPC_SLOTS_REQ:
		on_slots_req(sv, f);
		return;
	case MC_IPC_TASK:
		on_task(sv, f);
		return;
	case MC_IPC_CLAIM_DONE:
		on_claim_done(sv, f);
		return;
	default:
		mc_link_proc_kill_why(sv, "unexpected message type from the link");
	}
}

/* ---- what workers say ---- */

void mc_route_task_state(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	struct mc_task_state_msg m;
	char err[256];
	if (mc_ipc_parse_task_state(f, &m, err, sizeof err) < 0) {
		mc_wk_violation(sv, wk, err);
		return;
	}
	struct mc_sv_task *t = mc_sv_task_find(&sv->tasks, m.task_id);
	if (t == NULL || strcmp(t->ws, wk->ws) != 0 || strcasecmp(t->runtime_id, m.runtime_id) != 0) {
		mc_wk_violation(sv, wk, "TASK_STATE for a task not routed to this worker");
		return;
	}
	t->state = m.state;
	t->pid = m.pid;
	t->pgid = m.pgid;
	strlcpy(t->family, m.family, sizeof t->family);
	strlcpy(t->last_output, m.last_output, sizeof t->last_output);
	t->state_at = mc_now_ms();
	mc_aapi_task_state(sv, wk->ws, &m);
	if (m.state != MC_TS_ENDED)
		return;
	mc_wk_log(MC_LOG_INFO, wk, "task ended", "task", m.task_id);
	mc_sv_task_remove(&sv->tasks, t);
	mc_sv_tasks_changed(sv);
}

void mc_route_drop_ws(struct mc_sv *sv, const char *ws)
{
	mc_aapi_drop_ws(sv, ws);
	if (mc_sv_tasks_drop_ws(&sv->tasks, ws) > 0)
		mc_sv_tasks_changed(sv);
}
