#include "tests/fakeplane/api.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "common/log.h"
#include "tests/fakeplane/jsonin.h"
#include "tests/fakeplane/register.h"
#include "tests/fakeplane/render.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/tasks.h"
#include "tests/fakeplane/util.h"

#define MAX_SEGS 8


/* ---- auth and access (protocol 1.2) ---- */

const char *fp_api_authenticate(struct fp_app *app, const struct fp_request *rq,
				struct fp_reply *out)
{
	static const char prefix[] = "Bearer ";
	if (rq->authorization == NULL || rq->authorization[0] == '\0') {
		fp_reply_error_bare(out, 401, "missing authorization header");
		return NULL;
	}
	if (strncmp(rq->authorization, prefix, sizeof prefix - 1) != 0) {
		fp_reply_error_bare(out, 401, "invalid authorization format");
		return NULL;
	}
	const char *user = fp_state_user_for_token(app->st, rq->authorization + sizeof prefix - 1);
	if (user == NULL)
		fp_reply_error_bare(out, 401, "invalid token");
	return user;
}

struct fp_runtime *fp_api_runtime_access(struct fp_app *app, const char *user, const char *id,
					 const char *invalid_msg, struct fp_reply *out)
{
	char canon[FP_UUID_LEN + 1];
	if (fp_uuid_canon(id, canon) < 0) {
		fp_reply_error(out, 400, invalid_msg);
		return NULL;
	}
	struct fp_runtime *r = fp_state_runtime(app->st, canon);
	if (r == NULL) {
		fp_reply_error(out, 404, "runtime not found");
		return NULL;
	}
	if (!fp_state_is_member(app->st, r->workspace_id, user)) {
		fp_reply_error(out, 404, "not found");
		return NULL;
	}
	return r;
}

/* ---- workspaces and profiles (2.1, 2.2, 2.8) ---- */

/* Allocates [{id, name}] of the user's workspaces, ordered by id. */
static cJSON *member_workspaces(struct fp_app *app, const char *user)
{
	cJSON *a = fp_json_array();
	for (size_t i = 0; i < app->st->workspaces.len; i++) {
		struct fp_workspace *w = app->st->workspaces.items[i];
		if (fp_state_is_member(app->st, w->id, user))
			fp_json_append(a, fp_render_workspace_brief(w));
	}
	return a;
}

static void h_workspaces(struct fp_app *app, const struct fp_request *rq, const char *user,
			 const char *param, struct fp_reply *out)
{
	cJSON *a = member_workspaces(app, user);
	char *text = fp_json_print(a);
	char hex[65];
	fp_sha256_hex(text, strlen(text), hex);
	cJSON_free(text);
	snprintf(out->etag, sizeof out->etag, "W/\"%s\"", hex);
	out->private_no_cache = true;
	if (rq->if_none_match != NULL && strcmp(rq->if_none_match, out->etag) == 0) {
		cJSON_Delete(a);
		fp_reply_raw(out, 304, NULL, 0);
		return;
	}
	fp_reply_json(out, 200, a);
}

static void h_legacy_workspaces(struct fp_app *app, const struct fp_request *rq,
				const char *user, const char *param, struct fp_reply *out)
{
	fp_reply_json(out, 200, member_workspaces(app, user));
}

/* Member check on a path workspace id: any failure is 404 "not found". */
static bool workspace_access(struct fp_app *app, const char *user, const char *raw,
			     char canon[FP_UUID_LEN + 1], struct fp_reply *out)
{
	if (fp_uuid_canon(raw, canon) < 0 || !fp_state_is_member(app->st, canon, user)) {
		fp_reply_error(out, 404, "not found");
		return false;
	}
	return true;
}

static void h_profiles(struct fp_app *app, const struct fp_request *rq, const char *user,
		       const char *param, struct fp_reply *out)
{
	char ws[FP_UUID_LEN + 1];
	if (!workspace_access(app, user, param, ws, out))
		return;
	cJSON *list = fp_json_array();
	for (size_t i = 0; i < app->st->profiles.len; i++) {
		struct fp_profile *p = app->st->profiles.items[i];
		if (p->enabled && strcmp(p->workspace_id, ws) == 0)
			fp_json_append(list, fp_render_profile(p));
	}
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "workspace_id", param);
	fp_json_add(o, "runtime_profiles", list);
	fp_reply_json(out, 200, o);
}

static void h_repos(struct fp_app *app, const struct fp_request *rq, const char *user,
		    const char *param, struct fp_reply *out)
{
	char ws[FP_UUID_LEN + 1];
	if (!workspace_access(app, user, param, ws, out))
		return;
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "workspace_id", param);
	struct fp_workspace *w = fp_state_workspace(app->st, ws); /* lock held */
	cJSON *repos = w != NULL && w->repos != NULL ? cJSON_Duplicate(w->repos, 1) : NULL;
	unsigned version = w != NULL ? w->repos_version : 0;
	fp_json_add(o, "repos", repos != NULL ? repos : fp_json_array());
	if (version == 0) {
		fp_json_add_str(o, "repos_version", FP_EMPTY_REPOS_VERSION);
	} else {
		char v[32];
		snprintf(v, sizeof v, "v%u", version);
		fp_json_add_str(o, "repos_version", v);
	}
	fp_json_add(o, "settings", cJSON_CreateNull());
	fp_reply_json(out, 200, o);
}

static void h_register(struct fp_app *app, const struct fp_request *rq, const char *user,
		       const char *param, struct fp_reply *out)
{
	fp_register_handle(app, rq, user, out);
}

/* ---- deregister, heartbeat, recover-orphans (2.4-2.6) ---- */

/* Merges {"offline_reason": reason} into the row's metadata. */
static void set_offline_reason(struct fp_runtime *r, const cJSON *reason)
{
	cJSON *m = cJSON_Parse(r->metadata);
	if (!cJSON_IsObject(m)) {
		cJSON_Delete(m);
		m = fp_json_object();
	}
	cJSON_DeleteItemFromObjectCaseSensitive(m, "offline_reason");
	fp_json_add(m, "offline_reason", cJSON_Duplicate(reason, true));
	char *text = fp_json_print(m);
	cJSON_Delete(m);
	fp_replace_str(&r->metadata, fp_xstrdup(text));
	cJSON_free(text);
}

static void h_deregister(struct fp_app *app, const struct fp_request *rq, const char *user,
			 const char *param, struct fp_reply *out)
{
	cJSON *doc = fp_in_parse(rq);
	const cJSON *reasons = cJSON_GetObjectItem(doc, "offline_reasons");
	if (doc == NULL || !fp_in_object_or_null(doc) ||
	    !fp_in_array_ok(doc, "runtime_ids", fp_in_elem_string) ||
	    (reasons != NULL && !fp_in_object_or_null(reasons))) {
		fp_reply_error(out, 400, "invalid request body");
		goto done;
	}
	const cJSON *ids = cJSON_GetObjectItem(doc, "runtime_ids");
	const cJSON *e;
	if (fp_in_array_len(doc, "runtime_ids") == 0) {
		fp_reply_error(out, 400, "runtime_ids is required");
		goto done;
	}
	cJSON_ArrayForEach(e, ids) {
		if (!cJSON_IsString(e) || !fp_uuid_valid(e->valuestring)) {
			fp_reply_error(out, 400, "invalid runtime_ids");
			goto done;
		}
	}
	int64_t now = fp_now_ms();
	cJSON_ArrayForEach(e, ids) {
		char id[FP_UUID_LEN + 1];
		fp_uuid_canon(e->valuestring, id);
		struct fp_runtime *r = fp_state_runtime(app->st, id);
		if (r == NULL || !fp_state_is_member(app->st, r->workspace_id, user)) {
			mc_log(MC_LOG_DEBUG, "deregister: skipped", "runtime_id", id, NULL);
			continue;
		}
		r->online = false;   /* last_seen_at stays as it was */
		r->updated_ms = now;
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(reasons, e->valuestring);
		if (cJSON_IsObject(reason))
			set_offline_reason(r, reason);
	}
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "status", "ok");
	fp_reply_json(out, 200, o);
done:
	cJSON_Delete(doc);
}

static void h_heartbeat(struct fp_app *app, const struct fp_request *rq, const char *user,
			const char *param, struct fp_reply *out)
{
	cJSON *doc = fp_in_parse(rq);
	const cJSON *batch = cJSON_GetObjectItem(doc, "supports_batch_import");
	if (doc == NULL || !fp_in_object_or_null(doc) || !fp_in_str_ok(doc, "runtime_id") ||
	    (batch != NULL && !cJSON_IsBool(batch) && !cJSON_IsNull(batch))) {
		fp_reply_error(out, 400, "invalid request body");
		goto done;
	}
	const char *id = fp_in_str(doc, "runtime_id");
	if (id[0] == '\0') {
		fp_reply_error(out, 400, "runtime_id is required");
		goto done;
	}
	struct fp_runtime *r = fp_api_runtime_access(app, user, id, "invalid runtime_id", out);
	if (r == NULL)
		goto done;
	int64_t now = fp_now_ms();
	if (!r->online || r->last_seen_ms == 0)
		r->updated_ms = now;  /* MarkAgentRuntimeOnline: revives the row */
	r->online = true;
	r->last_seen_ms = now;
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "status", "ok");
	fp_reply_json(out, 200, o);
done:
	cJSON_Delete(doc);
}

static void h_recover(struct fp_app *app, const struct fp_request *rq, const char *user,
		      const char *param, struct fp_reply *out)
{
	struct fp_runtime *r = fp_api_runtime_access(app, user, param, "invalid runtime_id", out);
	if (r == NULL)
		return;
	int n = fp_state_recover_orphans(app->st, r->id, fp_now_ms());
	cJSON *o = fp_json_object();
	fp_json_add(o, "orphaned", cJSON_CreateNumber(n));
	fp_json_add(o, "retried", cJSON_CreateNumber(0));
	fp_reply_json(out, 200, o);
}

/* ---- token renewal (2.8); the task endpoints are in tasks.c ---- */

static void h_renew(struct fp_app *app, const struct fp_request *rq, const char *user,
		    const char *param, struct fp_reply *out)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "expires_at", "");
	fp_json_add(o, "renewed", cJSON_CreateFalse());
	fp_reply_json(out, 200, o);
}

/* ---- routing ---- */

static const struct fp_route routes[] = {
	{ "GET", "/api/daemon/workspaces", h_workspaces },
	{ "GET", "/api/workspaces", h_legacy_workspaces },
	{ "GET", "/api/daemon/workspaces/*/runtime-profiles", h_profiles },
	{ "GET", "/api/daemon/workspaces/*/repos", h_repos },
	{ "POST", "/api/daemon/register", h_register },
	{ "POST", "/api/daemon/deregister", h_deregister },
	{ "POST", "/api/daemon/heartbeat", h_heartbeat },
	{ "POST", "/api/daemon/runtimes/*/recover-orphans", h_recover },
	{ "POST", "/api/tokens/current/renew", h_renew },
	/* GET /api/daemon/ws (the WebSocket) is deliberately absent: 404. */
};

int fp_path_split(const char *path, char *buf, size_t bufsize, char **segs, int max)
{
	if (strlcpy(buf, path, bufsize) >= bufsize || buf[0] != '/')
		return -1;
	int n = 0;
	char *p = buf + 1;
	for (;;) {
		if (n == max)
			return -1;
		segs[n++] = p;
		char *slash = strchr(p, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
		p = slash + 1;
	}
	return n;
}

/* Returns true when path fits pattern; *param gets the wildcard segment. */
static bool route_match(const char *pattern, char **segs, int nsegs, const char **param)
{
	char pbuf[128];
	char *psegs[MAX_SEGS];
	int np = fp_path_split(pattern, pbuf, sizeof pbuf, psegs, MAX_SEGS);
	if (np != nsegs)
		return false;
	*param = NULL;
	for (int i = 0; i < np; i++) {
		if (strcmp(psegs[i], "*") == 0 && segs[i][0] != '\0')
			*param = segs[i];
		else if (strcmp(psegs[i], segs[i]) != 0)
			return false;
	}
	return true;
}

static const struct fp_route *find_route(const struct fp_route *table, size_t n,
					  const struct fp_request *rq, char **segs, int nsegs,
					  const char **param)
{
	for (size_t i = 0; nsegs > 0 && i < n; i++)
		if (strcmp(table[i].method, rq->method) == 0 &&
		    route_match(table[i].pattern, segs, nsegs, param))
			return &table[i];
	return NULL;
}

void fp_api_handle(struct fp_app *app, const struct fp_request *rq, struct fp_reply *out)
{
	char buf[1024];
	char *segs[MAX_SEGS];
	int nsegs = fp_path_split(rq->path, buf, sizeof buf, segs, MAX_SEGS);
	const char *param = NULL;
	const struct fp_route *hit = find_route(routes, sizeof routes / sizeof routes[0], rq,
						 segs, nsegs, &param);
	if (hit == NULL)
		hit = find_route(fp_task_routes, fp_task_nroutes, rq, segs, nsegs, &param);
	if (hit == NULL) {
		fp_reply_error(out, 404, "not found");
		return;
	}
	fp_state_lock(app->st);
	const char *user = fp_api_authenticate(app, rq, out);
	if (user != NULL)
		hit->fn(app, rq, user, param, out);
	fp_state_unlock(app->st);
}
