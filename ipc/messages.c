#include "ipc/messages.h"
#include "ipc/msg_int.h"
#include "ipc/task_msgs.h"
#include "ipc/agentapi_msgs.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

/* ---- type tables ---- */

int mc_ipc_type_ok_for_worker(uint16_t type)
{
	switch (type) {
	case MC_IPC_CONFIG: case MC_IPC_TOKEN: case MC_IPC_PROBES:
	case MC_IPC_PING: case MC_IPC_STOP: case MC_IPC_TASK:
	case MC_IPC_PUSH_STATE: case MC_IPC_SYNC_NOW:
		return 1;
	default:
		return 0;
	}
}

int mc_ipc_type_ok_for_supervisor(uint16_t type)
{
	switch (type) {
	case MC_IPC_HELLO: case MC_IPC_PONG: case MC_IPC_REPORT:
	case MC_IPC_STOPPED: case MC_IPC_FATAL: case MC_IPC_TASK_STATE: case MC_IPC_TASKS_READY:
		return 1;
	default:
		return 0;
	}
}

int mc_ipc_type_ok_for_link(uint16_t type)
{
	switch (type) {
	case MC_IPC_CONFIG: case MC_IPC_TOKEN: case MC_IPC_PING: case MC_IPC_STOP:
	case MC_IPC_SLOTS: case MC_IPC_RUNTIMES: case MC_IPC_WAKE: case MC_IPC_TASK_FAIL:
		return 1;
	default:
		return 0;
	}
}

int mc_ipc_type_ok_from_link(uint16_t type)
{
	switch (type) {
	case MC_IPC_HELLO: case MC_IPC_PONG: case MC_IPC_STOPPED:
	case MC_IPC_SLOTS_REQ: case MC_IPC_TASK: case MC_IPC_CLAIM_DONE:
	case MC_IPC_PUSH: case MC_IPC_PUSH_STATE:
		return 1;
	default:
		return 0;
	}
}

uint32_t mc_ipc_type_max_payload(uint16_t type)
{
	if (type == MC_IPC_TASK)
		return MC_IPC_TASK_MAX;
	if (type == MC_IPC_AGENT_TASK)
		return MC_IPC_AGENT_TASK_MAX; /* repos: ipc/agentapi_msgs.h */
	return MC_IPC_MAX_PAYLOAD;
}

const char *mc_ipc_type_name(uint16_t type)
{
	static const char *const names[] = {
		[MC_IPC_HELLO] = "HELLO", [MC_IPC_CONFIG] = "CONFIG",
		[MC_IPC_TOKEN] = "TOKEN", [MC_IPC_PROBES] = "PROBES",
		[MC_IPC_PING] = "PING", [MC_IPC_PONG] = "PONG",
		[MC_IPC_REPORT] = "REPORT", [MC_IPC_STOP] = "STOP",
		[MC_IPC_STOPPED] = "STOPPED", [MC_IPC_FATAL] = "FATAL",
		[MC_IPC_SLOTS_REQ] = "SLOTS_REQ", [MC_IPC_SLOTS] = "SLOTS",
		[MC_IPC_TASK] = "TASK", [MC_IPC_CLAIM_DONE] = "CLAIM_DONE",
		[MC_IPC_RUNTIMES] = "RUNTIMES", [MC_IPC_WAKE] = "WAKE",
		[MC_IPC_TASK_FAIL] = "TASK_FAIL", [MC_IPC_TASK_STATE] = "TASK_STATE",
		[MC_IPC_AGENT_TASK] = "AGENT_TASK", [MC_IPC_AGENT_STATUS] = "AGENT_STATUS",
		[MC_IPC_TASKS_READY] = "TASKS_READY", [MC_IPC_PUSH] = "PUSH",
		[MC_IPC_PUSH_STATE] = "PUSH_STATE", [MC_IPC_SYNC_NOW] = "SYNC_NOW",
	};
	if (type < sizeof names / sizeof names[0] && names[type] != NULL)
		return names[type];
	return "UNKNOWN";
}

bool mc_is_uuid(const char *s)
{
	static const int dash_at[] = { 8, 13, 18, 23 };
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0, d = 0; i < 36; i++) {
		if (d < 4 && i == dash_at[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/* ---- helpers ---- */

int mc_ipc_fail(char *err, size_t err_size, const char *fmt, ...)
{
	if (err != NULL && err_size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	errno = EPROTO;
	return -1;
}

/* Sends a cJSON object as one frame and frees it. */
int mc_ipc_send_json(struct mc_ipc_writer *w, uint16_t type, cJSON *obj)
{
	if (obj == NULL) {
		errno = ENOMEM;
		return -1;
	}
	char *text = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (text == NULL) {
		errno = ENOMEM;
		return -1;
	}
	size_t len = strlen(text);
	int rc = -1;
	if (len > mc_ipc_type_max_payload(type))
		errno = EMSGSIZE;
	else
		rc = mc_ipc_writer_queue(w, type, text, (uint32_t)len);
	free(text);
	return rc;
}

/* Parses a frame's payload as a JSON object; the caller deletes it. */
cJSON *mc_ipc_parse_object(const struct mc_ipc_frame *f, char *err, size_t err_size)
{
	if (f->len == 0) {
		mc_ipc_fail(err, err_size, "%s: empty payload", mc_ipc_type_name(f->type));
		return NULL;
	}
	cJSON *obj = cJSON_ParseWithLength((const char *)f->payload, f->len);
	if (obj == NULL || !cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		mc_ipc_fail(err, err_size, "%s: payload is not a JSON object", mc_ipc_type_name(f->type));
		return NULL;
	}
	return obj;
}

/* Copies a required string field that fits dst and holds no control bytes. */
int mc_ipc_get_str(const cJSON *obj, const char *key, char *dst, size_t dst_size,
		   bool allow_empty, char *err, size_t err_size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return mc_ipc_fail(err, err_size, "%s: missing or not a string", key);
	size_t len = strlen(v->valuestring);
	if (len >= dst_size)
		return mc_ipc_fail(err, err_size, "%s: longer than %zu bytes", key, dst_size - 1);
	if (!allow_empty && len == 0)
		return mc_ipc_fail(err, err_size, "%s: empty", key);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v->valuestring[i] < 0x20)
			return mc_ipc_fail(err, err_size, "%s: control character", key);
	strlcpy(dst, v->valuestring, dst_size);
	return 0;
}

int mc_ipc_get_long(const cJSON *obj, const char *key, long min, long max, long *out,
		    char *err, size_t err_size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsNumber(v))
		return mc_ipc_fail(err, err_size, "%s: missing or not a number", key);
	/* The range is checked on the double: casting one outside the range
	 * of the integer type is undefined. (double)max + 1.0 is exact for
	 * LONG_MAX (2^63) and every small bound; !(a && b) also catches NaN. */
	double d = v->valuedouble;
	if (d < 0 && min >= 0)
		return mc_ipc_fail(err, err_size, "%s: negative", key);
	if (!(d >= (double)min && d < (double)max + 1.0))
		return mc_ipc_fail(err, err_size, "%s: out of range [%ld, %ld]", key, min, max);
	long l = (long)d;
	if ((double)l != d)
		return mc_ipc_fail(err, err_size, "%s: not an integer", key);
	if (l > max)
		return mc_ipc_fail(err, err_size, "%s: out of range [%ld, %ld]", key, min, max);
	*out = l;
	return 0;
}

/* ---- HELLO ---- */

int mc_ipc_send_hello(struct mc_ipc_writer *w, int pid)
{
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && (!cJSON_AddNumberToObject(o, "proto", MC_IPC_PROTO_VERSION) ||
			  !cJSON_AddNumberToObject(o, "pid", pid))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_HELLO, o);
}

int mc_ipc_parse_hello(const struct mc_ipc_frame *f, int *proto, int *pid,
		       char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	long p, id;
	int rc = -1;
	if (mc_ipc_get_long(o, "proto", 0, INT_MAX, &p, err, err_size) == 0 &&
	    mc_ipc_get_long(o, "pid", 1, INT_MAX, &id, err, err_size) == 0) {
		*proto = (int)p;
		*pid = (int)id;
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

/* ---- CONFIG ---- */

void mc_worker_config_clear(struct mc_worker_config *c)
{
	free(c->overrides);
	memset(c, 0, sizeof *c);
}

static cJSON *config_to_json(const struct mc_worker_config *c)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	cJSON *ov = cJSON_AddObjectToObject(o, "profile_commands");
	int ok = ov != NULL &&
		cJSON_AddNumberToObject(o, "proto", MC_IPC_PROTO_VERSION) &&
		cJSON_AddStringToObject(o, "workspace_id", c->workspace_id) &&
		cJSON_AddStringToObject(o, "server_url", c->server_url) &&
		cJSON_AddStringToObject(o, "daemon_id", c->daemon_id) &&
		cJSON_AddStringToObject(o, "device_name", c->device_name) &&
		cJSON_AddStringToObject(o, "cli_version", c->cli_version) &&
		cJSON_AddStringToObject(o, "log_level", c->log_level) &&
		cJSON_AddNumberToObject(o, "heartbeat_interval_ms", (double)c->heartbeat_interval_ms) &&
		cJSON_AddNumberToObject(o, "profile_sync_interval_ms", (double)c->profile_sync_interval_ms) &&
		cJSON_AddNumberToObject(o, "http_timeout_ms", (double)c->http_timeout_ms) &&
		cJSON_AddNumberToObject(o, "probe_timeout_ms", (double)c->probe_timeout_ms) &&
		cJSON_AddStringToObject(o, "test_fault", c->test_fault) &&
		cJSON_AddStringToObject(o, "ca_file", c->ca_file) &&
		cJSON_AddNumberToObject(o, "task_poll_interval_ms", (double)c->task_poll_interval_ms) &&
		cJSON_AddNumberToObject(o, "max_concurrent_tasks", c->max_concurrent_tasks) &&
		cJSON_AddStringToObject(o, "workspaces_root", c->workspaces_root) &&
		cJSON_AddStringToObject(o, "state_dir", c->state_dir) &&
		cJSON_AddNumberToObject(o, "task_idle_timeout_ms", (double)c->task_idle_timeout_ms) &&
		cJSON_AddNumberToObject(o, "task_stop_grace_ms", (double)c->task_stop_grace_ms) &&
		cJSON_AddNumberToObject(o, "task_retention_ms", (double)c->task_retention_ms) &&
		cJSON_AddNumberToObject(o, "stop_timeout_ms", (double)c->stop_timeout_ms) &&
		cJSON_AddNumberToObject(o, "agent_api_port", c->agent_api_port) &&
		mc_ipc_config_agent_add(o, c);
	for (size_t i = 0; ok && i < c->n_overrides; i++)
		ok = cJSON_AddStringToObject(ov, c->overrides[i].profile_id,
					     c->overrides[i].path) != NULL;
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* What cJSON prints for s: quotes, two-byte escapes, \u00XX for the other
 * control bytes. */
static size_t json_string_size(const char *s)
{
	size_t n = 2;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
		    c == '\t')
			n += 2;
		else if (c < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

size_t mc_ipc_overrides_json_size(const struct mc_profile_override *v, size_t n)
{
	size_t total = 2 + (n > 0 ? n - 1 : 0); /* braces, commas */
	for (size_t i = 0; i < n; i++)
		total += json_string_size(v[i].profile_id) + 1 + json_string_size(v[i].path);
	return total;
}

static bool has_ctl(const char *s, size_t size)
{
	for (size_t i = 0; i < size && s[i]; i++)
		if ((unsigned char)s[i] < 0x20)
			return true;
	return false;
}

/* A string field the worker's parser would refuse (control bytes) is never
 * sent; that also bounds what each field prints to (see messages.h). */
static bool config_strings_ok(const struct mc_worker_config *c)
{
#define OK(f) (!has_ctl(c->f, sizeof c->f))
	return OK(workspace_id) && OK(server_url) && OK(daemon_id) && OK(device_name) &&
	       OK(cli_version) && OK(log_level) && OK(test_fault) && OK(ca_file) &&
	       OK(workspaces_root) && OK(state_dir) && mc_ipc_config_agent_ok(c);
#undef OK
}

int mc_ipc_send_config(struct mc_ipc_writer *w, const struct mc_worker_config *c)
{
	if (c->n_overrides > MC_MAX_OVERRIDES || !config_strings_ok(c) ||
	    mc_ipc_overrides_json_size(c->overrides, c->n_overrides) > MC_IPC_OVERRIDES_JSON_MAX) {
		errno = EINVAL;
		return -1;
	}
	return mc_ipc_send_json(w, MC_IPC_CONFIG, config_to_json(c));
}

static int parse_overrides(const cJSON *o, struct mc_worker_config *c, char *err, size_t err_size)
{
	const cJSON *ov = cJSON_GetObjectItemCaseSensitive(o, "profile_commands");
	if (!cJSON_IsObject(ov))
		return mc_ipc_fail(err, err_size, "profile_commands: missing or not an object");
	size_t n = (size_t)cJSON_GetArraySize(ov);
	if (n > MC_MAX_OVERRIDES)
		return mc_ipc_fail(err, err_size, "profile_commands: more than %d entries", MC_MAX_OVERRIDES);
	if (n == 0)
		return 0;
	c->overrides = calloc(n, sizeof *c->overrides);
	if (c->overrides == NULL)
		return -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, ov) {
		struct mc_profile_override *po = &c->overrides[c->n_overrides];
		if (!mc_is_uuid(e->string))
			return mc_ipc_fail(err, err_size, "profile_commands: key is not a profile UUID");
		if (mc_ipc_get_str(ov, e->string, po->path, sizeof po->path, false, err, err_size) < 0)
			return -1;
		if (po->path[0] != '/')
			return mc_ipc_fail(err, err_size, "profile_commands.%s: not an absolute path", e->string);
		strlcpy(po->profile_id, e->string, sizeof po->profile_id);
		c->n_overrides++;
	}
	return 0;
}

/* The task fields: durations up to 400 days (task_retention may be weeks).
 * Optional, and 0 / "" mean "not given": a peer that runs no tasks (a test
 * harness) sends none, and the executor refuses tasks it has no settings
 * for. */
#define TASK_MS_MAX (400L * 86400000L)

/* An optional field: absent is 0 / "". */
static int opt_long(const cJSON *o, const char *key, long max, long *out, char *err,
		    size_t err_size)
{
	*out = 0;
	if (cJSON_GetObjectItemCaseSensitive(o, key) == NULL)
		return 0;
	return mc_ipc_get_long(o, key, 0, max, out, err, err_size);
}

int mc_ipc_get_opt_path(const cJSON *o, const char *key, char *dst, size_t size, char *err,
			size_t err_size)
{
	dst[0] = '\0';
	if (cJSON_GetObjectItemCaseSensitive(o, key) == NULL)
		return 0;
	if (mc_ipc_get_str(o, key, dst, size, true, err, err_size) < 0)
		return -1;
	if (dst[0] && dst[0] != '/')
		return mc_ipc_fail(err, err_size, "%s: not an absolute path", key);
	return 0;
}

static int parse_task_fields(const cJSON *o, struct mc_worker_config *c, char *err,
			     size_t err_size)
{
	long slots, port;
	if (opt_long(o, "task_poll_interval_ms", 86400000L, &c->task_poll_interval_ms, err, err_size) ||
	    opt_long(o, "max_concurrent_tasks", 1000, &slots, err, err_size) ||
	    opt_long(o, "task_idle_timeout_ms", TASK_MS_MAX, &c->task_idle_timeout_ms, err, err_size) ||
	    opt_long(o, "task_stop_grace_ms", TASK_MS_MAX, &c->task_stop_grace_ms, err, err_size) ||
	    opt_long(o, "task_retention_ms", TASK_MS_MAX, &c->task_retention_ms, err, err_size) ||
	    opt_long(o, "stop_timeout_ms", 86400000L, &c->stop_timeout_ms, err, err_size) ||
	    opt_long(o, "agent_api_port", 65535, &port, err, err_size) ||
	    mc_ipc_get_opt_path(o, "workspaces_root", c->workspaces_root,
				sizeof c->workspaces_root, err, err_size) ||
	    mc_ipc_get_opt_path(o, "state_dir", c->state_dir, sizeof c->state_dir, err,
				err_size))
		return -1;
	c->max_concurrent_tasks = (int)slots;
	c->agent_api_port = (int)port;
	return 0;
}

static int parse_config_fields(const cJSON *o, struct mc_worker_config *c, char *err, size_t err_size)
{
	long proto;
	if (mc_ipc_get_long(o, "proto", 0, INT_MAX, &proto, err, err_size) < 0)
		return -1;
	if (proto != MC_IPC_PROTO_VERSION)
		return mc_ipc_fail(err, err_size, "proto: version %ld, this worker speaks %d",
			    proto, MC_IPC_PROTO_VERSION);
	if (mc_ipc_get_str(o, "workspace_id", c->workspace_id, sizeof c->workspace_id, true, err, err_size) ||
	    mc_ipc_get_str(o, "server_url", c->server_url, sizeof c->server_url, false, err, err_size) ||
	    mc_ipc_get_str(o, "daemon_id", c->daemon_id, sizeof c->daemon_id, false, err, err_size) ||
	    mc_ipc_get_str(o, "device_name", c->device_name, sizeof c->device_name, true, err, err_size) ||
	    mc_ipc_get_str(o, "cli_version", c->cli_version, sizeof c->cli_version, false, err, err_size) ||
	    mc_ipc_get_str(o, "log_level", c->log_level, sizeof c->log_level, false, err, err_size) ||
	    mc_ipc_get_str(o, "test_fault", c->test_fault, sizeof c->test_fault, true, err, err_size) ||
	    mc_ipc_get_str(o, "ca_file", c->ca_file, sizeof c->ca_file, true, err, err_size))
		return -1;
	if (c->ca_file[0] && c->ca_file[0] != '/')
		return mc_ipc_fail(err, err_size, "ca_file: not an absolute path");
	/* "" names the link (one per host, no workspace of its own). */
	if (c->workspace_id[0] != '\0' && !mc_is_uuid(c->workspace_id))
		return mc_ipc_fail(err, err_size, "workspace_id: not a UUID");
	if (parse_task_fields(o, c, err, err_size) < 0 ||
	    mc_ipc_config_agent_get(o, c, err, err_size) < 0)
		return -1;
	/* Intervals: 1 ms .. 1 day; tests use tens of ms. */
	if (mc_ipc_get_long(o, "heartbeat_interval_ms", 1, 86400000L, &c->heartbeat_interval_ms, err, err_size) ||
	    mc_ipc_get_long(o, "profile_sync_interval_ms", 1, 86400000L, &c->profile_sync_interval_ms, err, err_size) ||
	    mc_ipc_get_long(o, "http_timeout_ms", 1, 3600000L, &c->http_timeout_ms, err, err_size) ||
	    mc_ipc_get_long(o, "probe_timeout_ms", 1, 3600000L, &c->probe_timeout_ms, err, err_size))
		return -1;
	return parse_overrides(o, c, err, err_size);
}

int mc_ipc_parse_config(const struct mc_ipc_frame *f, struct mc_worker_config *c,
			char *err, size_t err_size)
{
	memset(c, 0, sizeof *c);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = parse_config_fields(o, c, err, err_size);
	cJSON_Delete(o);
	if (rc < 0) {
		int e = errno;
		mc_worker_config_clear(c);
		errno = e;
	}
	return rc;
}

/* ---- TOKEN ---- */

int mc_ipc_send_token(struct mc_ipc_writer *w, const char *token, size_t len)
{
	if (len == 0 || len > 4096) {
		errno = EINVAL;
		return -1;
	}
	return mc_ipc_writer_queue(w, MC_IPC_TOKEN, token, (uint32_t)len);
}

/* ---- PROBES ---- */

/* One text field of a built-in: terminated within its array, non-empty,
 * no control bytes (what get_str accepts, so both sides agree). */
static int check_text(const char *s, size_t size, size_t i, const char *field,
		      char *err, size_t err_size)
{
	size_t len = strnlen(s, size);
	if (len == size)
		return mc_ipc_fail(err, err_size, "builtins[%zu].%s: longer than %zu bytes", i, field,
			    size - 1);
	if (len == 0)
		return mc_ipc_fail(err, err_size, "builtins[%zu].%s: empty", i, field);
	for (size_t k = 0; k < len; k++)
		if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
			return mc_ipc_fail(err, err_size, "builtins[%zu].%s: control character", i, field);
	return 0;
}

bool mc_ipc_builtin_path_ok(const char *path)
{
	size_t len = strnlen(path, MC_PATH_MAX);
	if (len == 0)
		return true;
	if (len > MC_BUILTIN_PATH_MAX || path[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f || path[i] == '"' ||
		    path[i] == '\\')
			return false;
	return true;
}

int mc_ipc_probes_check(const struct mc_probes *p, char *err, size_t err_size)
{
	if (p->n > MC_MAX_BUILTINS)
		return mc_ipc_fail(err, err_size, "builtins: more than %d entries", MC_MAX_BUILTINS);
	for (size_t i = 0; i < p->n; i++) {
		const struct mc_builtin *b = &p->v[i];
		if (check_text(b->provider, sizeof b->provider, i, "provider", err, err_size) < 0)
			return -1;
		for (const char *c = b->provider; *c; c++)
			if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) ||
			      *c == '-' || *c == '_'))
				return mc_ipc_fail(err, err_size, "builtins[%zu].provider: not a provider key",
					    i);
		if (check_text(b->name, sizeof b->name, i, "name", err, err_size) ||
		    check_text(b->version, sizeof b->version, i, "version", err, err_size))
			return -1;
		if (!mc_ipc_builtin_path_ok(b->path))
			return mc_ipc_fail(err, err_size, "builtins[%zu].path: not an absolute path "
					   "without control bytes, quotes or backslashes", i);
		for (size_t k = 0; k < i; k++)
			if (strcmp(p->v[k].provider, b->provider) == 0)
				return mc_ipc_fail(err, err_size, "builtins: provider %s twice", b->provider);
	}
	return 0;
}

int mc_ipc_send_probes(struct mc_ipc_writer *w, const struct mc_probes *p)
{
	if (mc_ipc_probes_check(p, NULL, 0) < 0) {
		errno = EINVAL; /* a set the worker would refuse is never sent */
		return -1;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = o ? cJSON_AddArrayToObject(o, "builtins") : NULL;
	int ok = arr != NULL;
	for (size_t i = 0; ok && i < p->n; i++) {
		cJSON *b = cJSON_CreateObject();
		ok = b != NULL && cJSON_AddItemToArray(arr, b) &&
		     cJSON_AddStringToObject(b, "provider", p->v[i].provider) &&
		     cJSON_AddStringToObject(b, "name", p->v[i].name) &&
		     cJSON_AddStringToObject(b, "version", p->v[i].version) &&
		     cJSON_AddStringToObject(b, "path", p->v[i].path);
	}
	if (!ok) {
		cJSON_Delete(o);
		errno = ENOMEM;
		return -1;
	}
	return mc_ipc_send_json(w, MC_IPC_PROBES, o);
}

/* Copies the fields; what they may hold is mc_ipc_probes_check's to say. */
static int parse_builtin(const cJSON *b, struct mc_builtin *out, char *err, size_t err_size)
{
	if (!cJSON_IsObject(b))
		return mc_ipc_fail(err, err_size, "builtins[]: not an object");
	if (mc_ipc_get_str(b, "provider", out->provider, sizeof out->provider, true, err, err_size) ||
	    mc_ipc_get_str(b, "name", out->name, sizeof out->name, true, err, err_size) ||
	    mc_ipc_get_str(b, "version", out->version, sizeof out->version, true, err, err_size))
		return -1;
	/* path: absent from a peer that launches nothing (a test harness) */
	if (cJSON_GetObjectItemCaseSensitive(b, "path") != NULL &&
	    mc_ipc_get_str(b, "path", out->path, sizeof out->path, true, err, err_size) < 0)
		return -1;
	return 0;
}

int mc_ipc_parse_probes(const struct mc_ipc_frame *f, struct mc_probes *p,
			char *err, size_t err_size)
{
	memset(p, 0, sizeof *p);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = 0;
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "builtins");
	if (!cJSON_IsArray(arr)) {
		rc = mc_ipc_fail(err, err_size, "builtins: missing or not an array");
	} else if (cJSON_GetArraySize(arr) > MC_MAX_BUILTINS) {
		rc = mc_ipc_fail(err, err_size, "builtins: more than %d entries", MC_MAX_BUILTINS);
	} else {
		const cJSON *b;
		cJSON_ArrayForEach(b, arr) {
			if ((rc = parse_builtin(b, &p->v[p->n], err, err_size)) < 0)
				break;
			p->n++;
		}
		if (rc == 0)
			rc = mc_ipc_probes_check(p, err, err_size);
	}
	cJSON_Delete(o);
	return rc;
}

/* ---- PING / PONG ---- */

/* The largest seq on the wire. cJSON prints a number with 15 significant
 * digits whenever that reads back within a relative epsilon, so a larger
 * integer does not survive the trip exactly and the PONG would echo another
 * seq than the PING's (found by fuzz_ipc: 6744073705564119 came back as
 * 6744073705564120, 19999999999999998 as 2e16). */
#define SEQ_MAX 999999999999999L

static int send_seq(struct mc_ipc_writer *w, uint16_t type, uint64_t seq)
{
	cJSON *o = cJSON_CreateObject();
	/* seq wraps below SEQ_MAX + 1 so that the JSON number is exact. */
	if (o != NULL && !cJSON_AddNumberToObject(o, "seq", (double)(seq % (SEQ_MAX + 1)))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, type, o);
}

int mc_ipc_send_ping(struct mc_ipc_writer *w, uint64_t seq) { return send_seq(w, MC_IPC_PING, seq); }
int mc_ipc_send_pong(struct mc_ipc_writer *w, uint64_t seq) { return send_seq(w, MC_IPC_PONG, seq); }

int mc_ipc_parse_seq(const struct mc_ipc_frame *f, uint64_t *seq, char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	long v;
	int rc = mc_ipc_get_long(o, "seq", 0, SEQ_MAX, &v, err, err_size);
	if (rc == 0)
		*seq = (uint64_t)v;
	cJSON_Delete(o);
	return rc;
}

/* ---- REPORT ---- */

void mc_report_clear(struct mc_report *r)
{
	free(r->ids);
	r->ids = NULL;
	r->n = 0;
}

int mc_report_set(struct mc_report *r, size_t n, const char *const *ids)
{
	memset(r, 0, sizeof *r);
	if (n > MC_MAX_REPORT) {
		errno = EINVAL;
		return -1;
	}
	if (n == 0)
		return 0;
	r->ids = calloc(n, sizeof *r->ids);
	if (r->ids == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		strlcpy(r->ids[i], ids[i], MC_ID_MAX);
	r->n = n;
	return 0;
}

int mc_ipc_send_report(struct mc_ipc_writer *w, size_t n, const char *const *ids)
{
	if (n > MC_MAX_REPORT) {
		errno = EINVAL;
		return -1;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = o ? cJSON_AddArrayToObject(o, "runtime_ids") : NULL;
	int ok = arr != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = cJSON_AddItemToArray(arr, cJSON_CreateString(ids[i]));
	if (!ok) {
		cJSON_Delete(o);
		errno = ENOMEM;
		return -1;
	}
	return mc_ipc_send_json(w, MC_IPC_REPORT, o);
}

int mc_ipc_parse_report(const struct mc_ipc_frame *f, struct mc_report *r,
			char *err, size_t err_size)
{
	memset(r, 0, sizeof *r);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = 0;
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "runtime_ids");
	size_t n = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0;
	if (!cJSON_IsArray(arr))
		rc = mc_ipc_fail(err, err_size, "runtime_ids: missing or not an array");
	else if (n > MC_MAX_REPORT)
		rc = mc_ipc_fail(err, err_size, "runtime_ids: more than %d entries", MC_MAX_REPORT);
	else if (n > 0 && (r->ids = calloc(n, sizeof *r->ids)) == NULL)
		rc = -1;
	const cJSON *e;
	if (rc == 0) {
		cJSON_ArrayForEach(e, arr) {
			if (!cJSON_IsString(e) || !mc_is_uuid(e->valuestring)) {
				rc = mc_ipc_fail(err, err_size, "runtime_ids[%zu]: not a UUID", r->n);
				break;
			}
			strlcpy(r->ids[r->n++], e->valuestring, MC_ID_MAX);
		}
	}
	cJSON_Delete(o);
	if (rc < 0) {
		int saved = errno;
		mc_report_clear(r);
		errno = saved;
	}
	return rc;
}

/* ---- STOP / STOPPED / FATAL ---- */

int mc_ipc_send_stop(struct mc_ipc_writer *w)
{
	return mc_ipc_send_json(w, MC_IPC_STOP, cJSON_CreateObject());
}

int mc_ipc_send_tasks_ready(struct mc_ipc_writer *w)
{
	return mc_ipc_send_json(w, MC_IPC_TASKS_READY, cJSON_CreateObject());
}

int mc_ipc_parse_empty(const struct mc_ipc_frame *f, char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = cJSON_GetArraySize(o) == 0 ? 0
		: mc_ipc_fail(err, err_size, "%s: unexpected fields", mc_ipc_type_name(f->type));
	cJSON_Delete(o);
	return rc;
}

int mc_ipc_send_stopped(struct mc_ipc_writer *w, bool deregistered)
{
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && !cJSON_AddBoolToObject(o, "deregistered", deregistered)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_STOPPED, o);
}

int mc_ipc_parse_stopped(const struct mc_ipc_frame *f, bool *deregistered,
			 char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "deregistered");
	int rc = 0;
	if (!cJSON_IsBool(v))
		rc = mc_ipc_fail(err, err_size, "deregistered: missing or not a bool");
	else
		*deregistered = cJSON_IsTrue(v);
	cJSON_Delete(o);
	return rc;
}

int mc_ipc_send_reason(struct mc_ipc_writer *w, uint16_t type, const char *reason)
{
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && !cJSON_AddStringToObject(o, "reason", reason)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, type, o);
}

int mc_ipc_parse_reason(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
			char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = mc_ipc_get_str(o, "reason", reason, reason_size, false, err, err_size);
	cJSON_Delete(o);
	return rc;
}

int mc_ipc_send_fatal(struct mc_ipc_writer *w, const char *reason)
{
	return mc_ipc_send_reason(w, MC_IPC_FATAL, reason);
}

int mc_ipc_parse_fatal(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
		       char *err, size_t err_size)
{
	return mc_ipc_parse_reason(f, reason, reason_size, err, err_size);
}
