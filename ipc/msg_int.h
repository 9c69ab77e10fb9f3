/* Internals shared by the payload codecs of ipc/ (messages.c, task_msgs.c);
 * not an API. Error convention as in messages.h. */
#ifndef MC_IPC_MSG_INT_H
#define MC_IPC_MSG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ipc/frame.h"

/* Writes why into err (may be NULL); -1 with errno=EPROTO. */
int mc_ipc_fail(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prints obj as one frame of type and deletes it (takes ownership; NULL
 * is ENOMEM). EMSGSIZE past MC_IPC_MAX_PAYLOAD. */
int mc_ipc_send_json(struct mc_ipc_writer *w, uint16_t type, cJSON *obj);
/* A frame {"reason":"..."} of type (FATAL, WAKE), and its parser. */
int mc_ipc_send_reason(struct mc_ipc_writer *w, uint16_t type, const char *reason);
int mc_ipc_parse_reason(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
			char *err, size_t err_size);
/* The payload as a JSON object (caller deletes), or NULL with err. */
cJSON *mc_ipc_parse_object(const struct mc_ipc_frame *f, char *err, size_t err_size);
/* A string field that fits dst and holds no control bytes. */
int mc_ipc_get_str(const cJSON *obj, const char *key, char *dst, size_t dst_size,
		   bool allow_empty, char *err, size_t err_size);
/* An optional string field: absent or "" is "", else an absolute path. */
int mc_ipc_get_opt_path(const cJSON *o, const char *key, char *dst, size_t size, char *err,
			size_t err_size);
/* An integer field within [min, max]. */
int mc_ipc_get_long(const cJSON *obj, const char *key, long min, long max, long *out,
		    char *err, size_t err_size);

/* The agents' identity fields of CONFIG (config_agent.c). ok: what the
 * sender checks (paths absolute or "", no control bytes; with
 * agent_switch no id 0). add: false on ENOMEM. get: absent fields are the
 * fallback's values (agent_switch false, ids -1, ""). */
struct mc_worker_config;
bool mc_ipc_config_agent_ok(const struct mc_worker_config *c);
bool mc_ipc_config_agent_add(cJSON *o, const struct mc_worker_config *c);
int mc_ipc_config_agent_get(const cJSON *o, struct mc_worker_config *c, char *err,
			    size_t err_size);

/* repos [{url, ref}] (agentapi_msgs.c), shared by TASK_STATE and
 * AGENT_TASK. add: false on ENOMEM or a bad entry. get: missing or null is
 * none; at most MC_TASK_REPOS_MAX entries into v. */
struct mc_task_repo;
bool mc_ipc_repos_ok(size_t n, const struct mc_task_repo *v);
bool mc_ipc_repos_add(cJSON *o, size_t n, const struct mc_task_repo *v);
int mc_ipc_repos_get(const cJSON *o, size_t *n, struct mc_task_repo *v, char *err,
		     size_t err_size);

#endif
