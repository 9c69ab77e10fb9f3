/* The codex backend (reference section 4.2): `codex app-server` speaking
 * JSON-RPC 2.0, one object per line. Handshake: initialize, initialized,
 * thread/resume (falling back to thread/start on an RPC error) or
 * thread/start, turn/start; then notifications in one of two dialects (v2
 * item/turn, legacy codex/event) until the turn ends, when stdin is closed
 * so codex exits. Server requests are approvals (accepted) or anything
 * else (-32601, and the turn fails). The handshake is an explicit state x
 * event table. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "worker/backend_codex_int.h"

/* ---- small helpers ---- */

const char *cx_str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *cx_obj_of(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

int64_t cx_num_any(const cJSON *o, const char *const *keys)
{
	for (; *keys != NULL; keys++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, *keys);
		if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15)
			return (int64_t)v->valuedouble;
	}
	return 0;
}

void cx_set_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

void cx_set_owned(char **dst, const char *src)
{
	free(*dst);
	*dst = NULL;
	if (src == NULL)
		return;
	size_t n = strlen(src);
	if (n > MC_BACKEND_OUTPUT_MAX)
		n = MC_BACKEND_OUTPUT_MAX;
	if ((*dst = malloc(n + 1)) != NULL) {
		memcpy(*dst, src, n);
		(*dst)[n] = '\0';
	}
}


/* Ends the turn (codex exits at stdin EOF). */
void cx_end_turn(struct mc_backend_session *s, struct codex *c)
{
	c->st = CX_DONE;
	mc_bs_turn_done(s);
	mc_bs_close_stdin(s);
}

void cx_fail(struct mc_backend_session *s, struct codex *c, const char *msg)
{
	if (c->error == NULL)
		cx_set_owned(&c->error, msg);
	c->failed = true;
	cx_end_turn(s, c);
}

/* "<method>: <message> (code=<n>)" */
static void fail_rpc(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	char buf[1024];
	const cJSON *code = cx_obj_of(e->payload, "code");
	const char *m = cx_str_of(e->payload, "message");
	snprintf(buf, sizeof buf, "%s: %s (code=%ld)", e->method, m != NULL ? m : "error",
		 cJSON_IsNumber(code) && code->valuedouble > -1e15 && code->valuedouble < 1e15
			 ? (long)code->valuedouble : 0L); /* a cast out of range is UB */
	cx_fail(s, c, buf);
}

/* Sends a request and remembers what its id is for. */
static void request(struct mc_backend_session *s, struct codex *c, enum rpc_kind kind,
		    const char *method, cJSON *params)
{
	long id = c->next_id++;
	for (size_t i = 0; i < MAX_PENDING; i++) {
		if (c->pend[i].kind == K_NONE) {
			c->pend[i].id = id;
			c->pend[i].kind = kind;
			break;
		}
	}
	if (kind != K_NAME) { /* a handshake step: bounded */
		c->rpc_deadline = mc_now_ms() + mc_bs_opts(s)->rpc_timeout_ms;
		c->rpc_waiting = kind;
	}
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(j, "id", (double)id);
	cJSON_AddStringToObject(j, "method", method);
	cJSON_AddItemToObject(j, "params", params != NULL ? params : cJSON_CreateObject());
	if (mc_bs_write_json(s, j) < 0 && !mc_bs_stdin_broken(s))
		cx_fail(s, c, "codex: out of memory writing a request");
}

static enum rpc_kind take_pending(struct codex *c, long id)
{
	for (size_t i = 0; i < MAX_PENDING; i++) {
		if (c->pend[i].kind != K_NONE && c->pend[i].id == id) {
			enum rpc_kind k = c->pend[i].kind;
			c->pend[i].kind = K_NONE;
			return k;
		}
	}
	return K_NONE;
}

static cJSON *str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* ---- argv ---- */

static const struct mc_blocked_flag BLOCKED[] = {
	{ "--listen", true },
	{ NULL, false },
};

/* -c / --config overrides of shell_environment_policy: dropped when the
 * daemon owns CODEX_HOME (its config.toml decides the environment). */
static bool shell_env_override(char *const *args, size_t n, size_t i, size_t *skip)
{
	const char *a = args[i];
	const char *v = NULL;
	*skip = 0;
	if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < n) {
		v = args[i + 1];
		*skip = 1;
	} else if (strncmp(a, "-c=", 3) == 0) {
		v = a + 3;
	} else if (strncmp(a, "--config=", 9) == 0) {
		v = a + 9;
	}
	return v != NULL && strncmp(v, "shell_environment_policy", 24) == 0;
}

static int codex_argv(const char *path, char *const *fixed, size_t n_fixed,
		      const struct mc_backend_opts *o, struct mc_argv *out)
{
	if (mc_argv_push(out, path) < 0 ||
	    mc_backend_filter_args(fixed, n_fixed, BLOCKED, false, out) < 0 ||
	    mc_argv_push(out, "app-server") < 0 || mc_argv_push(out, "--listen") < 0 ||
	    mc_argv_push(out, "stdio://") < 0)
		return -1;
	for (size_t i = 0; i < o->n_custom_args; i++) {
		size_t skip;
		if (o->codex_home_set && shell_env_override(o->custom_args, o->n_custom_args, i, &skip)) {
			i += skip;
			continue;
		}
		if (mc_backend_filter_args(o->custom_args + i, 1, BLOCKED, false, out) < 0)
			return -1;
		/* a blocked --listen takes its value along */
		if (strcmp(o->custom_args[i], "--listen") == 0 && i + 1 < o->n_custom_args)
			i++;
	}
	return 0;
}

/* ---- handshake ---- */

static void send_thread_start(struct mc_backend_session *s, struct codex *c)
{
	const struct mc_backend_opts *o = mc_bs_opts(s);
	cJSON *p = cJSON_CreateObject();
	cJSON_AddItemToObject(p, "model", str_or_null(o->model));
	cJSON_AddNullToObject(p, "modelProvider");
	cJSON_AddNullToObject(p, "profile");
	cJSON_AddItemToObject(p, "cwd", str_or_null(o->cwd));
	cJSON_AddNullToObject(p, "approvalPolicy");
	cJSON_AddNullToObject(p, "sandbox");
	cJSON_AddNullToObject(p, "config");
	cJSON_AddNullToObject(p, "baseInstructions");
	cJSON_AddNullToObject(p, "developerInstructions");
	cJSON_AddNullToObject(p, "compactPrompt");
	cJSON_AddNullToObject(p, "includeApplyPatchTool");
	cJSON_AddFalseToObject(p, "experimentalRawEvents");
	cJSON_AddTrueToObject(p, "persistExtendedHistory");
	c->resuming = false;
	request(s, c, K_START, "thread/start", p);
}

static void send_thread(struct mc_backend_session *s, struct codex *c)
{
	const struct mc_backend_opts *o = mc_bs_opts(s);
	if (o->resume_id == NULL || o->resume_id[0] == '\0') {
		send_thread_start(s, c);
		return;
	}
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "threadId", o->resume_id);
	cJSON_AddItemToObject(p, "cwd", str_or_null(o->cwd));
	cJSON_AddItemToObject(p, "model", str_or_null(o->model));
	cJSON_AddNullToObject(p, "developerInstructions");
	c->resuming = true;
	request(s, c, K_RESUME, "thread/resume", p);
}

static void send_turn(struct mc_backend_session *s, struct codex *c)
{
	const struct mc_backend_opts *o = mc_bs_opts(s);
	char *text = NULL;
	if (c->fell_back && o->resume_fallback_notice != NULL && o->resume_fallback_notice[0] &&
	    asprintf(&text, "%s\n\n%s", o->resume_fallback_notice, o->prompt) < 0)
		text = NULL;
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "threadId", c->thread_id);
	cJSON *input = cJSON_AddArrayToObject(p, "input");
	cJSON *item = cJSON_CreateObject();
	cJSON_AddStringToObject(item, "type", "text");
	cJSON_AddStringToObject(item, "text", text != NULL ? text : o->prompt);
	cJSON_AddItemToArray(input, item);
	free(text);
	c->st = CX_TURN; /* notifications count from here on */
	request(s, c, K_TURN, "turn/start", p);
}

static void on_init_ok(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "jsonrpc", "2.0");
	cJSON_AddStringToObject(j, "method", "initialized");
	mc_bs_write_json(s, j);
	c->st = CX_THREAD;
	send_thread(s, c);
}

static void on_thread_ok(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	const cJSON *th = cx_obj_of(e->payload, "thread");
	const char *id = cx_str_of(th, "id");
	if (id == NULL || id[0] == '\0') {
		if (c->resuming) { /* no id: as a protocol error, start fresh */
			c->fell_back = true;
			send_thread_start(s, c);
			return;
		}
		cx_fail(s, c, "thread/start: the response has no thread id");
		return;
	}
	cx_set_str(c->thread_id, sizeof c->thread_id, id);
	const char *model = cx_str_of(e->payload, "model");
	if (model != NULL && model[0] != '\0')
		cx_set_str(c->model, sizeof c->model, model);
	mc_bs_session_id(s, c->thread_id);
	const char *name = mc_bs_opts(s)->thread_name;
	if (name != NULL && name[0] != '\0') { /* best effort: the answer is ignored */
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "threadId", c->thread_id);
		cJSON_AddStringToObject(p, "name", name);
		request(s, c, K_NAME, "thread/name/set", p);
	}
	send_turn(s, c);
}

static void on_thread_err(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	if (c->resuming) {
		c->fell_back = true; /* the thread is gone: a fresh one, with the notice */
		send_thread_start(s, c);
		return;
	}
	fail_rpc(s, c, e);
}

static void on_turn_ok(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	const char *tid = cx_str_of(cx_obj_of(e->payload, "turn"), "id");
	if (tid != NULL && c->turn_id[0] == '\0')
		cx_set_str(c->turn_id, sizeof c->turn_id, tid);
	c->st = CX_RUNNING;
}

/* A thread/resume answer longer than the line limit: the resume is
 * rejected (reference 8.1 item 9), so the caller retries fresh. */
static void on_oversize(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	if (!c->resuming)
		return;
	c->resume_rejected = true;
	cx_fail(s, c, "thread/resume: the response exceeded the line limit");
}


/* Which handler runs for an event in a state; NULL: ignored. */
static const cx_fn TABLE[CX_NSTATES][CX_NEVENTS] = {
	[CX_INIT] = { [EV_INIT_OK] = on_init_ok, [EV_INIT_ERR] = fail_rpc,
		      [EV_OVERSIZE] = NULL },
	[CX_THREAD] = { [EV_THREAD_OK] = on_thread_ok, [EV_THREAD_ERR] = on_thread_err,
			[EV_OVERSIZE] = on_oversize },
	[CX_TURN] = { [EV_TURN_OK] = on_turn_ok, [EV_TURN_ERR] = fail_rpc,
		      [EV_NOTIFY] = cx_on_notify },
	[CX_RUNNING] = { [EV_NOTIFY] = cx_on_notify },
	[CX_DONE] = { 0 },
};

static void dispatch(struct mc_backend_session *s, struct codex *c, enum cx_event ev,
		     const struct cx_ev *e)
{
	cx_fn fn = TABLE[c->st][ev];
	if (fn != NULL)
		fn(s, c, e);
}

/* ---- server requests ---- */

static cJSON *approval_answer(const char *m, const cJSON *params)
{
	if (strcmp(m, "item/commandExecution/requestApproval") == 0 ||
	    strcmp(m, "execCommandApproval") == 0 ||
	    strcmp(m, "item/fileChange/requestApproval") == 0 ||
	    strcmp(m, "applyPatchApproval") == 0) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "decision", "accept");
		return r;
	}
	if (strcmp(m, "item/permissions/requestApproval") == 0) {
		cJSON *r = cJSON_CreateObject();
		cJSON *perm = cJSON_AddObjectToObject(r, "permissions");
		const cJSON *want = cx_obj_of(params, "permissions");
		const char *keys[] = { "network", "fileSystem" };
		for (size_t i = 0; i < 2 && perm != NULL; i++) {
			const cJSON *v = cx_obj_of(want, keys[i]);
			if (v != NULL)
				cJSON_AddItemToObject(perm, keys[i], cJSON_Duplicate(v, 1));
		}
		cJSON_AddStringToObject(r, "scope", "turn");
		return r;
	}
	if (strcmp(m, "mcpServer/elicitation/request") == 0) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "action", "accept");
		cJSON_AddNullToObject(r, "content");
		cJSON_AddNullToObject(r, "_meta");
		return r;
	}
	return NULL;
}

static void on_request(struct mc_backend_session *s, struct codex *c, const cJSON *j,
		       const char *m)
{
	cJSON *resp = cJSON_CreateObject();
	cJSON_AddStringToObject(resp, "jsonrpc", "2.0");
	cJSON_AddItemToObject(resp, "id", cJSON_Duplicate(cx_obj_of(j, "id"), 1));
	cJSON *answer = approval_answer(m, cx_obj_of(j, "params"));
	char msg[256];
	snprintf(msg, sizeof msg, "unsupported codex app-server request: %s", m);
	if (answer != NULL) {
		cJSON_AddItemToObject(resp, "result", answer);
	} else {
		cJSON *err = cJSON_AddObjectToObject(resp, "error");
		cJSON_AddNumberToObject(err, "code", -32601);
		cJSON_AddStringToObject(err, "message", msg);
	}
	mc_bs_write_json(s, resp);
	if (answer == NULL && c->st != CX_DONE)
		cx_fail(s, c, msg);
}

/* ---- the session ---- */

static void *codex_init(struct mc_backend_session *s)
{
	struct codex *c = calloc(1, sizeof *c);
	if (c != NULL)
		c->next_id = 1;
	return c;
}

static void codex_fini(void *st)
{
	struct codex *c = st;
	if (c == NULL)
		return;
	free(c->error);
	free(c->final_answer);
	free(c->last_message);
	free(c);
}

static void codex_start(struct mc_backend_session *s, void *st)
{
	struct codex *c = st;
	cJSON *p = cJSON_CreateObject();
	cJSON *ci = cJSON_AddObjectToObject(p, "clientInfo");
	cJSON_AddStringToObject(ci, "name", "multicad");
	cJSON_AddStringToObject(ci, "title", "multicad");
	cJSON_AddStringToObject(ci, "version", MC_VERSION);
	cJSON *caps = cJSON_AddObjectToObject(p, "capabilities");
	cJSON_AddTrueToObject(caps, "experimentalApi");
	c->st = CX_INIT;
	request(s, c, K_INIT, "initialize", p);
}

static enum cx_event response_event(enum rpc_kind k, bool ok)
{
	switch (k) {
	case K_INIT:
		return ok ? EV_INIT_OK : EV_INIT_ERR;
	case K_START:
	case K_RESUME:
		return ok ? EV_THREAD_OK : EV_THREAD_ERR;
	case K_TURN:
		return ok ? EV_TURN_OK : EV_TURN_ERR;
	default:
		return CX_NEVENTS; /* thread/name/set, unknown ids: ignored */
	}
}

static const char *kind_method(enum rpc_kind k)
{
	static const char *const NAMES[] = { "", "initialize", "thread/start", "thread/resume",
					     "thread/name/set", "turn/start" };
	return NAMES[k];
}

static void codex_line(struct mc_backend_session *s, void *st, char *line, size_t len,
		       bool truncated)
{
	struct codex *c = st;
	if (truncated) {
		mc_bs_bad_line(s);
		dispatch(s, c, EV_OVERSIZE, &(struct cx_ev){ 0 });
		return;
	}
	cJSON *j = cJSON_ParseWithLength(line, len);
	if (!cJSON_IsObject(j)) {
		mc_bs_bad_line(s); /* not JSON (a stray log line): skipped */
		cJSON_Delete(j);
		return;
	}
	const char *method = cx_str_of(j, "method");
	const cJSON *id = cx_obj_of(j, "id");
	if (method != NULL && id != NULL) {
		on_request(s, c, j, method);
	} else if (method != NULL) {
		struct cx_ev e = { .j = j, .payload = cx_obj_of(j, "params"), .method = method };
		dispatch(s, c, EV_NOTIFY, &e);
	} else if (cJSON_IsNumber(id)) {
		/* Out of range (UB to cast): no id of ours, which start at 1. */
		double d = id->valuedouble;
		enum rpc_kind k = take_pending(c, d > 0 && d < 1e15 ? (long)d : -1);
		if (k != K_NONE && k == c->rpc_waiting)
			c->rpc_deadline = 0;
		const cJSON *err = cx_obj_of(j, "error");
		bool ok = err == NULL || cJSON_IsNull(err);
		enum cx_event ev = response_event(k, ok);
		struct cx_ev e = { .j = j, .payload = ok ? cx_obj_of(j, "result") : err,
				   .method = kind_method(k) };
		if (ev != CX_NEVENTS)
			dispatch(s, c, ev, &e);
	}
	cJSON_Delete(j);
}

static mc_ms_t codex_deadline(const void *st)
{
	const struct codex *c = st;
	return c->rpc_deadline > 0 && c->st != CX_DONE ? c->rpc_deadline : -1;
}

static void codex_tick(struct mc_backend_session *s, void *st, mc_ms_t now)
{
	struct codex *c = st;
	if (c->rpc_deadline <= 0 || c->st == CX_DONE || now < c->rpc_deadline)
		return;
	char msg[128];
	snprintf(msg, sizeof msg, "%s: no answer within %lld ms", kind_method(c->rpc_waiting),
		 (long long)mc_bs_opts(s)->rpc_timeout_ms);
	c->rpc_deadline = 0;
	cx_fail(s, c, msg);
}

static void codex_finish(struct mc_backend_session *s, void *st, const struct mc_backend_end *e)
{
	struct codex *c = st;
	enum mc_result_status status = MC_RESULT_FAILED;
	const char *err = c->error;
	char buf[256];
	if (e->cause == MC_END_TIMEOUT) {
		status = MC_RESULT_TIMEOUT;
		err = e->timeout_text != NULL ? e->timeout_text : "codex timed out";
	} else if (e->cause == MC_END_CANCEL) {
		status = MC_RESULT_ABORTED;
		err = "execution cancelled";
	} else if (c->failed) {
		status = MC_RESULT_FAILED;
	} else if (c->aborted) {
		status = MC_RESULT_ABORTED;
		err = "codex turn aborted";
	} else if (c->completed) {
		status = MC_RESULT_COMPLETED;
	} else if (mc_bs_stdin_broken(s)) {
		err = "codex: writing to its stdin failed";
	} else {
		static const char *const WHERE[] = { "initialize", "thread start", "turn start",
						     "the turn", "the turn" };
		char d[64] = "";
		if (e->exited && WIFEXITED(e->wstatus))
			snprintf(d, sizeof d, " (exit status %d)", WEXITSTATUS(e->wstatus));
		else if (e->exited && WIFSIGNALED(e->wstatus))
			snprintf(d, sizeof d, " (signal: %s)", strsignal(WTERMSIG(e->wstatus)));
		snprintf(buf, sizeof buf, "codex app-server exited during %s%s", WHERE[c->st], d);
		err = buf;
	}
	const char *out = c->final_answer != NULL ? c->final_answer
			  : c->last_message != NULL ? c->last_message
						    : "";
	mc_bs_result(s, status, out, err, e->stderr_tail, c->thread_id, c->resume_rejected,
		     c->tool_ran);
}

const struct mc_backend_ops mc_backend_codex = {
	.family = "codex",
	.brief_file = "AGENTS.md",
	.build_argv = codex_argv,
	.init = codex_init,
	.fini = codex_fini,
	.start = codex_start,
	.line = codex_line,
	.finish = codex_finish,
	.deadline = codex_deadline,
	.tick = codex_tick,
};
