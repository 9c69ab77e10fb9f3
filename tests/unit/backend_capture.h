/* A sink for backend tests that records every call (tests/unit only). */
#ifndef MC_TEST_BACKEND_CAPTURE_H
#define MC_TEST_BACKEND_CAPTURE_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/backend.h"

#define CAP_MSGS 64

struct cap_msg {
	enum mc_msg_type type;
	char text[512];
	size_t text_len;
	char tool[64];
	char call_id[64];
	char input[512];
};

struct cap {
	struct cap_msg msgs[CAP_MSGS];
	int n_msgs;
	char sids[4][128];
	int n_sids;
	struct { char model[64]; struct mc_usage u; } usage[4];
	int n_usage;
	char written[65536];
	size_t wlen;
	int closes;
	int n_results;
	struct mc_backend_result r;
	char out[4096], err[4096], sid[128];
	bool fail_writes;
};

static inline void cap_message(void *ctx, const struct mc_backend_msg *m)
{
	struct cap *c = ctx;
	if (c->n_msgs == CAP_MSGS)
		return;
	struct cap_msg *x = &c->msgs[c->n_msgs++];
	x->type = m->type;
	x->text_len = m->text_len;
	snprintf(x->text, sizeof x->text, "%.*s", (int)m->text_len, m->text ? m->text : "");
	snprintf(x->tool, sizeof x->tool, "%s", m->tool ? m->tool : "");
	snprintf(x->call_id, sizeof x->call_id, "%s", m->call_id ? m->call_id : "");
	snprintf(x->input, sizeof x->input, "%s", m->input_json ? m->input_json : "");
}

static inline void cap_sid(void *ctx, const char *id)
{
	struct cap *c = ctx;
	if (c->n_sids < 4)
		snprintf(c->sids[c->n_sids++], sizeof c->sids[0], "%s", id);
}

static inline void cap_usage(void *ctx, const char *model, const struct mc_usage *u)
{
	struct cap *c = ctx;
	if (c->n_usage < 4) {
		snprintf(c->usage[c->n_usage].model, sizeof c->usage[0].model, "%s", model);
		c->usage[c->n_usage++].u = *u;
	}
}

static inline int cap_write(void *ctx, const char *d, size_t n)
{
	struct cap *c = ctx;
	if (c->fail_writes || c->wlen + n >= sizeof c->written)
		return -1;
	memcpy(c->written + c->wlen, d, n);
	c->wlen += n;
	c->written[c->wlen] = '\0';
	return 0;
}

static inline void cap_close(void *ctx)
{
	((struct cap *)ctx)->closes++;
}

static inline void cap_result(void *ctx, const struct mc_backend_result *r)
{
	struct cap *c = ctx;
	c->n_results++;
	c->r = *r;
	snprintf(c->out, sizeof c->out, "%s", r->output);
	snprintf(c->err, sizeof c->err, "%s", r->error);
	snprintf(c->sid, sizeof c->sid, "%s", r->session_id);
	c->r.output = c->out;
	c->r.error = c->err;
	c->r.session_id = c->sid;
}

static inline struct mc_backend_sink cap_sink(struct cap *c)
{
	memset(c, 0, sizeof *c);
	return (struct mc_backend_sink){ .ctx = c, .message = cap_message, .session_id = cap_sid,
					 .usage = cap_usage, .write = cap_write,
					 .close_stdin = cap_close, .result = cap_result };
}

/* Line i (0-based) of what was written to stdin, parsed (caller deletes). */
static inline cJSON *cap_written(const struct cap *c, int i)
{
	const char *p = c->written;
	for (; i > 0 && p != NULL; i--) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (p == NULL || *p == '\0')
		return NULL;
	const char *e = strchr(p, '\n');
	return cJSON_ParseWithLength(p, e != NULL ? (size_t)(e - p) : strlen(p));
}

static inline int cap_n_written(const struct cap *c)
{
	int n = 0;
	for (const char *p = c->written; *p; p++)
		n += *p == '\n';
	return n;
}

/* Feeds one line (copied: sessions modify lines in place). */
static inline void feed(struct mc_backend_session *s, const char *line)
{
	size_t n = strlen(line);
	char *b = malloc(n + 1);
	memcpy(b, line, n + 1);
	mc_backend_session_line(s, b, n, false);
	free(b);
}

static inline void finish_exit(struct mc_backend_session *s, int code, const char *tail)
{
	struct mc_backend_end e = { .cause = MC_END_EXIT, .exited = true, .wstatus = code << 8,
				    .stderr_tail = tail };
	mc_backend_session_finish(s, &e);
}

static inline const char *jstr(const cJSON *o, const char *path)
{
	/* "a.b.c" */
	const cJSON *cur = o;
	while (cur != NULL && *path != '\0') {
		const char *dot = strchr(path, '.');
		size_t n = dot != NULL ? (size_t)(dot - path) : strlen(path);
		char k[64];
		snprintf(k, sizeof k, "%.*s", (int)n, path);
		cur = cJSON_GetObjectItemCaseSensitive(cur, k);
		path += n + (dot != NULL);
	}
	return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

#endif
