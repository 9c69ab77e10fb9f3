#include "tests/fakeplane/register.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/fakeplane/jsonin.h"
#include "tests/fakeplane/render.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/util.h"

/* What one register call shares across its entries. */
struct reg {
	struct fp_app *app;
	const char *user;
	char ws[FP_UUID_LEN + 1];
	char *daemon_id, *device, *cli_version, *launched_by;
	cJSON *capabilities;     /* array of strings */
	int64_t now;
};

/* map[string]string: every value a string (or null). */
static bool elem_string_map(const cJSON *e)
{
	if (cJSON_IsNull(e))
		return true;
	if (!cJSON_IsObject(e))
		return false;
	for (const cJSON *c = e->child; c != NULL; c = c->next)
		if (!fp_in_elem_string(c))
			return false;
	return true;
}

static bool elem_failed_profile(const cJSON *e)
{
	if (cJSON_IsNull(e))
		return true;
	return cJSON_IsObject(e) && fp_in_str_ok(e, "profile_id") &&
	       fp_in_str_ok(e, "command_name") && fp_in_str_ok(e, "reason");
}

/* The body decodes into the server's request struct (Go semantics). */
static bool register_shape_ok(const cJSON *doc)
{
	if (cJSON_IsNull(doc))
		return true;
	return cJSON_IsObject(doc) && fp_in_str_ok(doc, "workspace_id") &&
	       fp_in_str_ok(doc, "daemon_id") && fp_in_str_ok(doc, "device_name") &&
	       fp_in_str_ok(doc, "cli_version") && fp_in_str_ok(doc, "launched_by") &&
	       fp_in_array_ok(doc, "legacy_daemon_ids", fp_in_elem_string) &&
	       fp_in_array_ok(doc, "runtimes", elem_string_map) &&
	       fp_in_array_ok(doc, "failed_profiles", elem_failed_profile);
}

/* Allocates the capability list from "a, b,,c" (the server keeps the
 * trimmed, non-empty parts). */
static cJSON *parse_capabilities(const char *header)
{
	cJSON *a = fp_json_array();
	for (const char *p = header; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, ",");
		char *raw = fp_xstrndup(p, n);
		char *t = fp_trimdup(raw);
		if (t[0] != '\0')
			fp_json_append(a, cJSON_CreateString(t));
		free(t);
		free(raw);
		p += n;
		if (*p == ',')
			p++;
	}
	return a;
}

/* Allocates the metadata JSON text of a register upsert. */
static char *reg_metadata(const struct reg *g, const char *version, const char *failure,
			  const char *command_name)
{
	cJSON *m = fp_json_object();
	fp_json_add_str(m, "version", version);
	fp_json_add_str(m, "cli_version", g->cli_version);
	fp_json_add_str(m, "launched_by", g->launched_by);
	fp_json_add(m, "capabilities", cJSON_Duplicate(g->capabilities, true));
	if (failure != NULL) {
		fp_json_add(m, "runtime_profile_registration_error", cJSON_CreateTrue());
		fp_json_add_str(m, "runtime_profile_failure_reason", failure);
		fp_json_add_str(m, "command_name", command_name);
	}
	char *text = fp_json_print(m);
	cJSON_Delete(m);
	char *copy = fp_xstrdup(text);
	cJSON_free(text);
	return copy;
}

/* Allocates "base" or "base (device)". */
static char *with_device(const struct reg *g, const char *base)
{
	return g->device[0] ? fp_xasprintf("%s (%s)", base, g->device) : fp_xstrdup(base);
}

/* The fields every upsert overwrites; takes ownership of name, info, meta. */
static void reg_touch(const struct reg *g, struct fp_runtime *r, char *name, char *info,
		      char *meta, bool online)
{
	fp_replace_str(&r->name, name);
	fp_replace_str(&r->device_info, info);
	fp_replace_str(&r->metadata, meta);
	r->online = online;
	fp_replace_str(&r->owner_id, fp_xstrdup(g->user)); /* COALESCE(new, old) */
	r->last_seen_ms = g->now;
	r->updated_ms = g->now;
}

/* A custom entry's profile, or NULL after writing the 400/409. */
static struct fp_profile *reg_profile(const struct reg *g, const char *raw,
				      struct fp_reply *out)
{
	char pid[FP_UUID_LEN + 1];
	if (fp_uuid_canon(raw, pid) < 0) {
		fp_reply_error(out, 400, "invalid profile_id");
		return NULL;
	}
	struct fp_profile *p = fp_state_profile(g->app->st, pid);
	if (p == NULL || strcmp(p->workspace_id, g->ws) != 0) {
		char *msg = fp_xasprintf("unknown runtime profile: %s", raw);
		fp_reply_error(out, 400, msg);
		free(msg);
		return NULL;
	}
	if (!p->enabled) {
		char *msg = fp_xasprintf("runtime profile is disabled: %s", raw);
		fp_reply_error(out, 409, msg);
		free(msg);
		return NULL;
	}
	return p;
}

/* Upserts one "runtimes" entry; returns its row or NULL after an error. */
static struct fp_runtime *reg_entry(const struct reg *g, const cJSON *e, struct fp_reply *out)
{
	char *type = fp_trimdup(fp_in_str(e, "type"));
	char *provider = type[0] ? fp_in_lowerdup(type) : fp_xstrdup("unknown");
	char *name = fp_trimdup(fp_in_str(e, "name"));
	char *version = fp_trimdup(fp_in_str(e, "version"));
	char *profile_id = fp_trimdup(fp_in_str(e, "profile_id"));
	bool online = strcmp(fp_in_str(e, "status"), "offline") != 0;
	struct fp_runtime *r = NULL;
	struct fp_profile *p = NULL;
	bool inserted;
	free(type);
	if (name[0] == '\0')
		fp_replace_str(&name, with_device(g, provider));
	if (profile_id[0] == '\0') {
		r = fp_state_runtime_upsert(g->app->st, g->ws, g->daemon_id, provider, NULL,
					    g->now, &inserted);
	} else if ((p = reg_profile(g, profile_id, out)) != NULL) {
		r = fp_state_runtime_upsert(g->app->st, g->ws, g->daemon_id, p->protocol_family,
					    p->id, g->now, &inserted);
		/* The custom upsert takes the provider from the profile. */
		fp_replace_str(&r->provider, fp_xstrdup(p->protocol_family));
	}
	if (r != NULL) {
		char *info = version[0] ? fp_xasprintf("%s · %s", g->device, version)
					: fp_xstrdup(g->device);
		reg_touch(g, r, name, info, reg_metadata(g, version, NULL, NULL), online);
		name = NULL;
	}
	free(provider);
	free(name);
	free(version);
	free(profile_id);
	return r;
}

/* One failed_profiles entry: -1 (400 written) only for a malformed id;
 * unknown or disabled profiles are logged and skipped, as the server does. */
static int reg_failed(const struct reg *g, const cJSON *e, struct fp_reply *out)
{
	char *raw = fp_trimdup(fp_in_str(e, "profile_id"));
	char pid[FP_UUID_LEN + 1];
	int rc = 0;
	if (raw[0] == '\0')
		goto done;
	if (fp_uuid_canon(raw, pid) < 0) {
		fp_reply_error(out, 400, "invalid profile_id");
		rc = -1;
		goto done;
	}
	struct fp_profile *p = fp_state_profile(g->app->st, pid);
	if (p == NULL || strcmp(p->workspace_id, g->ws) != 0 || !p->enabled) {
		mc_log(MC_LOG_WARN, "failed profile skipped", "profile_id", raw, "why",
		       p == NULL || strcmp(p->workspace_id, g->ws) != 0 ? "unknown" : "disabled",
		       NULL);
		goto done;
	}
	bool inserted;
	struct fp_runtime *r = fp_state_runtime_upsert(g->app->st, g->ws, g->daemon_id,
						       p->protocol_family, p->id, g->now, &inserted);
	fp_replace_str(&r->provider, fp_xstrdup(p->protocol_family));
	char *meta = reg_metadata(g, "", fp_in_str(e, "reason"), fp_in_str(e, "command_name"));
	reg_touch(g, r, with_device(g, p->display_name), fp_xstrdup(g->device), meta, false);
done:
	free(raw);
	return rc;
}

/* Steps 2-3 of 2.3: required fields and workspace access. Returns 0, or -1
 * after writing the error. */
static int reg_validate(struct reg *g, const cJSON *doc, struct fp_reply *out)
{
	char *ws_raw = fp_trimdup(fp_in_str(doc, "workspace_id"));
	int rc = -1;
	if (g->daemon_id[0] == '\0')
		fp_reply_error(out, 400, "daemon_id is required");
	else if (ws_raw[0] == '\0')
		fp_reply_error(out, 400, "workspace_id is required");
	else if (fp_in_array_len(doc, "runtimes") == 0 &&
		 fp_in_array_len(doc, "failed_profiles") == 0)
		fp_reply_error(out, 400, "at least one runtime or failed profile is required");
	else if (fp_uuid_canon(ws_raw, g->ws) < 0)
		fp_reply_error(out, 400, "invalid workspace_id");
	else if (!fp_state_is_member(g->app->st, g->ws, g->user))
		fp_reply_error(out, 404, "workspace not found");
	else
		rc = 0;
	free(ws_raw);
	return rc;
}

static void reg_release(struct reg *g)
{
	free(g->daemon_id);
	free(g->device);
	free(g->cli_version);
	free(g->launched_by);
	cJSON_Delete(g->capabilities);
}

/* Runs the entries in order; not atomic, like the server: rows upserted
 * before a failing entry stay. */
static void reg_run(struct reg *g, const cJSON *doc, struct fp_reply *out)
{
	cJSON *list = fp_json_array();
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "runtimes")) {
		struct fp_runtime *r = reg_entry(g, e, out);
		if (r == NULL) {
			cJSON_Delete(list);
			return;
		}
		fp_json_append(list, fp_render_runtime(r));
	}
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "failed_profiles")) {
		if (reg_failed(g, e, out) < 0) {
			cJSON_Delete(list);
			return;
		}
	}
	cJSON *o = fp_json_object();
	fp_json_add(o, "runtimes", list);
	fp_json_add(o, "repos", fp_json_array());
	fp_json_add_str(o, "repos_version", FP_EMPTY_REPOS_VERSION);
	fp_json_add(o, "settings", cJSON_CreateNull());
	fp_reply_json(out, 200, o);
}

void fp_register_handle(struct fp_app *app, const struct fp_request *rq, const char *user,
			struct fp_reply *out)
{
	cJSON *doc = fp_in_parse(rq);
	if (doc == NULL || !register_shape_ok(doc)) {
		cJSON_Delete(doc);
		fp_reply_error(out, 400, "invalid request body");
		return;
	}
	struct reg g = {
		.app = app,
		.user = user,
		.daemon_id = fp_trimdup(fp_in_str(doc, "daemon_id")),
		.device = fp_trimdup(fp_in_str(doc, "device_name")),
		.cli_version = fp_xstrdup(fp_in_str(doc, "cli_version")),
		.launched_by = fp_xstrdup(fp_in_str(doc, "launched_by")),
		.capabilities = parse_capabilities(rq->capabilities),
		.now = fp_now_ms(),
	};
	if (reg_validate(&g, doc, out) == 0)
		reg_run(&g, doc, out);
	reg_release(&g);
	cJSON_Delete(doc);
}
