/* AGENT_TASK and AGENT_STATUS (agentapi_msgs.h), and the repos list that
 * TASK_STATE shares with AGENT_TASK (msg_int.h). */
#include "ipc/agentapi_msgs.h"
#include "ipc/msg_int.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

int mc_ipc_type_ok_for_agentapi(uint16_t type)
{
	switch (type) {
	case MC_IPC_CONFIG: case MC_IPC_TOKEN: case MC_IPC_PING: case MC_IPC_STOP:
	case MC_IPC_AGENT_TASK:
		return 1;
	default:
		return 0;
	}
}

int mc_ipc_type_ok_from_agentapi(uint16_t type)
{
	switch (type) {
	case MC_IPC_HELLO: case MC_IPC_PONG: case MC_IPC_STOPPED: case MC_IPC_AGENT_STATUS:
		return 1;
	default:
		return 0;
	}
}

bool mc_ipc_is_token_hash(const char *s)
{
	if (s == NULL || strlen(s) != MC_TOKEN_HASH_HEX - 1)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

/* ---- repos ---- */

static bool clean(const char *s, size_t size, bool allow_empty)
{
	size_t n = strnlen(s, size);
	if (n >= size || (n == 0 && !allow_empty))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return false;
	return true;
}

bool mc_ipc_repos_ok(size_t n, const struct mc_task_repo *v)
{
	if (n > MC_TASK_REPOS_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!clean(v[i].url, sizeof v[i].url, false) || !clean(v[i].ref, sizeof v[i].ref, true))
			return false;
	return true;
}

bool mc_ipc_repos_add(cJSON *o, size_t n, const struct mc_task_repo *v)
{
	if (!mc_ipc_repos_ok(n, v))
		return false;
	cJSON *a = cJSON_AddArrayToObject(o, "repos");
	if (a == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		if (e == NULL || !cJSON_AddItemToArray(a, e) ||
		    !cJSON_AddStringToObject(e, "url", v[i].url) ||
		    !cJSON_AddStringToObject(e, "ref", v[i].ref))
			return false; /* e, once added, goes with o */
	}
	return true;
}

int mc_ipc_repos_get(const cJSON *o, size_t *n, struct mc_task_repo *v, char *err,
		     size_t err_size)
{
	*n = 0;
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "repos");
	if (a == NULL || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return mc_ipc_fail(err, err_size, "repos: not an array");
	if (cJSON_GetArraySize(a) > MC_TASK_REPOS_MAX)
		return mc_ipc_fail(err, err_size, "repos: more than %d entries", MC_TASK_REPOS_MAX);
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		struct mc_task_repo *r = &v[*n];
		if (!cJSON_IsObject(e))
			return mc_ipc_fail(err, err_size, "repos[%zu]: not an object", *n);
		if (mc_ipc_get_str(e, "url", r->url, sizeof r->url, false, err, err_size) < 0 ||
		    mc_ipc_get_str(e, "ref", r->ref, sizeof r->ref, true, err, err_size) < 0)
			return -1;
		(*n)++;
	}
	return 0;
}

/* ---- AGENT_TASK ---- */

static bool id_ok(long v)
{
	return v >= 1 && v <= MC_AGENT_ID_MAX;
}

/* Never root: a uid or gid 0 would give the agents' git the daemon's
 * powers and more. */
static bool identity_ok(const struct mc_agent_task *t)
{
	return !t->agent_switch || (id_ok(t->agent_uid) && id_ok(t->agent_gid) &&
				    (t->agent_extra_gid == -1 || id_ok(t->agent_extra_gid)));
}

static bool agent_task_ok(const struct mc_agent_task *t)
{
	if (!mc_is_uuid(t->task_id))
		return false;
	if (t->event == MC_AGENT_ENDED)
		return true;
	return t->event == MC_AGENT_RUNNING && mc_is_uuid(t->workspace_id) &&
	       mc_is_uuid(t->agent_id) && clean(t->agent_name, sizeof t->agent_name, true) &&
	       clean(t->work_dir, sizeof t->work_dir, false) && t->work_dir[0] == '/' &&
	       mc_ipc_is_token_hash(t->token_hash) && mc_ipc_repos_ok(t->n_repos, t->repos) &&
	       identity_ok(t);
}

static bool add_identity(cJSON *o, const struct mc_agent_task *t)
{
	bool sw = t->event == MC_AGENT_RUNNING && t->agent_switch;
	return cJSON_AddBoolToObject(o, "agent_switch", sw) &&
	       cJSON_AddNumberToObject(o, "agent_uid", sw ? (double)t->agent_uid : -1) &&
	       cJSON_AddNumberToObject(o, "agent_gid", sw ? (double)t->agent_gid : -1) &&
	       cJSON_AddNumberToObject(o, "agent_extra_gid", sw ? (double)t->agent_extra_gid : -1);
}

int mc_ipc_send_agent_task(struct mc_ipc_writer *w, const struct mc_agent_task *t)
{
	if (!agent_task_ok(t)) {
		errno = EINVAL;
		return -1;
	}
	bool run = t->event == MC_AGENT_RUNNING;
	cJSON *o = cJSON_CreateObject();
	if (o != NULL &&
	    (!cJSON_AddStringToObject(o, "event", run ? "running" : "ended") ||
	     !cJSON_AddStringToObject(o, "task_id", t->task_id) ||
	     !cJSON_AddStringToObject(o, "workspace_id", run ? t->workspace_id : "") ||
	     !cJSON_AddStringToObject(o, "agent_id", run ? t->agent_id : "") ||
	     !cJSON_AddStringToObject(o, "agent_name", run ? t->agent_name : "") ||
	     !cJSON_AddStringToObject(o, "work_dir", run ? t->work_dir : "") ||
	     !cJSON_AddStringToObject(o, "token_hash", run ? t->token_hash : "") ||
	     !mc_ipc_repos_add(o, run ? t->n_repos : 0, t->repos) || !add_identity(o, t))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_AGENT_TASK, o);
}

/* An optional string: absent or null is "". */
static int opt_str(const cJSON *o, const char *key, char *dst, size_t size, char *err,
		   size_t err_size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (v == NULL || cJSON_IsNull(v)) {
		dst[0] = '\0';
		return 0;
	}
	return mc_ipc_get_str(o, key, dst, size, true, err, err_size);
}

/* agent_switch absent or false: the daemon's user, the ids -1. */
static int identity_fields(const cJSON *o, struct mc_agent_task *t, char *err, size_t err_size)
{
	t->agent_uid = t->agent_gid = t->agent_extra_gid = -1;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "agent_switch");
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return mc_ipc_fail(err, err_size, "agent_switch: not a bool");
	if (!cJSON_IsTrue(v))
		return 0;
	t->agent_switch = true;
	if (mc_ipc_get_long(o, "agent_uid", 1, MC_AGENT_ID_MAX, &t->agent_uid, err, err_size) ||
	    mc_ipc_get_long(o, "agent_gid", 1, MC_AGENT_ID_MAX, &t->agent_gid, err, err_size) ||
	    mc_ipc_get_long(o, "agent_extra_gid", -1, MC_AGENT_ID_MAX, &t->agent_extra_gid, err,
			    err_size))
		return -1;
	if (t->agent_extra_gid == 0)
		return mc_ipc_fail(err, err_size, "agent_extra_gid: 0 (root's group)");
	return 0;
}

static int running_fields(const cJSON *o, struct mc_agent_task *t, char *err, size_t err_size)
{
	if (mc_ipc_get_str(o, "workspace_id", t->workspace_id, sizeof t->workspace_id, false, err,
			   err_size) ||
	    mc_ipc_get_str(o, "agent_id", t->agent_id, sizeof t->agent_id, false, err, err_size) ||
	    mc_ipc_get_str(o, "agent_name", t->agent_name, sizeof t->agent_name, true, err,
			   err_size) ||
	    mc_ipc_get_str(o, "work_dir", t->work_dir, sizeof t->work_dir, false, err, err_size) ||
	    mc_ipc_get_str(o, "token_hash", t->token_hash, sizeof t->token_hash, false, err,
			   err_size) ||
	    mc_ipc_repos_get(o, &t->n_repos, t->repos, err, err_size) ||
	    identity_fields(o, t, err, err_size))
		return -1;
	if (!mc_is_uuid(t->workspace_id))
		return mc_ipc_fail(err, err_size, "workspace_id: not a UUID");
	if (!mc_is_uuid(t->agent_id))
		return mc_ipc_fail(err, err_size, "agent_id: not a UUID");
	if (t->work_dir[0] != '/')
		return mc_ipc_fail(err, err_size, "work_dir: not absolute");
	if (!mc_ipc_is_token_hash(t->token_hash))
		return mc_ipc_fail(err, err_size, "token_hash: not 64 lowercase hex digits");
	return 0;
}

static int agent_task_fields(const cJSON *o, struct mc_agent_task *t, char *err, size_t err_size)
{
	char ev[16];
	if (mc_ipc_get_str(o, "event", ev, sizeof ev, false, err, err_size) ||
	    mc_ipc_get_str(o, "task_id", t->task_id, sizeof t->task_id, false, err, err_size))
		return -1;
	if (!mc_is_uuid(t->task_id))
		return mc_ipc_fail(err, err_size, "task_id: not a UUID");
	if (strcmp(ev, "running") == 0) {
		t->event = MC_AGENT_RUNNING;
		return running_fields(o, t, err, err_size);
	}
	if (strcmp(ev, "ended") != 0)
		return mc_ipc_fail(err, err_size, "event: \"%s\" is not running or ended", ev);
	t->event = MC_AGENT_ENDED;
	return opt_str(o, "workspace_id", t->workspace_id, sizeof t->workspace_id, err, err_size);
}

int mc_ipc_parse_agent_task(const struct mc_ipc_frame *f, struct mc_agent_task *t,
			    char *err, size_t err_size)
{
	memset(t, 0, sizeof *t);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = agent_task_fields(o, t, err, err_size);
	cJSON_Delete(o);
	if (rc < 0)
		memset(t, 0, sizeof *t);
	return rc;
}

/* ---- AGENT_STATUS ---- */

int mc_ipc_send_agent_status(struct mc_ipc_writer *w, const struct mc_agent_status *s)
{
	if (s->checkouts_running < 0 || s->repo_cache_bytes > (1ull << 53)) {
		errno = EINVAL;
		return -1;
	}
	cJSON *o = cJSON_CreateObject();
	if (o != NULL &&
	    (!cJSON_AddNumberToObject(o, "repo_cache_bytes", (double)s->repo_cache_bytes) ||
	     !cJSON_AddNumberToObject(o, "checkouts_running", (double)s->checkouts_running))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_AGENT_STATUS, o);
}

int mc_ipc_parse_agent_status(const struct mc_ipc_frame *f, struct mc_agent_status *s,
			      char *err, size_t err_size)
{
	memset(s, 0, sizeof *s);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	long running = 0;
	int rc = mc_ipc_get_long(o, "checkouts_running", 0, INT_MAX, &running, err, err_size);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "repo_cache_bytes");
	if (rc == 0 && (!cJSON_IsNumber(b) || b->valuedouble < 0 || b->valuedouble > 9007199254740992.0 ||
			b->valuedouble != (double)(uint64_t)b->valuedouble))
		rc = mc_ipc_fail(err, err_size, "repo_cache_bytes: not an integer in [0, 2^53]");
	if (rc == 0) {
		s->repo_cache_bytes = (uint64_t)b->valuedouble;
		s->checkouts_running = running;
	}
	cJSON_Delete(o);
	return rc;
}
