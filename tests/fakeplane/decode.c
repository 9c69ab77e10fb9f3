#include "tests/fakeplane/decode.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

/* Where in the document we are, and where to put the message. */
struct dctx {
	const char *path;
	char *err;
	size_t errlen;
};

/* Writes "path.key: what" (or the parts that exist) into err; returns -1. */
static int fail(const struct dctx *d, const char *key, const char *what)
{
	const char *sep = d->path[0] && key[0] && key[0] != '[' ? "." : "";
	if (d->path[0] || key[0])
		snprintf(d->err, d->errlen, "%s%s%s: %s", d->path, sep, key, what);
	else
		snprintf(d->err, d->errlen, "%s", what);
	return -1;
}

static int check_object(const struct dctx *d, const cJSON *obj, const char *const *allowed)
{
	if (!cJSON_IsObject(obj))
		return fail(d, "", "expected object");
	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		bool ok = false;
		for (size_t i = 0; allowed[i] != NULL && !ok; i++)
			ok = strcmp(c->string, allowed[i]) == 0;
		if (!ok)
			return fail(d, c->string, "unknown field");
	}
	return 0;
}

/* String field. Missing: error if required, else *out is left alone. */
static int want_str(const struct dctx *d, const cJSON *obj, const char *key,
		    bool required, bool nullable, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (v == NULL)
		return required ? fail(d, key, "required") : 0;
	if (cJSON_IsNull(v) && nullable) {
		fp_replace_str(out, NULL);
		return 0;
	}
	if (!cJSON_IsString(v))
		return fail(d, key, nullable ? "expected string or null" : "expected string");
	fp_replace_str(out, fp_xstrdup(v->valuestring));
	return 0;
}

static int want_uuid(const struct dctx *d, const cJSON *obj, const char *key,
		     bool required, bool nullable, char out[FP_UUID_LEN + 1])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (v == NULL)
		return required ? fail(d, key, "required") : 0;
	if (cJSON_IsNull(v) && nullable) {
		out[0] = '\0';
		return 0;
	}
	if (!cJSON_IsString(v))
		return fail(d, key, nullable ? "expected string or null" : "expected string");
	if (fp_uuid_canon(v->valuestring, out) < 0)
		return fail(d, key, "expected a UUID");
	return 0;
}

static int want_bool(const struct dctx *d, const cJSON *obj, const char *key, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (v == NULL)
		return 0;
	if (!cJSON_IsBool(v))
		return fail(d, key, "expected true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

static int want_long(const struct dctx *d, const cJSON *obj, const char *key, long *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    fabs(v->valuedouble) > 1e9)
		return fail(d, key, "expected integer");
	*out = (long)v->valuedouble;
	return 0;
}

static int want_str_array(const struct dctx *d, const cJSON *obj, const char *key,
			  struct fp_vec *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (v == NULL)
		return 0;
	if (!cJSON_IsArray(v))
		return fail(d, key, "expected array of strings");
	struct fp_vec tmp = { 0 };
	int i = 0;
	for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
		if (!cJSON_IsString(e)) {
			char sub[64];
			snprintf(sub, sizeof sub, "%s[%d]", key, i);
			for (size_t k = 0; k < tmp.len; k++)
				free(tmp.items[k]);
			fp_vec_release(&tmp);
			return fail(d, sub, "expected string");
		}
		fp_vec_push(&tmp, fp_xstrdup(e->valuestring));
	}
	for (size_t k = 0; k < out->len; k++)
		free(out->items[k]);
	fp_vec_release(out);
	*out = tmp;
	return 0;
}

static int check_visibility(const struct dctx *d, const char *v)
{
	if (strcmp(v, "workspace") != 0 && strcmp(v, "private") != 0)
		return fail(d, "visibility", "expected \"workspace\" or \"private\"");
	return 0;
}

int fp_decode_workspace(const cJSON *j, const char *path, struct fp_workspace **out,
			char *err, size_t errlen)
{
	static const char *const keys[] = { "id", "name", "members", NULL };
	struct dctx d = { path, err, errlen };
	struct fp_workspace *w = fp_workspace_new();
	w->name = fp_xstrdup("");
	if (check_object(&d, j, keys) < 0 || want_uuid(&d, j, "id", true, false, w->id) < 0 ||
	    want_str(&d, j, "name", false, false, &w->name) < 0 ||
	    want_str_array(&d, j, "members", &w->members) < 0) {
		fp_workspace_free(w);
		return -1;
	}
	*out = w;
	return 0;
}

static int profile_fields(const struct dctx *d, const cJSON *j, struct fp_profile *p,
			  bool creating)
{
	if (want_str(d, j, "display_name", creating, false, &p->display_name) < 0 ||
	    want_str(d, j, "command_name", creating, false, &p->command_name) < 0 ||
	    want_str(d, j, "description", false, true, &p->description) < 0 ||
	    want_str_array(d, j, "fixed_args", &p->fixed_args) < 0 ||
	    want_str(d, j, "visibility", false, false, &p->visibility) < 0 ||
	    check_visibility(d, p->visibility) < 0 ||
	    want_bool(d, j, "enabled", &p->enabled) < 0 ||
	    want_str(d, j, "created_by", false, true, &p->created_by) < 0)
		return -1;
	return 0;
}

static const char *const profile_keys[] = {
	"id", "workspace_id", "display_name", "protocol_family", "command_name",
	"description", "fixed_args", "visibility", "enabled", "created_by", NULL,
};

int fp_decode_profile(const cJSON *j, const char *path, struct fp_profile **out,
		      char *err, size_t errlen)
{
	struct dctx d = { path, err, errlen };
	struct fp_profile *p = fp_profile_new();
	p->visibility = fp_xstrdup("workspace");
	if (check_object(&d, j, profile_keys) < 0 ||
	    want_uuid(&d, j, "id", false, false, p->id) < 0 ||
	    want_uuid(&d, j, "workspace_id", true, false, p->workspace_id) < 0 ||
	    want_str(&d, j, "protocol_family", true, false, &p->protocol_family) < 0 ||
	    profile_fields(&d, j, p, true) < 0) {
		fp_profile_free(p);
		return -1;
	}
	if (p->id[0] == '\0')
		fp_uuid_generate(p->id);
	p->created_ms = p->updated_ms = fp_now_ms();
	*out = p;
	return 0;
}

/* A PATCH may name an immutable field only to repeat its value. */
static int same_or_absent(const struct dctx *d, const cJSON *j, const char *key,
			  const char *current, bool is_uuid)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (v == NULL)
		return 0;
	if (!cJSON_IsString(v))
		return fail(d, key, "expected string");
	char canon[FP_UUID_LEN + 1];
	const char *given = v->valuestring;
	if (is_uuid && fp_uuid_canon(given, canon) == 0)
		given = canon;
	if (strcmp(given, current) != 0)
		return fail(d, key, "cannot be changed");
	return 0;
}

int fp_decode_profile_patch(const cJSON *j, struct fp_profile *p, char *err, size_t errlen)
{
	struct dctx d = { "", err, errlen };
	if (check_object(&d, j, profile_keys) < 0 ||
	    same_or_absent(&d, j, "id", p->id, true) < 0 ||
	    same_or_absent(&d, j, "workspace_id", p->workspace_id, true) < 0 ||
	    same_or_absent(&d, j, "protocol_family", p->protocol_family, false) < 0 ||
	    profile_fields(&d, j, p, false) < 0)
		return -1;
	p->updated_ms = fp_now_ms();
	return 0;
}

/* Fields of the row itself; every other member of a task body is kept in
 * t->extra and handed to the daemon with the claimed task. */
static const char *const task_model_keys[] = {
	"id", "runtime_id", "status", "failure_reason", "error", "attempt", "max_attempts",
	"agent_id", "workspace_id", "issue_id", "auth_token", "session_id", "work_dir", NULL,
};

static bool is_model_key(const char *k)
{
	for (size_t i = 0; task_model_keys[i] != NULL; i++)
		if (strcmp(k, task_model_keys[i]) == 0)
			return true;
	return false;
}

static int want_status(const struct dctx *d, const cJSON *j, bool required, char **status)
{
	if (want_str(d, j, "status", required, false, status) < 0)
		return -1;
	if (*status != NULL && !fp_task_status_valid(*status))
		return fail(d, "status", "expected one of queued, dispatched, running, "
			    "completed, failed, cancelled, waiting_local_directory, deferred");
	return 0;
}

/* Row fields a seed, a POST and a PATCH may set alike. */
static int task_row_fields(const struct dctx *d, const cJSON *j, struct fp_task *t)
{
	return want_str(d, j, "failure_reason", false, true, &t->failure_reason) < 0 ||
	       want_str(d, j, "error", false, true, &t->error) < 0 ||
	       want_str(d, j, "session_id", false, true, &t->session_id) < 0 ||
	       want_str(d, j, "work_dir", false, true, &t->work_dir) < 0 ||
	       want_str(d, j, "issue_id", false, true, &t->issue_id) < 0 ||
	       want_long(d, j, "attempt", &t->attempt) < 0 ||
	       want_long(d, j, "max_attempts", &t->max_attempts) < 0 ? -1 : 0;
}

/* agent {id, name, ...}: agent_id defaults to agent.id. */
static int task_agent(const struct dctx *d, const cJSON *j, struct fp_task *t)
{
	const cJSON *agent = cJSON_GetObjectItemCaseSensitive(j, "agent");
	if (want_uuid(d, j, "agent_id", false, false, t->agent_id) < 0)
		return -1;
	if (agent == NULL)
		return 0;
	if (!cJSON_IsObject(agent))
		return fail(d, "agent", "expected object");
	struct dctx sub = { "agent", d->err, d->errlen };
	char id[FP_UUID_LEN + 1] = "";
	char *name = NULL;
	int rc = want_uuid(&sub, agent, "id", t->agent_id[0] == '\0', false, id) < 0 ||
		 want_str(&sub, agent, "name", false, false, &name) < 0 ? -1 : 0;
	free(name);
	if (rc == 0 && t->agent_id[0] == '\0')
		memcpy(t->agent_id, id, sizeof id);
	return rc;
}

/* auth_token: a string claims hand out as it is, null: claims carry none
 * (test hooks for the executor's pre-flight checks). */
static int task_token_hook(const struct dctx *d, const cJSON *j, struct fp_task *t)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "auth_token");
	if (v == NULL)
		return 0;
	if (cJSON_IsNull(v)) {
		t->token_omitted = true;
		return 0;
	}
	return want_str(d, j, "auth_token", false, false, &t->fixed_token);
}

static void task_extra(const cJSON *j, struct fp_task *t)
{
	for (const cJSON *c = j->child; c != NULL; c = c->next) {
		if (is_model_key(c->string) ||
		    cJSON_GetObjectItemCaseSensitive(t->extra, c->string) != NULL)
			continue;
		cJSON *dup = cJSON_Duplicate(c, true);
		if (dup == NULL || !cJSON_AddItemToObject(t->extra, c->string, dup))
			abort();   /* out of memory */
	}
}

int fp_decode_task(const cJSON *j, const char *path, struct fp_task **out,
		   char *err, size_t errlen)
{
	struct dctx d = { path, err, errlen };
	struct fp_task *t = fp_task_new();
	if (!cJSON_IsObject(j)) {
		fail(&d, "", "expected object");
		goto bad;
	}
	if (want_uuid(&d, j, "id", false, false, t->id) < 0 ||
	    want_uuid(&d, j, "runtime_id", true, false, t->runtime_id) < 0 ||
	    want_uuid(&d, j, "workspace_id", false, false, t->workspace_id) < 0 ||
	    want_status(&d, j, false, &t->status) < 0 || task_row_fields(&d, j, t) < 0 ||
	    task_agent(&d, j, t) < 0 || task_token_hook(&d, j, t) < 0)
		goto bad;
	if (t->status == NULL)
		t->status = fp_xstrdup("queued");
	task_extra(j, t);
	if (t->id[0] == '\0')
		fp_uuid_generate(t->id);
	t->created_ms = fp_now_ms();
	if (fp_task_status_terminal(t->status))
		t->completed_ms = t->created_ms;
	*out = t;
	return 0;
bad:
	fp_task_free(t);
	return -1;
}

int fp_decode_task_patch(const cJSON *j, struct fp_task *t, char *err, size_t errlen)
{
	static const char *const keys[] = {
		"status", "failure_reason", "error", "session_id", "work_dir", "issue_id",
		"attempt", "max_attempts", NULL,
	};
	struct dctx d = { "", err, errlen };
	char *status = NULL;
	if (check_object(&d, j, keys) < 0 || want_status(&d, j, false, &status) < 0 ||
	    task_row_fields(&d, j, t) < 0) {
		free(status);
		return -1;
	}
	if (status != NULL)
		fp_task_set_status(t, status, fp_now_ms());
	free(status);
	return 0;
}

int fp_decode_runtime(const cJSON *j, const char *path, struct fp_runtime **out,
		      char *err, size_t errlen)
{
	static const char *const keys[] = {
		"id", "workspace_id", "daemon_id", "provider", "profile_id", "name",
		"status", "owner_id", NULL,
	};
	struct dctx d = { path, err, errlen };
	struct fp_runtime *r = fp_runtime_new();
	char *status = NULL;
	if (check_object(&d, j, keys) < 0 || want_uuid(&d, j, "id", false, false, r->id) < 0 ||
	    want_uuid(&d, j, "workspace_id", true, false, r->workspace_id) < 0 ||
	    want_str(&d, j, "daemon_id", true, false, &r->daemon_id) < 0 ||
	    want_str(&d, j, "provider", true, false, &r->provider) < 0 ||
	    want_uuid(&d, j, "profile_id", false, true, r->profile_id) < 0 ||
	    want_str(&d, j, "name", false, false, &r->name) < 0 ||
	    want_str(&d, j, "owner_id", false, true, &r->owner_id) < 0 ||
	    want_str(&d, j, "status", false, false, &status) < 0)
		goto bad;
	if (status != NULL && strcmp(status, "online") != 0 && strcmp(status, "offline") != 0) {
		fail(&d, "status", "expected \"online\" or \"offline\"");
		goto bad;
	}
	r->online = status != NULL && strcmp(status, "online") == 0;
	free(status);
	if (r->id[0] == '\0')
		fp_uuid_generate(r->id);
	if (r->name == NULL)
		r->name = fp_xstrdup(r->provider);
	r->device_info = fp_xstrdup("");
	r->metadata = fp_xstrdup("{}");
	r->created_ms = r->updated_ms = fp_now_ms();
	r->last_seen_ms = r->online ? r->created_ms : 0;
	*out = r;
	return 0;
bad:
	free(status);
	fp_runtime_free(r);
	return -1;
}
