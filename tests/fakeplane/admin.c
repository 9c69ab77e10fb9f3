#include "tests/fakeplane/admin.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/fakeplane/api.h"
#include "tests/fakeplane/decode.h"
#include "tests/fakeplane/faults.h"
#include "tests/fakeplane/journal.h"
#include "tests/fakeplane/render.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/task_admin.h"
#include "tests/fakeplane/ws.h"
#include "tests/fakeplane/ws_admin.h"

#define ERRLEN 512

/* Handlers get the parsed body (NULL when there is none) and the one path
 * parameter; they take the locks they need. */
typedef void (*admin_fn)(struct fp_app *app, const cJSON *body, const char *param,
			 struct fp_reply *out);

bool fp_admin_path(const char *path)
{
	return strncmp(path, "/_admin", 7) == 0 && (path[7] == '\0' || path[7] == '/');
}

static void reply_ok(struct fp_reply *out)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "status", "ok");
	fp_reply_json(out, 200, o);
}

/* Canonical id from the path, or false after a 404. */
static bool path_uuid(const char *param, char id[FP_UUID_LEN + 1], struct fp_reply *out)
{
	if (fp_uuid_canon(param, id) < 0) {
		fp_reply_error(out, 404, "not found");
		return false;
	}
	return true;
}

static void a_state(struct fp_app *app, const cJSON *body, const char *param,
		    struct fp_reply *out)
{
	fp_state_lock(app->st);
	cJSON *s = fp_render_state(app->st);
	fp_state_unlock(app->st);
	fp_reply_json(out, 200, s);
}

static void a_journal(struct fp_app *app, const cJSON *body, const char *param,
		      struct fp_reply *out)
{
	fp_reply_json(out, 200, fp_journal_render(app->journal));
}

static void a_journal_clear(struct fp_app *app, const cJSON *body, const char *param,
			    struct fp_reply *out)
{
	fp_journal_clear(app->journal);
	reply_ok(out);
}

static void a_profile_add(struct fp_app *app, const cJSON *body, const char *param,
			  struct fp_reply *out)
{
	char err[ERRLEN];
	struct fp_profile *p;
	if (fp_decode_profile(body, "", &p, err, sizeof err) < 0) {
		fp_reply_error(out, 400, err);
		return;
	}
	fp_state_lock(app->st);
	if (fp_state_profile(app->st, p->id) != NULL) {
		fp_reply_error(out, 409, "a profile with this id exists");
		fp_profile_free(p);
	} else if (fp_state_profile_by_name(app->st, p->workspace_id, p->display_name) != NULL) {
		fp_reply_error(out, 409, "display_name already used in this workspace");
		fp_profile_free(p);
	} else {
		fp_state_add_profile(app->st, p);
		fp_reply_json(out, 200, fp_render_profile(p));
		fp_ws_push_profiles(app->st->ws, p->workspace_id, p->id);
	}
	fp_state_unlock(app->st);
}

static void a_profile_patch(struct fp_app *app, const cJSON *body, const char *param,
			    struct fp_reply *out)
{
	char id[FP_UUID_LEN + 1], err[ERRLEN];
	if (!path_uuid(param, id, out))
		return;
	fp_state_lock(app->st);
	struct fp_profile *old = fp_state_profile(app->st, id);
	struct fp_profile *p = old ? fp_profile_clone(old) : NULL;
	struct fp_profile *clash = NULL;
	if (p == NULL) {
		fp_reply_error(out, 404, "not found");
	} else if (fp_decode_profile_patch(body, p, err, sizeof err) < 0) {
		fp_reply_error(out, 400, err);
	} else if ((clash = fp_state_profile_by_name(app->st, p->workspace_id, p->display_name)) &&
		   clash != old) {
		fp_reply_error(out, 409, "display_name already used in this workspace");
	} else {
		fp_state_replace_profile(app->st, p);
		fp_reply_json(out, 200, fp_render_profile(p));
		fp_ws_push_profiles(app->st->ws, p->workspace_id, p->id);   /* enable/disable too */
		p = NULL;
	}
	fp_profile_free(p);
	fp_state_unlock(app->st);
}

static void a_profile_delete(struct fp_app *app, const cJSON *body, const char *param,
			     struct fp_reply *out)
{
	char id[FP_UUID_LEN + 1];
	if (!path_uuid(param, id, out))
		return;
	fp_state_lock(app->st);
	struct fp_profile *gone = fp_state_profile(app->st, id);
	char ws[FP_UUID_LEN + 1] = "";
	if (gone != NULL)
		memcpy(ws, gone->workspace_id, sizeof ws);
	int n = fp_state_remove_profile(app->st, id);
	if (n >= 0)
		fp_ws_push_profiles(app->st->ws, ws, id);   /* after the commit, as RP:486 */
	fp_state_unlock(app->st);
	if (n < 0) {
		fp_reply_error(out, 404, "not found");
		return;
	}
	cJSON *o = fp_json_object();
	fp_json_add(o, "deleted_runtimes", cJSON_CreateNumber(n));
	fp_reply_json(out, 200, o);
}

static void a_runtime_delete(struct fp_app *app, const cJSON *body, const char *param,
			     struct fp_reply *out)
{
	char id[FP_UUID_LEN + 1];
	if (!path_uuid(param, id, out))
		return;
	fp_state_lock(app->st);
	int rc = fp_state_remove_runtime(app->st, id);
	fp_state_unlock(app->st);
	if (rc < 0)
		fp_reply_error(out, 404, "not found");
	else
		reply_ok(out);
}

static void a_runtimes_delete_all(struct fp_app *app, const cJSON *body, const char *param,
				  struct fp_reply *out)
{
	fp_state_lock(app->st);
	int n = fp_state_remove_all_runtimes(app->st);
	fp_state_unlock(app->st);
	cJSON *o = fp_json_object();
	fp_json_add(o, "deleted_runtimes", cJSON_CreateNumber(n));
	fp_reply_json(out, 200, o);
}

static void a_workspace_put(struct fp_app *app, const cJSON *body, const char *param,
			    struct fp_reply *out)
{
	char err[ERRLEN];
	struct fp_workspace *w;
	if (fp_decode_workspace(body, "", &w, err, sizeof err) < 0) {
		fp_reply_error(out, 400, err);
		return;
	}
	fp_state_lock(app->st);
	w = fp_state_put_workspace(app->st, w);
	fp_reply_json(out, 200, fp_render_workspace_admin(w));
	fp_ws_push_workspaces(app->st->ws);   /* create, rename or membership change */
	fp_state_unlock(app->st);
}

static void a_workspace_delete(struct fp_app *app, const cJSON *body, const char *param,
			       struct fp_reply *out)
{
	char id[FP_UUID_LEN + 1];
	if (!path_uuid(param, id, out))
		return;
	fp_state_lock(app->st);
	int rc = fp_state_remove_workspace(app->st, id);
	if (rc == 0)
		fp_ws_push_workspaces(app->st->ws);
	fp_state_unlock(app->st);
	if (rc < 0)
		fp_reply_error(out, 404, "not found");
	else
		reply_ok(out);
}

/* POST /_admin/repos/{workspace_id} {"repos":[{"url":..,"description":..}]}:
 * the list GET /api/daemon/workspaces/{id}/repos answers from now on. */
static void a_repos_put(struct fp_app *app, const cJSON *body, const char *param,
			struct fp_reply *out)
{
	char id[FP_UUID_LEN + 1];
	if (!path_uuid(param, id, out))
		return;
	const cJSON *repos = cJSON_GetObjectItemCaseSensitive(body, "repos");
	const cJSON *r;
	bool ok = cJSON_IsArray(repos);
	if (ok)
		cJSON_ArrayForEach(r, repos)
			ok = ok && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "url"));
	if (!ok) {
		fp_reply_error(out, 400, "repos: expected [{url, description?}]");
		return;
	}
	fp_state_lock(app->st);
	struct fp_workspace *w = fp_state_workspace(app->st, id);
	if (w != NULL) {
		cJSON_Delete(w->repos);
		w->repos = cJSON_Duplicate(repos, 1);
		w->repos_version++;
	}
	fp_state_unlock(app->st);
	if (w == NULL)
		fp_reply_error(out, 404, "not found");
	else
		reply_ok(out);
}

static void a_token_put(struct fp_app *app, const cJSON *body, const char *param,
			struct fp_reply *out)
{
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(body, "token");
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(body, "user");
	if (!cJSON_IsString(tok) || tok->valuestring[0] == '\0') {
		fp_reply_error(out, 400, "token: expected non-empty string");
		return;
	}
	if (!cJSON_IsString(user)) {
		fp_reply_error(out, 400, "user: expected string");
		return;
	}
	fp_state_lock(app->st);
	fp_state_set_token(app->st, tok->valuestring, user->valuestring);
	fp_state_unlock(app->st);
	reply_ok(out);
}

static void a_token_delete(struct fp_app *app, const cJSON *body, const char *param,
			   struct fp_reply *out)
{
	fp_state_lock(app->st);
	int rc = fp_state_remove_token(app->st, param);
	fp_state_unlock(app->st);
	if (rc < 0)
		fp_reply_error(out, 404, "not found");
	else
		reply_ok(out);
}

static void a_faults_list(struct fp_app *app, const cJSON *body, const char *param,
			  struct fp_reply *out)
{
	fp_reply_json(out, 200, fp_faults_render(app->faults));
}

static void a_fault_add(struct fp_app *app, const cJSON *body, const char *param,
			struct fp_reply *out)
{
	char err[ERRLEN];
	if (fp_faults_add(app->faults, body, err, sizeof err) < 0)
		fp_reply_error(out, 400, err);
	else
		reply_ok(out);
}

static void a_faults_clear(struct fp_app *app, const cJSON *body, const char *param,
			   struct fp_reply *out)
{
	fp_faults_clear(app->faults);
	reply_ok(out);
}

struct admin_route {
	const char *method;
	const char *name;      /* second segment */
	bool with_param;       /* a third segment follows */
	bool needs_body;
	admin_fn fn;
};

static const struct admin_route admin_routes[] = {
	{ "GET", "state", false, false, a_state },
	{ "GET", "journal", false, false, a_journal },
	{ "DELETE", "journal", false, false, a_journal_clear },
	{ "POST", "profiles", false, true, a_profile_add },
	{ "PATCH", "profiles", true, true, a_profile_patch },
	{ "DELETE", "profiles", true, false, a_profile_delete },
	{ "DELETE", "runtimes", true, false, a_runtime_delete },
	{ "DELETE", "runtimes", false, false, a_runtimes_delete_all },
	{ "POST", "workspaces", false, true, a_workspace_put },
	{ "DELETE", "workspaces", true, false, a_workspace_delete },
	{ "POST", "repos", true, true, a_repos_put },
	{ "POST", "tokens", false, true, a_token_put },
	{ "DELETE", "tokens", true, false, a_token_delete },
	{ "GET", "faults", false, false, a_faults_list },
	{ "POST", "faults", false, true, a_fault_add },
	{ "DELETE", "faults", false, false, a_faults_clear },
};

void fp_admin_handle(struct fp_app *app, const struct fp_request *rq, struct fp_reply *out)
{
	char buf[1024];
	char *segs[4];
	int n = fp_path_split(rq->path, buf, sizeof buf, segs, 4);
	if (n >= 2 && strcmp(segs[1], "tasks") == 0) {
		fp_task_admin_handle(app, rq, segs, n, out);
		return;
	}
	if (n >= 2 && strcmp(segs[1], "ws") == 0) {
		fp_ws_admin_handle(app, rq, segs, n, out);
		return;
	}
	const struct admin_route *hit = NULL;
	for (size_t i = 0; n >= 2 && i < sizeof admin_routes / sizeof admin_routes[0]; i++) {
		const struct admin_route *r = &admin_routes[i];
		if (strcmp(r->method, rq->method) == 0 && strcmp(r->name, segs[1]) == 0 &&
		    n == (r->with_param ? 3 : 2) && (n == 2 || segs[2][0] != '\0')) {
			hit = r;
			break;
		}
	}
	if (hit == NULL) {
		fp_reply_error(out, 404, "not found");
		return;
	}
	cJSON *body = NULL;
	if (hit->needs_body) {
		body = cJSON_ParseWithLength(rq->body, rq->body_len);
		if (!cJSON_IsObject(body)) {
			cJSON_Delete(body);
			fp_reply_error(out, 400, "expected a JSON object body");
			return;
		}
	}
	hit->fn(app, body, n == 3 ? segs[2] : NULL, out);
	cJSON_Delete(body);
}
