/* libFuzzer target: an agent's stdout through the executor's reading path,
 * for both backends (worker/backend.h): the bytes go in chunks through an
 * mc_linebuf (worker/linebuf.h) into mc_backend_session_line, the messages
 * into an mc_msgbatch, as worker/task_agent.c connects them; then the agent
 * "ends" and mc_backend_session_finish runs. The agent is hostile.
 *
 * Input: byte 0 picks the family (bit 0), whether a resume was requested
 * (bit 1), how the agent ends (bits 2-4: exit 0, exit 1, killed, cancelled,
 * timed out, not reaped), a stderr tail that rejects a resume (bit 5), a
 * first line that is the agent's custom_args instead of output (bit 6), and
 * a small line limit (bit 7). Byte 1: the handshake timers fire after the
 * lines its low 4 bits select (cyclic), and stdin breaks at the write its
 * high 4 bits number (0: never). The rest is stdout, split on '\n'.
 *
 * Properties: no crash, no leak; the line splitter delivers exactly the
 * lines of the input (cut to the limit and flagged when longer); every
 * callback honours the sink contract (messages NUL-free within their
 * length, tool input valid JSON, session ids announced once per value,
 * usage per model once and right before the result, writes one JSON line
 * each and none after stdin closed); exactly one result, after finish,
 * consistent with how the agent ended; nothing after the result; every
 * message body is valid (fuzz_msgcheck.h); a claude custom arg never
 * brings back a flag the backend blocks. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "fuzz_msgcheck.h"
#include "worker/agent_proc.h"
#include "worker/backend.h"
#include "worker/linebuf.h"
#include "worker/msgbatch.h"

#define RESUME_ID "5d2c9e0a-7b41-4f3e-8a6d-1c0e9b8f2a47"
#define WINDOW (64u * 1024u)

struct fz {
	bool codex, resume, finished, stdin_closed, usage_started;
	enum mc_end_cause end_cause;
	int results, writes, fail_write_at;
	struct mc_backend_result r;   /* copies of the result's strings below */
	char *r_output, *r_error, *r_session;
	char last_session[256];
	char *usage_models[32];    /* whole names: a cut one could hide a repeat */
	size_t n_usage;
	struct mc_msgbatch *msgs;
	uint64_t last_seq;
	/* the line splitter's reference: the whole input, and where we are */
	const char *ref;
	size_t ref_len, ref_pos, max;
	struct mc_backend_session *s;
	size_t lines;
	unsigned tick_mask;
};

static char *dup0(const char *s)
{
	CHECK(s != NULL);
	char *c = strdup(s);
	CHECK(c != NULL);
	return c;
}

static void after_result_nothing(const struct fz *f)
{
	CHECK(f->results == 0); /* no callback once the result is out */
}

static void on_message(void *ctx, const struct mc_backend_msg *m)
{
	struct fz *f = ctx;
	after_result_nothing(f);
	CHECK(!f->usage_started);
	CHECK(m->text != NULL || m->type == MC_MSG_TOOL_USE);
	if (m->text != NULL) {
		CHECK(m->text_len <= strlen(m->text));
		CHECK(memchr(m->text, '\0', m->text_len) == NULL);
	}
	switch (m->type) {
	case MC_MSG_TEXT:
		CHECK(m->text_len > 0);
		mc_msgbatch_text(f->msgs, m->text, m->text_len);
		break;
	case MC_MSG_THINKING:
		CHECK(m->text_len > 0);
		mc_msgbatch_thinking(f->msgs, m->text, m->text_len);
		break;
	case MC_MSG_ERROR:
		mc_msgbatch_error(f->msgs, m->text, m->text_len);
		break;
	case MC_MSG_TOOL_USE: {
		CHECK(m->tool != NULL && m->call_id != NULL && m->input_json != NULL);
		cJSON *in = cJSON_Parse(m->input_json);
		CHECK(in != NULL); /* printed by the backend: always JSON */
		cJSON_Delete(in);
		mc_msgbatch_tool_use_text(f->msgs, m->tool, m->input_json, strlen(m->input_json));
		break;
	}
	case MC_MSG_TOOL_RESULT:
		CHECK(m->tool != NULL && m->call_id != NULL);
		CHECK(m->text_len <= MC_BACKEND_TOOL_OUTPUT_MAX);
		mc_msgbatch_tool_result(f->msgs, m->tool, m->text, m->text_len);
		break;
	default:
		CHECK(!"unknown message type");
	}
	fc_check_last_line(f->msgs);
	if (mc_msgbatch_held(f->msgs) > WINDOW) /* as the flush timer would */
		fc_flush(f->msgs, WINDOW, &f->last_seq);
}

static void on_session(void *ctx, const char *id)
{
	struct fz *f = ctx;
	after_result_nothing(f);
	CHECK(!f->usage_started);
	CHECK(id != NULL && id[0] != '\0');
	CHECK(strncmp(id, f->last_session, sizeof f->last_session - 1) != 0);
	strlcpy(f->last_session, id, sizeof f->last_session);
}

static void on_usage(void *ctx, const char *model, const struct mc_usage *u)
{
	struct fz *f = ctx;
	after_result_nothing(f);
	f->usage_started = true;
	CHECK(model != NULL && model[0] != '\0');
	CHECK(u->input >= 0 && u->output >= 0 && u->cache_read >= 0 && u->cache_write >= 0);
	CHECK(u->input || u->output || u->cache_read || u->cache_write);
	for (size_t i = 0; i < f->n_usage; i++)
		CHECK(strcmp(f->usage_models[i], model) != 0); /* once per model */
	CHECK(f->n_usage < sizeof f->usage_models / sizeof f->usage_models[0]);
	f->usage_models[f->n_usage++] = dup0(model);
}

static int on_write(void *ctx, const char *data, size_t len)
{
	struct fz *f = ctx;
	after_result_nothing(f);
	CHECK(!f->stdin_closed);
	CHECK(len >= 2 && data[len - 1] == '\n' && memchr(data, '\n', len - 1) == NULL);
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(data, len - 1, &end, 0);
	CHECK(cJSON_IsObject(j) && end == data + len - 1);
	cJSON_Delete(j);
	return ++f->writes == f->fail_write_at ? -1 : 0;
}

static void on_close_stdin(void *ctx)
{
	struct fz *f = ctx;
	CHECK(!f->stdin_closed); /* once */
	f->stdin_closed = true;
}

static void on_result(void *ctx, const struct mc_backend_result *r)
{
	struct fz *f = ctx;
	CHECK(f->finished && f->results == 0);
	f->results++;
	CHECK(f->stdin_closed); /* the session closes stdin before its result */
	CHECK((unsigned)r->status <= MC_RESULT_TIMEOUT);
	f->r = *r;
	f->r_output = dup0(r->output);
	f->r_error = dup0(r->error);
	f->r_session = dup0(r->session_id);
	CHECK(strlen(r->output) <= MC_BACKEND_OUTPUT_MAX);
	if (r->status == MC_RESULT_COMPLETED)
		CHECK(r->error[0] == '\0');
	else
		CHECK(r->output[0] == '\0' && r->error[0] != '\0');
	/* A refused resume is only ever a failed run (or one the caller
	 * stopped itself, which it never retries). */
	if (r->resume_rejected)
		CHECK(f->resume && r->session_id[0] == '\0' &&
		      (r->status == MC_RESULT_FAILED || f->end_cause != MC_END_EXIT));
}

/* ---- the line splitter, against the plain split of the whole input ---- */

static void on_line(void *ctx, char *line, size_t len, bool truncated)
{
	struct fz *f = ctx;
	CHECK(f->ref_pos < f->ref_len);
	const char *from = f->ref + f->ref_pos;
	const char *nl = memchr(from, '\n', f->ref_len - f->ref_pos);
	size_t full = nl != NULL ? (size_t)(nl - from) : f->ref_len - f->ref_pos;
	CHECK(truncated == (full > f->max));
	CHECK(len == (truncated ? f->max : full) && memcmp(line, from, len) == 0);
	CHECK(line[len] == '\0');
	f->ref_pos += full + (nl != NULL);
	f->lines++;
	mc_backend_session_line(f->s, line, len, truncated);
	if ((f->tick_mask >> (f->lines % 4)) & 1) {
		mc_ms_t d = mc_backend_session_next_deadline(f->s);
		if (d >= 0)
			mc_backend_session_tick(f->s, d);
	}
}

/* ---- argv: the first line as custom args ---- */

static const char *const CLAUDE_BLOCKED[] = {
	"-p", "--print", "--output-format", "--input-format", "--permission-mode",
	"--mcp-config", "--effort", NULL,
};

static bool blocked(const char *arg, const char *const *names)
{
	for (; *names != NULL; names++) {
		size_t n = strlen(*names);
		if (strncmp(arg, *names, n) == 0 && (arg[n] == '\0' || arg[n] == '='))
			return true;
	}
	return false;
}

static void argv_case(const struct mc_backend_ops *ops, char *line, size_t len)
{
	char *args[64];
	size_t n = 0;
	for (char *p = line; p < line + len && n < 64;) {
		char *sp = memchr(p, ' ', (size_t)(line + len - p));
		if (sp != NULL)
			*sp = '\0';
		if (*p != '\0')
			args[n++] = p;
		p = sp != NULL ? sp + 1 : line + len;
	}
	struct mc_backend_opts o = { .prompt = "p", .custom_args = args, .n_custom_args = n,
				     .codex_home_set = true };
	struct mc_argv out = { 0 };
	if (ops->build_argv("/usr/bin/agent", NULL, 0, &o, &out) == 0) {
		CHECK(out.n >= 1 && out.v[out.n] == NULL && strcmp(out.v[0], "/usr/bin/agent") == 0);
		/* claude: path and its 10 own arguments, then the filtered custom args */
		for (size_t i = 11; !strcmp(ops->family, "claude") && i < out.n; i++)
			CHECK(!blocked(out.v[i], CLAUDE_BLOCKED));
	}
	mc_argv_free(&out);
}

/* ---- one run ---- */

static const struct mc_backend_end END_KINDS[] = {
	{ .cause = MC_END_EXIT, .exited = true, .wstatus = 0 },
	{ .cause = MC_END_EXIT, .exited = true, .wstatus = 1 << 8 },
	{ .cause = MC_END_EXIT, .exited = true, .wstatus = SIGKILL },
	{ .cause = MC_END_CANCEL, .exited = true, .wstatus = SIGTERM },
	{ .cause = MC_END_TIMEOUT, .exited = true, .wstatus = SIGKILL,
	  .timeout_text = "agent produced no output for 30s" },
	{ .cause = MC_END_EXIT, .exited = false },
	{ .cause = MC_END_EXIT, .exited = true, .wstatus = 0 },
	{ .cause = MC_END_EXIT, .exited = true, .wstatus = 2 << 8 },
};

static void check_end(const struct fz *f, const struct mc_backend_end *e)
{
	CHECK(f->results == 1 && mc_backend_session_has_result(f->s));
	CHECK(mc_backend_session_bad_lines(f->s) <= f->lines);
	CHECK(f->ref_pos == f->ref_len); /* every line was delivered */
	if (f->r.status == MC_RESULT_TIMEOUT)
		CHECK(e->cause == MC_END_TIMEOUT);
	if (f->codex && e->cause == MC_END_CANCEL)
		CHECK(f->r.status == MC_RESULT_ABORTED);
	if (f->codex && e->cause == MC_END_TIMEOUT)
		CHECK(f->r.status == MC_RESULT_TIMEOUT);
	if (f->r.status == MC_RESULT_COMPLETED)
		CHECK(e->cause == MC_END_EXIT);
}

static void feed(struct fz *f, struct mc_linebuf *lb, char *buf, size_t n, unsigned seed)
{
	size_t off = 0;
	while (off < n) {
		seed = seed * 1103515245u + 12345u;
		size_t k = 1 + (seed >> 16) % 509;
		if (k > n - off)
			k = n - off;
		mc_linebuf_feed(lb, buf + off, k, on_line, f);
		CHECK(lb->cap <= f->max + 1);
		off += k;
	}
	mc_linebuf_finish(lb, on_line, f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned b0 = data[0], b1 = data[1];
	struct fz f = { 0 };
	f.codex = b0 & 1;
	f.resume = (b0 >> 1) & 1;
	f.tick_mask = b1 & 15;
	f.fail_write_at = (int)(b1 >> 4);
	f.max = (b0 & 0x80) ? (size_t)64 << (b1 & 3) : MC_AGENT_LINE_MAX;
	const struct mc_backend_ops *ops = mc_backend_find(f.codex ? "codex" : "claude");
	CHECK(ops != NULL);
	char *buf = malloc(size - 2 + 1);
	CHECK(buf != NULL);
	memcpy(buf, data + 2, size - 2);
	buf[size - 2] = '\0';
	size_t n = size - 2;
	char *out = buf;
	if (b0 & 0x40) { /* the first line is custom_args */
		char *nl = memchr(buf, '\n', n);
		size_t k = nl != NULL ? (size_t)(nl - buf) : n;
		char *args = malloc(k + 1);
		CHECK(args != NULL);
		memcpy(args, buf, k);
		args[k] = '\0';
		argv_case(ops, args, k);
		free(args);
		out = nl != NULL ? nl + 1 : buf + n;
		n -= (size_t)(out - buf);
	}
	char *ref = malloc(n + 1);
	CHECK(ref != NULL);
	memcpy(ref, out, n); /* the splitter writes into out: the reference is a copy */
	f.ref = ref;
	f.ref_len = n;
	f.msgs = mc_msgbatch_new(WINDOW, 0);
	CHECK(f.msgs != NULL);
	struct mc_backend_opts o = {
		.prompt = "fuzz the agent",
		.model = (b1 & 4) ? "gpt-5.5" : NULL,
		.resume_id = f.resume ? RESUME_ID : NULL,
		.cwd = "/tmp/fuzz-work",
		.thread_name = (b1 & 8) ? "fuzz thread" : NULL,
		.resume_fallback_notice = "continuity notice",
	};
	static const struct mc_backend_sink proto = {
		.message = on_message, .session_id = on_session, .usage = on_usage,
		.write = on_write, .close_stdin = on_close_stdin, .result = on_result,
	};
	struct mc_backend_sink sink = proto;
	sink.ctx = &f;
	f.s = mc_backend_session_new(ops, &o, &sink);
	CHECK(f.s != NULL);
	mc_backend_session_start(f.s);
	struct mc_linebuf lb;
	mc_linebuf_init(&lb, f.max);
	feed(&f, &lb, out, n, b0 * 257u + b1);
	CHECK(f.results == 0); /* the result waits for the agent to be gone */
	struct mc_backend_end e = END_KINDS[(b0 >> 2) & 7];
	e.stderr_tail = (b0 & 0x20) ? "Error: No conversation found with session ID: x\n" : NULL;
	f.finished = true;
	f.end_cause = e.cause;
	mc_backend_session_finish(f.s, &e);
	check_end(&f, &e);
	/* Late calls change nothing. */
	char late[] = "{\"type\":\"result\",\"is_error\":false,\"result\":\"late\"}";
	mc_backend_session_line(f.s, late, strlen(late), false);
	mc_backend_session_finish(f.s, &e);
	mc_backend_session_tick(f.s, INT64_MAX);
	CHECK(f.results == 1);
	fc_flush(f.msgs, WINDOW, &f.last_seq);
	mc_linebuf_clear(&lb);
	mc_backend_session_free(f.s);
	mc_msgbatch_free(f.msgs);
	free(f.r_output);
	free(f.r_error);
	free(f.r_session);
	for (size_t i = 0; i < f.n_usage; i++)
		free(f.usage_models[i]);
	free((char *)f.ref);
	free(buf);
	return 0;
}
