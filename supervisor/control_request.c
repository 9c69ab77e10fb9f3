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
	} else
		rc = fail(err, err_size, "unknown cmd (status, reload, restart)");
	cJSON_Delete(req);
	return rc;
}
