/* The agent's environment: de-duplicated, filtered, token-safe. */
#include "worker/agent_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/log.h"

/* custom_env may not set these (multica D:8848-8860 and friends): the
 * daemon owns the agent's identity, paths and temp dir. */
static const char *const blocked_keys[] = {
	"HOME", "PATH", "USER", "SHELL", "TERM", "TMPDIR", "TMP", "TEMP", "CODEX_HOME",
	"REASONIX_STATE_HOME", "CURSOR_DATA_DIR", "OPENCLAW_CONFIG_PATH",
	"OPENCLAW_INCLUDE_ROOTS", "CURSOR_MCP_AUTH_SOURCE",
};

/* Claude Code's own markers: an agent started from inside a Claude session
 * would otherwise believe it is nested (CL:922-990). */
static const char *const claude_markers[] = {
	"CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_EXECPATH",
	"CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_SSE_PORT",
};

bool mc_agent_env_blocked(const char *key)
{
	if (strncmp(key, "MULTICA_", 8) == 0)
		return true;
	for (size_t i = 0; i < sizeof blocked_keys / sizeof *blocked_keys; i++)
		if (strcmp(key, blocked_keys[i]) == 0)
			return true;
	return false;
}

/* The service manager's hand-over to the daemon itself: an agent must
 * not notify systemd as if it were multicad, nor take its sockets. */
static const char *const service_keys[] = {
	"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_PID", "LISTEN_FDS",
	"LISTEN_FDNAMES",
};

static bool in_list(const char *key, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, v[i]) == 0)
			return true;
	return false;
}

bool mc_agent_env_stripped(const char *key)
{
	if (strncmp(key, "MULTICA_", 8) == 0 || strncmp(key, "CLAUDECODE_", 11) == 0)
		return true;
	return in_list(key, claude_markers, sizeof claude_markers / sizeof *claude_markers) ||
	       in_list(key, service_keys, sizeof service_keys / sizeof *service_keys);
}

struct envb {
	char **v;             /* "KEY=VALUE", malloc'd */
	size_t n, cap;
	const char *forbid;   /* open daemon token, or NULL */
	size_t forbid_len;
	bool oom;
};

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void mc_agent_env_free(char **envp)
{
	if (!envp)
		return;
	for (char **p = envp; *p; p++)
		wipe_free(*p);
	free(envp);
}

static bool key_valid(const char *key, size_t klen)
{
	return klen > 0 && memchr(key, '=', klen) == NULL;
}

static ssize_t find_key(const struct envb *e, const char *key, size_t klen)
{
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->v[i], key, klen) == 0 && e->v[i][klen] == '=')
			return (ssize_t)i;
	return -1;
}

static void remove_at(struct envb *e, size_t i)
{
	wipe_free(e->v[i]);
	memmove(e->v + i, e->v + i + 1, (e->n - i) * sizeof *e->v);  /* with the NULL */
	e->n--;
}

/* Sets key (klen bytes) to value: replaces an earlier one in place. A value
 * holding the daemon token drops the variable altogether (and an earlier
 * one of the same key: it must not survive either). */
static void env_set(struct envb *e, const char *key, size_t klen, const char *value,
		    const char *source)
{
	if (!key_valid(key, klen)) {
		mc_log(MC_LOG_WARN, "agent env: invalid key skipped", "source", source, NULL);
		return;
	}
	ssize_t at = find_key(e, key, klen);
	if (e->forbid && e->forbid_len && memmem(value, strlen(value), e->forbid, e->forbid_len)) {
		char k[128];
		strlcpy(k, key, klen + 1 < sizeof k ? klen + 1 : sizeof k);
		mc_log(MC_LOG_WARN, "agent env: variable holding the daemon token dropped",
		       "key", k, "source", source, NULL);
		if (at >= 0)
			remove_at(e, (size_t)at);
		return;
	}
	size_t vlen = strlen(value);
	char *kv = malloc(klen + vlen + 2);
	if (!kv) {
		e->oom = true;
		return;
	}
	memcpy(kv, key, klen);
	kv[klen] = '=';
	memcpy(kv + klen + 1, value, vlen + 1);
	if (at >= 0) {
		wipe_free(e->v[at]);
		e->v[at] = kv;
		return;
	}
	if (e->n + 1 >= e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		char **v = realloc(e->v, cap * sizeof *v);
		if (!v) {
			wipe_free(kv);
			e->oom = true;
			return;
		}
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = kv;
	e->v[e->n] = NULL;
}

static void env_sets(struct envb *e, const char *key, const char *value)
{
	if (value)
		env_set(e, key, strlen(key), value, "daemon");
}

static void add_base(struct envb *e, char *const *base)
{
	for (; base && *base; base++) {
		const char *eq = strchr(*base, '=');
		if (!eq)
			continue;
		size_t klen = (size_t)(eq - *base);
		char key[256];
		if (klen == 0 || klen >= sizeof key)
			continue;
		memcpy(key, *base, klen);
		key[klen] = '\0';
		if (!mc_agent_env_stripped(key))
			env_set(e, *base, klen, eq + 1, "environ");
	}
}

static void add_extra(struct envb *e, char *const *extra)
{
	for (; extra && *extra; extra++) {
		const char *eq = strchr(*extra, '=');
		char key[256];
		size_t klen = eq ? (size_t)(eq - *extra) : 0;
		if (klen == 0 || klen >= sizeof key)
			continue;
		memcpy(key, *extra, klen);
		key[klen] = '\0';
		if (!mc_agent_env_blocked(key)) /* envfile.c refused them already */
			env_set(e, *extra, klen, eq + 1, "agent_env_file");
	}
}

static void add_identity(struct envb *e, const char *home, const char *user)
{
	env_sets(e, "HOME", home);
	env_sets(e, "USER", user);
	env_sets(e, "LOGNAME", user);
}

static void add_task(struct envb *e, const struct mc_agent_env_in *in, const char *token)
{
	const struct mc_task *t = in->task;
	char slot[24];
	snprintf(slot, sizeof slot, "%d", in->slot);
	env_sets(e, "MULTICA_TOKEN", token);
	env_sets(e, "MULTICA_SERVER_URL", in->server_url);
	if (in->daemon_port && *in->daemon_port)
		env_sets(e, "MULTICA_DAEMON_PORT", in->daemon_port);
	env_sets(e, "MULTICA_WORKSPACE_ID", t->workspace_id);
	env_sets(e, "MULTICA_AGENT_ID", t->agent_id);
	env_sets(e, "MULTICA_AGENT_NAME", t->agent_name ? t->agent_name : "");
	env_sets(e, "MULTICA_TASK_ID", t->id);
	env_sets(e, "MULTICA_TASK_SLOT", slot);
	env_sets(e, "MULTICA_TASK_CONFIG_ROOT", in->config_root);
	env_sets(e, "MULTICA_TASK_WORKSPACES_ROOT", in->workspaces_root);
	env_sets(e, "TMPDIR", in->tmpdir);
	env_sets(e, "TMP", in->tmpdir);
	env_sets(e, "TEMP", in->tmpdir);
	env_sets(e, "CODEX_HOME", in->codex_home);
}

static void add_custom(struct envb *e, const struct mc_task *t)
{
	for (size_t i = 0; i < t->n_custom_env; i++) {
		const struct mc_kv *kv = &t->custom_env[i];
		if (!kv->key || !kv->value)
			continue;
		if (mc_agent_env_blocked(kv->key)) {
			mc_log(MC_LOG_INFO, "agent env: blocked custom_env key ignored",
			       "task", t->id, "key", kv->key, NULL);
			continue;
		}
		env_set(e, kv->key, strlen(kv->key), kv->value, "custom_env");
	}
}

char **mc_agent_env_build(const struct mc_agent_env_in *in, char *err, size_t err_size)
{
	if (!in || !in->task || !in->task_token || !in->tmpdir || !in->server_url) {
		snprintf(err, err_size, "agent env: missing input");
		errno = EINVAL;
		return NULL;
	}
	struct envb e = {0};
	if (in->forbidden) {
		e.forbid = mc_secret_open(in->forbidden);
		e.forbid_len = mc_secret_len(in->forbidden);
	}
	const char *token = mc_secret_open(in->task_token);
	add_base(&e, in->base);
	add_extra(&e, in->extra);
	add_identity(&e, in->home, in->user);
	add_task(&e, in, token ? token : "");
	mc_secret_close(in->task_token);
	add_custom(&e, in->task);
	if (in->forbidden)
		mc_secret_close(in->forbidden);
	if (!e.oom && !e.v && !(e.v = calloc(1, sizeof *e.v)))
		e.oom = true;
	if (!e.oom && find_key(&e, "MULTICA_TOKEN", 13) < 0) {
		snprintf(err, err_size, "agent env: the task token cannot be passed");
		mc_agent_env_free(e.v);
		errno = EINVAL;
		return NULL;
	}
	if (e.oom) {
		snprintf(err, err_size, "agent env: out of memory");
		mc_agent_env_free(e.v);
		errno = ENOMEM;
		return NULL;
	}
	return e.v;
}

char **mc_agent_env_base_build(char *const *base, char *const *extra, const char *home,
			       const char *user, struct mc_secret *forbidden)
{
	struct envb e = {0};
	if (forbidden) {
		e.forbid = mc_secret_open(forbidden);
		e.forbid_len = mc_secret_len(forbidden);
	}
	add_base(&e, base);
	add_extra(&e, extra);
	add_identity(&e, home, user);
	if (forbidden)
		mc_secret_close(forbidden);
	if (!e.oom && !e.v && !(e.v = calloc(1, sizeof *e.v)))
		e.oom = true;
	if (e.oom) {
		mc_agent_env_free(e.v);
		errno = ENOMEM;
		return NULL;
	}
	return e.v;
}

const char *mc_agent_env_get(char *const *envp, const char *key)
{
	size_t klen = strlen(key);
	for (; envp && *envp; envp++)
		if (strncmp(*envp, key, klen) == 0 && (*envp)[klen] == '=')
			return *envp + klen + 1;
	return NULL;
}
