/* The per-task message stream: numbering, sanitizing, batching, caps. */
#include "worker/msgbatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/textbuf.h"

struct mc_msgbatch {
	uint64_t seq;             /* last seq handed out */
	struct mc_sbuf items;     /* numbered messages, serialized, ','-joined */
	struct mc_sbuf thinking;  /* sanitized, numbered at flush */
	struct mc_sbuf text;
	size_t window_cap;
	uint64_t total_cap;
	size_t window_bytes;      /* agent bytes accepted in this window */
	uint64_t total_bytes;     /* agent bytes accepted for the task */
	uint64_t dropped;         /* agent bytes dropped, whole task */
	uint64_t dropped_window;
	bool total_noted;         /* the task cap was reached (one note sent) */
	mc_ms_t window_start;     /* first pending arrival; -1: nothing pending */
	char last_line[MC_MSGBATCH_LAST_LINE + 1];
};

struct mc_msgbatch *mc_msgbatch_new(size_t window_cap, uint64_t total_cap)
{
	struct mc_msgbatch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->window_cap = window_cap ? window_cap : MC_MSGBATCH_WINDOW_CAP;
	b->total_cap = total_cap ? total_cap : MC_MSGBATCH_TOTAL_CAP;
	b->window_start = -1;
	return b;
}

void mc_msgbatch_free(struct mc_msgbatch *b)
{
	if (!b)
		return;
	mc_sbuf_free(&b->items);
	mc_sbuf_free(&b->thinking);
	mc_sbuf_free(&b->text);
	free(b);
}

static void mark_pending(struct mc_msgbatch *b)
{
	if (b->window_start < 0)
		b->window_start = mc_now_ms();
}

/* Appends one numbered message object (consumed) to the pending items. */
static int add_item(struct mc_msgbatch *b, cJSON *msg)
{
	char *s = msg ? cJSON_PrintUnformatted(msg) : NULL;
	cJSON_Delete(msg);
	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	int rc = 0;
	if ((b->items.len && mc_sbuf_add(&b->items, ",", 1) < 0) || mc_sbuf_adds(&b->items, s) < 0)
		rc = -1;
	free(s);
	mark_pending(b);
	return rc;
}

/* {"seq": ++seq, "type": type}; the caller adds the rest. */
static cJSON *new_msg(struct mc_msgbatch *b, const char *type)
{
	cJSON *m = cJSON_CreateObject();
	if (!m)
		return NULL;
	b->seq++;
	if (!cJSON_AddNumberToObject(m, "seq", (double)b->seq) ||
	    !cJSON_AddStringToObject(m, "type", type)) {
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

static int add_note(struct mc_msgbatch *b, const char *text)
{
	cJSON *m = new_msg(b, "error");
	if (m && !cJSON_AddStringToObject(m, "content", text)) {
		cJSON_Delete(m);
		m = NULL;
	}
	return add_item(b, m);
}

/* Bytes of agent output the caps still let in now. */
static uint64_t room(const struct mc_msgbatch *b)
{
	if (b->total_noted || b->window_bytes >= b->window_cap || b->total_bytes >= b->total_cap)
		return 0;
	uint64_t w = b->window_cap - b->window_bytes, t = b->total_cap - b->total_bytes;
	return w < t ? w : t;
}

/* Counts k dropped bytes; the first drop at the task cap adds its note. */
static void drop(struct mc_msgbatch *b, uint64_t k)
{
	if (k == 0)
		return;
	b->dropped += k;
	if (b->total_noted)
		return;
	if (b->total_bytes < b->total_cap) {
		b->dropped_window += k;
		return;
	}
	char note[160];
	b->total_noted = true;
	snprintf(note, sizeof note,
		 "multicad: this task's output reached its cap of %llu bytes; "
		 "further output is dropped", (unsigned long long)b->total_cap);
	add_note(b, note);
}

static void account(struct mc_msgbatch *b, size_t n)
{
	b->window_bytes += n;
	b->total_bytes += n;
}

/* Keeps the last non-empty line of the raw bytes s for `multicactl tasks`:
 * sanitized, control characters as spaces, at most MC_MSGBATCH_LAST_LINE. */
static void set_last_line(struct mc_msgbatch *b, const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
			 s[n - 1] == '\t' || s[n - 1] == '\0'))
		n--;
	if (n == 0)
		return;
	const char *nl = memrchr(s, '\n', n);
	size_t start = nl ? (size_t)(nl - s) + 1 : 0;
	size_t seg = n - start;
	if (seg > 4 * MC_MSGBATCH_LAST_LINE)
		seg = 4 * MC_MSGBATCH_LAST_LINE;
	/* Called for every piece of text: repaired on the stack, no malloc
	 * (an invalid byte grows to 3, so the buffer is 3 x the segment). */
	char clean[3 * 4 * MC_MSGBATCH_LAST_LINE];
	const unsigned char *u = (const unsigned char *)s + start;
	size_t clen = 0;
	for (size_t i = 0; i < seg;) {
		size_t q = u[i] != 0 && u[i] < 0x80 ? 1 : mc_utf8_seq(u + i, seg - i);
		if (u[i] == 0) {
			i++; /* NULs are stripped, as everywhere */
		} else if (q == 0) {
			memcpy(clean + clen, "\xEF\xBF\xBD", 3);
			clen += 3;
			i++;
		} else {
			memcpy(clean + clen, u + i, q);
			clen += q;
			i += q;
		}
	}
	size_t k = mc_utf8_cut(clean, clen, MC_MSGBATCH_LAST_LINE);
	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)clean[i];
		b->last_line[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	b->last_line[k] = '\0';
}

/* Accumulates sanitized agent text into acc, within the caps. */
static int accumulate(struct mc_msgbatch *b, struct mc_sbuf *acc, const char *s, size_t n,
		      bool show)
{
	if (n == 0)
		return 0;
	if (show)
		set_last_line(b, s, n);
	uint64_t r = room(b);
	if (r == 0) {
		drop(b, n);     /* dropped unsanitized: a flood costs no copy */
		return 0;
	}
	size_t clen;
	char *clean = mc_text_sanitize(s, n, &clen);
	if (!clean) {
		drop(b, n);
		return -1;
	}
	size_t ok = mc_utf8_cut(clean, clen, r < clen ? (size_t)r : clen);
	int rc = mc_sbuf_add(acc, clean, ok);
	free(clean);
	if (rc < 0) {
		drop(b, clen);
		return -1;
	}
	account(b, ok);
	if (ok)
		mark_pending(b);
	drop(b, clen - ok);
	return 0;
}

int mc_msgbatch_text(struct mc_msgbatch *b, const char *s, size_t n)
{
	return accumulate(b, &b->text, s, n, true);
}

int mc_msgbatch_thinking(struct mc_msgbatch *b, const char *s, size_t n)
{
	return accumulate(b, &b->thinking, s, n, false);
}

/* Adds a sanitized copy of n bytes at s as member key of m. */
static bool add_clean_string(cJSON *m, const char *key, const char *s, size_t n)
{
	char *clean = mc_text_sanitize(s ? s : "", s ? n : 0, NULL);
	if (!clean)
		return false;
	bool ok = cJSON_AddStringToObject(m, key, clean) != NULL;
	free(clean);
	return ok;
}

/* Numbers m and queues it if it fits the caps (agent output), else drops it
 * whole. Consumes m. */
static int queue_agent_item(struct mc_msgbatch *b, cJSON *m, bool ok)
{
	if (!ok) {
		cJSON_Delete(m);
		errno = ENOMEM;
		return -1;
	}
	char *s = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	size_t len = strlen(s);
	int rc = 0;
	if (len > room(b)) {
		drop(b, len);
	} else {
		b->seq++;       /* numbered on arrival: only now that it is kept */
		char head[48];
		int hn = snprintf(head, sizeof head, "{\"seq\":%llu,", (unsigned long long)b->seq);
		if ((b->items.len && mc_sbuf_add(&b->items, ",", 1) < 0) ||
		    mc_sbuf_add(&b->items, head, (size_t)hn) < 0 ||
		    mc_sbuf_add(&b->items, s + 1, len - 1) < 0) {
			rc = -1;
		} else {
			account(b, len);
			mark_pending(b);
		}
	}
	free(s);
	return rc;
}

int mc_msgbatch_error(struct mc_msgbatch *b, const char *s, size_t n)
{
	cJSON *m = cJSON_CreateObject();
	bool ok = m && cJSON_AddStringToObject(m, "type", "error") &&
		  add_clean_string(m, "content", s, n);
	if (s)
		set_last_line(b, s, n);
	return queue_agent_item(b, m, ok);
}

/* Repairs every key and string of v in place (tool input from anywhere). */
static bool clean_tree(cJSON *v, int depth)
{
	if (depth > 1000)      /* cJSON's own parse limit */
		return false;
	for (cJSON *c = v; c; c = c->next) {
		if (c->string && !mc_text_clean(c->string, strlen(c->string))) {
			char *k = mc_text_sanitize(c->string, strlen(c->string), NULL);
			if (!k)
				return false;
			free(c->string);
			c->string = k;
		}
		if (cJSON_IsString(c) && c->valuestring &&
		    !mc_text_clean(c->valuestring, strlen(c->valuestring))) {
			char *s = mc_text_sanitize(c->valuestring, strlen(c->valuestring), NULL);
			if (!s)
				return false;
			free(c->valuestring);
			c->valuestring = s;
		}
		if (c->child && !clean_tree(c->child, depth + 1))
			return false;
	}
	return true;
}

/* A tool input as an object: a copy of input, {} for none, or
 * {"input": input} for any other value. */
static cJSON *input_object(const cJSON *input)
{
	if (!input)
		return cJSON_CreateObject();
	cJSON *dup = cJSON_Duplicate(input, 1);
	if (!dup)
		return NULL;
	if (cJSON_IsObject(dup))
		return dup;
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToObject(o, "input", dup)) {
		cJSON_Delete(o);
		cJSON_Delete(dup);
		return NULL;
	}
	return o;
}

static int tool_use(struct mc_msgbatch *b, const char *tool, cJSON *in)
{
	cJSON *m = cJSON_CreateObject();
	bool ok = m && in && clean_tree(in->child, 0) &&
		  cJSON_AddStringToObject(m, "type", "tool_use") &&
		  add_clean_string(m, "tool", tool, tool ? strlen(tool) : 0) &&
		  cJSON_AddItemToObject(m, "input", in);
	if (!ok)
		cJSON_Delete(in);       /* not attached to m on any failure path */
	if (ok && tool) {
		char line[MC_MSGBATCH_LAST_LINE + 8];
		int k = snprintf(line, sizeof line, "[tool] %s", tool);
		set_last_line(b, line, k < 0 ? 0 : (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
	}
	return queue_agent_item(b, m, ok);
}

int mc_msgbatch_tool_use(struct mc_msgbatch *b, const char *tool, const cJSON *input)
{
	return tool_use(b, tool, input_object(input));
}

int mc_msgbatch_tool_use_text(struct mc_msgbatch *b, const char *tool, const char *json,
			      size_t n)
{
	cJSON *v = json && n ? cJSON_ParseWithLength(json, n) : NULL;
	cJSON *in;
	if (v && cJSON_IsObject(v)) {
		in = v;
	} else {
		in = input_object(v);
		cJSON_Delete(v);
		if (!v && in && json && n && !add_clean_string(in, "raw", json, n)) {
			cJSON_Delete(in);
			in = NULL;
		}
	}
	return tool_use(b, tool, in);
}

int mc_msgbatch_tool_result(struct mc_msgbatch *b, const char *tool, const char *out,
			    size_t n)
{
	size_t clen = 0;
	char *clean = mc_text_sanitize(out ? out : "", out ? n : 0, &clen);
	cJSON *m = cJSON_CreateObject();
	bool ok = clean && m && cJSON_AddStringToObject(m, "type", "tool_result") &&
		  add_clean_string(m, "tool", tool, tool ? strlen(tool) : 0);
	if (ok) {
		clean[mc_utf8_cut(clean, clen, MC_MSGBATCH_TOOL_OUTPUT)] = '\0';
		ok = cJSON_AddStringToObject(m, "output", clean) != NULL;
	}
	free(clean);
	return queue_agent_item(b, m, ok);
}

bool mc_msgbatch_pending(const struct mc_msgbatch *b)
{
	return b->items.len || b->thinking.len || b->text.len || b->dropped_window;
}

mc_ms_t mc_msgbatch_deadline(const struct mc_msgbatch *b)
{
	if (!mc_msgbatch_pending(b))
		return -1;
	return (b->window_start < 0 ? mc_now_ms() : b->window_start) + MC_MSGBATCH_FLUSH_MS;
}

/* Moves accumulated text of acc into a numbered message. */
static int flush_text(struct mc_msgbatch *b, struct mc_sbuf *acc, const char *type)
{
	if (!acc->len)
		return 0;
	cJSON *m = new_msg(b, type);
	bool ok = m && cJSON_AddStringToObject(m, "content", acc->p);
	mc_sbuf_free(acc);
	if (!ok) {
		cJSON_Delete(m);
		errno = ENOMEM;
		return -1;
	}
	return add_item(b, m);
}

char *mc_msgbatch_flush(struct mc_msgbatch *b, size_t *len)
{
	if (!mc_msgbatch_pending(b)) {
		errno = 0;
		return NULL;
	}
	int rc = 0;
	if (b->dropped_window && !b->total_noted) {
		char note[200];
		snprintf(note, sizeof note,
			 "multicad: %llu bytes of agent output dropped in this %d ms window "
			 "(flood cap %zu bytes)", (unsigned long long)b->dropped_window,
			 MC_MSGBATCH_FLUSH_MS, b->window_cap);
		rc |= add_note(b, note);
	}
	rc |= flush_text(b, &b->thinking, "thinking");
	rc |= flush_text(b, &b->text, "text");
	struct mc_sbuf body = {0};
	if (rc == 0 && (mc_sbuf_adds(&body, "{\"messages\":[") < 0 ||
			mc_sbuf_add(&body, b->items.p, b->items.len) < 0 ||
			mc_sbuf_adds(&body, "]}") < 0))
		rc = -1;
	mc_sbuf_free(&b->items);
	b->window_bytes = 0;
	b->dropped_window = 0;
	b->window_start = -1;
	if (rc < 0) {
		mc_sbuf_free(&body);
		errno = ENOMEM;
		return NULL;
	}
	if (len)
		*len = body.len;
	return mc_sbuf_take(&body);
}

const char *mc_msgbatch_last_line(const struct mc_msgbatch *b)
{
	return b->last_line;
}

uint64_t mc_msgbatch_seq(const struct mc_msgbatch *b)
{
	return b->seq;
}

uint64_t mc_msgbatch_dropped(const struct mc_msgbatch *b)
{
	return b->dropped;
}

size_t mc_msgbatch_held(const struct mc_msgbatch *b)
{
	return b->items.cap + b->thinking.cap + b->text.cap + sizeof *b;
}
