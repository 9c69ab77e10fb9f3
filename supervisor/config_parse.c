/* Configuration parsing (see config.h and config_int.h).
 *
 * libinih does the INI tokenising; around it:
 *  - the whole file is read into memory first and handed to inih line by
 *    line through our own reader, which counts lines (inih's handler gets no
 *    line number), tracks sections itself (inih does not report empty
 *    sections and truncates long section names), refuses lines inih would
 *    silently split (longer than its line buffer) or cut (NUL bytes), and
 *    finds the lines inih cannot parse (it reports only the first);
 *  - the handler validates each key as it arrives and records every
 *    problem; the line after a problem is read as if the problem were not
 *    there (a rejected section's keys are skipped, a rejected key's
 *    continuation lines too), so every independent mistake is reported once.
 *
 * inih continues a value on an indented line (Python configparser style).
 * That is useful for long workspace lists and confusing everywhere else, so
 * only workspaces and exclude_workspaces accept continuation lines. */
#include "supervisor/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <bsd/string.h>
#include <ini.h>

#include "supervisor/duration.h"

#define DURATION_MIN_MS 10L                 /* tests run with short intervals */
#define DURATION_DAY_MS 86400000L
#define DURATION_HOUR_MS 3600000L
#define PROVIDER_KEY_MAX_LEN 31

/* ---- small validators ---- */

bool mc_cfg_has_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool is_abs_path(const char *s)
{
	return s[0] == '/' && !mc_cfg_has_control_chars(s);
}

bool mc_cfg_is_daemon_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DAEMON_ID_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

static bool is_provider_key(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PROVIDER_KEY_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= '0' && *s <= '9') &&
		    *s != '_' && *s != '-')
			return false;
	return true;
}

static void lowercase(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Copies an absolute path value into dst (MC_PATH_MAX) or fails on key. */
static int take_abs_path(struct parse *p, const char *key, const char *v, char *dst)
{
	if (!is_abs_path(v))
		return fail_key(p, key, "\"%s\" is not an absolute path", v);
	if (strlcpy(dst, v, MC_PATH_MAX) >= MC_PATH_MAX)
		return fail_key(p, key, "path longer than %d characters", MC_PATH_MAX - 1);
	return 0;
}

/* ---- [daemon] keys ---- */

#define FIELD(p, k, type) ((type)((char *)(p)->c + (k)->off))

int mc_cfg_set_duration(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	long ms;
	if (mc_parse_duration_ms(v, &ms) < 0) {
		if (errno == ERANGE)
			return fail_key(p, k->name, "\"%s\" is too large", v);
		return fail_key(p, k->name, "\"%s\" is not a duration (use ms, s, m or h)", v);
	}
	if (ms < k->min || ms > k->max) {
		char lo[32], hi[32];
		mc_format_duration(k->min, lo, sizeof lo);
		mc_format_duration(k->max, hi, sizeof hi);
		return fail_key(p, k->name, "\"%s\" is out of range (%s to %s)", v, lo, hi);
	}
	*FIELD(p, k, long *) = ms;
	return 0;
}

static int set_path(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	return take_abs_path(p, k->name, v, FIELD(p, k, char *));
}

static int set_socket(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	struct sockaddr_un sun;
	if (strlen(v) >= sizeof sun.sun_path)
		return fail_key(p, k->name, "\"%s\" is too long for a unix socket path (at most %zu characters)",
				v, sizeof sun.sun_path - 1);
	return set_path(p, k, v, cont);
}

static int set_daemon_id(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (!mc_cfg_is_daemon_id(v))
		return fail_key(p, k->name, "\"%s\" must be 1 to %d characters of A-Z a-z 0-9 . _ -",
				v, DAEMON_ID_MAX_LEN);
	strlcpy(p->c->daemon_id, v, sizeof p->c->daemon_id);
	return 0;
}

static int set_device_name(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (v[0] == '\0')
		return fail_key(p, k->name, "empty (leave the key out to use the hostname)");
	if (mc_cfg_has_control_chars(v))
		return fail_key(p, k->name, "contains control characters");
	if (strlcpy(p->c->device_name, v, sizeof p->c->device_name) >= sizeof p->c->device_name)
		return fail_key(p, k->name, "longer than %d characters", MC_NAME_MAX - 1);
	return 0;
}

static int set_log_level(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (mc_log_parse_level(v, &p->c->log_level) < 0)
		return fail_key(p, k->name, "\"%s\" is not one of debug, info, warn, error", v);
	return 0;
}

/* Appends id (validated, lowercased) to l, growing l->v (heap, freed by
 * mc_config_load). */
static int idlist_add(struct parse *p, struct idlist *l, const char *key, const char *id)
{
	if (!mc_is_uuid(id))
		return fail_key(p, key, "\"%s\" is not a workspace UUID (separate IDs with spaces)", id);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct idline *v = reallocarray(l->v, cap, sizeof *v);
		if (v == NULL)
			return mc_cfg_nomem(p);
		l->v = v;
		l->cap = cap;
	}
	strlcpy(l->v[l->n].id, id, sizeof l->v[l->n].id);
	lowercase(l->v[l->n].id);
	l->v[l->n].line = p->line;
	l->n++;
	return 0;
}

/* Calls fn for each blank-separated word of v. */
static int for_each_word(struct parse *p, const char *key, const char *v,
			 int (*fn)(struct parse *, const char *, const char *))
{
	for (const char *s = v;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			return 0;
		size_t n = strcspn(s, " \t");
		char w[MC_ID_MAX + 8];
		if (n >= sizeof w)
			return fail_key(p, key, "\"%.40s...\" is not a workspace UUID (separate IDs with spaces)", s);
		memcpy(w, s, n);
		w[n] = '\0';
		if (fn(p, key, w) < 0)
			return -1;
		s += n;
	}
}

static int add_workspace_word(struct parse *p, const char *key, const char *w)
{
	if (strcmp(w, "all") == 0) {
		if (p->ws.n > 0)
			return fail_key(p, key, "\"all\" cannot be combined with workspace IDs");
		p->ws_all = true;
		p->ws_all_line = p->line;
		return 0;
	}
	if (p->ws_all)
		return fail_key(p, key, "\"all\" cannot be combined with workspace IDs");
	return idlist_add(p, &p->ws, key, w);
}

static int add_exclude_word(struct parse *p, const char *key, const char *w)
{
	return idlist_add(p, &p->ex, key, w);
}

static int set_workspaces(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (!cont) {
		/* an empty first line may be followed by continuation lines;
		 * finish() refuses a list that stays empty */
		p->ws.n = 0;
		p->ws_all = false;
	}
	return for_each_word(p, k->name, v, add_workspace_word);
}

static int set_exclude(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (!cont)
		p->ex.n = 0;
	return for_each_word(p, k->name, v, add_exclude_word);
}

/* "I/N": 0 <= I < N <= MC_SHARD_MAX, both plain decimal. */
static int set_shard(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	char *end;
	errno = 0;
	unsigned long i = strtoul(v, &end, 10), n = 0;
	bool ok = end != v && v[0] >= '0' && v[0] <= '9' && *end == '/' && errno == 0;
	if (ok) {
		const char *ns = end + 1;
		n = strtoul(ns, &end, 10);
		ok = end != ns && ns[0] >= '0' && ns[0] <= '9' && *end == '\0' && errno == 0;
	}
	if (!ok)
		return fail_key(p, k->name, "\"%s\" is not I/N (this host's shard I of N, e.g. 0/2)",
				v);
	if (n < 1 || n > MC_SHARD_MAX)
		return fail_key(p, k->name, "N must be between 1 and %d", MC_SHARD_MAX);
	if (i >= n)
		return fail_key(p, k->name, "I must be less than N (shards are 0 to %lu)", n - 1);
	p->c->shard_index = (unsigned)i;
	p->c->shard_count = (unsigned)n;
	return 0;
}

#define OFF(field) offsetof(struct mc_config, field)

/* Every [daemon] key, in the order mc_config_print writes them. */
const struct dkey mc_cfg_dkeys[] = {
	{ "server_url", mc_cfg_set_url, OFF(server_url), 0, 0, NULL, false },
	{ "token_file", set_path, OFF(token_file), 0, 0, NULL, false },
	{ "ca_file", set_path, OFF(ca_file), 0, 0, NULL, false },
	{ "daemon_id", set_daemon_id, OFF(daemon_id), 0, 0, NULL, false },
	{ "daemon_id_file", set_path, OFF(daemon_id_file), 0, 0, NULL, false },
	{ "device_name", set_device_name, OFF(device_name), 0, 0, NULL, false },
	{ "workspaces", set_workspaces, 0, 0, 0, "all", true },
	{ "exclude_workspaces", set_exclude, 0, 0, 0, "", true },
	{ "shard", set_shard, 0, 0, 0, "0/1", false },
	{ "heartbeat_interval", mc_cfg_set_duration, OFF(heartbeat_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "15s", false },
	{ "profile_sync_interval", mc_cfg_set_duration, OFF(profile_sync_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "30s", false },
	{ "workspace_sync_interval", mc_cfg_set_duration, OFF(workspace_sync_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "5m", false },
	{ "state_dir", set_path, OFF(state_dir), 0, 0, "/var/lib/multicad", false },
	{ "control_socket", set_socket, OFF(control_socket), 0, 0,
	  "/run/multicad/control.sock", false },
	{ "stop_timeout", mc_cfg_set_duration, OFF(stop_timeout_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "10s", false },
	/* a worker refuses an http timeout over an hour (ipc/messages.c) */
	{ "http_timeout", mc_cfg_set_duration, OFF(http_timeout_ms),
	  DURATION_MIN_MS, DURATION_HOUR_MS, "30s", false },
	{ "worker_ping_interval", mc_cfg_set_duration, OFF(worker_ping_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "5s", false },
	{ "worker_liveness_timeout", mc_cfg_set_duration, OFF(worker_liveness_timeout_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "20s", false },
	{ "restart_backoff_min", mc_cfg_set_duration, OFF(restart_backoff_min_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "1s", false },
	{ "restart_backoff_max", mc_cfg_set_duration, OFF(restart_backoff_max_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "60s", false },
	{ "log_level", set_log_level, 0, 0, 0, "info", false },
	/* tasks (config_tasks.c) */
	{ "max_concurrent_tasks", mc_cfg_set_int, OFF(max_concurrent_tasks), 1, 1000, "20", false },
	{ "task_poll_interval", mc_cfg_set_duration, OFF(task_poll_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "30s", false },
	{ "workspaces_root", set_path, OFF(workspaces_root), 0, 0, NULL, false },
	{ "task_idle_timeout", mc_cfg_set_days, OFF(task_idle_timeout_ms),
	  DURATION_MIN_MS, MC_CFG_TASK_MS_MAX, "30m", false },
	{ "task_stop_grace", mc_cfg_set_duration, OFF(task_stop_grace_ms),
	  DURATION_MIN_MS, DURATION_HOUR_MS, "10s", false },
	{ "task_drain_timeout", mc_cfg_set_days, OFF(task_drain_timeout_ms),
	  DURATION_MIN_MS, MC_CFG_TASK_MS_MAX, "1h", false },
	{ "task_retention", mc_cfg_set_days, OFF(task_retention_ms),
	  DURATION_MIN_MS, MC_CFG_TASK_MS_MAX, "7d", false },
	{ "agent_api_listen", mc_cfg_set_agent_api, 0, 0, 0, "127.0.0.1:19514", false },
	/* the agents' identity (config_agents.c) */
	{ "agent_user", mc_cfg_set_agent_user, OFF(agent_user), 0, 0, "multicad-agent", false },
	{ "agent_uid_range", mc_cfg_set_id_range, OFF(agent_uid_lo), 0, 0, "", false },
	{ "agent_gid_range", mc_cfg_set_id_range, OFF(agent_gid_lo), 0, 0, "62000-62999", false },
	{ "agent_home_template", mc_cfg_set_opt_path, OFF(agent_home_template), 0, 0, "", false },
	{ "agent_env_file", mc_cfg_set_opt_path, OFF(agent_env_file), 0, 0, "", false },
	{ "allow_profile_paths", mc_cfg_set_bool, OFF(allow_profile_paths), 0, 0, "false", false },
	/* the link's push channel */
	{ "websocket", mc_cfg_set_onoff, OFF(websocket), 0, 0, "on", false },
};
#define N_DKEYS (sizeof mc_cfg_dkeys / sizeof mc_cfg_dkeys[0])
_Static_assert(N_DKEYS <= DKEYS_MAX, "daemon_keys_set and dkey_line hold 64 keys");
const size_t mc_cfg_n_dkeys = N_DKEYS;

int mc_cfg_dkey_index(const char *name)
{
	for (size_t i = 0; i < N_DKEYS; i++)
		if (strcmp(mc_cfg_dkeys[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* The default provider list, used when the file has no [providers]: the
 * families multicad runs tasks for (worker/backend.c). Any other is never
 * registered, so probing for it would only cost time. */
static const struct {
	const char *key, *command;
} default_providers[] = {
	{ "claude", "claude" }, { "codex", "codex" },
};
#define N_DEFAULT_PROVIDERS (sizeof default_providers / sizeof default_providers[0])
_Static_assert(N_DEFAULT_PROVIDERS <= MC_MAX_BUILTINS, "default providers fit");

void mc_cfg_apply_defaults(struct parse *p)
{
	struct mc_config *c = p->c;
	c->providers_default = true;
	for (size_t i = 0; i < N_DEFAULT_PROVIDERS; i++) {
		strlcpy(c->providers[i].key, default_providers[i].key, sizeof c->providers[i].key);
		strlcpy(c->providers[i].command, default_providers[i].command,
			sizeof c->providers[i].command);
	}
	c->n_providers = N_DEFAULT_PROVIDERS;
	for (size_t i = 0; i < N_DKEYS; i++)
		if (mc_cfg_dkeys[i].def != NULL)
			mc_cfg_dkeys[i].set(p, &mc_cfg_dkeys[i], mc_cfg_dkeys[i].def, false);
	p->ws_all = true;
	c->daemon_keys_set = 0;
}

/* An indented line after a key that is not a list: reported once, the
 * key's further continuation lines are skipped. */
static int refuse_continuation(struct parse *p, const char *key)
{
	p->prev_failed = true;
	return fail_key(p, key, "an indented line continues this value; only workspaces and "
			"exclude_workspaces may continue on indented lines (remove the indentation)");
}

static int handle_daemon_key(struct parse *p, const char *key, const char *v, bool cont)
{
	int i = mc_cfg_dkey_index(key);
	if (i < 0)
		return fail_key(p, NULL, "unknown key \"%s\" in [daemon]", key);
	const struct dkey *k = &mc_cfg_dkeys[i];
	if (cont && !k->list)
		return refuse_continuation(p, key);
	if (!cont && p->dkey_line[i] != 0)
		return fail_key(p, key, "duplicate key (first set on line %u)", p->dkey_line[i]);
	if (!cont)
		p->dkey_line[i] = p->line; /* a later duplicate is one even when this fails */
	if (k->set(p, k, v, cont) < 0) {
		p->dkey_bad[i] = true;
		return -1;
	}
	p->c->daemon_keys_set |= UINT64_C(1) << i;
	return 0;
}

/* ---- [providers] ---- */

static int check_command(struct parse *p, const char *key, const char *v)
{
	if (v[0] == '\0')
		return fail_key(p, key, "empty (give a command name or an absolute path)");
	if (v[0] == '/')
		return is_abs_path(v) ? 0 : fail_key(p, key, "contains control characters");
	if (strchr(v, '/') != NULL)
		return fail_key(p, key, "\"%s\" must be a command name without '/' or an absolute path", v);
	if (mc_cfg_has_control_chars(v) || strpbrk(v, " \t") != NULL)
		return fail_key(p, key, "\"%s\" must be a command name, without arguments or blanks", v);
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return fail_key(p, key, "\"%s\" is not a command name", v);
	return 0;
}

static int handle_provider_key(struct parse *p, const char *key, const char *v, bool cont)
{
	struct mc_config *c = p->c;
	if (cont)
		return refuse_continuation(p, key);
	if (!is_provider_key(key))
		return fail_key(p, NULL, "provider \"%s\": names are 1 to %d characters of a-z 0-9 _ -",
				key, PROVIDER_KEY_MAX_LEN);
	for (size_t i = 0; i < c->n_providers; i++)
		if (strcmp(c->providers[i].key, key) == 0)
			return fail_key(p, key, "duplicate key (first set on line %u)", p->provider_line[i]);
	if (c->n_providers == MC_MAX_BUILTINS)
		return fail_key(p, key, "more than %d providers", MC_MAX_BUILTINS);
	if (check_command(p, key, v) < 0)
		return -1;
	struct mc_provider *pr = &c->providers[c->n_providers];
	if (strlcpy(pr->command, v, sizeof pr->command) >= sizeof pr->command)
		return fail_key(p, key, "longer than %d characters", MC_PATH_MAX - 1);
	strlcpy(pr->key, key, sizeof pr->key);
	p->provider_line[c->n_providers++] = p->line;
	return 0;
}

/* ---- [workspace <uuid>] ---- */

/* Appends one profile_command override to s, growing s->overrides (heap,
 * owned by the config). */
static int add_override(struct parse *p, struct mc_ws_section *s, const char *key,
			const char *pid, const char *v)
{
	if (!mc_is_uuid(pid))
		return fail_key(p, key, "\"%s\" is not a profile UUID", pid);
	for (size_t i = 0; i < s->n_overrides; i++)
		if (strcasecmp(s->overrides[i].profile_id, pid) == 0)
			return fail_key(p, key, "duplicate key");
	if (s->n_overrides == MC_MAX_OVERRIDES)
		return fail_key(p, key, "more than %d profile_command entries in one workspace",
				MC_MAX_OVERRIDES);
	if (s->n_overrides == p->ov_cap) {
		size_t cap = p->ov_cap ? p->ov_cap * 2 : 4;
		struct mc_profile_override *o = reallocarray(s->overrides, cap, sizeof *o);
		if (o == NULL)
			return mc_cfg_nomem(p);
		s->overrides = o;
		p->ov_cap = cap;
	}
	struct mc_profile_override *o = &s->overrides[s->n_overrides];
	if (take_abs_path(p, key, v, o->path) < 0)
		return -1;
	strlcpy(o->profile_id, pid, sizeof o->profile_id);
	lowercase(o->profile_id);
	/* They reach the worker in one CONFIG message: bounded together. */
	size_t size = mc_ipc_overrides_json_size(s->overrides, s->n_overrides + 1);
	if (size > MC_IPC_OVERRIDES_JSON_MAX)
		return fail_key(p, key, "the profile_command entries of this workspace take %zu bytes "
				"in the worker's configuration message, more than its %u-byte limit "
				"(shorter paths, or fewer entries)", size, MC_IPC_OVERRIDES_JSON_MAX);
	s->n_overrides++;
	return 0;
}

#ifdef MC_TEST_HOOKS
static int set_test_fault(struct parse *p, struct mc_ws_section *s, const char *key, const char *v)
{
	if (s->test_fault[0] != '\0')
		return fail_key(p, key, "duplicate key");
	size_t n = strlen(v);
	if (n == 0 || n >= MC_TEST_FAULT_MAX)
		return fail_key(p, key, "must be 1 to %d characters", MC_TEST_FAULT_MAX - 1);
	for (const char *q = v; *q; q++)
		if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-')
			return fail_key(p, key, "\"%s\" is not a word (A-Z a-z 0-9 _ -)", v);
	strlcpy(s->test_fault, v, sizeof s->test_fault);
	return 0;
}
#endif

static int handle_ws_key(struct parse *p, const char *key, const char *v, bool cont)
{
	struct mc_ws_section *s = &p->c->ws_sections[p->ws_idx];
	if (cont)
		return refuse_continuation(p, key);
	if (strncmp(key, PROFILE_PREFIX, strlen(PROFILE_PREFIX)) == 0)
		return add_override(p, s, key, key + strlen(PROFILE_PREFIX), v);
#ifdef MC_TEST_HOOKS
	if (strcmp(key, "test_fault") == 0)
		return set_test_fault(p, s, key, v);
#endif
	return fail_key(p, NULL, "unknown key \"%s\" in [workspace %s] (expected profile_command.<profile-uuid>)",
			key, s->id);
}

/* ---- sections (seen by the reader) ---- */

/* Starts a [workspace <id>] section: a new entry in c->ws_sections (heap,
 * grown here, owned by the config). */
static int begin_workspace(struct parse *p, const char *id)
{
	struct mc_config *c = p->c;
	if (!mc_is_uuid(id))
		return fail_key(p, NULL, "section [workspace %s]: not a workspace UUID", id);
	if (c->n_ws_sections == p->ws_cap) {
		size_t cap = p->ws_cap ? p->ws_cap * 2 : 8;
		struct mc_ws_section *v = reallocarray(c->ws_sections, cap, sizeof *v);
		if (v == NULL)
			return mc_cfg_nomem(p);
		c->ws_sections = v;
		p->ws_cap = cap;
	}
	struct mc_ws_section *s = &c->ws_sections[c->n_ws_sections];
	memset(s, 0, sizeof *s);
	strlcpy(s->id, id, sizeof s->id);
	lowercase(s->id);
	s->line = p->line;
	p->ws_idx = c->n_ws_sections++;
	p->ov_cap = 0;
	p->sec = SEC_WORKSPACE;
	return 0;
}

/* Enters section name (already trimmed). */
static int begin_section(struct parse *p, char *name)
{
	p->prev_key[0] = '\0';
	if (strcmp(name, "daemon") == 0) {
		if (p->daemon_line != 0)
			return fail_key(p, NULL, "section [daemon] appears twice (first on line %u)",
					p->daemon_line);
		p->daemon_line = p->line;
		p->sec = SEC_DAEMON;
		return 0;
	}
	if (strcmp(name, "providers") == 0) {
		if (p->providers_line != 0)
			return fail_key(p, NULL, "section [providers] appears twice (first on line %u)",
					p->providers_line);
		p->providers_line = p->line;
		p->c->providers_section = true;
		p->c->providers_default = false;
		p->c->n_providers = 0;
		p->sec = SEC_PROVIDERS;
		return 0;
	}
	if (strcmp(name, "workspace") == 0)
		return fail_key(p, NULL, "section [workspace] needs a workspace UUID: [workspace <uuid>]");
	if (strncmp(name, "workspace", 9) == 0 && (name[9] == ' ' || name[9] == '\t')) {
		char *id = name + 9;
		id += strspn(id, " \t");
		return begin_workspace(p, id);
	}
	return fail_key(p, NULL, "unknown section [%s] (expected [daemon], [providers] or [workspace <uuid>])",
			name);
}

/* A line whose first non-blank is '[': "[name]" with optional blanks and a
 * trailing comment. */
static int section_line(struct parse *p, const char *s, size_t n)
{
	const char *close = memchr(s, ']', n);
	if (close == NULL)
		return fail_key(p, NULL, "section header without a closing ']'");
	const char *rest = close + 1, *end = s + n;
	while (rest < end && (*rest == ' ' || *rest == '\t' || *rest == '\r'))
		rest++;
	if (rest < end && *rest != ';' && *rest != '#')
		return fail_key(p, NULL, "unexpected text after the section header");
	char name[256];
	const char *a = s + 1, *b = close;
	while (a < b && (*a == ' ' || *a == '\t'))
		a++;
	while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	if ((size_t)(b - a) >= sizeof name)
		return fail_key(p, NULL, "section name too long");
	memcpy(name, a, (size_t)(b - a));
	name[b - a] = '\0';
	return begin_section(p, name);
}

/* ---- the reader: one physical line per call ---- */

/* The text of a line (trimmed, at most 60 characters), for a message. */
static void quote_text(const char *s, size_t l, char *out, size_t out_size)
{
	while (l > 0 && isspace((unsigned char)s[l - 1]))
		l--;
	while (l > 0 && isspace((unsigned char)*s)) {
		s++;
		l--;
	}
	if (l > 60)
		l = 60;
	snprintf(out, out_size, "%.*s", (int)l, s);
}

static int syntax_error(struct parse *p, unsigned line, const char *s, size_t n)
{
	char text[64];
	quote_text(s, n, text, sizeof text);
	return mc_cfg_problem(p, EINVAL, line, NULL,
			      "syntax error: \"%s\" (expected key = value, [section] or a comment)", text);
}

/* True if inih would refuse the line s (n bytes, not a section header):
 * not blank, not a comment, not a continuation, and no '=' or ':' before
 * an inline comment (" ;"). The same rules as inih's (ini.c, defaults). */
static bool is_syntax_error(const struct parse *p, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && isspace((unsigned char)s[i]))
		i++;
	if (i == n || s[i] == ';' || s[i] == '#')
		return false;
	if (i > 0 && p->prev_key[0] != '\0')
		return false; /* a continuation line: the handler judges it */
	for (size_t j = i; j < n; j++) {
		if (s[j] == '=' || s[j] == ':')
			return false;
		if (s[j] == ';' && j > 0 && isspace((unsigned char)s[j - 1]))
			return true;
	}
	return true;
}

/* Copies line s (n bytes) into inih's buffer str (num bytes), or, for a
 * line whose problem was recorded, what stands in for it: "" (nothing), or
 * "[]" for a rejected header (so that inih, too, ends the previous key). */
static char *hand_over(char *str, int num, const char *s, size_t n)
{
	if (num < 3)
		return NULL;
	if (n >= (size_t)num)
		n = 0;
	memcpy(str, s, n);
	str[n] = '\0';
	return str;
}

static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	if (p->fatal || p->pos >= p->len)
		return NULL;
	const char *s = p->buf + p->pos;
	const char *nl = memchr(s, '\n', p->len - p->pos);
	size_t n = nl ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += n + (nl ? 1 : 0);
	p->line++;
	if (p->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3; /* UTF-8 BOM */
		n -= 3;
	}
	size_t blanks = 0;
	while (blanks < n && (s[blanks] == ' ' || s[blanks] == '\t'))
		blanks++;
	bool header = blanks < n && s[blanks] == '[';
	bool has_nul = memchr(s, '\0', n) != NULL;
	if (has_nul || num <= 0 || n >= (size_t)num) {
		if (has_nul)
			fail_key(p, NULL, "line contains a NUL byte");
		else
			fail_key(p, NULL, "line longer than %d characters", num > 0 ? num - 1 : 0);
		p->prev_failed = true;
		if (header) { /* a section we cannot read: skip its keys */
			p->sec = SEC_SKIP;
			p->prev_key[0] = '\0';
			return hand_over(str, num, "[]", 2);
		}
		return hand_over(str, num, "", 0);
	}
	p->indented = blanks > 0 && blanks < n;
	if (header) {
		/* A header, even an indented one (inih would read that as a
		 * continuation line); hand it to inih unindented. */
		p->indented = false;
		if (section_line(p, s + blanks, n - blanks) < 0) {
			p->sec = SEC_SKIP;
			p->prev_key[0] = '\0';
			return hand_over(str, num, "[]", 2);
		}
		return hand_over(str, num, s + blanks, n - blanks);
	}
	if (is_syntax_error(p, s, n)) {
		syntax_error(p, p->line, s, n);
		return hand_over(str, num, "", 0);
	}
	return hand_over(str, num, s, n);
}

/* ---- the handler ---- */

/* inih calls a continuation line with its (truncated) copy of the previous
 * key; ours is complete. */
static int dispatch(struct parse *p, const char *name, const char *value, bool cont)
{
	const char *key = cont ? p->prev_key : name;
	switch (p->sec) {
	case SEC_NONE:
		return fail_key(p, NULL, "key \"%s\" outside any section (put it under [daemon])", name);
	case SEC_DAEMON:
		return handle_daemon_key(p, key, value, cont);
	case SEC_PROVIDERS:
		return handle_provider_key(p, key, value, cont);
	case SEC_WORKSPACE:
		return handle_ws_key(p, key, value, cont);
	case SEC_SKIP:
		return 0;
	}
	return -1;
}

/* Always 1 (go on): problems are recorded, not returned to inih, whose own
 * error report is then only about lines it could not parse. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	/* the same rule as inih's: an indented line after a key continues it */
	bool cont = p->indented && p->prev_key[0] != '\0';
	if (cont && p->prev_failed)
		return 1; /* the key's problem was reported with its first line */
	size_t before = mc_cfg_n_problems(p);
	dispatch(p, name, value != NULL ? value : "", cont);
	if (!cont) {
		if (strlcpy(p->prev_key, name, sizeof p->prev_key) >= sizeof p->prev_key)
			p->prev_key[0] = '\0'; /* too long to be a list key anyway */
		p->prev_failed = mc_cfg_n_problems(p) != before;
	}
	return 1;
}

void mc_cfg_parse_buffer(struct parse *p)
{
	int r = ini_parse_stream(read_line, p, on_key, p);
	if (r == -2) {
		mc_cfg_nomem(p);
		return;
	}
	/* A line inih refused that is_syntax_error let through (the two should
	 * agree; this keeps inih the judge of its own syntax). */
	if (r > 0 && !p->fatal) {
		const char *s = p->buf, *end = p->buf + p->len;
		for (int i = 1; i < r && s < end; i++) {
			const char *nl = memchr(s, '\n', (size_t)(end - s));
			s = nl ? nl + 1 : end;
		}
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		syntax_error(p, (unsigned)r, s, nl ? (size_t)(nl - s) : (size_t)(end - s));
	}
}
