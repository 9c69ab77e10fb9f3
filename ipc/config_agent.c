/* The agents' identity fields of CONFIG (struct mc_worker_config, issue 11)
 * and websocket_off: their JSON and its validation, for messages.c. All
 * optional on the wire (a test harness sends none): absent is "agents run
 * as the daemon's user", no paths, paths not allowed, websocket on. */
#include <errno.h>
#include <string.h>

#include "ipc/messages.h"
#include "ipc/msg_int.h"

#define ID_MAX 4294967294L   /* (uid_t)-1 is "no change" to the kernel */

static bool path_ok(const char *s, size_t size)
{
	for (size_t i = 0; i < size && s[i]; i++)
		if ((unsigned char)s[i] < 0x20)
			return false;
	return s[0] == '\0' || s[0] == '/';
}

static bool id_ok(long v, bool allow_none)
{
	return (allow_none && v == -1) || (v > 0 && v <= ID_MAX);
}

bool mc_ipc_config_agent_ok(const struct mc_worker_config *c)
{
	if (!path_ok(c->agent_home, sizeof c->agent_home) ||
	    !path_ok(c->agent_home_template, sizeof c->agent_home_template) ||
	    !path_ok(c->agent_env_file, sizeof c->agent_env_file))
		return false;
	/* never root: a uid or gid of 0 would give the agents the daemon's
	 * powers back (or more) */
	return !c->agent_switch || (id_ok(c->agent_uid, false) && id_ok(c->agent_gid, false) &&
				    id_ok(c->agent_extra_gid, true));
}

bool mc_ipc_config_agent_add(cJSON *o, const struct mc_worker_config *c)
{
	long uid = c->agent_switch ? c->agent_uid : -1, gid = c->agent_switch ? c->agent_gid : -1;
	long extra = c->agent_switch ? c->agent_extra_gid : -1;
	return cJSON_AddBoolToObject(o, "agent_switch", c->agent_switch) &&
	       cJSON_AddNumberToObject(o, "agent_uid", (double)uid) &&
	       cJSON_AddNumberToObject(o, "agent_gid", (double)gid) &&
	       cJSON_AddNumberToObject(o, "agent_extra_gid", (double)extra) &&
	       cJSON_AddStringToObject(o, "agent_home", c->agent_home) &&
	       cJSON_AddStringToObject(o, "agent_home_template", c->agent_home_template) &&
	       cJSON_AddStringToObject(o, "agent_env_file", c->agent_env_file) &&
	       cJSON_AddBoolToObject(o, "allow_profile_paths", c->allow_profile_paths) &&
	       cJSON_AddBoolToObject(o, "websocket_off", c->websocket_off);
}

static int opt_bool(const cJSON *o, const char *key, bool *out, char *err, size_t err_size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = false;
	if (v == NULL)
		return 0;
	if (!cJSON_IsBool(v))
		return mc_ipc_fail(err, err_size, "%s: not a bool", key);
	*out = cJSON_IsTrue(v);
	return 0;
}

static int opt_id(const cJSON *o, const char *key, long *out, char *err, size_t err_size)
{
	*out = -1;
	if (cJSON_GetObjectItemCaseSensitive(o, key) == NULL)
		return 0;
	return mc_ipc_get_long(o, key, -1, ID_MAX, out, err, err_size);
}

int mc_ipc_config_agent_get(const cJSON *o, struct mc_worker_config *c, char *err,
			    size_t err_size)
{
	if (opt_bool(o, "agent_switch", &c->agent_switch, err, err_size) ||
	    opt_id(o, "agent_uid", &c->agent_uid, err, err_size) ||
	    opt_id(o, "agent_gid", &c->agent_gid, err, err_size) ||
	    opt_id(o, "agent_extra_gid", &c->agent_extra_gid, err, err_size) ||
	    mc_ipc_get_opt_path(o, "agent_home", c->agent_home, sizeof c->agent_home, err,
				err_size) ||
	    mc_ipc_get_opt_path(o, "agent_home_template", c->agent_home_template,
				sizeof c->agent_home_template, err, err_size) ||
	    mc_ipc_get_opt_path(o, "agent_env_file", c->agent_env_file, sizeof c->agent_env_file,
				err, err_size) ||
	    opt_bool(o, "allow_profile_paths", &c->allow_profile_paths, err, err_size) ||
	    opt_bool(o, "websocket_off", &c->websocket_off, err, err_size))
		return -1;
	if (c->agent_switch && (c->agent_uid <= 0 || c->agent_gid <= 0 || c->agent_extra_gid == 0))
		return mc_ipc_fail(err, err_size, "agent_switch: agent_uid and agent_gid must be "
				   "given and not 0, agent_extra_gid -1 or not 0");
	return 0;
}
