#include "tests/fakeplane/seed.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tests/fakeplane/decode.h"

#define SEED_MAX (16u << 20)

/* Allocates the whole file into *out. Returns 0, or -1 with errno set. */
static int read_file(const char *file, char **out, size_t *out_len)
{
	FILE *f = fopen(file, "rbe");
	if (f == NULL)
		return -1;
	size_t cap = 4096, len = 0;
	char *buf = fp_xmalloc(cap);
	for (;;) {
		if (len == cap) {
			if (cap >= SEED_MAX) {
				free(buf);
				fclose(f);
				errno = EFBIG;
				return -1;
			}
			cap *= 2;
			buf = fp_xrealloc(buf, cap);
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int failed = ferror(f);
	fclose(f);
	if (failed) {
		free(buf);
		errno = EIO;
		return -1;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

static void where_in_text(const char *buf, const char *at, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (const char *p = buf; p < at; p++) {
		if (*p == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static int load_tokens(struct fp_state *st, const cJSON *tokens, char *err, size_t errlen)
{
	if (tokens == NULL)
		return 0;
	if (!cJSON_IsObject(tokens)) {
		snprintf(err, errlen, "tokens: expected object");
		return -1;
	}
	for (const cJSON *t = tokens->child; t != NULL; t = t->next) {
		if (!cJSON_IsString(t)) {
			snprintf(err, errlen, "tokens.%s: expected string", t->string);
			return -1;
		}
		fp_state_set_token(st, t->string, t->valuestring);
	}
	return 0;
}

static int want_array(const cJSON *a, const char *name, char *err, size_t errlen)
{
	if (a != NULL && !cJSON_IsArray(a)) {
		snprintf(err, errlen, "%s: expected array", name);
		return -1;
	}
	return 0;
}

static int load_workspaces(struct fp_state *st, const cJSON *a, char *err, size_t errlen)
{
	int i = 0;
	for (const cJSON *e = a ? a->child : NULL; e != NULL; e = e->next, i++) {
		char path[48];
		snprintf(path, sizeof path, "workspaces[%d]", i);
		struct fp_workspace *w;
		if (fp_decode_workspace(e, path, &w, err, errlen) < 0)
			return -1;
		if (fp_state_workspace(st, w->id) != NULL) {
			snprintf(err, errlen, "%s.id: duplicate workspace %s", path, w->id);
			fp_workspace_free(w);
			return -1;
		}
		fp_state_put_workspace(st, w);
	}
	return 0;
}

static int load_profiles(struct fp_state *st, const cJSON *a, char *err, size_t errlen)
{
	int i = 0;
	for (const cJSON *e = a ? a->child : NULL; e != NULL; e = e->next, i++) {
		char path[48];
		snprintf(path, sizeof path, "profiles[%d]", i);
		struct fp_profile *p;
		if (fp_decode_profile(e, path, &p, err, errlen) < 0)
			return -1;
		const char *dup = NULL;
		if (fp_state_profile(st, p->id) != NULL)
			dup = "id: duplicate profile id";
		else if (fp_state_profile_by_name(st, p->workspace_id, p->display_name) != NULL)
			dup = "display_name: duplicate in its workspace";
		if (dup != NULL) {
			snprintf(err, errlen, "%s.%s", path, dup);
			fp_profile_free(p);
			return -1;
		}
		/* Seed order is creation order: keep created_at strictly rising. */
		p->created_ms = p->updated_ms = p->created_ms + i;
		fp_state_add_profile(st, p);
	}
	return 0;
}

static int load_runtimes(struct fp_state *st, const cJSON *a, char *err, size_t errlen)
{
	int i = 0;
	for (const cJSON *e = a ? a->child : NULL; e != NULL; e = e->next, i++) {
		char path[48];
		snprintf(path, sizeof path, "runtimes[%d]", i);
		struct fp_runtime *r;
		if (fp_decode_runtime(e, path, &r, err, errlen) < 0)
			return -1;
		const char *dup = NULL;
		if (fp_state_runtime(st, r->id) != NULL)
			dup = "id: duplicate runtime id";
		else if (fp_state_runtime_by_identity(st, r->workspace_id, r->daemon_id,
						      r->provider, r->profile_id) != NULL)
			dup = "daemon_id: duplicate upsert identity";
		if (dup != NULL) {
			snprintf(err, errlen, "%s.%s", path, dup);
			fp_runtime_free(r);
			return -1;
		}
		fp_state_add_runtime(st, r);
	}
	return 0;
}

static int load_tasks(struct fp_state *st, const cJSON *a, char *err, size_t errlen)
{
	int i = 0;
	for (const cJSON *e = a ? a->child : NULL; e != NULL; e = e->next, i++) {
		char path[48];
		snprintf(path, sizeof path, "tasks[%d]", i);
		struct fp_task *t;
		if (fp_decode_task(e, path, &t, err, errlen) < 0)
			return -1;
		if (fp_state_task(st, t->id) != NULL) {
			snprintf(err, errlen, "%s.id: duplicate task id", path);
			fp_task_free(t);
			return -1;
		}
		fp_state_add_task(st, t);
	}
	return 0;
}

static int load_doc(struct fp_state *st, const cJSON *doc, char *err, size_t errlen)
{
	static const char *const keys[] = {
		"tokens", "workspaces", "profiles", "runtimes", "tasks",
	};
	if (!cJSON_IsObject(doc)) {
		snprintf(err, errlen, "expected a JSON object at the top level");
		return -1;
	}
	for (const cJSON *c = doc->child; c != NULL; c = c->next) {
		bool known = false;
		for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !known; i++)
			known = strcmp(c->string, keys[i]) == 0;
		if (!known) {
			snprintf(err, errlen, "%s: unknown key", c->string);
			return -1;
		}
	}
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(doc, "workspaces");
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(doc, "profiles");
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(doc, "runtimes");
	const cJSON *tk = cJSON_GetObjectItemCaseSensitive(doc, "tasks");
	if (load_tokens(st, cJSON_GetObjectItemCaseSensitive(doc, "tokens"), err, errlen) < 0 ||
	    want_array(ws, "workspaces", err, errlen) < 0 ||
	    want_array(pr, "profiles", err, errlen) < 0 ||
	    want_array(rt, "runtimes", err, errlen) < 0 ||
	    want_array(tk, "tasks", err, errlen) < 0 ||
	    load_workspaces(st, ws, err, errlen) < 0 || load_profiles(st, pr, err, errlen) < 0 ||
	    load_runtimes(st, rt, err, errlen) < 0 || load_tasks(st, tk, err, errlen) < 0)
		return -1;
	return 0;
}

int fp_seed_load(struct fp_state *st, const char *file, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	if (read_file(file, &buf, &len) < 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	const char *end = NULL;
	cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, false);
	if (doc == NULL) {
		int line, col;
		where_in_text(buf, end ? end : buf, &line, &col);
		snprintf(err, errlen, "%s: invalid JSON at line %d, column %d", file, line, col);
		free(buf);
		return -1;
	}
	free(buf);
	char what[512];
	int rc = load_doc(st, doc, what, sizeof what);
	cJSON_Delete(doc);
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", file, what);
	return rc;
}
