/* libFuzzer target: a task's message stream (worker/msgbatch.h) fed
 * arbitrary bytes as text, thinking, errors, tool input and tool output.
 * Input: one byte of caps (the flood window and the task cap, small so that
 * both are hit), then operations: op byte, length (1 byte, 2 when op has
 * bit 7), bytes.
 * Properties (fuzz_msgcheck.h): every flushed body is one JSON document,
 * valid UTF-8 without NULs, {"messages":[...]} with seqs strictly
 * increasing across the whole stream, typed messages with their fields, a
 * tool output of at most 8192 bytes, a body within the window's bound; the
 * memory held stays within the window's bound; the status line is short
 * and clean; and when nothing was dropped in a window, its text and
 * thinking arrive whole (each piece sanitized, in order). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_msgcheck.h"
#include "worker/msgbatch.h"
#include "worker/textbuf.h"

struct run {
	struct mc_msgbatch *b;
	size_t window_cap;
	uint64_t last_seq;
	uint64_t dropped_at_start;   /* mc_msgbatch_dropped when the window began */
	struct mc_sbuf text, thinking; /* what the window should send, if nothing drops */
	bool over;                   /* they outgrew the window: something must drop */
};

static void expect(struct run *r, struct mc_sbuf *acc, const char *s, size_t n)
{
	if (n == 0 || r->over)
		return;
	CHECK(mc_sbuf_add_clean(acc, s, n) == 0);
	if (r->text.len + r->thinking.len > r->window_cap)
		r->over = true;
}

static const char *content_of(const cJSON *msgs, const char *type)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
		if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
			return cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
	}
	return NULL;
}

/* Nothing dropped in the window: the text and thinking sent are exactly
 * what came in (the last message of each type carries the window's text). */
static void check_whole(const struct run *r, const char *body)
{
	CHECK(!r->over); /* more than a window's worth went out whole */
	cJSON *root = cJSON_Parse(body);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	const char *text = content_of(msgs, "text");
	const char *thinking = content_of(msgs, "thinking");
	CHECK((text != NULL) == (r->text.len > 0));
	CHECK((thinking != NULL) == (r->thinking.len > 0));
	if (text != NULL)
		CHECK(strlen(text) == r->text.len && memcmp(text, r->text.p, r->text.len) == 0);
	if (thinking != NULL)
		CHECK(strlen(thinking) == r->thinking.len &&
		      memcmp(thinking, r->thinking.p, r->thinking.len) == 0);
	cJSON_Delete(root);
}

static void flush(struct run *r)
{
	bool pending = mc_msgbatch_pending(r->b);
	CHECK(pending == (mc_msgbatch_deadline(r->b) >= 0));
	size_t len = 0;
	bool nothing_dropped = mc_msgbatch_dropped(r->b) == r->dropped_at_start;
	char *body = mc_msgbatch_flush(r->b, &len);
	CHECK((body != NULL) == pending);
	if (body != NULL) {
		fc_check_body(body, len, r->window_cap, &r->last_seq);
		if (nothing_dropped)
			check_whole(r, body);
	} else if (nothing_dropped) {
		CHECK(r->text.len == 0 && r->thinking.len == 0);
	}
	free(body);
	CHECK(!mc_msgbatch_pending(r->b) && mc_msgbatch_deadline(r->b) < 0);
	CHECK(mc_msgbatch_seq(r->b) == r->last_seq);
	mc_sbuf_free(&r->text);
	mc_sbuf_free(&r->thinking);
	r->over = false;
	r->dropped_at_start = mc_msgbatch_dropped(r->b);
}

/* A tool name: a fixed one, none, empty, or raw bytes of the input. */
static const char *tool_name(unsigned sel, const uint8_t *d, size_t n, char *buf, size_t size)
{
	switch (sel & 3) {
	case 0: return "Bash";
	case 1: return NULL;
	case 2: return "";
	default: {
		size_t k = n < size - 1 ? n : size - 1;
		memcpy(buf, d, k);
		buf[k] = '\0';
		return buf;
	}
	}
}

static void op(struct run *r, unsigned code, const uint8_t *d, size_t n)
{
	const char *s = (const char *)d;
	char tool[17];
	unsigned sel = code >> 3;
	switch (code & 7) {
	case 0:
		mc_msgbatch_text(r->b, s, n);
		expect(r, &r->text, s, n);
		break;
	case 1:
		mc_msgbatch_thinking(r->b, s, n);
		expect(r, &r->thinking, s, n);
		break;
	case 2:
		mc_msgbatch_error(r->b, s, n);
		break;
	case 3: {
		cJSON *v = n ? cJSON_ParseWithLength(s, n) : NULL;
		mc_msgbatch_tool_use(r->b, tool_name(sel, d, n, tool, sizeof tool), v);
		cJSON_Delete(v);
		break;
	}
	case 4:
		mc_msgbatch_tool_use_text(r->b, tool_name(sel, d, n, tool, sizeof tool), s, n);
		break;
	case 5:
		mc_msgbatch_tool_result(r->b, tool_name(sel, d, n, tool, sizeof tool), s, n);
		break;
	case 6:
		flush(r);
		break;
	default: { /* a flood: the bytes again and again, past the caps */
		size_t times = 1 + (sel & 15) * 64;
		/* past a small window; the production one is not worth the time */
		size_t most = r->window_cap < 60000 ? r->window_cap + 512 : 4096;
		if (n > 0 && times > most / n)
			times = most / n + 1;
		for (size_t i = 0; n > 0 && i < times; i++) {
			mc_msgbatch_text(r->b, s, n);
			expect(r, &r->text, s, n);
		}
		break;
	}
	}
	fc_check_last_line(r->b);
	/* Held: three buffers, each within twice the window (doubling) plus notes. */
	CHECK(mc_msgbatch_held(r->b) <= 6 * r->window_cap + 65536);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct run r = { 0 };
	/* 64 B .. 8 KiB (fast, and every cap is hit), or the production window */
	r.window_cap = (data[0] & 15) == 15 ? MC_MSGBATCH_WINDOW_CAP
					    : (size_t)64 << ((data[0] & 15) % 8);
	unsigned tsel = data[0] >> 4;
	uint64_t total = tsel == 15 ? 0 : (uint64_t)r.window_cap * (tsel + 1) / 4 + 1;
	r.b = mc_msgbatch_new(r.window_cap, total);
	if (r.b == NULL)
		return 0;
	size_t i = 1;
	while (i < size) {
		unsigned code = data[i++];
		size_t n = i < size ? data[i++] : 0;
		if ((code & 0x80) && i < size)
			n |= (size_t)data[i++] << 8;
		if (n > size - i)
			n = size - i;
		op(&r, code & 0x7f, data + i, n);
		i += n;
	}
	flush(&r); /* the stream's end */
	mc_msgbatch_free(r.b);
	return 0;
}
