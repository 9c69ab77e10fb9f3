/* Shared by fuzz_msgbatch.c and fuzz_backend.c: what every body of
 * POST /api/daemon/tasks/{id}/messages must be (worker/msgbatch.h), checked
 * on the bytes the server would receive. Header-only (static inline): each
 * fuzz target is one source file. */
#ifndef MC_FUZZ_MSGCHECK_H
#define MC_FUZZ_MSGCHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "worker/msgbatch.h"
#include "worker/textbuf.h"

#ifndef CHECK
#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			abort();        \
	} while (0)
#endif

/* A "\u0000" escape (after an even run of backslashes: not a "\\u0000"). */
static inline bool fc_has_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; i + 6 <= n; i++) {
		if (memcmp(s + i, "\\u0000", 6) != 0)
			continue;
		size_t bs = 0;
		while (bs < i && s[i - 1 - bs] == '\\')
			bs++;
		if (bs % 2 == 0)
			return true;
	}
	return false;
}

static inline const char *fc_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	CHECK(cJSON_IsString(v) && v->valuestring != NULL);
	return v->valuestring;
}

/* One message of the array: numbered after *last_seq, typed, its fields. */
static inline void fc_check_message(const cJSON *m, uint64_t *last_seq)
{
	CHECK(cJSON_IsObject(m));
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(m, "seq");
	CHECK(cJSON_IsNumber(seq) && seq->valuedouble >= 1 && seq->valuedouble < 9e15);
	uint64_t s = (uint64_t)seq->valuedouble;
	CHECK((double)s == seq->valuedouble && s > *last_seq);
	*last_seq = s;
	const char *type = fc_str(m, "type");
	if (strcmp(type, "text") == 0 || strcmp(type, "thinking") == 0 ||
	    strcmp(type, "error") == 0) {
		fc_str(m, "content");
	} else if (strcmp(type, "tool_use") == 0) {
		fc_str(m, "tool");
		CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "input")));
	} else if (strcmp(type, "tool_result") == 0) {
		fc_str(m, "tool");
		CHECK(strlen(fc_str(m, "output")) <= MC_MSGBATCH_TOOL_OUTPUT);
	} else {
		CHECK(!"unknown message type");
	}
}

/* A flushed body: one JSON document, valid UTF-8 without NULs or raw
 * control bytes, {"messages":[...]} with seqs rising past *last_seq, and
 * no bigger than a window's worth (JSON escaping at most 6x) plus notes. */
static inline void fc_check_body(const char *body, size_t len, size_t window_cap,
				 uint64_t *last_seq)
{
	CHECK(body != NULL && strlen(body) == len);
	CHECK(mc_text_clean(body, len));
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)body[i] >= 0x20);
	CHECK(!fc_has_nul_escape(body, len));
	CHECK(len <= 6 * (uint64_t)window_cap + 4096);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithOpts(body, &end, 1);
	CHECK(root != NULL && cJSON_IsObject(root));
	CHECK(cJSON_GetArraySize(root) == 1);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	CHECK(cJSON_IsArray(msgs) && cJSON_GetArraySize(msgs) >= 1);
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs)
		fc_check_message(m, last_seq);
	cJSON_Delete(root);
}

/* Flushes b if it has anything and checks the body and the state after. */
static inline void fc_flush(struct mc_msgbatch *b, size_t window_cap, uint64_t *last_seq)
{
	bool pending = mc_msgbatch_pending(b);
	CHECK(pending == (mc_msgbatch_deadline(b) >= 0));
	size_t len = 0;
	char *body = mc_msgbatch_flush(b, &len);
	CHECK((body != NULL) == pending);
	if (body != NULL)
		fc_check_body(body, len, window_cap, last_seq);
	free(body);
	CHECK(!mc_msgbatch_pending(b) && mc_msgbatch_deadline(b) < 0);
	CHECK(mc_msgbatch_seq(b) == *last_seq);
}

/* The status line of `multicactl tasks`: short, valid, no control bytes. */
static inline void fc_check_last_line(const struct mc_msgbatch *b)
{
	const char *l = mc_msgbatch_last_line(b);
	size_t n = strlen(l);
	CHECK(n <= MC_MSGBATCH_LAST_LINE && mc_text_clean(l, n));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)l[i] >= 0x20 && (unsigned char)l[i] != 0x7f);
}

#endif
