/* The claude backend (reference section 4.1): Claude Code's stream-json on
 * stdin and stdout. One user frame goes in; system / assistant / user /
 * result / control_request lines come out; the result line ends the run
 * (stdin is closed so the CLI exits) and the final result is decided when
 * the process is gone, by the first matching rule of "Final result". */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "worker/backend.h"

#define TOOL_MAP 32

struct tool_name {
	char id[64];
	char name[64];
};

/* A growable text buffer with a hard cap (bytes past it are dropped). */
struct tbuf {
	char *p;
	size_t len, cap;
};

struct claude {
	char session_id[128];       /* last seen (the result overwrites it) */
	char announced[128];        /* last given to the sink */
	char model[128];            /* of the last assistant message */
	char msg_id[128];           /* the assistant message being read */
	bool msg_has_tool;
	struct tbuf msg_text;       /* its text so far */
	struct tbuf last_text;      /* last finished message with text and no tool */
	struct tool_name tools[TOOL_MAP];
	size_t n_tools;
	bool got_result, is_error, async_launched, tool_ran;
	char terminal_reason[64];
	char subtype[64];
	char *result_text;          /* result.result (or errors[] joined) */
};

static void tbuf_clear(struct tbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static void tbuf_add(struct tbuf *b, const char *s, size_t n)
{
	if (b->len + n > MC_BACKEND_OUTPUT_MAX)
		n = MC_BACKEND_OUTPUT_MAX - b->len;
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (np == NULL)
			return;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t num_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15)
		return 0;
	return (int64_t)v->valuedouble;
}

static void set_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* ---- argv ---- */

static const struct mc_blocked_flag BLOCKED[] = {
	{ "-p", false },
	{ "--print", false },
	{ "--output-format", true },
	{ "--input-format", true },
	{ "--permission-mode", true },
	{ "--mcp-config", true },
	{ "--effort", true },
	{ NULL, false },
};

static int claude_argv(const char *path, char *const *fixed, size_t n_fixed,
		       const struct mc_backend_opts *o, struct mc_argv *out)
{
	static const char *const FAMILY_ARGS[] = {
		"-p", "--output-format", "stream-json", "--input-format", "stream-json",
		"--verbose", "--permission-mode", "bypassPermissions",
		"--disallowedTools", "AskUserQuestion",
	};
	if (mc_argv_push(out, path) < 0 ||
	    mc_backend_filter_args(fixed, n_fixed, BLOCKED, false, out) < 0)
		return -1;
	for (size_t i = 0; i < sizeof FAMILY_ARGS / sizeof FAMILY_ARGS[0]; i++)
		if (mc_argv_push(out, FAMILY_ARGS[i]) < 0)
			return -1;
	if (o->model != NULL && o->model[0] != '\0' &&
	    (mc_argv_push(out, "--model") < 0 || mc_argv_push(out, o->model) < 0))
		return -1;
	if (o->resume_id != NULL && o->resume_id[0] != '\0' &&
	    (mc_argv_push(out, "--resume") < 0 || mc_argv_push(out, o->resume_id) < 0))
		return -1;
	return mc_backend_filter_args(o->custom_args, o->n_custom_args, BLOCKED, true, out);
}

/* ---- state ---- */

static void *claude_init(struct mc_backend_session *s)
{
	return calloc(1, sizeof(struct claude));
}

static void claude_fini(void *st)
{
	struct claude *c = st;
	if (c == NULL)
		return;
	tbuf_clear(&c->msg_text);
	tbuf_clear(&c->last_text);
	free(c->result_text);
	free(c);
}


static void claude_start(struct mc_backend_session *s, void *st)
{
	/* {"type":"user","message":{"role":"user","content":[{"type":"text","text":P}]}} */
	cJSON *j = cJSON_CreateObject();
	cJSON *msg = cJSON_AddObjectToObject(j, "message");
	cJSON *content = msg != NULL ? cJSON_AddArrayToObject(msg, "content") : NULL;
	cJSON *block = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "user");
	if (msg != NULL)
		cJSON_AddStringToObject(msg, "role", "user");
	cJSON_AddStringToObject(block, "type", "text");
	cJSON_AddStringToObject(block, "text", mc_bs_opts(s)->prompt);
	if (content != NULL)
		cJSON_AddItemToArray(content, block);
	else
		cJSON_Delete(block);
	mc_bs_write_json(s, j);
}

/* The session id as the agent reports it; told to the sink when new. */
static void note_session(struct mc_backend_session *s, struct claude *c, const cJSON *j,
			 bool announce)
{
	const char *sid = str_of(j, "session_id");
	if (sid == NULL || sid[0] == '\0')
		return;
	set_str(c->session_id, sizeof c->session_id, sid);
	if (announce && strcmp(c->announced, c->session_id) != 0) {
		set_str(c->announced, sizeof c->announced, c->session_id);
		mc_bs_session_id(s, c->announced);
	}
}

static void remember_tool(struct claude *c, const char *id, const char *name)
{
	struct tool_name *t = &c->tools[c->n_tools++ % TOOL_MAP]; /* oldest overwritten */
	set_str(t->id, sizeof t->id, id);
	set_str(t->name, sizeof t->name, name);
}

static const char *tool_for(const struct claude *c, const char *id)
{
	size_t n = c->n_tools < TOOL_MAP ? c->n_tools : TOOL_MAP;
	for (size_t i = 0; id != NULL && i < n; i++)
		if (strcmp(c->tools[i].id, id) == 0)
			return c->tools[i].name;
	return "";
}

/* A new assistant message id closes the previous message. */
static void end_message(struct claude *c)
{
	if (c->msg_text.len > 0 && !c->msg_has_tool) {
		tbuf_clear(&c->last_text);
		c->last_text = c->msg_text;
		memset(&c->msg_text, 0, sizeof c->msg_text);
	}
	tbuf_clear(&c->msg_text);
	c->msg_has_tool = false;
}

static void emit_text(struct mc_backend_session *s, enum mc_msg_type type, const char *t)
{
	if (t == NULL || t[0] == '\0')
		return;
	struct mc_backend_msg m = { .type = type, .text = t, .text_len = strlen(t) };
	mc_bs_message(s, &m);
}

static void on_tool_use(struct mc_backend_session *s, struct claude *c, const cJSON *b)
{
	const char *id = str_of(b, "id"), *name = str_of(b, "name");
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
	char *in = input != NULL ? cJSON_PrintUnformatted(input) : NULL;
	remember_tool(c, id, name);
	c->msg_has_tool = true;
	c->tool_ran = true;
	struct mc_backend_msg m = { .type = MC_MSG_TOOL_USE, .tool = name ? name : "",
				    .call_id = id ? id : "", .input_json = in ? in : "{}" };
	mc_bs_message(s, &m);
	free(in);
}

static void usage_from(const cJSON *u, struct mc_usage *out, bool camel)
{
	out->input = num_of(u, camel ? "inputTokens" : "input_tokens");
	out->output = num_of(u, camel ? "outputTokens" : "output_tokens");
	out->cache_read = num_of(u, camel ? "cacheReadInputTokens" : "cache_read_input_tokens");
	out->cache_write = num_of(u, camel ? "cacheCreationInputTokens" : "cache_creation_input_tokens");
}

static void on_assistant(struct mc_backend_session *s, struct claude *c, const cJSON *j)
{
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	const char *id = str_of(msg, "id");
	bool new_msg = id == NULL || strcmp(id, c->msg_id) != 0;
	if (new_msg) {
		end_message(c);
		set_str(c->msg_id, sizeof c->msg_id, id);
	}
	const char *model = str_of(msg, "model");
	if (model != NULL && strcmp(model, "<synthetic>") != 0)
		set_str(c->model, sizeof c->model, model);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(msg, "usage");
	if (new_msg && cJSON_IsObject(u) && model != NULL && strcmp(model, "<synthetic>") != 0) {
		/* Every block of a message repeats its usage: count it once. */
		struct mc_usage mu;
		usage_from(u, &mu, false);
		mc_bs_usage(s, model, &mu, false);
	}
	const cJSON *b;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(msg, "content")) {
		const char *type = str_of(b, "type");
		if (type == NULL)
			continue;
		if (strcmp(type, "text") == 0) {
			const char *t = str_of(b, "text");
			if (t != NULL)
				tbuf_add(&c->msg_text, t, strlen(t));
			emit_text(s, MC_MSG_TEXT, t);
		} else if (strcmp(type, "thinking") == 0) {
			const char *t = str_of(b, "thinking");
			emit_text(s, MC_MSG_THINKING, t != NULL ? t : str_of(b, "text"));
		} else if (strcmp(type, "tool_use") == 0) {
			on_tool_use(s, c, b);
		}
	}
}

static bool async_status(const cJSON *v)
{
	if (cJSON_IsObject(v)) {
		const char *st = str_of(v, "status");
		return st != NULL && strcmp(st, "async_launched") == 0;
	}
	const cJSON *e;
	if (cJSON_IsArray(v))
		cJSON_ArrayForEach(e, v)
			if (async_status(e))
				return true;
	return false;
}

static void on_tool_result(struct mc_backend_session *s, struct claude *c, const cJSON *b)
{
	const char *id = str_of(b, "tool_use_id");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(b, "content");
	char *printed = NULL;
	const char *out = "";
	if (cJSON_IsString(content))
		out = content->valuestring;
	else if (content != NULL && !cJSON_IsNull(content))
		out = printed = cJSON_PrintUnformatted(content);
	if (out == NULL)
		out = "";
	if (async_status(content))
		c->async_launched = true;
	size_t n = strlen(out);
	struct mc_backend_msg m = { .type = MC_MSG_TOOL_RESULT, .text = out,
				    .text_len = n < MC_BACKEND_TOOL_OUTPUT_MAX ? n : MC_BACKEND_TOOL_OUTPUT_MAX,
				    .tool = tool_for(c, id), .call_id = id ? id : "" };
	mc_bs_message(s, &m);
	free(printed);
}

static void on_user(struct mc_backend_session *s, struct claude *c, const cJSON *j)
{
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (async_status(cJSON_GetObjectItemCaseSensitive(j, "tool_use_result")))
		c->async_launched = true;
	const cJSON *b;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(msg, "content")) {
		const char *type = str_of(b, "type");
		if (type != NULL && strcmp(type, "tool_result") == 0)
			on_tool_result(s, c, b);
	}
}

/* "errors":[...] of an error result without a "result" text. */
static char *join_errors(const cJSON *errs)
{
	struct tbuf b = { 0 };
	const cJSON *e;
	cJSON_ArrayForEach(e, errs) {
		if (!cJSON_IsString(e))
			continue;
		if (b.len > 0)
			tbuf_add(&b, "; ", 2);
		tbuf_add(&b, e->valuestring, strlen(e->valuestring));
	}
	return b.p;
}

static void on_result(struct mc_backend_session *s, struct claude *c, const cJSON *j)
{
	c->got_result = true;
	c->is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "is_error"));
	set_str(c->terminal_reason, sizeof c->terminal_reason, str_of(j, "terminal_reason"));
	set_str(c->subtype, sizeof c->subtype, str_of(j, "subtype"));
	const char *r = str_of(j, "result");
	free(c->result_text);
	c->result_text = r != NULL && r[0] != '\0'
				 ? strndup(r, MC_BACKEND_OUTPUT_MAX)
				 : join_errors(cJSON_GetObjectItemCaseSensitive(j, "errors"));
	note_session(s, c, j, false);
	const cJSON *mu = cJSON_GetObjectItemCaseSensitive(j, "modelUsage");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (cJSON_IsObject(mu) && mu->child != NULL) {
		/* The totals: they replace what the assistant lines summed. */
		mc_bs_usage_reset(s);
		const cJSON *m;
		cJSON_ArrayForEach(m, mu) {
			struct mc_usage x;
			usage_from(m, &x, true);
			mc_bs_usage(s, m->string, &x, true);
		}
	} else if (cJSON_IsObject(u)) {
		const char *model = c->model[0] ? c->model : mc_bs_opts(s)->model;
		struct mc_usage x;
		usage_from(u, &x, false);
		mc_bs_usage_reset(s);
		mc_bs_usage(s, model, &x, true);
	}
	end_message(c);
	mc_bs_turn_done(s);
	mc_bs_close_stdin(s); /* claude exits at stdin EOF */
}

/* Auto-approval, with run_in_background forced off in the echoed input. */
static void on_control_request(struct mc_backend_session *s, const cJSON *j)
{
	const char *rid = str_of(j, "request_id");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "request");
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(req, "input");
	cJSON *upd = cJSON_IsObject(input) ? cJSON_Duplicate(input, 1) : cJSON_CreateObject();
	if (upd != NULL && cJSON_GetObjectItemCaseSensitive(upd, "run_in_background") != NULL)
		cJSON_ReplaceItemInObjectCaseSensitive(upd, "run_in_background", cJSON_CreateFalse());
	cJSON *o = cJSON_CreateObject();
	cJSON *resp = cJSON_AddObjectToObject(o, "response");
	cJSON_AddStringToObject(o, "type", "control_response");
	cJSON *inner = NULL;
	if (resp != NULL) {
		cJSON_AddStringToObject(resp, "subtype", "success");
		cJSON_AddStringToObject(resp, "request_id", rid != NULL ? rid : "");
		inner = cJSON_AddObjectToObject(resp, "response");
	}
	if (inner != NULL && upd != NULL) {
		cJSON_AddStringToObject(inner, "behavior", "allow");
		cJSON_AddItemToObject(inner, "updatedInput", upd);
	} else {
		cJSON_Delete(upd);
	}
	mc_bs_write_json(s, o);
}

static void claude_line(struct mc_backend_session *s, void *st, char *line, size_t len,
			bool truncated)
{
	struct claude *c = st;
	cJSON *j = truncated ? NULL : cJSON_ParseWithLength(line, len);
	const char *type = str_of(j, "type");
	if (type == NULL) {
		mc_bs_bad_line(s); /* not JSON, cut, or no type: skipped, as claude's reader does */
		cJSON_Delete(j);
		return;
	}
	if (strcmp(type, "system") == 0)
		note_session(s, c, j, true);
	else if (strcmp(type, "assistant") == 0) {
		on_assistant(s, c, j);
		note_session(s, c, j, false);
	}
	else if (strcmp(type, "user") == 0)
		on_user(s, c, j);
	else if (strcmp(type, "result") == 0)
		on_result(s, c, j);
	else if (strcmp(type, "control_request") == 0)
		on_control_request(s, j);
	cJSON_Delete(j);
}

/* ---- the final result (first match wins) ---- */

static bool resume_refused(const struct claude *c, const char *resume_id, const char *error,
			   const char *tail)
{
	static const char *const PHRASES[] = {
		"no conversation found", "no saved session found", "已绑定另外",
		"bound to another account", "bound to a different account",
	};
	if (resume_id == NULL || resume_id[0] == '\0')
		return false;
	for (size_t i = 0; i < sizeof PHRASES / sizeof PHRASES[0]; i++)
		if (mc_backend_contains_ci(error, PHRASES[i]) || mc_backend_contains_ci(tail, PHRASES[i]))
			return true;
	return c->session_id[0] != '\0' && strcmp(c->session_id, resume_id) != 0;
}

static void claude_finish(struct mc_backend_session *s, void *st, const struct mc_backend_end *e)
{
	struct claude *c = st;
	const char *tail = e->stderr_tail;
	char buf[256];
	const char *err = NULL;
	enum mc_result_status status = MC_RESULT_FAILED;
	end_message(c);
	if (c->got_result && strcmp(c->terminal_reason, "prompt_too_long") == 0) {
		err = "claude ended with terminal_reason \"prompt_too_long\": the prompt is too "
		      "long for the model's context window";
	} else if (c->got_result && c->is_error) {
		if (c->result_text != NULL && c->result_text[0] != '\0') {
			err = c->result_text;
		} else {
			snprintf(buf, sizeof buf, "claude returned an error result without details%s%s%s",
				 c->subtype[0] ? " (" : "", c->subtype, c->subtype[0] ? ")" : "");
			err = buf;
		}
	} else if (e->cause == MC_END_TIMEOUT) {
		status = MC_RESULT_TIMEOUT;
		err = e->timeout_text != NULL ? e->timeout_text : "claude timed out";
	} else if (e->cause == MC_END_CANCEL) {
		status = MC_RESULT_ABORTED;
		err = "execution cancelled";
	} else if (mc_bs_stdin_broken(s) && c->session_id[0] == '\0') {
		err = "claude: writing the prompt to its stdin failed";
	} else if (e->exited && !(WIFEXITED(e->wstatus) && WEXITSTATUS(e->wstatus) == 0) &&
		   !(c->got_result && WIFSIGNALED(e->wstatus))) {
		/* A signal after a clean result line is the caller stopping a CLI
		 * that lingered after its stdin closed: the result stands. */
		char d[64];
		if (WIFEXITED(e->wstatus))
			snprintf(d, sizeof d, "exit status %d", WEXITSTATUS(e->wstatus));
		else
			snprintf(d, sizeof d, "signal: %s", strsignal(WTERMSIG(e->wstatus)));
		snprintf(buf, sizeof buf, "claude exited with error: %s", d);
		err = buf;
	} else if (!c->got_result) {
		err = "claude stream ended without terminal result";
	} else if (c->async_launched) {
		err = "claude launched an async background task; its result would never be "
		      "reported, so the run cannot complete";
	} else {
		status = MC_RESULT_COMPLETED;
	}
	const char *out = c->result_text != NULL && c->result_text[0] ? c->result_text
			  : c->last_text.p != NULL                    ? c->last_text.p
								      : "";
	const char *resume_id = mc_bs_opts(s)->resume_id;
	bool rejected = status == MC_RESULT_FAILED && resume_refused(c, resume_id, err, tail);
	mc_bs_result(s, status, out, err, tail, c->session_id, rejected, c->tool_ran);
}

const struct mc_backend_ops mc_backend_claude = {
	.family = "claude",
	.brief_file = "CLAUDE.md",
	.build_argv = claude_argv,
	.init = claude_init,
	.fini = claude_fini,
	.start = claude_start,
	.line = claude_line,
	.finish = claude_finish,
};
