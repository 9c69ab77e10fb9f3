/* The backend table and what every backend session shares: the sink
 * plumbing, usage per model, the once-only result, argv filtering. */
#include "worker/backend.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS 16

struct usage_entry {
	char model[128];
	struct mc_usage u;
};

struct mc_backend_session {
	const struct mc_backend_ops *ops;
	void *st;                      /* the family's state */
	struct mc_backend_opts opts;   /* strings owned (copies) */
	struct mc_argv custom;         /* owned copy of opts.custom_args */
	struct mc_backend_sink sink;
	struct usage_entry usage[MAX_MODELS];
	size_t n_usage;
	size_t bad_lines;
	bool result_sent, turn_done, stdin_broken, stdin_closed;
};

static const struct mc_backend_ops *const TABLE[] = {
	&mc_backend_claude,
	&mc_backend_codex,
};

const struct mc_backend_ops *mc_backend_find(const char *family)
{
	if (family == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++)
		if (strcmp(TABLE[i]->family, family) == 0)
			return TABLE[i];
	return NULL;
}

int mc_argv_push(struct mc_argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		char **nv = realloc(a->v, cap * sizeof *nv);
		if (nv == NULL)
			return -1;
		a->v = nv;
		a->cap = cap;
	}
	char *c = strdup(s);
	if (c == NULL)
		return -1;
	a->v[a->n++] = c;
	a->v[a->n] = NULL;
	return 0;
}

void mc_argv_free(struct mc_argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* NULL stays NULL, "" stays "". */
static int dup_opt(const char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	char *c = strdup(src);
	if (c == NULL)
		return -1;
	*dst = c;
	return 0;
}

static void free_opts(struct mc_backend_session *s)
{
	free((char *)s->opts.prompt);
	free((char *)s->opts.model);
	free((char *)s->opts.resume_id);
	free((char *)s->opts.cwd);
	free((char *)s->opts.thread_name);
	free((char *)s->opts.resume_fallback_notice);
	mc_argv_free(&s->custom);
}

static int copy_opts(struct mc_backend_session *s, const struct mc_backend_opts *o)
{
	s->opts.codex_home_set = o->codex_home_set;
	s->opts.rpc_timeout_ms = o->rpc_timeout_ms > 0 ? o->rpc_timeout_ms : 30000;
	if (dup_opt(&s->opts.prompt, o->prompt != NULL ? o->prompt : "") < 0 ||
	    dup_opt(&s->opts.model, o->model) < 0 || dup_opt(&s->opts.resume_id, o->resume_id) < 0 ||
	    dup_opt(&s->opts.cwd, o->cwd) < 0 || dup_opt(&s->opts.thread_name, o->thread_name) < 0 ||
	    dup_opt(&s->opts.resume_fallback_notice, o->resume_fallback_notice) < 0)
		return -1;
	for (size_t i = 0; i < o->n_custom_args; i++)
		if (mc_argv_push(&s->custom, o->custom_args[i]) < 0)
			return -1;
	s->opts.custom_args = s->custom.v;
	s->opts.n_custom_args = s->custom.n;
	return 0;
}

struct mc_backend_session *mc_backend_session_new(const struct mc_backend_ops *ops,
						  const struct mc_backend_opts *opts,
						  const struct mc_backend_sink *sink)
{
	struct mc_backend_session *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->ops = ops;
	s->sink = *sink;
	if (copy_opts(s, opts) < 0 || (s->st = ops->init(s)) == NULL) {
		free_opts(s);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

void mc_backend_session_free(struct mc_backend_session *s)
{
	if (s == NULL)
		return;
	s->ops->fini(s->st);
	free_opts(s);
	free(s);
}

void mc_backend_session_start(struct mc_backend_session *s)
{
	s->ops->start(s, s->st);
}

void mc_backend_session_line(struct mc_backend_session *s, char *line, size_t len,
			     bool truncated)
{
	if (s->result_sent)
		return;
	len = mc_backend_strip_nul(line, len);
	s->ops->line(s, s->st, line, len, truncated);
}

void mc_backend_session_finish(struct mc_backend_session *s, const struct mc_backend_end *e)
{
	if (!s->result_sent)
		s->ops->finish(s, s->st, e);
}

bool mc_backend_session_turn_done(const struct mc_backend_session *s)
{
	return s->turn_done;
}

mc_ms_t mc_backend_session_next_deadline(const struct mc_backend_session *s)
{
	if (s->result_sent || s->ops->deadline == NULL)
		return -1;
	return s->ops->deadline(s->st);
}

void mc_backend_session_tick(struct mc_backend_session *s, mc_ms_t now)
{
	if (!s->result_sent && s->ops->tick != NULL)
		s->ops->tick(s, s->st, now);
}

bool mc_backend_session_has_result(const struct mc_backend_session *s)
{
	return s->result_sent;
}

size_t mc_backend_session_bad_lines(const struct mc_backend_session *s)
{
	return s->bad_lines;
}

const struct mc_backend_opts *mc_bs_opts(const struct mc_backend_session *s)
{
	return &s->opts;
}

void mc_bs_message(struct mc_backend_session *s, const struct mc_backend_msg *m)
{
	if (s->sink.message != NULL && !s->result_sent)
		s->sink.message(s->sink.ctx, m);
}

void mc_bs_session_id(struct mc_backend_session *s, const char *id)
{
	if (s->sink.session_id != NULL && id != NULL && id[0] != '\0')
		s->sink.session_id(s->sink.ctx, id);
}

int mc_bs_write(struct mc_backend_session *s, const char *data, size_t len)
{
	if (s->stdin_broken || s->stdin_closed)
		return -1;
	if (s->sink.write(s->sink.ctx, data, len) < 0) {
		s->stdin_broken = true;
		return -1;
	}
	return 0;
}

bool mc_bs_stdin_broken(const struct mc_backend_session *s)
{
	return s->stdin_broken;
}

void mc_bs_close_stdin(struct mc_backend_session *s)
{
	if (s->stdin_closed)
		return;
	s->stdin_closed = true;
	if (s->sink.close_stdin != NULL)
		s->sink.close_stdin(s->sink.ctx);
}

void mc_bs_turn_done(struct mc_backend_session *s)
{
	s->turn_done = true;
}

void mc_bs_bad_line(struct mc_backend_session *s)
{
	s->bad_lines++;
}

/* Counts (each >= 0) summed over an agent's lines: saturated far below
 * INT64_MAX, so a hostile agent cannot overflow them, nor the executor that
 * adds up the attempts of a task. */
#define USAGE_MAX ((int64_t)1 << 60)
static int64_t usage_add(int64_t a, int64_t b)
{
	return b > USAGE_MAX - a ? USAGE_MAX : a + b;
}

void mc_bs_usage(struct mc_backend_session *s, const char *model, const struct mc_usage *u,
		 bool replace)
{
	if (model == NULL || model[0] == '\0')
		model = "unknown";
	struct usage_entry *e = NULL;
	/* Within the stored width: a longer name is kept cut, and must find
	 * its entry again (else it is reported once per line, not per model). */
	for (size_t i = 0; i < s->n_usage && e == NULL; i++)
		if (strncmp(s->usage[i].model, model, sizeof s->usage[i].model - 1) == 0)
			e = &s->usage[i];
	if (e == NULL) {
		if (s->n_usage == MAX_MODELS)
			return; /* more models than any run uses: ignore the rest */
		e = &s->usage[s->n_usage++];
		snprintf(e->model, sizeof e->model, "%s", model);
		memset(&e->u, 0, sizeof e->u);
	}
	if (replace) {
		e->u = *u;
		return;
	}
	e->u.input = usage_add(e->u.input, u->input);
	e->u.output = usage_add(e->u.output, u->output);
	e->u.cache_read = usage_add(e->u.cache_read, u->cache_read);
	e->u.cache_write = usage_add(e->u.cache_write, u->cache_write);
}

void mc_bs_usage_reset(struct mc_backend_session *s)
{
	s->n_usage = 0;
}

/* "<error>; <family> stderr: <tail>" with the tail trimmed; malloc'd. */
static char *error_with_tail(const char *family, const char *error, const char *tail)
{
	size_t tl = tail != NULL ? strlen(tail) : 0;
	while (tl > 0 && isspace((unsigned char)tail[tl - 1]))
		tl--;
	while (tl > 0 && isspace((unsigned char)*tail)) {
		tail++;
		tl--;
	}
	char *out = NULL;
	int n = tl > 0 ? asprintf(&out, "%s; %s stderr: %.*s", error, family, (int)tl, tail)
		       : asprintf(&out, "%s", error);
	return n < 0 ? NULL : out;
}

void mc_bs_result(struct mc_backend_session *s, enum mc_result_status st, const char *output,
		  const char *error, const char *stderr_tail, const char *session_id,
		  bool resume_rejected, bool tool_ran)
{
	if (s->result_sent)
		return;
	s->result_sent = true;
	mc_bs_close_stdin(s);
	if (s->sink.usage != NULL) {
		for (size_t i = 0; i < s->n_usage; i++) {
			const struct mc_usage *u = &s->usage[i].u;
			if (u->input || u->output || u->cache_read || u->cache_write)
				s->sink.usage(s->sink.ctx, s->usage[i].model, u);
		}
	}
	char *err = NULL;
	if (st != MC_RESULT_COMPLETED) {
		err = error_with_tail(s->ops->family, error != NULL && error[0] ? error : "agent failed",
				      stderr_tail);
		output = "";
	}
	struct mc_backend_result r = {
		.status = st,
		.output = output != NULL ? output : "",
		.error = err != NULL ? err : (st == MC_RESULT_COMPLETED ? "" : error),
		.session_id = session_id != NULL && !resume_rejected ? session_id : "",
		.resume_rejected = resume_rejected,
		.tool_ran = tool_ran,
	};
	if (r.error == NULL)
		r.error = "";
	if (s->sink.result != NULL)
		s->sink.result(s->sink.ctx, &r);
	free(err);
}

size_t mc_backend_strip_nul(char *line, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0')
			continue;
		if (line[i] == '\\' && i + 1 < len) {
			if (i + 5 < len && memcmp(line + i + 1, "u0000", 5) == 0) {
				i += 5; /* a NUL escape: the server refuses NUL bytes */
				continue;
			}
			line[o++] = line[i++]; /* any other escape: keep both bytes */
		}
		line[o++] = line[i];
	}
	line[o] = '\0';
	return o;
}

static const struct mc_blocked_flag *blocked_match(const char *arg,
						   const struct mc_blocked_flag *blocked,
						   bool *inline_value)
{
	for (const struct mc_blocked_flag *b = blocked; b != NULL && b->name != NULL; b++) {
		size_t n = strlen(b->name);
		if (strncmp(arg, b->name, n) != 0)
			continue;
		if (arg[n] == '\0') {
			*inline_value = false;
			return b;
		}
		if (arg[n] == '=') {
			*inline_value = true;
			return b;
		}
	}
	return NULL;
}

/* One layer of matching quotes around s (or around the value of k="v"):
 * a malloc'd copy (caller frees), NULL on ENOMEM. */
static char *unquoted(const char *s)
{
	size_t n = strlen(s);
	char *c = strdup(s);
	if (c == NULL)
		return NULL;
	const char *eq = s[0] == '-' ? strchr(s, '=') : NULL;
	size_t from = eq != NULL ? (size_t)(eq - s) + 1 : 0;
	if (n - from >= 2 && (s[from] == '"' || s[from] == '\'') && s[n - 1] == s[from]) {
		memcpy(c + from, s + from + 1, n - from - 2);
		c[n - 2] = '\0';
	}
	return c;
}

int mc_backend_filter_args(char *const *args, size_t n, const struct mc_blocked_flag *blocked,
			   bool unquote, struct mc_argv *out)
{
	for (size_t i = 0; i < n; i++) {
		/* Matched as the CLI will see it: a quoted '--output-format' is one. */
		char *arg = unquote ? unquoted(args[i]) : strdup(args[i]);
		if (arg == NULL)
			return -1;
		bool inline_value = false;
		const struct mc_blocked_flag *b = blocked_match(arg, blocked, &inline_value);
		if (b != NULL) {
			/* Its value goes too, unless the next token is another flag. */
			if (b->takes_value && !inline_value && i + 1 < n && args[i + 1][0] != '-')
				i++;
			free(arg);
			continue;
		}
		int rc = mc_argv_push(out, arg);
		free(arg);
		if (rc < 0)
			return -1;
	}
	return 0;
}

bool mc_backend_contains_ci(const char *hay, const char *needle)
{
	if (hay == NULL || needle == NULL)
		return false;
	size_t n = strlen(needle);
	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

int mc_bs_write_json(struct mc_backend_session *s, cJSON *j)
{
	char *txt = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (txt == NULL)
		return -1;
	size_t n = strlen(txt);
	char *line = realloc(txt, n + 2);
	if (line == NULL) {
		free(txt);
		return -1;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	int rc = mc_bs_write(s, line, n + 1);
	free(line);
	return rc;
}
