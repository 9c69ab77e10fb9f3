#include "supervisor/control_request.h"

#include <stdio.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

static int fail(char *err, size_t n, const char *msg)
{
	strlcpy(err, msg, n);
	return -1;
}

static int parse_restart(const cJSON *req, struct mc_ctl_request *out, char *err, size_t n)
{
	const char *ws = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "workspace"));
	if (ws == NULL)
		return fail(err, n, "restart needs \"workspace\": a workspace id");
	if (strlcpy(out->workspace, ws, sizeof out->workspace) >= sizeof out->workspace)
		return fail(err, n, "no such workspace is served here");
	for (char *p = out->workspace; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (!mc_is_uuid(out->workspace))
		return fail(err, n, "no such workspace is served here");
	return 0;
}

static int parse_drain(const cJSON *req, struct mc_ctl_request *out, char *err, size_t n)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "timeout_ms");
	if (t == NULL || cJSON_IsNull(t))
		return 0;
	/* Up to a year: a number that fits, positive, whole. */
	if (!cJSON_IsNumber(t) || !(t->valuedouble >= 1) || t->valuedouble > 31536000000.0 ||
	    t->valuedouble != (double)(long long)t->valuedouble)
		return fail(err, n, "drain: \"timeout_ms\" must be a whole number of "
			    "milliseconds, 1 to a year");
	out->timeout_ms = (long long)t->valuedouble;
	return 0;
}

#ifdef MC_TEST_HOOKS
static int copy_uuid(const cJSON *req, const char *key, char *dst, size_t size)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, key));
	return v != NULL && strlcpy(dst, v, size) < size && mc_is_uuid(dst) ? 0 : -1;
}

static int parse_test_task(const cJSON *req, struct mc_ctl_request *out, char *err, size_t n)
{
	const cJSON *pg = cJSON_GetObjectItemCaseSensitive(req, "pgid");
	if (copy_uuid(req, "workspace", out->workspace, sizeof out->workspace) < 0 ||
	    copy_uuid(req, "task_id", out->task_id, sizeof out->task_id) < 0 ||
	    copy_uuid(req, "runtime_id", out->runtime_id, sizeof out->runtime_id) < 0)
		return fail(err, n, "test-task needs workspace, task_id, runtime_id (UUIDs)");
	if (cJSON_IsNumber(pg) && pg->valuedouble >= 0 && pg->valuedouble < 1 << 30)
		out->pgid = (int)pg->valuedouble;
	return 0;
}
#endif

int mc_ctl_parse_request(const char *line, size_t len, struct mc_ctl_request *out, char *err,
			 size_t err_size)
{
	memset(out, 0, sizeof *out);
	if (memchr(line, '\0', len) != NULL)
		return fail(err, err_size, "request is not a JSON object");
	cJSON *req = cJSON_ParseWithLength(line, len);
	int rc = 0;
	const char *cmd = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "cmd"));
	if (req == NULL || !cJSON_IsObject(req))
		rc = fail(err, err_size, "request is not a JSON object");
	else if (cmd == NULL)
		rc = fail(err, err_size, "request has no \"cmd\" string");
	else if (strcmp(cmd, "status") == 0)
		out->cmd = MC_CTL_STATUS;
	else if (strcmp(cmd, "reload") == 0)
		out->cmd = MC_CTL_RELOAD;
	else if (strcmp(cmd, "restart") == 0) {
		out->cmd = MC_CTL_RESTART;
		rc = parse_restart(req, out, err, err_size);
	} else if (strcmp(cmd, "tasks") == 0) {
		out->cmd = MC_CTL_TASKS;
	} else if (strcmp(cmd, "drain") == 0) {
		out->cmd = MC_CTL_DRAIN;
		rc = parse_drain(req, out, err, err_size);
#ifdef MC_TEST_HOOKS
	} else if (strcmp(cmd, "test-task") == 0) {
		out->cmd = MC_CTL_TEST_TASK;
		rc = parse_test_task(req, out, err, err_size);
#endif
	} else
		rc = fail(err, err_size, "unknown cmd (status, reload, restart, tasks, drain)");
	cJSON_Delete(req);
	return rc;
}
