/* The task frames (task_msgs.h). TASK is binary-prefixed (the token never
 * becomes a JSON string) and its JSON part always starts with the fixed
 * text {"slot":N,"task": so that the supervisor can re-slot a frame it
 * forwards without printing the task again; the others are small JSON
 * objects like the rest of messages.c. */
#include "ipc/task_msgs.h"
#include "ipc/agentapi_msgs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sodium.h>

#include "ipc/messages.h"
#include "ipc/msg_int.h"

#define TOKEN_MAX 4096                  /* as the daemon token (TOKEN) */
#define TASK_PREFIX "{\"slot\":"
#define TASK_MID ",\"task\":"

static const char *const state_names[MC_TS_COUNT] = {
	[MC_TS_ACCEPTED] = "accepted", [MC_TS_PREPARING] = "preparing",
	[MC_TS_RUNNING] = "running", [MC_TS_CANCELLING] = "cancelling",
	[MC_TS_REPORTING] = "reporting", [MC_TS_ENDED] = "ended",
};

const char *mc_task_state_name(enum mc_task_state s)
{
	return (unsigned)s < MC_TS_COUNT ? state_names[s] : "unknown";
}

int mc_task_state_from_name(const char *s)
{
	for (int i = 0; s != NULL && i < MC_TS_COUNT; i++)
		if (strcmp(state_names[i], s) == 0)
			return i;
	return -1;
}

/* ---- TASK ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Queues token | {"slot":slot,"task":<task_json>} from the parts; the
 * scratch copy (it holds the token) is wiped. */
static int queue_task(struct mc_ipc_writer *w, const char *tok, size_t tok_len, int slot,
		      const char *task_json, size_t task_len)
{
	char head[48];
	int hn = snprintf(head, sizeof head, TASK_PREFIX "%d" TASK_MID, slot);
	size_t total = 4 + tok_len + (size_t)hn + task_len + 1;
	if (total > MC_IPC_TASK_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	uint8_t *buf = malloc(total);
	if (buf == NULL)
		return -1;
	put_u32(buf, (uint32_t)tok_len);
	memcpy(buf + 4, tok, tok_len);
	memcpy(buf + 4 + tok_len, head, (size_t)hn);
	memcpy(buf + 4 + tok_len + (size_t)hn, task_json, task_len);
	buf[total - 1] = '}';
	int rc = mc_ipc_writer_queue(w, MC_IPC_TASK, buf, (uint32_t)total);
	int e = errno;
	sodium_memzero(buf, 4 + tok_len);
	free(buf);
	errno = e;
	return rc;
}

int mc_ipc_send_task(struct mc_ipc_writer *w, int slot, struct mc_secret *token,
		     const cJSON *task)
{
	/* The token travels beside the JSON, never in it. */
	if (!cJSON_IsObject(task) || cJSON_GetObjectItemCaseSensitive(task, "auth_token") != NULL ||
	    slot < -1 || (token != NULL && mc_secret_len(token) > TOKEN_MAX)) {
		errno = EINVAL;
		return -1;
	}
	char *text = cJSON_PrintUnformatted(task);
	if (text == NULL) {
		errno = ENOMEM;
		return -1;
	}
	size_t tl = token != NULL ? mc_secret_len(token) : 0;
	const char *tok = token != NULL ? mc_secret_open(token) : "";
	int rc = queue_task(w, tok, tl, slot, text, strlen(text));
	int e = errno;
	if (token != NULL)
		mc_secret_close(token);
	free(text);
	errno = e;
	return rc;
}

/* The parts of a TASK payload: the token, and the JSON's task text after
 * the fixed prefix. The slot is read from the prefix. */
struct task_parts {
	const uint8_t *tok;
	size_t tok_len;
	const char *json;
	size_t json_len;
	const char *task;               /* the task object's text (within json) */
	size_t task_len;
	int slot;
};

static int split_task(const struct mc_ipc_frame *f, struct task_parts *p, char *err,
		      size_t err_size)
{
	if (f->type != MC_IPC_TASK || f->len < 4)
		return mc_ipc_fail(err, err_size, "TASK: shorter than its token length");
	uint32_t tl = get_u32(f->payload);
	if (tl > TOKEN_MAX || tl > f->len - 4)
		return mc_ipc_fail(err, err_size, "TASK: token length %u out of range", tl);
	p->tok = f->payload + 4;
	p->tok_len = tl;
	p->json = (const char *)f->payload + 4 + tl;
	p->json_len = f->len - 4 - tl;
	size_t pl = strlen(TASK_PREFIX), ml = strlen(TASK_MID);
	if (p->json_len < pl || memcmp(p->json, TASK_PREFIX, pl) != 0)
		return mc_ipc_fail(err, err_size, "TASK: JSON does not start with {\"slot\":");
	size_t i = pl;
	bool neg = i < p->json_len && p->json[i] == '-';
	if (neg)
		i++;
	long v = 0;
	size_t digits = 0;
	while (i < p->json_len && p->json[i] >= '0' && p->json[i] <= '9' && digits < 5) {
		v = v * 10 + (p->json[i++] - '0');
		digits++;
	}
	if (digits == 0 || (neg && v != 1) || p->json_len - i < ml + 2 ||
	    memcmp(p->json + i, TASK_MID, ml) != 0 || p->json[p->json_len - 1] != '}')
		return mc_ipc_fail(err, err_size, "TASK: JSON is not {\"slot\":N,\"task\":{...}}");
	p->slot = neg ? -1 : (int)v;
	p->task = p->json + i + ml;
	p->task_len = (size_t)(p->json + p->json_len - 1 - p->task);
	return 0;
}

/* The task object of a TASK frame, parsed and checked: an object without
 * auth_token, with UUIDs id and runtime_id. The caller deletes it. */
static cJSON *parse_task_object(const struct task_parts *p, char *err, size_t err_size)
{
	cJSON *t = cJSON_ParseWithLength(p->task, p->task_len);
	if (t == NULL || !cJSON_IsObject(t)) {
		cJSON_Delete(t);
		mc_ipc_fail(err, err_size, "TASK: task is not a JSON object");
		return NULL;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(t, "runtime_id");
	const char *why = NULL;
	if (cJSON_GetObjectItemCaseSensitive(t, "auth_token") != NULL)
		why = "TASK: task.auth_token in the JSON (the token travels beside it)";
	else if (!cJSON_IsString(id) || !mc_is_uuid(id->valuestring))
		why = "TASK: task.id: missing or not a UUID";
	else if (!cJSON_IsString(rid) || !mc_is_uuid(rid->valuestring))
		why = "TASK: task.runtime_id: missing or not a UUID";
	if (why != NULL) {
		cJSON_Delete(t);
		mc_ipc_fail(err, err_size, "%s", why);
		return NULL;
	}
	return t;
}

int mc_ipc_peek_task(const struct mc_ipc_frame *f, char task_id[40], char runtime_id[40],
		     int *slot, char *err, size_t err_size)
{
	struct task_parts p;
	if (split_task(f, &p, err, err_size) < 0)
		return -1;
	cJSON *t = parse_task_object(&p, err, err_size);
	if (t == NULL)
		return -1;
	strlcpy(task_id, cJSON_GetObjectItemCaseSensitive(t, "id")->valuestring, 40);
	strlcpy(runtime_id, cJSON_GetObjectItemCaseSensitive(t, "runtime_id")->valuestring, 40);
	*slot = p.slot;
	cJSON_Delete(t);
	return 0;
}

int mc_ipc_forward_task(struct mc_ipc_writer *w, const struct mc_ipc_frame *f, int slot)
{
	struct task_parts p;
	if (slot < 0 || split_task(f, &p, NULL, 0) < 0) {
		errno = EINVAL;
		return -1;
	}
	return queue_task(w, (const char *)p.tok, p.tok_len, slot, p.task, p.task_len);
}

int mc_ipc_parse_task(const struct mc_ipc_frame *f, int *slot, cJSON **task,
		      struct mc_secret **token, char *err, size_t err_size)
{
	struct task_parts p;
	*task = NULL;
	*token = NULL;
	if (split_task(f, &p, err, err_size) < 0)
		return -1;
	cJSON *t = parse_task_object(&p, err, err_size);
	if (t == NULL)
		return -1;
	if (p.tok_len > 0 && (*token = mc_secret_new((const char *)p.tok, p.tok_len)) == NULL) {
		cJSON_Delete(t);
		return -1;
	}
	*slot = p.slot;
	*task = t;
	return 0;
}

/* ---- the small ones ---- */

static int send_int(struct mc_ipc_writer *w, uint16_t type, const char *key, int v)
{
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && !cJSON_AddNumberToObject(o, key, v)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, type, o);
}

static int parse_int(const struct mc_ipc_frame *f, const char *key, long min, long max, int *out,
		     char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	long v;
	int rc = mc_ipc_get_long(o, key, min, max, &v, err, err_size);
	if (rc == 0 && cJSON_GetArraySize(o) != 1)
		rc = mc_ipc_fail(err, err_size, "%s: unexpected fields", mc_ipc_type_name(f->type));
	if (rc == 0)
		*out = (int)v;
	cJSON_Delete(o);
	return rc;
}

/* The link asks for at most a claim's worth. */
int mc_ipc_send_slots_req(struct mc_ipc_writer *w, int want)
{
	return send_int(w, MC_IPC_SLOTS_REQ, "want", want);
}

int mc_ipc_parse_slots_req(const struct mc_ipc_frame *f, int *want, char *err, size_t err_size)
{
	return parse_int(f, "want", 1, 1000, want, err, err_size);
}

int mc_ipc_send_slots(struct mc_ipc_writer *w, int grant)
{
	return send_int(w, MC_IPC_SLOTS, "grant", grant);
}

int mc_ipc_parse_slots(const struct mc_ipc_frame *f, int *grant, char *err, size_t err_size)
{
	return parse_int(f, "grant", 0, 1000, grant, err, err_size);
}

int mc_ipc_send_claim_done(struct mc_ipc_writer *w, int claimed)
{
	return send_int(w, MC_IPC_CLAIM_DONE, "claimed", claimed);
}

int mc_ipc_parse_claim_done(const struct mc_ipc_frame *f, int *claimed, char *err,
			    size_t err_size)
{
	return parse_int(f, "claimed", 0, 1000, claimed, err, err_size);
}

int mc_ipc_send_runtimes(struct mc_ipc_writer *w, const char *workspace_id, size_t n,
			 const char *const *ids)
{
	if (n > MC_MAX_REPORT || !mc_is_uuid(workspace_id)) {
		errno = EINVAL;
		return -1;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = o != NULL ? cJSON_AddArrayToObject(o, "runtime_ids") : NULL;
	int ok = arr != NULL && cJSON_AddStringToObject(o, "workspace_id", workspace_id);
	for (size_t i = 0; ok && i < n; i++)
		ok = cJSON_AddItemToArray(arr, cJSON_CreateString(ids[i]));
	if (!ok) {
		cJSON_Delete(o);
		errno = ENOMEM;
		return -1;
	}
	return mc_ipc_send_json(w, MC_IPC_RUNTIMES, o);
}

static int parse_id_array(const cJSON *arr, size_t *n, char (**ids)[40], char *err,
			  size_t err_size)
{
	size_t cnt = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0;
	if (!cJSON_IsArray(arr))
		return mc_ipc_fail(err, err_size, "runtime_ids: missing or not an array");
	if (cnt > MC_MAX_REPORT)
		return mc_ipc_fail(err, err_size, "runtime_ids: more than %d entries", MC_MAX_REPORT);
	char (*v)[40] = cnt > 0 ? calloc(cnt, sizeof *v) : NULL;
	if (cnt > 0 && v == NULL)
		return -1;
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		if (!cJSON_IsString(e) || !mc_is_uuid(e->valuestring)) {
			free(v);
			return mc_ipc_fail(err, err_size, "runtime_ids[%zu]: not a UUID", i);
		}
		strlcpy(v[i++], e->valuestring, 40);
	}
	*n = cnt;
	*ids = v;
	return 0;
}

int mc_ipc_parse_runtimes(const struct mc_ipc_frame *f, char workspace_id[40], size_t *n,
			  char (**ids)[40], char *err, size_t err_size)
{
	*n = 0;
	*ids = NULL;
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = mc_ipc_get_str(o, "workspace_id", workspace_id, 40, false, err, err_size);
	if (rc == 0 && !mc_is_uuid(workspace_id))
		rc = mc_ipc_fail(err, err_size, "workspace_id: not a UUID");
	if (rc == 0)
		rc = parse_id_array(cJSON_GetObjectItemCaseSensitive(o, "runtime_ids"), n, ids, err,
				    err_size);
	cJSON_Delete(o);
	return rc;
}

int mc_ipc_send_wake(struct mc_ipc_writer *w, const char *reason)
{
	return mc_ipc_send_reason(w, MC_IPC_WAKE, reason);
}

int mc_ipc_parse_wake(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
		      char *err, size_t err_size)
{
	return mc_ipc_parse_reason(f, reason, reason_size, err, err_size);
}

int mc_ipc_send_task_fail(struct mc_ipc_writer *w, const char *task_id, const char *runtime_id,
			  const char *reason, const char *error)
{
	if (!mc_is_uuid(task_id) || !mc_is_uuid(runtime_id) || reason[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && (!cJSON_AddStringToObject(o, "task_id", task_id) ||
			  !cJSON_AddStringToObject(o, "runtime_id", runtime_id) ||
			  !cJSON_AddStringToObject(o, "reason", reason) ||
			  !cJSON_AddStringToObject(o, "error", error))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_TASK_FAIL, o);
}

int mc_ipc_parse_task_fail(const struct mc_ipc_frame *f, char task_id[40], char runtime_id[40],
			   char *reason, size_t reason_size, char *error, size_t error_size,
			   char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = mc_ipc_get_str(o, "task_id", task_id, 40, false, err, err_size);
	if (rc == 0 && !mc_is_uuid(task_id))
		rc = mc_ipc_fail(err, err_size, "task_id: not a UUID");
	if (rc == 0)
		rc = mc_ipc_get_str(o, "runtime_id", runtime_id, 40, false, err, err_size);
	if (rc == 0 && !mc_is_uuid(runtime_id))
		rc = mc_ipc_fail(err, err_size, "runtime_id: not a UUID");
	if (rc == 0)
		rc = mc_ipc_get_str(o, "reason", reason, reason_size, false, err, err_size);
	if (rc == 0)
		rc = mc_ipc_get_str(o, "error", error, error_size, true, err, err_size);
	cJSON_Delete(o);
	return rc;
}

/* ---- TASK_STATE ---- */

/* The local API's fields of a running task (only when token_hash is set). */
static bool agent_fields_add(cJSON *o, const struct mc_task_state_msg *m)
{
	if (m->state != MC_TS_RUNNING || m->token_hash[0] == '\0')
		return true;
	return cJSON_AddStringToObject(o, "work_dir", m->work_dir) &&
	       cJSON_AddStringToObject(o, "agent_id", m->agent_id) &&
	       cJSON_AddStringToObject(o, "agent_name", m->agent_name) &&
	       cJSON_AddStringToObject(o, "token_hash", m->token_hash) &&
	       mc_ipc_repos_add(o, m->n_repos, m->repos);
}

static int agent_fields_get(const cJSON *o, struct mc_task_state_msg *m, char *err,
			    size_t err_size)
{
	if (cJSON_GetObjectItemCaseSensitive(o, "token_hash") == NULL)
		return 0;
	if (m->state != MC_TS_RUNNING)
		return mc_ipc_fail(err, err_size, "token_hash: only for state running");
	if (mc_ipc_get_str(o, "work_dir", m->work_dir, sizeof m->work_dir, false, err, err_size) ||
	    mc_ipc_get_str(o, "agent_id", m->agent_id, sizeof m->agent_id, false, err, err_size) ||
	    mc_ipc_get_str(o, "agent_name", m->agent_name, sizeof m->agent_name, true, err,
			   err_size) ||
	    mc_ipc_get_str(o, "token_hash", m->token_hash, sizeof m->token_hash, false, err,
			   err_size) ||
	    mc_ipc_repos_get(o, &m->n_repos, m->repos, err, err_size))
		return -1;
	if (m->work_dir[0] != '/')
		return mc_ipc_fail(err, err_size, "work_dir: not absolute");
	if (!mc_is_uuid(m->agent_id))
		return mc_ipc_fail(err, err_size, "agent_id: not a UUID");
	if (!mc_ipc_is_token_hash(m->token_hash))
		return mc_ipc_fail(err, err_size, "token_hash: not 64 lowercase hex digits");
	return 0;
}

int mc_ipc_send_task_state(struct mc_ipc_writer *w, const struct mc_task_state_msg *m)
{
	if (!mc_is_uuid(m->task_id) || !mc_is_uuid(m->runtime_id) || (unsigned)m->state >= MC_TS_COUNT) {
		errno = EINVAL;
		return -1;
	}
	/* An agent's output may hold anything: control bytes become blanks
	 * (the parser refuses them). */
	char out[sizeof m->last_output];
	strlcpy(out, m->last_output, sizeof out);
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && (!cJSON_AddStringToObject(o, "task_id", m->task_id) ||
			  !cJSON_AddStringToObject(o, "runtime_id", m->runtime_id) ||
			  !cJSON_AddStringToObject(o, "state", mc_task_state_name(m->state)) ||
			  !cJSON_AddNumberToObject(o, "pid", m->pid) ||
			  !cJSON_AddNumberToObject(o, "pgid", m->pgid) ||
			  !cJSON_AddStringToObject(o, "family", m->family) ||
			  !cJSON_AddStringToObject(o, "last_output", out) ||
			  !cJSON_AddStringToObject(o, "outcome", m->outcome) ||
			  !agent_fields_add(o, m))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_TASK_STATE, o);
}

static int task_state_fields(const cJSON *o, struct mc_task_state_msg *m, char *err,
			     size_t err_size)
{
	char state[32];
	long pid, pgid;
	if (mc_ipc_get_str(o, "task_id", m->task_id, sizeof m->task_id, false, err, err_size) ||
	    mc_ipc_get_str(o, "runtime_id", m->runtime_id, sizeof m->runtime_id, false, err, err_size) ||
	    mc_ipc_get_str(o, "state", state, sizeof state, false, err, err_size) ||
	    mc_ipc_get_long(o, "pid", 0, INT_MAX, &pid, err, err_size) ||
	    mc_ipc_get_long(o, "pgid", 0, INT_MAX, &pgid, err, err_size) ||
	    mc_ipc_get_str(o, "family", m->family, sizeof m->family, true, err, err_size) ||
	    mc_ipc_get_str(o, "last_output", m->last_output, sizeof m->last_output, true, err,
			   err_size) ||
	    mc_ipc_get_str(o, "outcome", m->outcome, sizeof m->outcome, true, err, err_size))
		return -1;
	if (!mc_is_uuid(m->task_id))
		return mc_ipc_fail(err, err_size, "task_id: not a UUID");
	if (!mc_is_uuid(m->runtime_id))
		return mc_ipc_fail(err, err_size, "runtime_id: not a UUID");
	int s = mc_task_state_from_name(state);
	if (s < 0)
		return mc_ipc_fail(err, err_size, "state: \"%s\" is not a task state", state);
	m->state = (enum mc_task_state)s;
	m->pid = (int)pid;
	m->pgid = (int)pgid;
	return agent_fields_get(o, m, err, err_size);
}

int mc_ipc_parse_task_state(const struct mc_ipc_frame *f, struct mc_task_state_msg *m,
			    char *err, size_t err_size)
{
	memset(m, 0, sizeof *m);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	int rc = task_state_fields(o, m, err, err_size);
	cJSON_Delete(o);
	return rc;
}
