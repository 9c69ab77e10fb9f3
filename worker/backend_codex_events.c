/* The codex backend's notifications (reference 4.2 "Notifications"): v2
 * item/turn events and the legacy codex/event dialect, whichever comes
 * first, into messages, the turn's end and usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/backend_codex_int.h"

/* ---- messages ---- */

static void emit(struct mc_backend_session *s, enum mc_msg_type type, const char *text,
		 const char *tool, const char *call_id, const char *input)
{
	size_t n = text != NULL ? strlen(text) : 0;
	if (type == MC_MSG_TOOL_RESULT && n > MC_BACKEND_TOOL_OUTPUT_MAX)
		n = MC_BACKEND_TOOL_OUTPUT_MAX;
	if ((type == MC_MSG_TEXT || type == MC_MSG_THINKING) && n == 0)
		return;
	struct mc_backend_msg m = { .type = type, .text = text != NULL ? text : "", .text_len = n,
				    .tool = tool != NULL ? tool : "",
				    .call_id = call_id != NULL ? call_id : "",
				    .input_json = input != NULL ? input : "{}" };
	mc_bs_message(s, &m);
}

static void tool_use(struct mc_backend_session *s, struct codex *c, const char *tool,
		     const char *id, cJSON *input)
{
	char *in = input != NULL ? cJSON_PrintUnformatted(input) : NULL;
	cJSON_Delete(input);
	c->tool_ran = true;
	emit(s, MC_MSG_TOOL_USE, NULL, tool, id, in);
	free(in);
}

static cJSON *one_field(const char *key, const cJSON *v)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, key, v != NULL ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
	return o;
}

static void agent_text(struct mc_backend_session *s, struct codex *c, const char *text,
		       bool final)
{
	if (text == NULL)
		return;
	emit(s, MC_MSG_TEXT, text, NULL, NULL, NULL);
	cx_set_owned(&c->last_message, text);
	if (final)
		cx_set_owned(&c->final_answer, text);
}

/* "summary":[...] / "content":[...] of a reasoning item, as one text. */
static void reasoning(struct mc_backend_session *s, const cJSON *item)
{
	const char *keys[] = { "summary", "content" };
	for (size_t k = 0; k < 2; k++) {
		const cJSON *e;
		cJSON_ArrayForEach(e, cx_obj_of(item, keys[k])) {
			const char *t = cJSON_IsString(e) ? e->valuestring : cx_str_of(e, "text");
			emit(s, MC_MSG_THINKING, t, NULL, NULL, NULL);
		}
	}
}

static void v2_item(struct mc_backend_session *s, struct codex *c, const cJSON *item, bool done)
{
	const char *type = cx_str_of(item, "type");
	const char *id = cx_str_of(item, "id");
	if (type == NULL)
		return;
	if (strcmp(type, "commandExecution") == 0) {
		if (!done)
			tool_use(s, c, "exec_command", id, one_field("command", cx_obj_of(item, "command")));
		else
			emit(s, MC_MSG_TOOL_RESULT, cx_str_of(item, "aggregatedOutput"), "exec_command", id,
			     NULL);
	} else if (strcmp(type, "fileChange") == 0) {
		if (!done)
			tool_use(s, c, "patch_apply", id, one_field("changes", cx_obj_of(item, "changes")));
		else
			emit(s, MC_MSG_TOOL_RESULT, cx_str_of(item, "status"), "patch_apply", id, NULL);
	} else if (strcmp(type, "mcpToolCall") == 0) {
		const char *tool = cx_str_of(item, "tool");
		if (!done) {
			const cJSON *args = cx_obj_of(item, "arguments");
			tool_use(s, c, tool, id, args != NULL ? cJSON_Duplicate(args, 1) : NULL);
		} else {
			const cJSON *r = cx_obj_of(item, "result");
			if (r == NULL || cJSON_IsNull(r))
				r = cx_obj_of(item, "error");
			char *out = r != NULL ? cJSON_PrintUnformatted(r) : NULL;
			emit(s, MC_MSG_TOOL_RESULT, out, tool, id, NULL);
			free(out);
		}
	} else if (done && strcmp(type, "agentMessage") == 0) {
		const char *phase = cx_str_of(item, "phase");
		bool final = phase != NULL && strcmp(phase, "final_answer") == 0;
		agent_text(s, c, cx_str_of(item, "text"), final);
		if (final) {
			c->completed = true;
			cx_end_turn(s, c);
		}
	} else if (done && strcmp(type, "reasoning") == 0) {
		reasoning(s, item);
	}
}

static void read_usage_tot(const cJSON *u, struct usage_tot *t)
{
	static const char *const IN[] = { "inputTokens", "input_tokens", "input", "prompt_tokens", NULL };
	static const char *const OUT[] = { "outputTokens", "output_tokens", "output",
					   "completion_tokens", NULL };
	static const char *const CACHED[] = { "cachedInputTokens", "cached_input_tokens",
					      "cache_read_tokens", "cache_read_input_tokens", NULL };
	t->input = cx_num_any(u, IN);
	t->output = cx_num_any(u, OUT);
	t->cached = cx_num_any(u, CACHED);
}

static void store_usage(struct mc_backend_session *s, struct codex *c, const struct usage_tot *t)
{
	/* Stored input excludes cached input (it is counted as cache_read). */
	struct mc_usage u = { .input = t->input > t->cached ? t->input - t->cached : 0,
			      .output = t->output, .cache_read = t->cached };
	mc_bs_usage(s, c->model[0] ? c->model : mc_bs_opts(s)->model, &u, true);
}

/* Thread totals: this run's share is total - (total before its first call),
 * so a resumed thread's history is not counted again. */
static void thread_totals(struct mc_backend_session *s, struct codex *c, const cJSON *total,
			  const cJSON *last)
{
	if (c->have_turn_usage || !cJSON_IsObject(total))
		return;
	struct usage_tot t, l = { 0 };
	read_usage_tot(total, &t);
	if (!c->have_base) {
		read_usage_tot(last, &l);
		c->base.input = t.input - l.input;
		c->base.cached = t.cached - l.cached;
		c->base.output = t.output - l.output;
		c->have_base = true;
	}
	struct usage_tot run = { t.input - c->base.input, t.cached - c->base.cached,
				 t.output - c->base.output };
	if (run.input < 0 || run.cached < 0 || run.output < 0)
		run = t;
	store_usage(s, c, &run);
}

static void turn_usage(struct mc_backend_session *s, struct codex *c, const cJSON *u)
{
	if (!cJSON_IsObject(u))
		return;
	struct usage_tot t;
	read_usage_tot(u, &t);
	c->have_turn_usage = true;
	store_usage(s, c, &t);
}

static void v2_turn_completed(struct mc_backend_session *s, struct codex *c, const cJSON *p)
{
	const cJSON *turn = cx_obj_of(p, "turn");
	const char *st = cx_str_of(turn, "status");
	turn_usage(s, c, cx_obj_of(turn, "usage"));
	if (st != NULL && (strcmp(st, "cancelled") == 0 || strcmp(st, "canceled") == 0 ||
			   strcmp(st, "aborted") == 0 || strcmp(st, "interrupted") == 0)) {
		c->aborted = true;
		cx_end_turn(s, c);
	} else if (st != NULL && strcmp(st, "failed") == 0) {
		const char *m = cx_str_of(cx_obj_of(turn, "error"), "message");
		cx_fail(s, c, m != NULL ? m : "codex turn failed");
	} else {
		c->completed = true;
		cx_end_turn(s, c);
	}
}

static void v2_notify(struct mc_backend_session *s, struct codex *c, const char *m,
		      const cJSON *p)
{
	if (strcmp(m, "turn/started") == 0) {
		const char *tid = cx_str_of(cx_obj_of(p, "turn"), "id");
		if (tid != NULL)
			cx_set_str(c->turn_id, sizeof c->turn_id, tid);
	} else if (strcmp(m, "turn/completed") == 0) {
		const char *tid = cx_str_of(cx_obj_of(p, "turn"), "id");
		if (tid == NULL || c->turn_id[0] == '\0' || strcmp(tid, c->turn_id) == 0)
			v2_turn_completed(s, c, p);
	} else if (strcmp(m, "error") == 0) {
		if (!cJSON_IsTrue(cx_obj_of(p, "willRetry"))) {
			const char *msg = cx_str_of(cx_obj_of(p, "error"), "message");
			emit(s, MC_MSG_ERROR, msg, NULL, NULL, NULL);
			cx_fail(s, c, msg != NULL ? msg : "codex reported an error");
		}
	} else if (strcmp(m, "thread/status/changed") == 0) {
		const char *t = cx_str_of(cx_obj_of(p, "status"), "type");
		if (t != NULL && strcmp(t, "idle") == 0 && c->st == CX_RUNNING) {
			c->completed = true;
			cx_end_turn(s, c);
		}
	} else if (strcmp(m, "item/started") == 0 || strcmp(m, "item/completed") == 0) {
		v2_item(s, c, cx_obj_of(p, "item"), strcmp(m, "item/completed") == 0);
	} else if (strcmp(m, "thread/tokenUsage/updated") == 0) {
		const cJSON *tu = cx_obj_of(p, "tokenUsage");
		thread_totals(s, c, cx_obj_of(tu, "total"), cx_obj_of(tu, "last"));
	}
}

/* "command": ["bash","-lc","x"] or "x" */
static cJSON *legacy_command(const cJSON *cmd)
{
	if (!cJSON_IsArray(cmd))
		return one_field("command", cmd);
	char buf[4096];
	size_t o = 0;
	const cJSON *e;
	buf[0] = '\0';
	cJSON_ArrayForEach(e, cmd) {
		if (cJSON_IsString(e) && o < sizeof buf)
			o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? " " : "", e->valuestring);
	}
	cJSON *o2 = cJSON_CreateObject();
	cJSON_AddStringToObject(o2, "command", buf);
	return o2;
}

static void legacy_notify(struct mc_backend_session *s, struct codex *c, const cJSON *msg)
{
	const char *t = cx_str_of(msg, "type");
	const char *id = cx_str_of(msg, "call_id");
	if (t == NULL)
		return;
	if (strcmp(t, "agent_message") == 0) {
		agent_text(s, c, cx_str_of(msg, "message"), false);
	} else if (strcmp(t, "agent_reasoning") == 0) {
		emit(s, MC_MSG_THINKING, cx_str_of(msg, "text"), NULL, NULL, NULL);
	} else if (strcmp(t, "exec_command_begin") == 0) {
		tool_use(s, c, "exec_command", id, legacy_command(cx_obj_of(msg, "command")));
	} else if (strcmp(t, "exec_command_end") == 0) {
		const char *out = cx_str_of(msg, "aggregated_output");
		emit(s, MC_MSG_TOOL_RESULT, out != NULL ? out : cx_str_of(msg, "stdout"), "exec_command",
		     id, NULL);
	} else if (strcmp(t, "patch_apply_begin") == 0) {
		tool_use(s, c, "patch_apply", id, one_field("changes", cx_obj_of(msg, "changes")));
	} else if (strcmp(t, "patch_apply_end") == 0) {
		emit(s, MC_MSG_TOOL_RESULT, cJSON_IsTrue(cx_obj_of(msg, "success")) ? "success" : "failed",
		     "patch_apply", id, NULL);
	} else if (strcmp(t, "token_count") == 0) {
		const cJSON *info = cx_obj_of(msg, "info");
		thread_totals(s, c, cx_obj_of(info, "total_token_usage"), cx_obj_of(info, "last_token_usage"));
	} else if (strcmp(t, "task_complete") == 0) {
		const char *last = cx_str_of(msg, "last_agent_message");
		if (last != NULL)
			cx_set_owned(&c->final_answer, last);
		turn_usage(s, c, cx_obj_of(msg, "usage"));
		c->completed = true;
		cx_end_turn(s, c);
	} else if (strcmp(t, "turn_aborted") == 0) {
		c->aborted = true;
		cx_end_turn(s, c);
	} else if (strcmp(t, "error") == 0) {
		const char *m = cx_str_of(msg, "message");
		emit(s, MC_MSG_ERROR, m, NULL, NULL, NULL);
		cx_fail(s, c, m != NULL ? m : "codex reported an error");
	}
}

void cx_on_notify(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e)
{
	const cJSON *p = e->payload;
	bool legacy = strncmp(e->method, "codex/event", 11) == 0;
	/* The first dialect seen is the one read; the other is a duplicate. */
	if (c->dialect == D_UNKNOWN)
		c->dialect = legacy ? D_LEGACY : D_V2;
	if ((c->dialect == D_LEGACY) != legacy)
		return;
	const char *tid = cx_str_of(p, "threadId");
	if (tid == NULL)
		tid = cx_str_of(p, "conversationId");
	if (tid != NULL && c->thread_id[0] != '\0' && strcmp(tid, c->thread_id) != 0)
		return; /* a subagent's thread */
	if (legacy)
		legacy_notify(s, c, cx_obj_of(p, "msg"));
	else
		v2_notify(s, c, e->method, p);
}

