#include "tests/fakeplane/render.h"

#include <stdio.h>
#include <stdlib.h>

static void json_oom(void)
{
	fputs("multica-fakeplane: out of memory (json)\n", stderr);
	abort();
}

static cJSON *must(cJSON *j)
{
	if (j == NULL)
		json_oom();
	return j;
}

cJSON *fp_json_object(void) { return must(cJSON_CreateObject()); }
cJSON *fp_json_array(void) { return must(cJSON_CreateArray()); }

void fp_json_append(cJSON *array, cJSON *item)
{
	if (!cJSON_AddItemToArray(array, must(item)))
		json_oom();
}

void fp_json_add(cJSON *obj, const char *key, cJSON *item)
{
	if (!cJSON_AddItemToObject(obj, key, must(item)))
		json_oom();
}

void fp_json_add_str(cJSON *obj, const char *key, const char *value)
{
	fp_json_add(obj, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
}

void fp_json_add_time(cJSON *obj, const char *key, int64_t ms)
{
	char buf[FP_TIME_LEN];
	if (ms == 0) {
		fp_json_add(obj, key, cJSON_CreateNull());
		return;
	}
	fp_time_fmt(ms, buf);
	fp_json_add_str(obj, key, buf);
}

char *fp_json_print(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	if (s == NULL)
		json_oom();
	return s;
}

static cJSON *string_array(const struct fp_vec *v)
{
	cJSON *a = fp_json_array();
	for (size_t i = 0; i < v->len; i++)
		fp_json_append(a, cJSON_CreateString(v->items[i]));
	return a;
}

cJSON *fp_render_profile(const struct fp_profile *p)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "id", p->id);
	fp_json_add_str(o, "workspace_id", p->workspace_id);
	fp_json_add_str(o, "display_name", p->display_name);
	fp_json_add_str(o, "protocol_family", p->protocol_family);
	fp_json_add_str(o, "command_name", p->command_name);
	fp_json_add_str(o, "description", p->description);
	fp_json_add(o, "fixed_args", string_array(&p->fixed_args));
	fp_json_add_str(o, "visibility", p->visibility);
	fp_json_add(o, "enabled", cJSON_CreateBool(p->enabled));
	fp_json_add_str(o, "created_by", p->created_by);
	fp_json_add_time(o, "created_at", p->created_ms);
	fp_json_add_time(o, "updated_at", p->updated_ms);
	return o;
}

static cJSON *metadata_json(const char *text)
{
	cJSON *m = cJSON_Parse(text);
	return m != NULL ? m : fp_json_object();
}

cJSON *fp_render_runtime(const struct fp_runtime *r)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "id", r->id);
	fp_json_add_str(o, "workspace_id", r->workspace_id);
	fp_json_add_str(o, "daemon_id", r->daemon_id);
	fp_json_add_str(o, "name", r->name);
	fp_json_add_str(o, "custom_name", NULL);
	fp_json_add_str(o, "runtime_mode", "local");
	fp_json_add_str(o, "provider", r->provider);
	fp_json_add_str(o, "launch_header", "");
	fp_json_add_str(o, "status", r->online ? "online" : "offline");
	fp_json_add_str(o, "device_info", r->device_info);
	fp_json_add(o, "metadata", metadata_json(r->metadata));
	fp_json_add_str(o, "owner_id", r->owner_id);
	fp_json_add_str(o, "visibility", "private");
	fp_json_add_str(o, "profile_id", r->profile_id[0] ? r->profile_id : NULL);
	fp_json_add_time(o, "last_seen_at", r->last_seen_ms);
	fp_json_add_time(o, "created_at", r->created_ms);
	fp_json_add_time(o, "updated_at", r->updated_ms);
	return o;
}

cJSON *fp_render_workspace_brief(const struct fp_workspace *w)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "id", w->id);
	fp_json_add_str(o, "name", w->name);
	return o;
}

cJSON *fp_render_workspace_admin(const struct fp_workspace *w)
{
	cJSON *o = fp_render_workspace_brief(w);
	fp_json_add(o, "members", string_array(&w->members));
	return o;
}

cJSON *fp_render_runtime_admin(const struct fp_runtime *r)
{
	cJSON *o = fp_json_object();
	fp_json_add_str(o, "id", r->id);
	fp_json_add_str(o, "workspace_id", r->workspace_id);
	fp_json_add_str(o, "daemon_id", r->daemon_id);
	fp_json_add_str(o, "provider", r->provider);
	fp_json_add_str(o, "profile_id", r->profile_id[0] ? r->profile_id : NULL);
	fp_json_add_str(o, "name", r->name);
	fp_json_add_str(o, "status", r->online ? "online" : "offline");
	fp_json_add_time(o, "last_seen_at", r->last_seen_ms);
	fp_json_add_str(o, "device_info", r->device_info);
	fp_json_add_str(o, "owner_id", r->owner_id);
	fp_json_add(o, "metadata", metadata_json(r->metadata));
	fp_json_add_time(o, "created_at", r->created_ms);
	fp_json_add_time(o, "updated_at", r->updated_ms);
	return o;
}

cJSON *fp_render_state(struct fp_state *st)
{
	cJSON *o = fp_json_object();
	cJSON *a = fp_json_array();
	for (size_t i = 0; i < st->runtimes.len; i++)
		fp_json_append(a, fp_render_runtime_admin(st->runtimes.items[i]));
	fp_json_add(o, "runtimes", a);
	a = fp_json_array();
	for (size_t i = 0; i < st->profiles.len; i++)
		fp_json_append(a, fp_render_profile(st->profiles.items[i]));
	fp_json_add(o, "profiles", a);
	a = fp_json_array();
	for (size_t i = 0; i < st->tasks.len; i++)
		fp_json_append(a, fp_render_task(st->tasks.items[i]));
	fp_json_add(o, "tasks", a);
	a = fp_json_array();
	for (size_t i = 0; i < st->workspaces.len; i++)
		fp_json_append(a, fp_render_workspace_admin(st->workspaces.items[i]));
	fp_json_add(o, "workspaces", a);
	return o;
}
