/* Configuration file parsing and validation (see config.h).
 *
 * libinih does the INI tokenising; around it:
 *  - the whole file is read into memory first and handed to inih line by
 *    line through our own reader, which counts lines (inih's handler gets no
 *    line number), tracks sections itself (inih does not report empty
 *    sections and truncates long section names) and refuses lines inih
 *    would silently split (longer than its line buffer) or cut (NUL bytes);
 *  - the handler validates each key as it arrives and the first error stops
 *    the parse; checks that need the whole file run at the end.
 *
 * inih continues a value on an indented line (Python configparser style).
 * That is useful for long workspace lists and confusing everywhere else, so
 * only workspaces and exclude_workspaces accept continuation lines. */
#include "supervisor/config.h"
#include "common/fdio.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/string.h>
#include <curl/curl.h>
#include <ini.h>
#include <sodium.h>

#include "common/secret.h"
#include "supervisor/duration.h"

#define CONFIG_FILE_MAX (4L * 1024 * 1024) /* thousands of sections fit easily */
#define DURATION_MIN_MS 10L                 /* tests run with short intervals */
#define DURATION_DAY_MS 86400000L
#define DURATION_HOUR_MS 3600000L
#define DAEMON_ID_MAX_LEN 63
#define DAEMON_ID_FILE_MAX 256
#define PROVIDER_KEY_MAX_LEN 31
#define PROFILE_PREFIX "profile_command."
#define KEY_MAX 128                          /* longest key we remember */

/* ---- parse state ---- */

enum section { SEC_NONE, SEC_DAEMON, SEC_PROVIDERS, SEC_WORKSPACE };

struct idline {
	char id[MC_ID_MAX];
	unsigned line;
};

/* A growable list of ids with the line each came from (duplicate messages
 * name the line). */
struct idlist {
	struct idline *v;
	size_t n, cap;
};

struct dkey;

struct parse {
	struct mc_config *c;
	const char *path;
	char *err;
	size_t err_size;
	bool failed;
	int err_no;
	unsigned err_line;

	/* reader: the file in memory, the current physical line */
	const char *buf;
	size_t len, pos;
	unsigned line;
	bool indented;            /* the current line starts with a blank */

	enum section sec;
	size_t ws_idx;            /* current [workspace] in c->ws_sections */
	char prev_key[KEY_MAX];   /* last key of this section: continuations */
	unsigned daemon_line, providers_line;

	unsigned dkey_line[32];   /* line of each [daemon] key, 0 = not given */
	unsigned provider_line[MC_MAX_BUILTINS];
	bool ws_all;              /* "all" seen in the current workspaces value */
	unsigned ws_all_line;
	struct idlist ws, ex;
	size_t ws_cap;            /* capacity of c->ws_sections */
	size_t ov_cap;            /* capacity of the current section's overrides */
};

/* ---- error reporting: the first error wins ---- */

static int vfail(struct parse *p, int err_no, unsigned line, const char *key,
		 const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static int vfail(struct parse *p, int err_no, unsigned line, const char *key,
		 const char *fmt, va_list ap)
{
	if (p->failed)
		return -1;
	p->failed = true;
	p->err_no = err_no;
	p->err_line = line;
	if (p->err == NULL || p->err_size == 0)
		return -1;
	char msg[768];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (line > 0 && key != NULL)
		snprintf(p->err, p->err_size, "%s:%u: %s: %s", p->path, line, key, msg);
	else if (line > 0)
		snprintf(p->err, p->err_size, "%s:%u: %s", p->path, line, msg);
	else if (key != NULL)
		snprintf(p->err, p->err_size, "%s: %s: %s", p->path, key, msg);
	else
		snprintf(p->err, p->err_size, "%s: %s", p->path, msg);
	return -1;
}

/* An error about key on the current line. */
static int fail_key(struct parse *p, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_key(struct parse *p, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(p, EINVAL, p->line, key, fmt, ap);
	va_end(ap);
	return -1;
}

/* An error at a given line (0: the file as a whole), key may be NULL. */
static int fail_at(struct parse *p, int err_no, unsigned line, const char *key,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(struct parse *p, int err_no, unsigned line, const char *key,
		   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(p, err_no, line, key, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail_nomem(struct parse *p)
{
	return fail_at(p, ENOMEM, 0, NULL, "out of memory");
}

/* Writes a message that is not about a line of the file. */
static int plain_err(char *err, size_t err_size, int err_no, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int plain_err(char *err, size_t err_size, int err_no, const char *fmt, ...)
{
	if (err != NULL && err_size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	errno = err_no;
	return -1;
}

/* ---- small validators ---- */

static bool has_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool is_abs_path(const char *s)
{
	return s[0] == '/' && !has_control_chars(s);
}

static bool is_daemon_id(const char *s)
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

typedef int (*dkey_set)(struct parse *p, const struct dkey *k, const char *v, bool cont);

struct dkey {
	const char *name;
	dkey_set set;
	size_t off;             /* field in struct mc_config */
	long min, max;          /* durations */
	const char *def;        /* default as written in a file; NULL: none or computed */
	bool list;              /* may continue on indented lines */
};

#define FIELD(p, k, type) ((type)((char *)(p)->c + (k)->off))

static int set_duration(struct parse *p, const struct dkey *k, const char *v, bool cont)
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

static bool url_part_absent(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(u, part, &v, 0);
	curl_free(v);
	return rc != CURLUE_OK;
}

/* Checks an http(s) base URL with libcurl's parser. Returns NULL when it is
 * fine, else a reason. On success writes the normalised URL without its
 * trailing '/' into out (MC_URL_MAX). */
static const char *check_url(CURLU *u, const char *v, char *out)
{
	char *scheme = NULL, *path = NULL, *full = NULL;
	const char *why = NULL;
	if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0)
		why = "must start with http:// or https://";
	else if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK)
		why = "is not a valid URL";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		why = "must start with http:// or https://";
	else if (url_part_absent(u, CURLUPART_HOST))
		why = "has no host";
	else if (!url_part_absent(u, CURLUPART_USER) || !url_part_absent(u, CURLUPART_PASSWORD) ||
		 !url_part_absent(u, CURLUPART_OPTIONS))
		why = "must not contain credentials (the token comes from token_file)";
	else if (!url_part_absent(u, CURLUPART_QUERY) || !url_part_absent(u, CURLUPART_FRAGMENT) ||
		 strpbrk(v, "?#") != NULL)
		why = "must not have a query or fragment";
	else if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
		 (path[0] != '\0' && strcmp(path, "/") != 0))
		why = "must not have a path (the API paths are fixed)";
	else if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
		why = "is not a valid URL";
	if (why == NULL) {
		size_t n = strlen(full);
		while (n > 0 && full[n - 1] == '/')
			n--;
		if (n >= MC_URL_MAX)
			why = "is too long";
		else
			strlcpy(out, full, n + 1);
	}
	curl_free(scheme);
	curl_free(path);
	curl_free(full);
	return why;
}

static int set_url(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (has_control_chars(v) || strpbrk(v, " \t") != NULL)
		return fail_key(p, k->name, "\"%s\" contains blanks or control characters", v);
	CURLU *u = curl_url();
	if (u == NULL)
		return fail_nomem(p);
	const char *why = check_url(u, v, p->c->server_url);
	curl_url_cleanup(u);
	if (why != NULL)
		return fail_key(p, k->name, "\"%s\" %s", v, why);
	return 0;
}

static int set_daemon_id(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (!is_daemon_id(v))
		return fail_key(p, k->name, "\"%s\" must be 1 to %d characters of A-Z a-z 0-9 . _ -",
				v, DAEMON_ID_MAX_LEN);
	strlcpy(p->c->daemon_id, v, sizeof p->c->daemon_id);
	return 0;
}

static int set_device_name(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (v[0] == '\0')
		return fail_key(p, k->name, "empty (leave the key out to use the hostname)");
	if (has_control_chars(v))
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
			return fail_nomem(p);
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

#define OFF(field) offsetof(struct mc_config, field)

/* Every [daemon] key, in the order mc_config_print writes them. */
static const struct dkey dkeys[] = {
	{ "server_url", set_url, OFF(server_url), 0, 0, NULL, false },
	{ "token_file", set_path, OFF(token_file), 0, 0, NULL, false },
	{ "ca_file", set_path, OFF(ca_file), 0, 0, NULL, false },
	{ "daemon_id", set_daemon_id, OFF(daemon_id), 0, 0, NULL, false },
	{ "daemon_id_file", set_path, OFF(daemon_id_file), 0, 0, NULL, false },
	{ "device_name", set_device_name, OFF(device_name), 0, 0, NULL, false },
	{ "workspaces", set_workspaces, 0, 0, 0, "all", true },
	{ "exclude_workspaces", set_exclude, 0, 0, 0, "", true },
	{ "heartbeat_interval", set_duration, OFF(heartbeat_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "15s", false },
	{ "profile_sync_interval", set_duration, OFF(profile_sync_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "30s", false },
	{ "workspace_sync_interval", set_duration, OFF(workspace_sync_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "5m", false },
	{ "state_dir", set_path, OFF(state_dir), 0, 0, "/var/lib/multicad", false },
	{ "control_socket", set_socket, OFF(control_socket), 0, 0,
	  "/run/multicad/control.sock", false },
	{ "stop_timeout", set_duration, OFF(stop_timeout_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "10s", false },
	/* a worker refuses an http timeout over an hour (ipc/messages.c) */
	{ "http_timeout", set_duration, OFF(http_timeout_ms),
	  DURATION_MIN_MS, DURATION_HOUR_MS, "30s", false },
	{ "worker_ping_interval", set_duration, OFF(worker_ping_interval_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "5s", false },
	{ "worker_liveness_timeout", set_duration, OFF(worker_liveness_timeout_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "20s", false },
	{ "restart_backoff_min", set_duration, OFF(restart_backoff_min_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "1s", false },
	{ "restart_backoff_max", set_duration, OFF(restart_backoff_max_ms),
	  DURATION_MIN_MS, DURATION_DAY_MS, "60s", false },
	{ "log_level", set_log_level, 0, 0, 0, "info", false },
};
#define N_DKEYS (sizeof dkeys / sizeof dkeys[0])
_Static_assert(N_DKEYS <= 32, "daemon_keys_set and dkey_line hold 32 keys");

static int dkey_index(const char *name)
{
	for (size_t i = 0; i < N_DKEYS; i++)
		if (strcmp(dkeys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static unsigned dkey_line(const struct parse *p, const char *name)
{
	return p->dkey_line[dkey_index(name)];
}

/* The default provider list, used when the file has no [providers]. */
static const struct {
	const char *key, *command;
} default_providers[] = {
	{ "claude", "claude" }, { "codex", "codex" }, { "opencode", "opencode" },
	{ "copilot", "copilot" }, { "codebuddy", "codebuddy" }, { "kimi", "kimi" },
	{ "qwen", "qwen" }, { "grok", "grok" }, { "hermes", "hermes" }, { "pi", "pi" },
	{ "traecli", "traecli" }, { "mcode", "mcode" }, { "dim", "dim" },
	{ "reasonix", "reasonix" }, { "openclaw", "openclaw" }, { "deveco", "deveco" },
	{ "cursor", "cursor-agent" }, { "kiro", "kiro-cli" }, { "antigravity", "agy" },
	{ "qoder", "qodercli" },
};
#define N_DEFAULT_PROVIDERS (sizeof default_providers / sizeof default_providers[0])
_Static_assert(N_DEFAULT_PROVIDERS <= MC_MAX_BUILTINS, "default providers fit");

/* Defaults of every key that has one; the rest are checked in finish(). */
static void apply_defaults(struct parse *p)
{
	for (size_t i = 0; i < N_DKEYS; i++)
		if (dkeys[i].def != NULL)
			dkeys[i].set(p, &dkeys[i], dkeys[i].def, false);
	p->ws_all = true;
}

static int handle_daemon_key(struct parse *p, const char *key, const char *v, bool cont)
{
	int i = dkey_index(key);
	if (i < 0)
		return fail_key(p, NULL, "unknown key \"%s\" in [daemon]", key);
	const struct dkey *k = &dkeys[i];
	if (cont && !k->list)
		return fail_key(p, key, "an indented line continues this value; only workspaces and "
				"exclude_workspaces may continue on indented lines (remove the indentation)");
	if (!cont && p->dkey_line[i] != 0)
		return fail_key(p, key, "duplicate key (first set on line %u)", p->dkey_line[i]);
	if (k->set(p, k, v, cont) < 0)
		return -1;
	if (!cont)
		p->dkey_line[i] = p->line;
	p->c->daemon_keys_set |= UINT32_C(1) << i;
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
	if (has_control_chars(v) || strpbrk(v, " \t") != NULL)
		return fail_key(p, key, "\"%s\" must be a command name, without arguments or blanks", v);
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return fail_key(p, key, "\"%s\" is not a command name", v);
	return 0;
}

static int handle_provider_key(struct parse *p, const char *key, const char *v, bool cont)
{
	struct mc_config *c = p->c;
	if (cont)
		return fail_key(p, key, "an indented line continues this value; only workspaces and "
				"exclude_workspaces may continue on indented lines (remove the indentation)");
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
			return fail_nomem(p);
		s->overrides = o;
		p->ov_cap = cap;
	}
	struct mc_profile_override *o = &s->overrides[s->n_overrides];
	if (take_abs_path(p, key, v, o->path) < 0)
		return -1;
	strlcpy(o->profile_id, pid, sizeof o->profile_id);
	lowercase(o->profile_id);
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
		return fail_key(p, key, "an indented line continues this value; only workspaces and "
				"exclude_workspaces may continue on indented lines (remove the indentation)");
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
			return fail_nomem(p);
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

static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	if (p->failed || p->pos >= p->len)
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
	if (memchr(s, '\0', n) != NULL) {
		fail_key(p, NULL, "line contains a NUL byte");
		return NULL;
	}
	size_t blanks = 0;
	while (blanks < n && (s[blanks] == ' ' || s[blanks] == '\t'))
		blanks++;
	p->indented = blanks > 0 && blanks < n;
	if (blanks < n && s[blanks] == '[') {
		/* A header, even an indented one (inih would read that as a
		 * continuation line); hand it to inih unindented. */
		if (section_line(p, s + blanks, n - blanks) < 0)
			return NULL;
		s += blanks;
		n -= blanks;
		p->indented = false;
	}
	if (num <= 0 || n >= (size_t)num) {
		fail_key(p, NULL, "line longer than %d characters", num > 0 ? num - 1 : 0);
		return NULL;
	}
	memcpy(str, s, n);
	str[n] = '\0';
	return str;
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
	}
	return -1;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	if (p->failed)
		return 0;
	/* the same rule as inih's: an indented line after a key continues it */
	bool cont = p->indented && p->prev_key[0] != '\0';
	if (dispatch(p, name, value != NULL ? value : "", cont) < 0)
		return 0;
	if (!cont && strlcpy(p->prev_key, name, sizeof p->prev_key) >= sizeof p->prev_key)
		p->prev_key[0] = '\0'; /* too long to be a list key anyway */
	return 1;
}

/* ---- whole-file checks ---- */

static int cmp_idline(const void *a, const void *b)
{
	return strcmp(((const struct idline *)a)->id, ((const struct idline *)b)->id);
}

/* Sorts l, refuses duplicates and moves the ids into a new array *out. */
static int idlist_finish(struct parse *p, struct idlist *l, const char *key,
			 char (**out)[MC_ID_MAX], size_t *n_out)
{
	if (l->n == 0)
		return 0;
	qsort(l->v, l->n, sizeof *l->v, cmp_idline);
	for (size_t i = 1; i < l->n; i++) {
		if (strcmp(l->v[i - 1].id, l->v[i].id) == 0) {
			unsigned a = l->v[i - 1].line, b = l->v[i].line;
			return fail_at(p, EINVAL, a > b ? a : b, key, "%s is listed twice",
				       l->v[i].id);
		}
	}
	*out = calloc(l->n, sizeof **out);
	if (*out == NULL)
		return fail_nomem(p);
	for (size_t i = 0; i < l->n; i++)
		memcpy((*out)[i], l->v[i].id, MC_ID_MAX);
	*n_out = l->n;
	return 0;
}

static int cmp_ws_section(const void *a, const void *b)
{
	return strcmp(((const struct mc_ws_section *)a)->id, ((const struct mc_ws_section *)b)->id);
}

static int cmp_override(const void *a, const void *b)
{
	return strcmp(((const struct mc_profile_override *)a)->profile_id,
		      ((const struct mc_profile_override *)b)->profile_id);
}

static int finish_ws_sections(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->n_ws_sections == 0)
		return 0;
	qsort(c->ws_sections, c->n_ws_sections, sizeof *c->ws_sections, cmp_ws_section);
	for (size_t i = 0; i < c->n_ws_sections; i++) {
		struct mc_ws_section *s = &c->ws_sections[i];
		if (i > 0 && strcmp(s[-1].id, s->id) == 0) {
			unsigned a = s[-1].line, b = s->line;
			return fail_at(p, EINVAL, a > b ? a : b, NULL,
				       "section [workspace %s] appears twice (first on line %u)",
				       s->id, a < b ? a : b);
		}
		if (s->n_overrides > 1)
			qsort(s->overrides, s->n_overrides, sizeof *s->overrides, cmp_override);
	}
	return 0;
}

/* a must be less than (or, with or_equal, at most) b; the message goes to
 * whichever of the two keys came later in the file. */
static int check_order(struct parse *p, const char *ka, long a, const char *kb, long b,
		       bool or_equal)
{
	if (a < b || (or_equal && a == b))
		return 0;
	char as[32], bs[32];
	mc_format_duration(a, as, sizeof as);
	mc_format_duration(b, bs, sizeof bs);
	unsigned la = dkey_line(p, ka), lb = dkey_line(p, kb);
	const char *rel = or_equal ? "" : "strictly ";
	if (la > lb)
		return fail_at(p, EINVAL, la, ka, "%s must be %sless than %s%s (%s)",
			       as, rel, or_equal ? "or equal to " : "", kb, bs);
	return fail_at(p, EINVAL, lb, kb, "%s must be %sgreater than %s%s (%s)",
		       bs, rel, or_equal ? "or equal to " : "", ka, as);
}

static int finish_daemon_id(struct parse *p)
{
	struct mc_config *c = p->c;
	unsigned li = dkey_line(p, "daemon_id"), lf = dkey_line(p, "daemon_id_file");
	if (li != 0 && lf != 0)
		return fail_at(p, EINVAL, li > lf ? li : lf, li > lf ? "daemon_id" : "daemon_id_file",
			       "give either daemon_id or daemon_id_file, not both (the other is on line %u)",
			       li > lf ? lf : li);
	if (li == 0 && lf == 0) {
		int n = snprintf(c->daemon_id_file, sizeof c->daemon_id_file, "%s/daemon.id",
				 strcmp(c->state_dir, "/") == 0 ? "" : c->state_dir);
		if (n < 0 || (size_t)n >= sizeof c->daemon_id_file)
			return fail_at(p, EINVAL, dkey_line(p, "state_dir"), "state_dir",
				       "too long to hold daemon.id");
	}
	return 0;
}

static int finish_device_name(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->device_name[0] != '\0')
		return 0;
	if (gethostname(c->device_name, sizeof c->device_name) < 0)
		return fail_at(p, errno, 0, "device_name",
			       "cannot read the hostname (%s); set device_name", strerror(errno));
	c->device_name[sizeof c->device_name - 1] = '\0';
	if (c->device_name[0] == '\0' || has_control_chars(c->device_name))
		return fail_at(p, EINVAL, 0, "device_name",
			       "the hostname is not usable as a device name; set device_name");
	return 0;
}

static int finish(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->server_url[0] == '\0')
		return fail_at(p, EINVAL, 0, NULL, "server_url is required");
	if (c->token_file[0] == '\0')
		return fail_at(p, EINVAL, 0, NULL, "token_file is required");
	c->all_workspaces = p->ws_all;
	if (!p->ws_all && p->ws.n == 0)
		return fail_at(p, EINVAL, dkey_line(p, "workspaces"), "workspaces",
			       "empty (use all or a space-separated list of workspace UUIDs)");
	if (finish_daemon_id(p) < 0 || finish_device_name(p) < 0 ||
	    idlist_finish(p, &p->ws, "workspaces", &c->workspaces, &c->n_workspaces) < 0 ||
	    idlist_finish(p, &p->ex, "exclude_workspaces", &c->exclude, &c->n_exclude) < 0 ||
	    finish_ws_sections(p) < 0)
		return -1;
	if (check_order(p, "worker_ping_interval", c->worker_ping_interval_ms,
			"worker_liveness_timeout", c->worker_liveness_timeout_ms, false) < 0 ||
	    check_order(p, "restart_backoff_min", c->restart_backoff_min_ms,
			"restart_backoff_max", c->restart_backoff_max_ms, true) < 0)
		return -1;
	return 0;
}

/* ---- loading ---- */

/* Reads the whole regular file at path into a new NUL-terminated buffer
 * (caller frees). -1 with errno and a message in err. */
static char *slurp(const char *path, size_t *len, char *err, size_t err_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		plain_err(err, err_size, e, "%s: cannot open: %s", path, strerror(e));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		plain_err(err, err_size, e, "%s: cannot stat: %s", path, strerror(e));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		plain_err(err, err_size, EINVAL, "%s: not a regular file", path);
		return NULL;
	}
	size_t cap = (size_t)CONFIG_FILE_MAX + 1, used = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL) {
		close(fd);
		plain_err(err, err_size, ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	for (;;) {
		ssize_t r = read(fd, buf + used, cap - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			free(buf);
			plain_err(err, err_size, e, "%s: cannot read: %s", path, strerror(e));
			return NULL;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used == cap) {
			close(fd);
			free(buf);
			plain_err(err, err_size, EFBIG, "%s: larger than %ld bytes", path, CONFIG_FILE_MAX);
			return NULL;
		}
	}
	close(fd);
	buf[used] = '\0';
	*len = used;
	return buf;
}

/* The text of line n (1-based) of buf, for a syntax error message. */
static void quote_line(const char *buf, size_t len, unsigned n, char *out, size_t out_size)
{
	const char *s = buf, *end = buf + len;
	for (unsigned i = 1; i < n && s < end; i++) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		s = nl ? nl + 1 : end;
	}
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	size_t l = nl ? (size_t)(nl - s) : (size_t)(end - s);
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

static int parse_buffer(struct parse *p)
{
	int r = ini_parse_stream(read_line, p, on_key, p);
	if (r == -2)
		return fail_nomem(p);
	/* inih reports lines that are neither key = value nor a comment by
	 * number only, and keeps going; the earliest problem wins. */
	if (r > 0 && (!p->failed || (unsigned)r < p->err_line)) {
		char text[64];
		quote_line(p->buf, p->len, (unsigned)r, text, sizeof text);
		p->failed = false;
		return fail_at(p, EINVAL, (unsigned)r, NULL,
			       "syntax error: \"%s\" (expected key = value, [section] or a comment)", text);
	}
	if (p->failed)
		return -1;
	return finish(p);
}

int mc_config_load(const char *path, struct mc_config *out, char *err, size_t err_size)
{
	memset(out, 0, sizeof *out);
	if (err != NULL && err_size > 0)
		err[0] = '\0';
	if (strlcpy(out->path, path, sizeof out->path) >= sizeof out->path)
		return plain_err(err, err_size, ENAMETOOLONG, "%s: path too long", path);
	size_t len = 0;
	char *buf = slurp(path, &len, err, err_size);
	if (buf == NULL)
		return -1;
	struct parse p = {
		.c = out, .path = path, .err = err, .err_size = err_size,
		.buf = buf, .len = len,
	};
	out->providers_default = true;
	for (size_t i = 0; i < N_DEFAULT_PROVIDERS; i++) {
		strlcpy(out->providers[i].key, default_providers[i].key, sizeof out->providers[i].key);
		strlcpy(out->providers[i].command, default_providers[i].command,
			sizeof out->providers[i].command);
	}
	out->n_providers = N_DEFAULT_PROVIDERS;
	apply_defaults(&p);
	out->daemon_keys_set = 0;
	int rc = parse_buffer(&p);
	free(buf);
	free(p.ws.v);
	free(p.ex.v);
	if (rc < 0) {
		int e = p.err_no ? p.err_no : EINVAL;
		mc_config_free(out);
		errno = e;
		return -1;
	}
	return 0;
}

void mc_config_free(struct mc_config *c)
{
	if (c == NULL)
		return;
	free(c->workspaces);
	free(c->exclude);
	for (size_t i = 0; i < c->n_ws_sections; i++)
		free(c->ws_sections[i].overrides);
	free(c->ws_sections);
	memset(c, 0, sizeof *c);
}

/* ---- lookups ---- */

static int cmp_key_ws(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct mc_ws_section *)elem)->id);
}

static int cmp_key_id(const void *key, const void *elem)
{
	return strcasecmp(key, (const char *)elem);
}

const struct mc_ws_section *mc_config_ws_section(const struct mc_config *c, const char *ws)
{
	if (c->n_ws_sections == 0)
		return NULL;
	return bsearch(ws, c->ws_sections, c->n_ws_sections, sizeof *c->ws_sections, cmp_key_ws);
}

static bool in_ids(const char (*ids)[MC_ID_MAX], size_t n, const char *ws)
{
	return n > 0 && bsearch(ws, ids, n, MC_ID_MAX, cmp_key_id) != NULL;
}

bool mc_config_wants_workspace(const struct mc_config *c, const char *ws)
{
	if (in_ids((const char (*)[MC_ID_MAX])c->exclude, c->n_exclude, ws))
		return false;
	return c->all_workspaces ||
	       in_ids((const char (*)[MC_ID_MAX])c->workspaces, c->n_workspaces, ws);
}

/* ---- token and daemon id ---- */

int mc_config_token_check(const struct mc_config *c, char *err, size_t err_size)
{
	/* mc_secret_from_file uses guarded memory, which needs sodium_init */
	if (sodium_init() < 0)
		return plain_err(err, err_size, ENOMEM, "token_file: cannot initialise libsodium");
	char why[512] = "";
	struct mc_secret *s = mc_secret_from_file(c->token_file, why, sizeof why);
	if (s == NULL) {
		int e = errno;
		return plain_err(err, err_size, e, "token_file %s", why);
	}
	mc_secret_free(s);
	return 0;
}

/* Reads and validates an existing daemon id file. -1 with errno (ENOENT:
 * it does not exist, the caller creates it) and a message. */
static int read_daemon_id(const char *path, char *id, char *err, size_t err_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return plain_err(err, err_size, e, "daemon_id_file %s: cannot open: %s", path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return plain_err(err, err_size, EINVAL, "daemon_id_file %s: not a regular file", path);
	}
	char buf[DAEMON_ID_FILE_MAX + 1];
	size_t used = 0;
	while (used < DAEMON_ID_FILE_MAX) {
		ssize_t r = read(fd, buf + used, DAEMON_ID_FILE_MAX - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return plain_err(err, err_size, e, "daemon_id_file %s: cannot read: %s",
					 path, strerror(e));
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	close(fd);
	buf[used] = '\0';
	char *s = buf + strspn(buf, " \t\r\n");
	size_t n = strlen(s);
	while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
		s[--n] = '\0';
	if (!is_daemon_id(s))
		return plain_err(err, err_size, EINVAL,
				 "daemon_id_file %s: does not hold a daemon id (1 to %d characters of A-Z a-z 0-9 . _ -)",
				 path, DAEMON_ID_MAX_LEN);
	strlcpy(id, s, MC_ID_MAX);
	return 0;
}

static void new_uuid_v4(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
		 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* The directory part of path ("/" for "/x"). */
static void parent_dir(const char *path, char *dir, size_t n)
{
	strlcpy(dir, path, n);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Writes the id into a new temporary file next to path (mkostemp: O_EXCL,
 * mode 0600) and flushes it. Returns the fd-less temp name in tmp. */
static int write_temp(const char *path, const char *content, char *tmp, size_t tmp_size)
{
	if ((size_t)snprintf(tmp, tmp_size, "%s.XXXXXX", path) >= tmp_size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (mc_write_all(fd, content, strlen(content)) < 0 || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* Publishes tmp as path without replacing a file another process created
 * meanwhile (RENAME_NOREPLACE; plain rename where the filesystem lacks it).
 * Returns 1 if someone else won the race (tmp removed), 0, or -1. */
static int publish(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	int e = errno;
	if (e == EEXIST) {
		unlink(tmp);
		return 1;
	}
	if ((e == EINVAL || e == ENOSYS) && rename(tmp, path) == 0)
		return 0;
	e = errno;
	unlink(tmp);
	errno = e;
	return -1;
}

static int create_daemon_id(struct mc_config *c, char *err, size_t err_size)
{
	const char *path = c->daemon_id_file;
	char dir[MC_PATH_MAX], tmp[MC_PATH_MAX + 8], id[37], content[40];
	parent_dir(path, dir, sizeof dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		return plain_err(err, err_size, e, "daemon_id_file %s: cannot create %s: %s",
				 path, dir, strerror(e));
	}
	new_uuid_v4(id);
	snprintf(content, sizeof content, "%s\n", id);
	if (write_temp(path, content, tmp, sizeof tmp) < 0) {
		int e = errno;
		return plain_err(err, err_size, e, "daemon_id_file %s: cannot write: %s", path, strerror(e));
	}
	int won = publish(tmp, path);
	if (won < 0) {
		int e = errno;
		return plain_err(err, err_size, e, "daemon_id_file %s: cannot rename %s: %s",
				 path, tmp, strerror(e));
	}
	if (won == 1) /* another process created it first: use theirs */
		return read_daemon_id(path, c->daemon_id, err, err_size);
	if (fsync_dir(dir) < 0) {
		int e = errno;
		return plain_err(err, err_size, e, "daemon_id_file %s: cannot sync %s: %s",
				 path, dir, strerror(e));
	}
	strlcpy(c->daemon_id, id, sizeof c->daemon_id);
	mc_log(MC_LOG_INFO, "created a new daemon id", "file", path, "daemon_id", id, NULL);
	return 0;
}

int mc_config_resolve_daemon_id(struct mc_config *c, char *err, size_t err_size)
{
	if (c->daemon_id_file[0] == '\0')
		return c->daemon_id[0] != '\0' ? 0
			: plain_err(err, err_size, EINVAL, "neither daemon_id nor daemon_id_file is set");
	if (read_daemon_id(c->daemon_id_file, c->daemon_id, err, err_size) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	if (sodium_init() < 0)
		return plain_err(err, err_size, ENOMEM, "daemon_id_file: cannot initialise libsodium");
	if (err != NULL && err_size > 0)
		err[0] = '\0'; /* the "cannot open" of the first attempt is not an error */
	return create_daemon_id(c, err, err_size);
}

/* ---- printing ---- */

const char *mc_config_log_level_name(enum mc_log_level level)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "info";
}

static const char *default_mark(const struct mc_config *c, const char *key)
{
	int i = dkey_index(key);
	return (c->daemon_keys_set & (UINT32_C(1) << i)) ? "" : "  ; default";
}

static void print_ids(FILE *f, const char *key, const char (*ids)[MC_ID_MAX], size_t n,
		      const char *mark)
{
	fprintf(f, "%s =%s%s", key, n > 0 ? " " : "", n > 0 ? ids[0] : "");
	fprintf(f, "%s\n", mark);
	/* one per continuation line: any number of IDs stays under inih's
	 * line length, and the output parses back */
	for (size_t i = 1; i < n; i++)
		fprintf(f, "    %s\n", ids[i]);
}

static void print_daemon(const struct mc_config *c, FILE *f)
{
	char d[32];
	fprintf(f, "[daemon]\n");
	fprintf(f, "server_url = %s\n", c->server_url);
	fprintf(f, "token_file = %s\n", c->token_file);
	if (c->daemon_id_file[0] != '\0') {
		fprintf(f, "daemon_id_file = %s%s\n", c->daemon_id_file, default_mark(c, "daemon_id_file"));
		if (c->daemon_id[0] != '\0')
			fprintf(f, "; daemon_id (from daemon_id_file) = %s\n", c->daemon_id);
	} else {
		fprintf(f, "daemon_id = %s\n", c->daemon_id);
	}
	fprintf(f, "device_name = %s%s\n", c->device_name, default_mark(c, "device_name"));
	if (c->all_workspaces)
		fprintf(f, "workspaces = all%s\n", default_mark(c, "workspaces"));
	else
		print_ids(f, "workspaces", (const char (*)[MC_ID_MAX])c->workspaces,
			  c->n_workspaces, "");
	print_ids(f, "exclude_workspaces", (const char (*)[MC_ID_MAX])c->exclude, c->n_exclude,
		  default_mark(c, "exclude_workspaces"));
	for (size_t i = 0; i < N_DKEYS; i++) {
		const struct dkey *k = &dkeys[i];
		if (k->set == set_duration) {
			mc_format_duration(*(const long *)((const char *)c + k->off), d, sizeof d);
			fprintf(f, "%s = %s%s\n", k->name, d, default_mark(c, k->name));
		} else if (k->off == OFF(state_dir) || k->off == OFF(control_socket)) {
			fprintf(f, "%s = %s%s\n", k->name, (const char *)c + k->off,
				default_mark(c, k->name));
		}
	}
	fprintf(f, "log_level = %s%s\n", mc_config_log_level_name(c->log_level),
		default_mark(c, "log_level"));
}

static void print_providers(const struct mc_config *c, FILE *f)
{
	fprintf(f, "\n[providers]%s\n",
		c->providers_default ? "  ; default list (the file has no [providers] section)" : "");
	if (c->n_providers == 0)
		fprintf(f, "; empty: no built-in providers\n");
	for (size_t i = 0; i < c->n_providers; i++)
		fprintf(f, "%s = %s\n", c->providers[i].key, c->providers[i].command);
}

void mc_config_print(const struct mc_config *c, FILE *f)
{
	fprintf(f, "# effective configuration from %s\n", c->path);
	print_daemon(c, f);
	print_providers(c, f);
	for (size_t i = 0; i < c->n_ws_sections; i++) {
		const struct mc_ws_section *s = &c->ws_sections[i];
		fprintf(f, "\n[workspace %s]\n", s->id);
		for (size_t j = 0; j < s->n_overrides; j++)
			fprintf(f, "%s%s = %s\n", PROFILE_PREFIX, s->overrides[j].profile_id,
				s->overrides[j].path);
		if (s->test_fault[0] != '\0')
			fprintf(f, "test_fault = %s\n", s->test_fault);
	}
}
