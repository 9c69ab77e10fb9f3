/* A task's agent: the process (agent_proc.h) and its protocol backend
 * (backend.h), joined through the backend's sink, whose callbacks feed the
 * message stream, the session pin, usage and the result. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "worker/agent_env.h"
#include "worker/agent_proc.h"
#include "worker/backend.h"
#include "worker/msgbatch.h"
#include "worker/prompt.h"
#include "worker/task_int.h"
#include "worker/worker_int.h"

extern char **environ;

/* A leader gone whose group or pipe lingers: SIGKILL the group after this,
 * and give up waiting for the pipe after as long again. */
#define LINGER_MS 10000

static void touch(struct mc_xtask *x)
{
	x->last_output_at = mc_now_ms();
	if (x->msgs != NULL)
		strlcpy(x->last_output, mc_msgbatch_last_line(x->msgs), sizeof x->last_output);
}

static void on_message(void *ctx, const struct mc_backend_msg *m)
{
	struct mc_xtask *x = ctx;
	switch (m->type) {
	case MC_MSG_TEXT: mc_msgbatch_text(x->msgs, m->text, m->text_len); break;
	case MC_MSG_THINKING: mc_msgbatch_thinking(x->msgs, m->text, m->text_len); break;
	case MC_MSG_ERROR: mc_msgbatch_error(x->msgs, m->text, m->text_len); break;
	case MC_MSG_TOOL_USE:
		x->tools_ran = true;
		mc_msgbatch_tool_use_text(x->msgs, m->tool, m->input_json ? m->input_json : "{}",
					  m->input_json ? strlen(m->input_json) : 2);
		break;
	case MC_MSG_TOOL_RESULT:
		mc_msgbatch_tool_result(x->msgs, m->tool, m->text ? m->text : "", m->text_len);
		break;
	}
	touch(x);
}

static void pin_session(struct mc_xtask *x)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "session_id", x->session_id);
	if (x->work_dir != NULL)
		cJSON_AddStringToObject(o, "work_dir", x->work_dir);
	char *body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (body != NULL)
		mc_xt_send_aux(x, MC_TASK_OP_SESSION, body);
	free(body);
}

static void on_session(void *ctx, const char *id)
{
	struct mc_xtask *x = ctx;
	if (id == NULL || id[0] == '\0')
		return;
	free(x->session_id);
	x->session_id = strdup(id);
	if (!x->session_pinned && x->session_id != NULL) {
		x->session_pinned = true; /* once per attempt (step 11.4) */
		pin_session(x);
	}
}

/* Usage of every attempt is summed (a fresh-session retry adds its own). */
static void on_usage(void *ctx, const char *model, const struct mc_usage *u)
{
	struct mc_xtask *x = ctx;
	const char *m = model != NULL && model[0] ? model : "unknown";
	size_t i = 0;
	while (i < x->n_usage && strcmp(x->usage[i].model, m) != 0)
		i++;
	if (i == x->n_usage) {
		if (x->n_usage == sizeof x->usage / sizeof x->usage[0])
			return;
		x->n_usage++;
		memset(&x->usage[i], 0, sizeof x->usage[i]);
		strlcpy(x->usage[i].model, m, sizeof x->usage[i].model);
	}
	x->usage[i].input += u->input;
	x->usage[i].output += u->output;
	x->usage[i].cache_read += u->cache_read;
	x->usage[i].cache_write += u->cache_write;
}

static int on_write(void *ctx, const char *data, size_t len)
{
	struct mc_xtask *x = ctx;
	return x->agent != NULL ? mc_agent_write(x->agent, data, len) : -1;
}

static void on_close_stdin(void *ctx)
{
	struct mc_xtask *x = ctx;
	if (x->agent != NULL)
		mc_agent_close_stdin(x->agent);
}

static char *dup_str(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void on_result(void *ctx, const struct mc_backend_result *r)
{
	static const char *const names[] = { "completed", "failed", "aborted", "timeout" };
	struct mc_xtask *x = ctx;
	free(x->r_status);
	free(x->r_output);
	free(x->r_error);
	x->r_status = dup_str(names[r->status]);
	x->r_output = dup_str(r->output);
	x->r_error = dup_str(r->error);
	x->resume_rejected = r->resume_rejected;
	x->tools_ran = x->tools_ran || r->tool_ran;
	if (r->session_id != NULL && r->session_id[0]) {
		free(x->session_id);
		x->session_id = strdup(r->session_id);
	} else if (r->resume_rejected) {
		free(x->session_id); /* never graft a refused id onto the report */
		x->session_id = NULL;
	}
	x->result_in = true;
}

static void on_line(void *ctx, char *line, size_t len, bool truncated)
{
	struct mc_xtask *x = ctx;
	if (x->bk != NULL)
		mc_backend_session_line(x->bk, line, len, truncated);
	x->last_output_at = mc_now_ms();
}

static char **build_env(struct mc_xtask *x, const char *home, char *err, size_t err_size)
{
	struct mc_agent_id *aid = &x->w->exec.aid;
	mc_envfile_refresh(&aid->envfile); /* re-read when the operator changed it */
	char port[16] = "";
	if (x->w->cfg.agent_api_port > 0)
		snprintf(port, sizeof port, "%d", x->w->cfg.agent_api_port);
	struct mc_agent_env_in in = {
		.base = environ,
		.task = &x->t,
		.task_token = x->token,
		.forbidden = x->w->token,
		.server_url = x->w->cfg.server_url,
		.daemon_port = port,
		.slot = x->slot,
		.config_root = x->config_root,
		.workspaces_root = x->w->cfg.workspaces_root,
		.tmpdir = x->tmp_dir,
		.codex_home = x->codex_home,
		.extra = mc_envfile_vars(&aid->envfile),
		.home = home,
		.user = aid->user[0] ? aid->user : NULL,
	};
	return mc_agent_env_build(&in, err, err_size);
}

/* Under isolation, what the agent's child makes as the agent before the
 * exec: its HOME (agent_uid_range: seeded from the template on first
 * creation), TMPDIR, and a codex task's CODEX_HOME seeded from the
 * agent's own ~/.codex. Returns how many. */
static size_t agent_dirs(struct mc_xtask *x, const char *home, struct mc_agent_dir *d,
			 char *codex_seed, size_t seed_size)
{
	const struct mc_agent_id *aid = &x->w->exec.aid;
	const char *tmpl = x->w->cfg.agent_home_template;
	size_t n = 0;
	if (aid->home_made && home != NULL)
		d[n++] = (struct mc_agent_dir){ .label = "HOME", .path = home,
						.seed_kind = tmpl[0] ? MC_SEED_TREE : MC_SEED_NONE,
						.seed = tmpl[0] ? tmpl : NULL };
	d[n++] = (struct mc_agent_dir){ .label = "TMPDIR", .path = x->tmp_dir };
	if (x->codex_home != NULL) {
		bool src = home != NULL &&
			   (size_t)snprintf(codex_seed, seed_size, "%s/.codex", home) < seed_size;
		d[n++] = (struct mc_agent_dir){ .label = "CODEX_HOME", .path = x->codex_home,
						.seed_kind = MC_SEED_CODEX,
						.seed = src ? codex_seed : NULL };
	}
	return n;
}

int mc_xt_agent_spawn(struct mc_xtask *x, char *err, size_t err_size)
{
	if (x->msgs == NULL && (x->msgs = mc_msgbatch_new(0, 0)) == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	char *prompt = mc_prompt_build(&x->t, x->family, x->resume_dropped);
	struct mc_backend_opts o = {
		.prompt = prompt,
		.model = x->t.model,
		.resume_id = x->resume_id,
		.cwd = x->work_dir,
		.thread_name = x->t.thread_name && x->t.thread_name[0] ? x->t.thread_name : NULL,
		.resume_fallback_notice = mc_prompt_continuity_notice(),
		.custom_args = x->t.custom_args,
		.n_custom_args = x->t.n_custom_args,
		.codex_home_set = x->codex_home != NULL,
	};
	struct mc_argv argv = { 0 };
	int rc = -1;
	char **envp = NULL;
	if (prompt == NULL) {
		snprintf(err, err_size, "out of memory building the prompt");
		goto out;
	}
	if (x->ops->build_argv(x->exe, x->prefix, x->n_prefix, &o, &argv) < 0) {
		snprintf(err, err_size, "cannot build the %s command line", x->family);
		goto out;
	}
	char home[PATH_MAX];
	bool own_home = mc_agent_id_home(x->w, x->task_dir, home, sizeof home);
	if ((envp = build_env(x, own_home ? home : NULL, err, err_size)) == NULL)
		goto out;
	static const struct mc_backend_sink proto = {
		.message = on_message, .session_id = on_session, .usage = on_usage,
		.write = on_write, .close_stdin = on_close_stdin, .result = on_result,
	};
	struct mc_backend_sink sink = proto;
	sink.ctx = x;
	if ((x->bk = mc_backend_session_new(x->ops, &o, &sink)) == NULL) {
		snprintf(err, err_size, "out of memory");
		goto out;
	}
	struct mc_agent_spec spec = { .path = x->exe, .argv = argv.v, .envp = envp,
				      .cwd = x->work_dir, .as = mc_agent_id_as(x->w) };
	struct mc_agent_dir dirs[MC_AGENT_DIRS_MAX];
	char codex_seed[PATH_MAX + 8];
	if (spec.as != NULL)
		spec.n_dirs = agent_dirs(x, own_home ? home : NULL, dirs, codex_seed,
					 sizeof codex_seed);
	spec.dirs = dirs;
	x->agent = mc_agent_spawn(&spec, err, err_size);
	if (x->agent == NULL) {
		mc_backend_session_free(x->bk);
		x->bk = NULL;
		goto out;
	}
	x->session_pinned = false;
	x->result_in = false;
	x->agent_finished = false;
	x->exited_at = 0;
	x->force_killed = false;
	x->stop_why = XS_NONE;
	x->last_output_at = mc_now_ms();
	mc_log(MC_LOG_INFO, "agent started", "task", x->t.id, "family", x->family,
	       "pid", MC_LOG_NUM(mc_agent_pid(x->agent)),
	       "resume", x->resume_id ? "yes" : "no", NULL);
	mc_backend_session_start(x->bk);
	rc = 0;
out:
	mc_agent_env_free(envp); /* holds the task token: wiped */
	mc_argv_free(&argv);
	free(prompt);
	return rc;
}

void mc_xt_agent_stop(struct mc_xtask *x, enum xt_stop_why why, long grace_ms)
{
	if (x->stop_why == XS_NONE || why == XS_CANCEL)
		x->stop_why = why;
	if (x->agent != NULL)
		mc_agent_stop(x->agent, grace_ms, mc_now_ms());
}

static void finish(struct mc_xtask *x)
{
	int ws = 0;
	bool exited = mc_agent_exited(x->agent, &ws);
	char timeout_text[96];
	snprintf(timeout_text, sizeof timeout_text, "%s produced no output for %lds", x->family,
		 x->w->cfg.task_idle_timeout_ms / 1000);
	struct mc_backend_end e = {
		.cause = x->stop_why == XS_NONE ? MC_END_EXIT :
			 x->stop_why == XS_IDLE ? MC_END_TIMEOUT : MC_END_CANCEL,
		.exited = exited,
		.wstatus = ws,
		.stderr_tail = mc_agent_stderr_tail(x->agent),
		.timeout_text = timeout_text,
	};
	mc_backend_session_finish(x->bk, &e);
	x->agent_finished = true;
	if (!x->result_in) { /* cannot happen: finish always results */
		x->r_status = dup_str("failed");
		x->r_error = dup_str("agent ended without a result");
		x->result_in = true;
	}
	mc_log(MC_LOG_INFO, "agent ended", "task", x->t.id, "result", x->r_status, NULL);
	mc_xt_event(x, XE_AGENT_DONE);
}

/* A leader that exited but whose group or stdout lingers is bounded. */
static bool lingering_over(struct mc_xtask *x, mc_ms_t now)
{
	if (!mc_agent_exited(x->agent, NULL) && !mc_backend_session_turn_done(x->bk))
		return false;
	if (x->exited_at == 0)
		x->exited_at = now;
	if (!x->force_killed && now - x->exited_at >= LINGER_MS) {
		x->force_killed = true;
		mc_log(MC_LOG_WARN, "agent's run is over but it lingers: killing its group",
		       "task", x->t.id, NULL);
		mc_agent_stop(x->agent, 0, now);
	}
	return mc_agent_exited(x->agent, NULL) && now - x->exited_at >= 2 * LINGER_MS;
}

void mc_xt_agent_service(struct mc_xtask *x, mc_ms_t now)
{
	if (x->agent == NULL || x->agent_finished)
		return;
	mc_agent_service(x->agent, now, on_line, x);
	if (x->bk != NULL)
		mc_backend_session_tick(x->bk, now); /* codex handshake bounds */
	if (x->msgs != NULL)
		strlcpy(x->last_output, mc_msgbatch_last_line(x->msgs), sizeof x->last_output);
	if (mc_agent_done(x->agent) || lingering_over(x, now))
		finish(x);
}

unsigned mc_xt_agent_waitfds(struct mc_xtask *x, struct curl_waitfd *fds, unsigned max)
{
	if (x->agent == NULL || x->agent_finished)
		return 0;
	return mc_agent_waitfds(x->agent, fds, max);
}

void mc_xt_agent_set_ready(struct mc_xtask *x, const struct curl_waitfd *fds)
{
	if (x->agent != NULL && !x->agent_finished && x->wf_n > 0)
		mc_agent_set_ready(x->agent, fds + x->wf_off, x->wf_n);
}

mc_ms_t mc_xt_agent_deadline(const struct mc_xtask *x)
{
	if (x->agent == NULL || x->agent_finished)
		return 0;
	mc_ms_t d = mc_agent_next_deadline(x->agent);
	mc_ms_t b = x->bk != NULL ? mc_backend_session_next_deadline(x->bk) : -1;
	if (b >= 0 && (d < 0 || b < d))
		d = b;
	if (x->exited_at > 0) {
		mc_ms_t l = x->exited_at + (x->force_killed ? 2 * LINGER_MS : LINGER_MS);
		if (d <= 0 || l < d)
			d = l;
	}
	return d < 0 ? 0 : d;
}

void mc_xt_agent_free(struct mc_xtask *x)
{
	mc_backend_session_free(x->bk);
	x->bk = NULL;
	mc_agent_free(x->agent);
	x->agent = NULL;
}

int mc_xt_agent_pid(const struct mc_xtask *x)
{
	return x->agent != NULL && !x->agent_finished ? (int)mc_agent_pid(x->agent) : 0;
}
