/* The decoder of a claimed task (task.h): strict on what the executor
 * relies on (identity, the agent's environment and arguments), lenient on
 * the rest (optional strings read as ""), unknown fields ignored.
 *
 * Error messages name the field path and the problem, never a value: the
 * task carries secrets (custom_env values are often API keys). */
#include "common/task.h"

#include <sodium.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "common/json.h"

#define MAX_CUSTOM_ENV  256
#define MAX_CUSTOM_ARGS 256
#define PATH_LEN 320

bool mc_task_is_uuid(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* ---- secrets inside the JSON ---- */

/* Wipes and deletes an item detached from its object: a string's bytes are
 * zeroed first so the freed heap holds no copy. */
static void wipe_item(cJSON *item)
{
	if (item != NULL && cJSON_IsString(item) && item->valuestring != NULL)
		explicit_bzero(item->valuestring, strlen(item->valuestring));
	cJSON_Delete(item);
}

struct mc_secret *mc_task_take_token(cJSON *j)
{
	struct mc_secret *tok = NULL;
	int fail = EINVAL;
	bool first = true;
	cJSON *item;
	/* Every copy: a tree not from mc_json_parse may hold the key twice. */
	while (j != NULL && (item = cJSON_DetachItemFromObjectCaseSensitive(j, "auth_token")) != NULL) {
		if (first && cJSON_IsString(item) && item->valuestring != NULL) {
			tok = mc_secret_new(item->valuestring, strlen(item->valuestring));
			if (tok == NULL)
				fail = errno;
		}
		first = false;
		wipe_item(item);
	}
	if (tok == NULL)
		errno = fail;
	return tok;
}

bool mc_task_token_scoped(struct mc_secret *token)
{
	if (token == NULL || mc_secret_len(token) <= 4)
		return false;
	bool ok = strncmp(mc_secret_open(token), "mat_", 4) == 0;
	mc_secret_close(token);
	return ok;
}

/* ---- decoding ---- */

/* Reads a required UUID member into dst (40 bytes). */
static int get_uuid(const cJSON *o, const char *path, const char *key, char dst[40], char *err,
		    size_t err_size)
{
	char *s = NULL;
	if (mc_json_get_string(o, path, key, MC_JSON_STR_NONEMPTY, &s, err, err_size) < 0)
		return -1;
	int rc = 0;
	if (!mc_task_is_uuid(s)) {
		char p[PATH_LEN];
		mc_json_path_key(p, sizeof p, path, key);
		rc = mc_json_fail(err, err_size, p, "not a UUID");
	} else {
		strlcpy(dst, s, 40);
	}
	free(s);
	return rc;
}

/* An optional string member: "" when missing or null. */
static int opt_str(const cJSON *o, const char *path, const char *key, char **out, char *err,
		   size_t err_size)
{
	return mc_json_get_string(o, path, key, MC_JSON_STR_OR_EMPTY, out, err, err_size);
}

/* The last MC_TASK_KEY_LEN hex digits of the id, dashes left out. */
static void derive_key(const char *id, char key[MC_TASK_KEY_LEN + 1])
{
	size_t n = MC_TASK_KEY_LEN;
	key[n] = '\0';
	for (size_t i = strlen(id); i > 0 && n > 0; i--)
		if (id[i - 1] != '-')
			key[--n] = (char)tolower((unsigned char)id[i - 1]);
}

/* agent.custom_env: an object of strings, at most MAX_CUSTOM_ENV. */
static int decode_env(const cJSON *agent, struct mc_task *t, char *err, size_t err_size)
{
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(agent, "custom_env");
	if (env == NULL || cJSON_IsNull(env))
		return 0;
	if (!cJSON_IsObject(env))
		return mc_json_fail(err, err_size, "agent.custom_env", "expected object, got %s",
				    mc_json_type_name(env));
	int n = cJSON_GetArraySize(env);
	if (n > MAX_CUSTOM_ENV)
		return mc_json_fail(err, err_size, "agent.custom_env",
				    "%d entries, more than the %d allowed", n, MAX_CUSTOM_ENV);
	if (n == 0)
		return 0;
	t->custom_env = calloc((size_t)n, sizeof *t->custom_env);
	if (t->custom_env == NULL)
		return mc_json_fail(err, err_size, "agent.custom_env", "out of memory");
	const cJSON *e;
	cJSON_ArrayForEach(e, env) {
		char p[PATH_LEN];
		mc_json_path_key(p, sizeof p, "agent.custom_env", e->string != NULL ? e->string : "");
		if (!cJSON_IsString(e) || e->valuestring == NULL)
			return mc_json_fail(err, err_size, p, "expected string, got %s",
					    mc_json_type_name(e));
		if (e->string == NULL || e->string[0] == '\0')
			return mc_json_fail(err, err_size, p, "empty variable name");
		struct mc_kv *kv = &t->custom_env[t->n_custom_env];
		kv->key = strdup(e->string);
		kv->value = strdup(e->valuestring);
		t->n_custom_env++;
		if (kv->key == NULL || kv->value == NULL)
			return mc_json_fail(err, err_size, p, "out of memory");
	}
	return 0;
}

/* agent.custom_args: an array of strings, at most MAX_CUSTOM_ARGS. */
static int decode_args(const cJSON *agent, struct mc_task *t, char *err, size_t err_size)
{
	const cJSON *a = NULL;
	if (mc_json_get_array(agent, "agent", "custom_args", true, &a, err, err_size) < 0)
		return -1;
	if (a == NULL)
		return 0;
	int n = cJSON_GetArraySize(a);
	if (n > MAX_CUSTOM_ARGS)
		return mc_json_fail(err, err_size, "agent.custom_args",
				    "%d entries, more than the %d allowed", n, MAX_CUSTOM_ARGS);
	if (n == 0)
		return 0;
	t->custom_args = calloc((size_t)n, sizeof *t->custom_args);
	if (t->custom_args == NULL)
		return mc_json_fail(err, err_size, "agent.custom_args", "out of memory");
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		char p[PATH_LEN];
		mc_json_path_index(p, sizeof p, "agent.custom_args", t->n_custom_args);
		if (mc_json_elem_string(e, p, &t->custom_args[t->n_custom_args], err, err_size) < 0)
			return -1;
		t->n_custom_args++;
	}
	return 0;
}

static int decode_agent(const cJSON *j, struct mc_task *t, char *err, size_t err_size)
{
	const cJSON *agent = cJSON_GetObjectItemCaseSensitive(j, "agent");
	if (agent == NULL)
		return mc_json_fail(err, err_size, "agent", "missing");
	if (!cJSON_IsObject(agent))
		return mc_json_fail(err, err_size, "agent", "expected object, got %s",
				    mc_json_type_name(agent));
	char id[40];
	if (get_uuid(agent, "agent", "id", id, err, err_size) < 0)
		return -1;
	if (strcasecmp(id, t->agent_id) != 0)
		return mc_json_fail(err, err_size, "agent.id", "does not match agent_id");
	if (opt_str(agent, "agent", "name", &t->agent_name, err, err_size) < 0 ||
	    opt_str(agent, "agent", "instructions", &t->agent_instructions, err, err_size) < 0 ||
	    opt_str(agent, "agent", "model", &t->model, err, err_size) < 0 ||
	    opt_str(agent, "agent", "thinking_level", &t->thinking_level, err, err_size) < 0)
		return -1;
	return decode_env(agent, t, err, err_size) < 0 ? -1 : decode_args(agent, t, err, err_size);
}

static int decode_comment(const cJSON *o, const char *path, struct mc_task_comment *c,
			  char *err, size_t err_size)
{
	if (!cJSON_IsObject(o))
		return mc_json_fail(err, err_size, path, "expected object, got %s",
				    mc_json_type_name(o));
	if (opt_str(o, path, "id", &c->id, err, err_size) < 0 ||
	    opt_str(o, path, "author_type", &c->author_type, err, err_size) < 0 ||
	    opt_str(o, path, "author_name", &c->author_name, err, err_size) < 0 ||
	    opt_str(o, path, "content", &c->content, err, err_size) < 0 ||
	    opt_str(o, path, "created_at", &c->created_at, err, err_size) < 0)
		return -1;
	return 0;
}

static int decode_coalesced(const cJSON *j, struct mc_task *t, char *err, size_t err_size)
{
	const cJSON *a = NULL;
	if (mc_json_get_array(j, "", "coalesced_comments", true, &a, err, err_size) < 0)
		return -1;
	int n = a != NULL ? cJSON_GetArraySize(a) : 0;
	if (n == 0)
		return 0;
	t->coalesced = calloc((size_t)n, sizeof *t->coalesced);
	if (t->coalesced == NULL)
		return mc_json_fail(err, err_size, "coalesced_comments", "out of memory");
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		char p[PATH_LEN];
		mc_json_path_index(p, sizeof p, "coalesced_comments", t->n_coalesced);
		/* counted first: mc_task_clear frees a half-decoded entry */
		if (decode_comment(e, p, &t->coalesced[t->n_coalesced++], err, err_size) < 0)
			return -1;
	}
	return 0;
}

/* The optional top-level strings, "" when absent. */
static int decode_strings(const cJSON *j, struct mc_task *t, char *err, size_t err_size)
{
	struct { const char *key; char **dst; } f[] = {
		{ "issue_id", &t->issue_id },
		{ "prior_session_id", &t->prior_session_id },
		{ "prior_work_dir", &t->prior_work_dir },
		{ "trigger_comment_id", &t->trigger_comment_id },
		{ "trigger_thread_id", &t->trigger_thread_id },
		{ "trigger_comment_content", &t->trigger_comment_content },
		{ "trigger_author_type", &t->trigger_author_type },
		{ "trigger_author_name", &t->trigger_author_name },
		{ "chat_session_id", &t->chat_session_id },
		{ "chat_message", &t->chat_message },
		{ "handoff_note", &t->handoff_note },
		{ "thread_name", &t->thread_name },
		{ "workspace_context", &t->workspace_context },
		{ "project_title", &t->project_title },
		{ "project_description", &t->project_description },
		{ "regenerate_quick_actions_for", &t->regenerate_quick_actions_for },
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (opt_str(j, "", f[i].key, f[i].dst, err, err_size) < 0)
			return -1;
	return 0;
}

static int decode_all(const cJSON *j, struct mc_task *t, char *err, size_t err_size)
{
	if (!cJSON_IsObject(j))
		return mc_json_fail(err, err_size, "task", "expected object, got %s",
				    mc_json_type_name(j));
	if (get_uuid(j, "", "id", t->id, err, err_size) < 0 ||
	    get_uuid(j, "", "agent_id", t->agent_id, err, err_size) < 0 ||
	    get_uuid(j, "", "runtime_id", t->runtime_id, err, err_size) < 0 ||
	    get_uuid(j, "", "workspace_id", t->workspace_id, err, err_size) < 0 ||
	    decode_agent(j, t, err, err_size) < 0 || decode_strings(j, t, err, err_size) < 0 ||
	    mc_json_get_bool(j, "", "prior_session_resume_unavailable", false, false,
			     &t->prior_session_resume_unavailable, err, err_size) < 0 ||
	    decode_coalesced(j, t, err, err_size) < 0 || mc_task_decode_repos(j, t, err, err_size) < 0)
		return -1;
	derive_key(t->id, t->key);
	t->kind = t->chat_session_id[0] != '\0' ? MC_TASK_CHAT
		: t->trigger_comment_id[0] != '\0' ? MC_TASK_COMMENT : MC_TASK_ASSIGNMENT;
	return 0;
}

int mc_task_decode(const cJSON *j, struct mc_task *t, char *err, size_t err_size)
{
	memset(t, 0, sizeof *t);
	if (decode_all(j, t, err, err_size) == 0)
		return 0;
	mc_task_clear(t);
	return -1;
}

int mc_task_parse(const char *json, size_t len, struct mc_task *t, char *err, size_t err_size)
{
	memset(t, 0, sizeof *t);
	cJSON *j = mc_json_parse(json, len, err, err_size);
	if (j == NULL)
		return -1;
	/* The text may still hold the token: wiped here, never decoded. */
	if (cJSON_IsObject(j)) {
		int e = errno;
		mc_secret_free(mc_task_take_token(j));
		wipe_item(cJSON_DetachItemFromObjectCaseSensitive(j, "remote_mcp_daemon_token"));
		errno = e;
	}
	int rc = mc_task_decode(j, t, err, err_size);
	cJSON_Delete(j);
	return rc;
}

/* Frees a string after zeroing it (custom_env values are credentials). */
static void free_wiped(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
	free(s);
}

void mc_task_clear(struct mc_task *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_custom_env; i++) {
		free(t->custom_env[i].key);
		free_wiped(t->custom_env[i].value);
	}
	free(t->custom_env);
	for (size_t i = 0; i < t->n_custom_args; i++)
		free_wiped(t->custom_args[i]);
	free(t->custom_args);
	for (size_t i = 0; i < t->n_coalesced; i++) {
		struct mc_task_comment *c = &t->coalesced[i];
		free(c->id);
		free(c->author_type);
		free(c->author_name);
		free(c->content);
		free(c->created_at);
	}
	free(t->coalesced);
	free(t->repos);
	char **strs[] = {
		&t->issue_id, &t->agent_name, &t->agent_instructions, &t->model,
		&t->thinking_level, &t->prior_session_id, &t->prior_work_dir,
		&t->trigger_comment_id, &t->trigger_thread_id, &t->trigger_comment_content,
		&t->trigger_author_type, &t->trigger_author_name, &t->chat_session_id,
		&t->chat_message, &t->handoff_note, &t->thread_name, &t->workspace_context,
		&t->project_title, &t->project_description, &t->regenerate_quick_actions_for,
	};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		free(*strs[i]);
	memset(t, 0, sizeof *t);
}

void mc_task_token_hash_bytes(const char *token, size_t len, char out[MC_TOKEN_HASH_HEX])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof h, (const unsigned char *)token, len, NULL, 0);
	sodium_bin2hex(out, MC_TOKEN_HASH_HEX, h, sizeof h);
	sodium_memzero(h, sizeof h);
}

void mc_task_token_hash(struct mc_secret *token, char out[MC_TOKEN_HASH_HEX])
{
	const char *t = token != NULL ? mc_secret_open(token) : NULL;
	mc_task_token_hash_bytes(t != NULL ? t : "", t != NULL ? mc_secret_len(token) : 0, out);
	if (t != NULL)
		mc_secret_close(token);
}
