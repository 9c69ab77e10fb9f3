/* Codecs of the push channel's frames (ws_msgs.h). */
#include "ipc/ws_msgs.h"

#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ipc/msg_int.h"

static const char *event_name(enum mc_push_event e)
{
	switch (e) {
	case MC_PUSH_PROFILES_CHANGED: return "profiles_changed";
	case MC_PUSH_WORKSPACES_CHANGED: return "workspaces_changed";
	}
	return NULL;
}

int mc_ipc_send_push(struct mc_ipc_writer *w, const struct mc_push_msg *m)
{
	const char *name = event_name(m->event);
	bool needs_ws = m->event == MC_PUSH_PROFILES_CHANGED;
	if (name == NULL || (needs_ws && !mc_is_uuid(m->workspace_id))) {
		errno = EINVAL;
		return -1;
	}
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && (!cJSON_AddStringToObject(o, "event", name) ||
			  (needs_ws && !cJSON_AddStringToObject(o, "workspace_id", m->workspace_id)))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_PUSH, o);
}

int mc_ipc_parse_push(const struct mc_ipc_frame *f, struct mc_push_msg *m, char *err,
		      size_t err_size)
{
	memset(m, 0, sizeof *m);
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	char ev[32];
	int rc = mc_ipc_get_str(o, "event", ev, sizeof ev, false, err, err_size);
	if (rc == 0 && strcmp(ev, "profiles_changed") == 0) {
		m->event = MC_PUSH_PROFILES_CHANGED;
		rc = mc_ipc_get_str(o, "workspace_id", m->workspace_id, sizeof m->workspace_id,
				    false, err, err_size);
		if (rc == 0 && !mc_is_uuid(m->workspace_id))
			rc = mc_ipc_fail(err, err_size, "workspace_id: not a UUID");
	} else if (rc == 0 && strcmp(ev, "workspaces_changed") == 0) {
		m->event = MC_PUSH_WORKSPACES_CHANGED;
	} else if (rc == 0) {
		rc = mc_ipc_fail(err, err_size, "event: \"%s\" is not a push event", ev);
	}
	cJSON_Delete(o);
	return rc;
}

int mc_ipc_send_push_state(struct mc_ipc_writer *w, bool up)
{
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && !cJSON_AddBoolToObject(o, "up", up)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return mc_ipc_send_json(w, MC_IPC_PUSH_STATE, o);
}

int mc_ipc_parse_push_state(const struct mc_ipc_frame *f, bool *up, char *err, size_t err_size)
{
	cJSON *o = mc_ipc_parse_object(f, err, err_size);
	if (o == NULL)
		return -1;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "up");
	int rc = 0;
	if (!cJSON_IsBool(v))
		rc = mc_ipc_fail(err, err_size, "up: missing or not a boolean");
	else
		*up = cJSON_IsTrue(v);
	cJSON_Delete(o);
	return rc;
}

int mc_ipc_send_sync_now(struct mc_ipc_writer *w, const char *reason)
{
	if (reason == NULL || reason[0] == '\0' || strlen(reason) >= MC_SYNC_REASON_MAX) {
		errno = EINVAL;
		return -1;
	}
	return mc_ipc_send_reason(w, MC_IPC_SYNC_NOW, reason);
}

int mc_ipc_parse_sync_now(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
			  char *err, size_t err_size)
{
	return mc_ipc_parse_reason(f, reason, reason_size, err, err_size);
}
