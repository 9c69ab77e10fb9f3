/* The executor's table of tasks and its glue to the worker's loop
 * (task_exec.h). Each task is a struct mc_xtask driven by task_fsm.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include <sodium.h>

#include "common/log.h"
#include "worker/msgbatch.h"
#include "worker/outbox.h"
#include "worker/task_exec.h"
#include "worker/task_int.h"
#include "worker/workdir.h"
#include "worker/worker_int.h"

/* The client of the task traffic: created with the first task, on the
 * worker's server and token. */
static struct mc_api *exec_api(struct mc_worker *w)
{
	if (w->exec.api != NULL)
		return w->exec.api;
	struct mc_api_config ac = {
		.server_url = w->cfg.server_url,
		.token = w->token,
		.client_version = w->cfg.cli_version,
		.timeout_ms = w->cfg.http_timeout_ms,
		.ca_file = w->cfg.ca_file[0] ? w->cfg.ca_file : NULL,
	};
	w->exec.api = mc_api_new(&ac);
	return w->exec.api;
}

/* One connection for the registrar and heartbeats, one more per task at
 * most (each task's calls go one at a time on its own lane): an idle
 * workspace still costs the server one connection. */
static void conn_limit(struct mc_worker *w)
{
	curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L + (long)w->exec.n);
}

static struct mc_xtask *xt_new(struct mc_worker *w, int slot)
{
	struct mc_xtask *x = calloc(1, sizeof *x);
	if (x == NULL)
		return NULL;
	x->w = w;
	x->slot = slot;
	x->st = XT_PREPARING;
	x->reported = MC_TS_COUNT;
	x->accepted_at = mc_now_ms();
	x->next = w->exec.head;
	w->exec.head = x;
	w->exec.n++;
	conn_limit(w);
	return x;
}

static void xt_free(struct mc_xtask *x)
{
	mc_xt_cancel_calls(x);
	mc_xt_agent_free(x);
	mc_msgbatch_free(x->msgs);
	mc_task_clear(&x->t);
	mc_secret_free(x->token);
	free(x->family);
	free(x->exe);
	for (size_t i = 0; i < x->n_prefix; i++)
		free(x->prefix[i]);
	free(x->prefix);
	free(x->task_dir);
	free(x->work_dir);
	free(x->tmp_dir);
	free(x->codex_home);
	free(x->config_root);
	free(x->task_name);
	free(x->resume_id);
	free(x->r_status);
	free(x->r_output);
	free(x->r_error);
	free(x->session_id);
	free(x->report_body);
	free(x);
}

static void reap_done(struct mc_worker *w)
{
	struct mc_xtask **pp = &w->exec.head;
	while (*pp != NULL) {
		struct mc_xtask *x = *pp;
		if (x->st == XT_DONE) {
			*pp = x->next;
			w->exec.n--;
			xt_free(x);
			conn_limit(w);
		} else {
			pp = &x->next;
		}
	}
}

/* A task we cannot even read: tell the supervisor it ended (its slot), and
 * fail it at the server when we know its id. */
static void refuse(struct mc_worker *w, int slot, const cJSON *task, const char *why)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(task, "id");
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(task, "runtime_id");
	struct mc_xtask *x = xt_new(w, slot);
	if (x == NULL)
		return;
	if (cJSON_IsString(id) && mc_is_uuid(id->valuestring))
		strlcpy(x->t.id, id->valuestring, sizeof x->t.id);
	if (cJSON_IsString(rid) && mc_is_uuid(rid->valuestring))
		strlcpy(x->t.runtime_id, rid->valuestring, sizeof x->t.runtime_id);
	strlcpy(x->t.workspace_id, w->cfg.workspace_id, sizeof x->t.workspace_id);
	mc_log(MC_LOG_ERROR, "refusing a task", "task", x->t.id[0] ? x->t.id : "?", "error", why,
	       NULL);
	if (x->t.id[0] == '\0') {
		x->st = XT_DONE;
		mc_xt_report_state(x, MC_TS_ENDED);
		return;
	}
	mc_xt_report_state(x, MC_TS_ACCEPTED);
	mc_xt_fail(x, why, "invalid_task_identity");
}

void mc_exec_accept(struct mc_worker *w, int slot, cJSON *task, struct mc_secret *token)
{
	char err[256];
	if (exec_api(w) == NULL) {
		refuse(w, slot, task, "out of memory");
		goto out;
	}
	struct mc_xtask *x = NULL;
	struct mc_task t;
	memset(&t, 0, sizeof t);
	if (mc_task_decode(task, &t, err, sizeof err) < 0) {
		mc_task_clear(&t);
		refuse(w, slot, task, err);
		goto out;
	}
	if ((x = xt_new(w, slot)) == NULL) {
		mc_task_clear(&t);
		goto out;
	}
	x->t = t;
	x->token = token;
	token = NULL;
	mc_log(MC_LOG_INFO, "task accepted", "task", x->t.id, "runtime", x->t.runtime_id,
	       "slot", MC_LOG_NUM(slot), NULL);
	mc_xt_report_state(x, MC_TS_ACCEPTED);
	if (w->exec.stopping)
		mc_xt_event(x, XE_STOP);
	else
		mc_xt_event(x, XE_BEGIN);
out:
	cJSON_Delete(task);
	mc_secret_free(token);
	reap_done(w);
}

long mc_xt_stop_grace(const struct mc_xtask *x)
{
	mc_ms_t left = x->w->exec.stop_deadline - mc_now_ms();
	long g = x->w->cfg.task_stop_grace_ms;
	/* Half of what is left: the other half is for the /fail calls. */
	if (left / 2 < g)
		g = (long)(left / 2);
	return g < 200 ? 200 : g;
}

static void xt_timers(struct mc_xtask *x, mc_ms_t now)
{
	mc_xt_agent_service(x, now);
	mc_xt_poll_status(x, now);
	if (x->st == XT_RUNNING) {
		mc_xt_flush_messages(x, now, false);
		long idle = x->w->cfg.task_idle_timeout_ms;
		if (idle > 0 && x->last_output_at > 0 && now - x->last_output_at >= idle)
			mc_xt_event(x, XE_IDLE);
	}
	if (x->deadline > 0 && now >= x->deadline) {
		x->deadline = 0;
		mc_xt_event(x, XE_TIMER);
	}
	mc_xt_report_timer(x, now);
}

/* Task dirs past task_retention go, a bounded step a minute (under
 * isolation removed by a child as the agent: agent_id.h). */
static void gc_step(struct mc_worker *w, mc_ms_t now)
{
	mc_agent_id_gc(w, false, NULL, 0); /* reaps the remover */
	if (now < w->exec.next_gc_at || w->cfg.workspaces_root[0] == '\0' ||
	    w->cfg.task_retention_ms <= 0)
		return;
	w->exec.next_gc_at = now + 60000;
	const char *active[64];
	size_t n = 0;
	for (struct mc_xtask *x = w->exec.head; x != NULL && n < 64; x = x->next)
		if (x->task_name != NULL)
			active[n++] = x->task_name;
	if (w->exec.n > n)
		return; /* too many to name: skip this round rather than guess */
	mc_agent_id_gc(w, true, active, n);
}

void mc_exec_tick(struct mc_worker *w, mc_ms_t now)
{
	gc_step(w, now);
	bool ended = false;
	for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		ended |= x->st == XT_DONE;
	if (w->exec.api != NULL)
		mc_adopted_sweep(w, now, ended);
	for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		xt_timers(x, now);
	reap_done(w);
	if (w->exec.stopping && w->exec.n == 0 && !w->exec.idle_told) {
		w->exec.idle_told = true;
		mc_registrar_event(w, EV_STOP); /* the deferred stop goes on: the DEREG */
	}
	if (w->exec.stopping && w->exec.n > 0 && now >= w->exec.stop_deadline) {
		mc_log(MC_LOG_WARN, "tasks still reporting at the stop deadline: their reports stay in the outbox",
		       "tasks", MC_LOG_NUM(w->exec.n), NULL);
		for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
			x->st = XT_DONE;
		reap_done(w);
	}
}

mc_ms_t mc_exec_next_deadline(const struct mc_worker *w)
{
	mc_ms_t d = w->exec.stopping ? w->exec.stop_deadline : 0;
	for (const struct mc_xtask *x = w->exec.head; x != NULL; x = x->next) {
		d = mc_ms_earliest(d, x->deadline);
		d = mc_ms_earliest(d, x->retry_at);
		d = mc_ms_earliest(d, mc_xt_agent_deadline(x));
		if (x->st == XT_RUNNING) {
			if (x->msgs != NULL && mc_msgbatch_deadline(x->msgs) >= 0)
				d = mc_ms_earliest(d, mc_msgbatch_deadline(x->msgs));
			if (x->w->cfg.task_idle_timeout_ms > 0 && x->last_output_at > 0)
				d = mc_ms_earliest(d, x->last_output_at + x->w->cfg.task_idle_timeout_ms);
		}
		if (x->st >= XT_STARTING && x->st <= XT_STOPPING_AGENT && !x->server_ended)
			d = mc_ms_earliest(d, x->next_status_at);
	}
	return d;
}

unsigned mc_exec_waitfds(struct mc_worker *w, struct curl_waitfd *fds, unsigned max)
{
	unsigned n = 0;
	for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next) {
		x->wf_off = n;
		x->wf_n = n < max ? mc_xt_agent_waitfds(x, fds + n, max - n) : 0;
		n += x->wf_n;
	}
	return n;
}

void mc_exec_set_ready(struct mc_worker *w, const struct curl_waitfd *fds)
{
	for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		mc_xt_agent_set_ready(x, fds);
}

void mc_exec_service(struct mc_worker *w)
{
	mc_ms_t now = mc_now_ms();
	for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		mc_xt_agent_service(x, now);
	reap_done(w);
}

void mc_exec_stop(struct mc_worker *w)
{
	if (w->exec.stopping)
		return;
	w->exec.stopping = true;
	long budget = w->cfg.stop_timeout_ms - MC_WORKER_STOP_BUDGET_MS - 1000;
	if (budget < 1000)
		budget = 1000;
	w->exec.stop_deadline = mc_now_ms() + budget;
	if (w->exec.n > 0)
		mc_log(MC_LOG_INFO, "stopping: ending the running tasks first",
		       "tasks", MC_LOG_NUM(w->exec.n), NULL);
	for (struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		mc_xt_event(x, XE_STOP);
	reap_done(w);
}

bool mc_exec_defer_stop(struct mc_worker *w)
{
	if (mc_exec_idle(w))
		return false;
	mc_exec_stop(w);
	return true;
}

void mc_exec_registered(struct mc_worker *w)
{
	if (mc_launch_table_update(&w->exec.launch, &w->tracked, &w->payload, &w->builtins) < 0)
		mc_log(MC_LOG_ERROR, "out of memory: tasks of new runtimes will be refused", NULL);
}

bool mc_exec_idle(const struct mc_worker *w)
{
	return w->exec.n == 0;
}

size_t mc_exec_running(const struct mc_worker *w)
{
	return w->exec.n;
}

/* Reports an earlier life left in the outbox (a supervisor killed with -9
 * leaves them to us): delivered before anything else of ours. */
static int replay_one(const struct mc_outbox_entry *e, struct mc_worker *w)
{
	struct mc_xtask *x = xt_new(w, -1);
	if (x == NULL)
		return -1;
	x->replay = true;
	strlcpy(x->t.id, e->task_id, sizeof x->t.id);
	strlcpy(x->t.runtime_id, e->runtime_id, sizeof x->t.runtime_id);
	strlcpy(x->t.workspace_id, w->cfg.workspace_id, sizeof x->t.workspace_id);
	x->st = XT_REPORTING;
	x->outbox_written = true;
	x->report_op = e->op == MC_OUTBOX_COMPLETE ? MC_TASK_OP_COMPLETE :
		       e->op == MC_OUTBOX_FAIL ? MC_TASK_OP_FAIL : MC_TASK_OP_CANCEL_ACK;
	x->report_body = strdup(e->body);
	x->retry_at = mc_now_ms();
	mc_log(MC_LOG_INFO, "delivering a task report left in the outbox", "task", x->t.id,
	       "op", mc_outbox_op_name(e->op), NULL);
	return 0;
}

void mc_exec_start(struct mc_worker *w)
{
	mc_adopted_enable();
	if (w->cfg.state_dir[0] == '\0' || exec_api(w) == NULL)
		return;
	struct mc_outbox_list l = { 0 };
	if (mc_outbox_list(w->cfg.state_dir, w->cfg.workspace_id, &l) < 0)
		return;
	for (size_t i = 0; i < l.n; i++)
		if (replay_one(&l.v[i], w) < 0)
			break;
	mc_outbox_list_clear(&l);
}

void mc_exec_free(struct mc_worker *w)
{
	while (w->exec.head != NULL) {
		struct mc_xtask *x = w->exec.head;
		w->exec.head = x->next;
		xt_free(x);
	}
	w->exec.n = 0;
	mc_launch_table_clear(&w->exec.launch);
	mc_agent_id_free(w);
	mc_api_free(w->exec.api);
	w->exec.api = NULL;
}
