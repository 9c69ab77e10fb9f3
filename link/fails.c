/* Failing tasks at the server from the link: the ones the supervisor sends
 * back (TASK_FAIL: no live worker hosts the runtime) and the ones the link
 * could not hand over at all. POST /api/daemon/tasks/{id}/fail, retried
 * after 4, 8, 16, 32 and 64 s on a transient error (the terminal-call
 * schedule of multica), then given up (the server's sweep fails it
 * later). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/log.h"
#include "link/link_int.h"

static const mc_ms_t retry_ms[] = { 4000, 8000, 16000, 32000, 64000 };
#define N_RETRIES (sizeof retry_ms / sizeof retry_ms[0])

static void fail_free(struct mc_link_fail *f)
{
	mc_call_free(f->call);
	free(f->body);
	free(f);
}

static void unlink_fail(struct mc_link *l, struct mc_link_fail *f)
{
	for (struct mc_link_fail **pp = &l->fails; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			fail_free(f);
			return;
		}
}

static void send_fail(struct mc_link *l, struct mc_link_fail *f);

static void on_fail_done(struct mc_call *call, void *arg)
{
	struct mc_link *l = arg;
	struct mc_link_fail *f = l->fails;
	while (f != NULL && f->call != call)
		f = f->next;
	if (f == NULL)
		return;
	struct mc_api_error err = *mc_call_error(call);
	const struct mc_api_error *e = &err;
	bool gone = mc_call_task_not_found(call);
	f->call = NULL;
	mc_call_free(call);
	if (e->kind == MC_API_OK || gone || !mc_api_error_is_transient(e) ||
	    f->attempt > N_RETRIES) {
		if (e->kind == MC_API_OK)
			mc_log(MC_LOG_INFO, "task failed at the server", "task", f->task_id, NULL);
		else
			mc_log(MC_LOG_WARN, "cannot fail the task at the server; giving up",
			       "task", f->task_id, "error", e->message, NULL);
		unlink_fail(l, f);
		return;
	}
	mc_ms_t d = l->stop_requested ? 0 : retry_ms[f->attempt - 1];
	mc_log(MC_LOG_WARN, "failing the task at the server failed; retrying", "task", f->task_id,
	       "error", e->message, "in_ms", MC_LOG_NUM(d), NULL);
	f->retry_at = mc_now_ms() + d;
}

static void send_fail(struct mc_link *l, struct mc_link_fail *f)
{
	f->retry_at = 0;
	f->attempt++;
	f->call = mc_call_task_op(l->api, MC_TASK_OP_FAIL, f->task_id, f->body);
	if (f->call == NULL || mc_link_start_call(l, f->call, on_fail_done) < 0) {
		mc_log(MC_LOG_ERROR, "cannot start a fail call", "task", f->task_id,
		       "error", strerror(errno), NULL);
		mc_call_free(f->call);
		f->call = NULL;
		if (f->attempt > N_RETRIES)
			unlink_fail(l, f);
		else
			f->retry_at = mc_now_ms() + retry_ms[f->attempt - 1];
	}
}

static char *fail_body(const char *reason, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (o != NULL && cJSON_AddStringToObject(o, "error", error) &&
	    cJSON_AddStringToObject(o, "failure_reason", reason))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

void mc_fails_add(struct mc_link *l, const char *task_id, const char *reason, const char *error)
{
	mc_log(MC_LOG_INFO, "failing a task at the server", "task", task_id, "reason", reason,
	       "error", error, NULL);
	struct mc_link_fail *f = calloc(1, sizeof *f);
	if (f == NULL || (f->body = fail_body(reason, error)) == NULL || l->api == NULL) {
		mc_log(MC_LOG_ERROR, "cannot fail a task: out of memory or no API client",
		       "task", task_id, NULL);
		if (f != NULL)
			free(f->body);
		free(f);
		return;
	}
	strlcpy(f->task_id, task_id, sizeof f->task_id);
	f->next = l->fails;
	l->fails = f;
	send_fail(l, f);
}

void mc_fails_timers(struct mc_link *l, mc_ms_t now)
{
	struct mc_link_fail *f = l->fails, *next;
	for (; f != NULL; f = next) {
		next = f->next;
		if (f->call == NULL && f->retry_at != 0 && now >= f->retry_at)
			send_fail(l, f);
	}
}

mc_ms_t mc_fails_next_deadline(const struct mc_link *l)
{
	mc_ms_t d = 0;
	for (const struct mc_link_fail *f = l->fails; f != NULL; f = f->next)
		if (f->call == NULL && f->retry_at != 0 && (d == 0 || f->retry_at < d))
			d = f->retry_at;
	return d;
}

void mc_fails_hurry(struct mc_link *l)
{
	mc_ms_t now = mc_now_ms();
	for (struct mc_link_fail *f = l->fails; f != NULL; f = f->next)
		if (f->retry_at != 0)
			f->retry_at = now;
}

bool mc_fails_idle(const struct mc_link *l)
{
	return l->fails == NULL;
}

void mc_fails_free(struct mc_link *l)
{
	while (l->fails != NULL) {
		struct mc_link_fail *f = l->fails;
		l->fails = f->next;
		fail_free(f);
	}
}
