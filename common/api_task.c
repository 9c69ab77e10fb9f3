/* The task endpoints of the daemon API (api_task.h) on the call machinery
 * of api_call.c / api_run.c.
 *
 * A claim's answer holds a task token per task (and maybe a
 * remote_mcp_daemon_token): they are taken out of the parsed JSON while
 * the answer is decoded, the token into guarded memory and cJSON's copies
 * wiped, so a claimed task never sits in the heap with its secret; the
 * response buffer itself is wiped when released (api_call.c). No decode
 * error names a value from the body. */
#include "common/api_task.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "common/api_int.h"
#include "common/json.h"
#include "common/task.h"

#define CLAIM_TIMEOUT_MS 5000       /* multica's bound on the batch claim */
#define PATH_LEN 128

static const char *const op_names[MC_TASK_OP_COUNT] = {
	[MC_TASK_OP_START] = "start",
	[MC_TASK_OP_PROGRESS] = "progress",
	[MC_TASK_OP_MESSAGES] = "messages",
	[MC_TASK_OP_SESSION] = "session",
	[MC_TASK_OP_USAGE] = "usage",
	[MC_TASK_OP_COMPLETE] = "complete",
	[MC_TASK_OP_FAIL] = "fail",
	[MC_TASK_OP_CANCEL_ACK] = "cancel-ack",
};

const char *mc_task_op_name(enum mc_task_op op)
{
	return (unsigned)op < MC_TASK_OP_COUNT ? op_names[op] : "?";
}

bool mci_task_endpoint(enum mc_api_endpoint ep)
{
	return ep == MC_EP_CLAIM_TASKS || ep == MC_EP_CLAIM_RUNTIME_TASK || ep == MC_EP_TASK_OP ||
	       ep == MC_EP_TASK_STATUS || ep == MC_EP_TASK_PREPARE_LEASE;
}

bool mc_task_status_terminal(const char *status)
{
	return status != NULL && (strcmp(status, "completed") == 0 ||
				  strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0);
}

/* ---- constructors ---- */

/* Remembers an id on the call (strdup into *dst); frees the call on
 * failure. Returns the call or NULL with errno. */
static struct mc_call *remember(struct mc_call *c, char **dst, const char *id)
{
	*dst = strdup(id);
	if (*dst == NULL) {
		mc_call_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

static struct mc_call *remember_task(struct mc_call *c, const char *task_id)
{
	return c != NULL ? remember(c, &c->task_id, task_id) : NULL;
}

static struct mc_call *remember_runtime(struct mc_call *c, const char *runtime_id)
{
	return c != NULL ? remember(c, &c->runtime_id, runtime_id) : NULL;
}

/* Claims may be large (MC_CLAIM_MAX_BODY) and the batch one is bounded in
 * time (timeout_ms > 0). */
static struct mc_call *claim_limits(struct mc_call *c, long timeout_ms)
{
	if (c == NULL)
		return NULL;
	c->max_body = MC_CLAIM_MAX_BODY;
	curl_easy_setopt(c->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
	if (timeout_ms > 0)
		mc_call_set_timeout(c, timeout_ms);
	return c;
}

/* {"daemon_id","runtime_ids":[...],"max_tasks"}: malloc'd, NULL with errno. */
static char *encode_claim(const char *daemon_id, size_t n, const char *const *ids, int max)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *a = cJSON_CreateArray();
	bool ok = o != NULL && a != NULL && cJSON_AddStringToObject(o, "daemon_id", daemon_id);
	if (ok)
		cJSON_AddItemToObject(o, "runtime_ids", a);
	else
		cJSON_Delete(a);
	for (size_t i = 0; ok && i < n; i++) {
		cJSON *s = cJSON_CreateString(ids[i]);
		ok = s != NULL && cJSON_AddItemToArray(a, s);
	}
	ok = ok && cJSON_AddNumberToObject(o, "max_tasks", max) != NULL;
	char *json = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (json == NULL)
		errno = ENOMEM;
	return json;
}

struct mc_call *mc_call_claim_tasks(struct mc_api *api, const char *daemon_id, size_t n,
				    const char *const *runtime_ids, int max_tasks)
{
	bool ok = daemon_id != NULL && daemon_id[0] != '\0' && n > 0 && runtime_ids != NULL &&
		  max_tasks > 0 && max_tasks <= MC_CLAIM_MAX_TASKS;
	for (size_t i = 0; ok && i < n; i++)
		ok = runtime_ids[i] != NULL && runtime_ids[i][0] != '\0';
	if (!ok) {
		errno = EINVAL;
		return NULL;
	}
	return claim_limits(mci_post_call(api, MC_EP_CLAIM_TASKS, "/api/daemon/tasks/claim", NULL,
					  "", encode_claim(daemon_id, n, runtime_ids, max_tasks)),
			    CLAIM_TIMEOUT_MS);
}

struct mc_call *mc_call_claim_runtime_task(struct mc_api *api, const char *runtime_id)
{
	if (runtime_id == NULL || runtime_id[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	struct mc_call *c = mci_post_call(api, MC_EP_CLAIM_RUNTIME_TASK, "/api/daemon/runtimes/",
					  runtime_id, "/tasks/claim", mci_empty_object_json());
	return claim_limits(remember_runtime(c, runtime_id), 0);
}

struct mc_call *mc_call_task_op(struct mc_api *api, enum mc_task_op op, const char *task_id,
				const char *body)
{
	if ((unsigned)op >= MC_TASK_OP_COUNT || !mc_task_is_uuid(task_id)) {
		errno = EINVAL;
		return NULL;
	}
	char *json = body != NULL ? strdup(body) : mci_empty_object_json();
	if (json == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	char suffix[32];
	snprintf(suffix, sizeof suffix, "/%s", op_names[op]);
	struct mc_call *c = mci_post_call(api, MC_EP_TASK_OP, "/api/daemon/tasks/", task_id,
					  suffix, json);
	if (c != NULL)
		c->task_op = (int)op;
	return remember_task(c, task_id);
}

struct mc_call *mc_call_task_prepare_lease(struct mc_api *api, const char *runtime_id,
					   const char *task_id)
{
	/* Both go into the path unescaped: UUIDs only. */
	if (!mc_task_is_uuid(runtime_id) || !mc_task_is_uuid(task_id)) {
		errno = EINVAL;
		return NULL;
	}
	char prefix[PATH_LEN];
	snprintf(prefix, sizeof prefix, "/api/daemon/runtimes/%s/tasks/", runtime_id);
	struct mc_call *c = mci_post_call(api, MC_EP_TASK_PREPARE_LEASE, prefix, task_id,
					  "/prepare-lease", mci_empty_object_json());
	return remember_runtime(remember_task(c, task_id), runtime_id);
}

struct mc_call *mc_call_task_status(struct mc_api *api, const char *task_id)
{
	if (!mc_task_is_uuid(task_id)) {
		errno = EINVAL;
		return NULL;
	}
	struct mc_call *c = mci_call_alloc(api, MC_EP_TASK_STATUS, "GET");
	if (c == NULL)
		return NULL;
	c = mci_call_built(c, mci_call_set_path(c, "/api/daemon/tasks/", task_id, "/status") == 0 &&
			   mci_call_set_body(c, NULL) == 0);
	return remember_task(c, task_id);
}

/* ---- decoding ---- */

void mc_claimed_clear(struct mc_claimed *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		cJSON_Delete(c->v[i].task);
		mc_secret_free(c->v[i].token);
	}
	free(c->v);
	c->n = 0;
	c->v = NULL;
}

void mci_task_reset(struct mc_call *c)
{
	mc_claimed_clear(&c->claimed);
	free(c->task_status);
	c->task_status = NULL;
}

/* Removes and wipes the secrets of one task object. */
static void scrub_task(cJSON *task)
{
	if (!cJSON_IsObject(task))
		return;
	mc_secret_free(mc_task_take_token(task));
	cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(task, "remote_mcp_daemon_token");
	if (m != NULL && cJSON_IsString(m) && m->valuestring != NULL)
		explicit_bzero(m->valuestring, strlen(m->valuestring));
	cJSON_Delete(m);
}

/* Copies member key of o into dst when it is a UUID string, else "". */
static void copy_uuid(const cJSON *o, const char *key, char dst[40])
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
	dst[0] = '\0';
	if (cJSON_IsString(s) && mc_task_is_uuid(s->valuestring))
		strlcpy(dst, s->valuestring, 40);
}

/* Moves one task object (detached) into out: token out, secrets wiped. */
static int take_one(cJSON *task, struct mc_claimed *out)
{
	struct mc_claimed_task *t = &out->v[out->n++];
	t->task = task;
	t->token = mc_task_take_token(task);
	if (t->token == NULL && errno == ENOMEM)
		return -1;
	scrub_task(task); /* remote_mcp_daemon_token, and any second auth_token */
	copy_uuid(task, "id", t->id);
	copy_uuid(task, "runtime_id", t->runtime_id);
	return 0;
}

/* The list of task objects of a claim answer: {"tasks":[...]} (null: none)
 * or {"task":null|{...}}. Fills *list (the array, or the object itself
 * for a legacy claim, or NULL) and *n. */
static int claim_list(const cJSON *root, enum mc_api_endpoint ep, cJSON **list, int *n,
		      char *err, size_t err_size)
{
	*list = NULL;
	*n = 0;
	if (!cJSON_IsObject(root))
		return mc_json_fail(err, err_size, "", "expected an object, got %s",
				    mc_json_type_name(root));
	const char *key = ep == MC_EP_CLAIM_TASKS ? "tasks" : "task";
	cJSON *m = cJSON_GetObjectItemCaseSensitive(root, key);
	if (m == NULL)
		return mc_json_fail(err, err_size, key, "missing");
	if (cJSON_IsNull(m))
		return 0;
	if (ep == MC_EP_CLAIM_RUNTIME_TASK) {
		if (!cJSON_IsObject(m))
			return mc_json_fail(err, err_size, key, "expected object or null, got %s",
					    mc_json_type_name(m));
		*list = m;
		*n = 1;
		return 0;
	}
	if (!cJSON_IsArray(m))
		return mc_json_fail(err, err_size, key, "expected array, got %s", mc_json_type_name(m));
	*list = m;
	*n = cJSON_GetArraySize(m);
	if (*n > MC_CLAIM_MAX_TASKS)
		return mc_json_fail(err, err_size, key, "%d tasks, more than the %d of a claim", *n,
				    MC_CLAIM_MAX_TASKS);
	size_t i = 0;
	for (const cJSON *e = m->child; e != NULL; e = e->next, i++) {
		if (!cJSON_IsObject(e)) {
			char p[PATH_LEN];
			mc_json_path_index(p, sizeof p, key, i);
			return mc_json_fail(err, err_size, p, "expected object, got %s",
					    mc_json_type_name(e));
		}
	}
	return 0;
}

/* Wipes every task's secrets before a failed answer is dropped. */
static void scrub_all(cJSON *root)
{
	if (!cJSON_IsObject(root))
		return;
	cJSON *legacy = cJSON_GetObjectItemCaseSensitive(root, "task");
	scrub_task(legacy);
	cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "tasks");
	if (cJSON_IsArray(a))
		for (cJSON *e = a->child; e != NULL; e = e->next)
			scrub_task(e);
}

static int decode_claim(struct mc_call *c, const char *body, size_t len, char *err,
			size_t err_size)
{
	cJSON *root = mc_json_parse(body, len, err, err_size);
	if (root == NULL)
		return -1;
	cJSON *list;
	int n;
	if (claim_list(root, c->ep, &list, &n, err, err_size) < 0)
		goto fail;
	if (n > 0 && (c->claimed.v = calloc((size_t)n, sizeof *c->claimed.v)) == NULL) {
		mc_json_fail(err, err_size, "", "out of memory");
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		cJSON *task = c->ep == MC_EP_CLAIM_TASKS ? cJSON_DetachItemFromArray(list, 0)
			      : cJSON_DetachItemViaPointer(root, list);
		if (take_one(task, &c->claimed) < 0) {
			mc_json_fail(err, err_size, "", "out of memory");
			goto fail;
		}
	}
	cJSON_Delete(root);
	return 0;
fail:
	scrub_all(root);
	cJSON_Delete(root);
	mc_claimed_clear(&c->claimed);
	return -1;
}

static int decode_status(struct mc_call *c, const char *body, size_t len, char *err,
			 size_t err_size)
{
	cJSON *root = mc_json_parse(body, len, err, err_size);
	if (root == NULL)
		return -1;
	int rc = cJSON_IsObject(root)
		? mc_json_get_string(root, "", "status", MC_JSON_STR_NONEMPTY, &c->task_status,
				     err, err_size)
		: mc_json_fail(err, err_size, "", "expected an object, got %s",
			       mc_json_type_name(root));
	cJSON_Delete(root);
	return rc;
}

int mci_task_decode(struct mc_call *c, const char *body, size_t len, struct mc_api_error *derr)
{
	memset(derr, 0, sizeof *derr);
	int rc = 0;
	switch (c->ep) {
	case MC_EP_CLAIM_TASKS:
	case MC_EP_CLAIM_RUNTIME_TASK:
		rc = decode_claim(c, body, len, derr->message, sizeof derr->message);
		break;
	case MC_EP_TASK_STATUS:
		rc = decode_status(c, body, len, derr->message, sizeof derr->message);
		break;
	default:
		break; /* task ops and prepare-lease: the answer carries nothing we need */
	}
	if (rc < 0)
		derr->kind = MC_API_ERR_DECODE;
	return rc;
}

/* ---- results ---- */

int mc_call_take_claimed(struct mc_call *call, struct mc_claimed *out)
{
	if (call == NULL || out == NULL ||
	    (call->ep != MC_EP_CLAIM_TASKS && call->ep != MC_EP_CLAIM_RUNTIME_TASK) ||
	    !mc_call_ok(call)) {
		errno = EINVAL;
		return -1;
	}
	*out = call->claimed;
	call->claimed.n = 0;
	call->claimed.v = NULL;
	return 0;
}

const char *mc_call_task_status_value(const struct mc_call *call)
{
	if (call == NULL || call->ep != MC_EP_TASK_STATUS || !mc_call_ok(call))
		return NULL;
	return call->task_status;
}

bool mc_call_task_not_found(const struct mc_call *call)
{
	if (call == NULL || call->state != CALL_DONE || call->err.status != 404)
		return false;
	/* Only the server's text: the message starts with "METHOD PATH: ". */
	char what[WHAT_MAX];
	mci_call_what(call, what, sizeof what);
	const char *text = call->err.message;
	size_t wl = strlen(what);
	if (strncmp(text, what, wl) == 0)
		text += wl;
	return strcasestr(text, "task not found") != NULL;
}

const char *mc_call_task_id(const struct mc_call *call)
{
	return call != NULL ? call->task_id : NULL;
}

int mc_call_task_op_of(const struct mc_call *call)
{
	return call != NULL && call->ep == MC_EP_TASK_OP ? call->task_op : -1;
}
