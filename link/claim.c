/* The link's claim cycle: slot before claim, for the whole host.
 *
 *   state \ event  WAKE           TIMER          SLOTS(g)           ANSWER             STOP
 *   IDLE           ask            ask            violation          -                  STOPPED
 *   WANT_SLOTS     remember       -              g=0: IDLE          -                  STOPPED
 *                                                g>0: claim
 *   CLAIMING       remember       -              violation          hand over, DONE(k) STOPPED
 *                                                                   k=g or woken: ask
 *                                                                   else IDLE
 *   STOPPED        -              -              -                  -                  -
 *
 * "ask": SLOTS_REQ(32), unless no runtime is known (then IDLE until a
 * RUNTIMES frame wakes it). A claim that fails answers CLAIM_DONE(0) and
 * waits task_poll_interval (jittered). A 404 on the batch route switches to
 * the legacy per-runtime claim until the link restarts (multica also clears
 * it on every websocket connect; here a connect does not, so a flapping
 * socket cannot turn one 404 into a 404 per reconnect). While the
 * websocket is up the poll is MC_WS_POLL_STRETCH times longer (link/ws.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/log.h"
#include "ipc/task_msgs.h"
#include "link/link_int.h"
#include "link/ws.h"

static void on_answer(struct mc_call *call, void *arg);

static mc_ms_t poll_interval(const struct mc_link *l)
{
	return l->cfg.task_poll_interval_ms > 0 ? l->cfg.task_poll_interval_ms : 30000;
}

/* The poll, jittered up to a tenth (at most 1 s) so that hosts restarted
 * together drift apart; stretched while pushes arrive. */
static void arm_poll(struct mc_link *l)
{
	mc_ms_t p = poll_interval(l);
	mc_ms_t j = p / 10 < 1000 ? p / 10 : 1000;
	l->idle_since = mc_now_ms();
	l->next_claim_at = l->idle_since + p * (mc_ws_up(l) ? MC_WS_POLL_STRETCH : 1) +
			   (j > 0 ? mc_rand_below(j) : 0);
}

void mc_claim_unstretch(struct mc_link *l)
{
	mc_ms_t due = l->idle_since + poll_interval(l);
	if (l->cs == CS_IDLE && l->next_claim_at > due)
		l->next_claim_at = due;
}

static void go_idle(struct mc_link *l)
{
	l->cs = CS_IDLE;
	arm_poll(l);
}

static void ask(struct mc_link *l)
{
	l->wake_pending = false;
	if (mc_link_n_runtimes(l) == 0 || l->api == NULL) {
		go_idle(l); /* nothing to claim for: no request at all */
		return;
	}
	l->cs = CS_WANT_SLOTS;
	mc_link_queued(l, mc_ipc_send_slots_req(&l->wr, MC_LINK_WANT), "SLOTS_REQ");
}

/* ---- handing the tasks over ---- */

static size_t printed_size(const cJSON *task)
{
	char *t = cJSON_PrintUnformatted(task);
	size_t n = t != NULL ? strlen(t) : 0;
	free(t);
	return n;
}

static void hand_over(struct mc_link *l, struct mc_claimed_task *t)
{
	if (t->id[0] == '\0') {
		mc_log(MC_LOG_ERROR, "the server sent a task without a usable id; it cannot be "
		       "run or failed", NULL);
		return;
	}
	if (t->runtime_id[0] == '\0') {
		mc_fails_add(l, t->id, "agent_error.unknown", "task has no usable runtime_id");
		return;
	}
	if (mc_ipc_send_task(&l->wr, -1, t->token, t->task) == 0) {
		mc_link_peer_flush(l);
		return;
	}
	char why[160];
	if (errno == EMSGSIZE) {
		snprintf(why, sizeof why, "task payload of %zu bytes exceeds the daemon's 8 MiB limit",
			 printed_size(t->task));
		mc_fails_add(l, t->id, "agent_error.context_overflow", why);
	} else {
		snprintf(why, sizeof why, "the daemon could not take the task: %s", strerror(errno));
		mc_fails_add(l, t->id, "runtime_offline", why);
	}
}

/* The cycle's tasks go to the supervisor; then CLAIM_DONE and what next. */
static void finish(struct mc_link *l)
{
	size_t k = l->got.n;
	for (size_t i = 0; i < k; i++) {
		if ((int)i < l->grant)
			hand_over(l, &l->got.v[i]);
		else if (l->got.v[i].id[0])
			mc_fails_add(l, l->got.v[i].id, "runtime_offline",
				     "the server sent more tasks than the daemon asked for");
	}
	mc_claimed_clear(&l->got);
	free(l->legacy_ids);
	l->legacy_ids = NULL;
	int claimed = (int)k < l->grant ? (int)k : l->grant;
	mc_link_queued(l, mc_ipc_send_claim_done(&l->wr, claimed), "CLAIM_DONE");
	if (k > 0)
		mc_log(MC_LOG_INFO, "tasks claimed", "count", MC_LOG_NUM(k),
		       "granted", MC_LOG_NUM(l->grant), NULL);
	bool full = claimed == l->grant;
	if (full || l->wake_pending)
		ask(l);
	else
		go_idle(l);
}

static void failed_cycle(struct mc_link *l, const char *why)
{
	mc_log(MC_LOG_WARN, "claim failed", "error", why, NULL);
	mc_claimed_clear(&l->got);
	free(l->legacy_ids);
	l->legacy_ids = NULL;
	mc_link_queued(l, mc_ipc_send_claim_done(&l->wr, 0), "CLAIM_DONE");
	l->wake_pending = false; /* a failing server: the poll, not a tight loop */
	go_idle(l);
}

/* ---- the requests ---- */

static void start(struct mc_link *l, struct mc_call *c)
{
	if (c == NULL || mc_link_start_call(l, c, on_answer) < 0) {
		mc_call_free(c);
		failed_cycle(l, "cannot start the claim request");
		return;
	}
	l->claim_call = c;
	l->cs = CS_CLAIMING;
}

static void next_legacy(struct mc_link *l)
{
	if (l->legacy_next >= l->n_legacy || (int)l->got.n >= l->grant) {
		finish(l);
		return;
	}
	start(l, mc_call_claim_runtime_task(l->api, l->legacy_ids[l->legacy_next++]));
}

static void claim(struct mc_link *l)
{
	size_t n;
	char (*ids)[40] = mc_link_all_runtimes(l, &n);
	if (n == 0) {
		free(ids);
		l->got.n = 0;
		finish(l);
		return;
	}
	if (l->batch_unsupported) {
		l->legacy_ids = ids;
		l->n_legacy = n;
		l->legacy_next = 0;
		next_legacy(l);
		return;
	}
	const char **view = calloc(n, sizeof *view);
	for (size_t i = 0; view != NULL && i < n; i++)
		view[i] = ids[i];
	struct mc_call *c = view != NULL ? mc_call_claim_tasks(l->api, l->cfg.daemon_id, n, view,
								 l->grant) : NULL;
	free(view);
	/* Kept for a legacy retry of this very cycle after a 404. */
	l->legacy_ids = ids;
	l->n_legacy = n;
	l->legacy_next = 0;
	start(l, c);
}

/* Appends what call claimed to the cycle's tasks. */
static int take(struct mc_link *l, struct mc_call *call)
{
	struct mc_claimed tmp = { 0 };
	if (mc_call_take_claimed(call, &tmp) < 0)
		return -1;
	if (tmp.n == 0) {
		mc_claimed_clear(&tmp);
		return 0;
	}
	struct mc_claimed_task *v = reallocarray(l->got.v, l->got.n + tmp.n, sizeof *v);
	if (v == NULL) {
		mc_claimed_clear(&tmp);
		return -1;
	}
	memcpy(v + l->got.n, tmp.v, tmp.n * sizeof *v);
	l->got.v = v;
	l->got.n += tmp.n;
	free(tmp.v);
	return 0;
}

static void on_answer(struct mc_call *call, void *arg)
{
	struct mc_link *l = arg;
	l->claim_call = NULL;
	bool legacy = mc_call_endpoint(call) == MC_EP_CLAIM_RUNTIME_TASK;
	const struct mc_api_error *e = mc_call_error(call);
	if (e->kind == MC_API_OK) {
		int rc = take(l, call);
		mc_call_free(call);
		if (rc < 0 && !legacy) {
			failed_cycle(l, "cannot read the claimed tasks");
			return;
		}
		if (legacy)
			next_legacy(l);
		else
			finish(l);
		return;
	}
	if (!legacy && e->status == 404) {
		mc_log(MC_LOG_WARN, "the server has no batch claim route; claiming per runtime "
		       "until the link restarts", NULL);
		l->batch_unsupported = true;
		mc_call_free(call);
		next_legacy(l);
		return;
	}
	char why[MC_API_ERROR_TEXT_MAX];
	strlcpy(why, e->message, sizeof why);
	mc_call_free(call);
	if (legacy && l->got.n > 0)
		finish(l); /* multica returns the partial list */
	else
		failed_cycle(l, why);
}

/* ---- the table ---- */

void mc_claim_event(struct mc_link *l, enum mc_claim_event ev)
{
	if (ev == CE_STOP) {
		if (l->claim_call != NULL) {
			mc_call_free(l->claim_call); /* the server re-delivers what it answered */
			l->claim_call = NULL;
		}
		l->cs = CS_STOPPED;
		return;
	}
	switch (l->cs) {
	case CS_IDLE:
		if (ev == CE_WAKE || ev == CE_TIMER)
			ask(l);
		return;
	case CS_WANT_SLOTS:
	case CS_CLAIMING:
		if (ev == CE_WAKE)
			l->wake_pending = true;
		return;
	default:
		return;
	}
}

void mc_claim_on_slots(struct mc_link *l, int grant)
{
	if (l->cs == CS_STOPPED)
		return;
	if (l->cs != CS_WANT_SLOTS) {
		mc_link_stop(l, "SLOTS without a SLOTS_REQ");
		l->exit_code = 1; /* MC_LINK_EXIT_FAILURE */
		return;
	}
	l->grant = grant;
	if (grant == 0) {
		if (l->wake_pending)
			ask(l);
		else
			go_idle(l);
		return;
	}
	claim(l);
}

void mc_claim_timers(struct mc_link *l, mc_ms_t now)
{
	if (l->cs == CS_IDLE && l->peer == LP_READY && now >= l->next_claim_at)
		mc_claim_event(l, CE_TIMER);
}

mc_ms_t mc_claim_next_deadline(const struct mc_link *l)
{
	return l->cs == CS_IDLE && l->peer == LP_READY ? l->next_claim_at : 0;
}

void mc_claim_free(struct mc_link *l)
{
	mc_call_free(l->claim_call);
	l->claim_call = NULL;
	mc_claimed_clear(&l->got);
	free(l->legacy_ids);
	l->legacy_ids = NULL;
}
