/* The daemon's configuration file (INTERFACE.md, "Configuration"): parsed
 * with libinih, validated completely before anything uses it, so that a
 * reload either applies a whole good configuration or keeps the old one.
 *
 * Every problem of a file is found in one pass (a compiler's way: the line
 * after a mistake is read as if the mistake were not there), each a message
 * naming the file, the line and the key:
 *   /etc/multicad/multicad.conf:12: heartbeat_interval: "15x" is not a duration (use ms, s, m or h)
 *   /etc/multicad/multicad.conf: server_url is required
 * mc_config_check returns them one by one (multicad -t); mc_config_load
 * joins them with "; " into the caller's err buffer (reload, start-up).
 * Error convention: 0, or -1 with errno set and the message(s).
 *
 * Ownership: struct mc_config owns its heap arrays (workspaces, exclude,
 * ws_sections and their overrides); mc_config_free releases them. The
 * configuration never holds the token itself, only token_file. */
#ifndef MC_SV_CONFIG_H
#define MC_SV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"
#include "ipc/messages.h"

#define MC_CONFIG_DEFAULT_PATH "/etc/multicad/multicad.conf"
#define MC_TEST_FAULT_MAX 32          /* 31 characters + NUL */
/* A larger file is refused. Thousands of sections fit easily; so do the
 * lines it can hold (at most one per byte: a 4 MiB file of newlines
 * parses in about 0.1 s), which is why there is no separate line limit. */
#define MC_CONFIG_FILE_MAX (4L * 1024 * 1024)

/* One [providers] entry: a built-in agent CLI to look for. */
struct mc_provider {
	char key[MC_PROVIDER_MAX];        /* "claude": [a-z0-9_-]{1,31} */
	char command[MC_PATH_MAX];        /* "claude" (looked up on PATH) or "/abs/path" */
};

/* One [workspace <uuid>] section. */
struct mc_ws_section {
	char id[MC_ID_MAX];               /* workspace UUID, lowercase */
	unsigned line;                    /* line of the section header */
	size_t n_overrides;
	struct mc_profile_override *overrides; /* heap, sorted by profile_id (lowercase) */
	char test_fault[MC_TEST_FAULT_MAX];    /* MC_TEST_HOOKS builds only; "" otherwise */
};

#define MC_AGENT_API_OFF (-1)
/* "127.0.0.1:<port>" or "off" into out (32 bytes are enough). */
void mc_cfg_format_agent_api(int port, char *out, size_t out_size);

struct mc_config {
	char path[MC_PATH_MAX];           /* the file this came from */

	/* [daemon] */
	char server_url[MC_URL_MAX];      /* http(s)://host[:port], no trailing '/' */
	char token_file[MC_PATH_MAX];     /* absolute */
	char ca_file[MC_PATH_MAX];        /* absolute, or "": the system's CA store */
	char daemon_id[MC_ID_MAX];        /* given, or "" until mc_config_resolve_daemon_id */
	char daemon_id_file[MC_PATH_MAX]; /* "" when daemon_id is given */
	char device_name[MC_NAME_MAX];    /* default: gethostname() */
	bool all_workspaces;              /* workspaces = all (the default) */
	size_t n_workspaces;              /* explicit list; 0 when all_workspaces */
	char (*workspaces)[MC_ID_MAX];    /* heap, sorted, lowercase, no duplicates */
	size_t n_exclude;
	char (*exclude)[MC_ID_MAX];       /* heap, sorted, lowercase, no duplicates */
	unsigned shard_index;             /* shard = I/N: serve the ids of shard I... */
	unsigned shard_count;             /* ... of N (1: no sharding; mc_shard_of) */
	long heartbeat_interval_ms;
	long profile_sync_interval_ms;
	long workspace_sync_interval_ms;
	char state_dir[MC_PATH_MAX];      /* absolute */
	char control_socket[MC_PATH_MAX]; /* absolute, shorter than sun_path */
	long stop_timeout_ms;
	long http_timeout_ms;
	long worker_ping_interval_ms;
	long worker_liveness_timeout_ms;  /* > worker_ping_interval_ms */
	long restart_backoff_min_ms;      /* <= restart_backoff_max_ms */
	long restart_backoff_max_ms;
	enum mc_log_level log_level;
	/* tasks */
	int max_concurrent_tasks;         /* host-wide slots, 1..1000 */
	long task_poll_interval_ms;       /* the link's claim poll */
	char workspaces_root[MC_PATH_MAX];/* absolute; default <state_dir>/work */
	long task_idle_timeout_ms;
	long task_stop_grace_ms;
	long task_drain_timeout_ms;       /* reload: how long a changed worker drains */
	long task_retention_ms;
	int agent_api_port;               /* agent_api_listen: 127.0.0.1:<port> (0: any
					     free port), MC_AGENT_API_OFF for off */
	/* agents' identity (common/identity.h) */
	char agent_user[MC_NAME_MAX];     /* default "multicad-agent"; "" : the daemon's */
	bool agent_user_given;            /* agent_user was in the file */
	unsigned agent_uid_lo, agent_uid_hi; /* agent_uid_range; 0-0: not set */
	unsigned agent_gid_lo, agent_gid_hi; /* agent_gid_range, default 62000-62999 */
	char agent_home_template[MC_PATH_MAX]; /* absolute, or "" */
	char agent_env_file[MC_PATH_MAX];      /* absolute, or "" */
	bool allow_profile_paths;         /* default false */
	bool websocket;                   /* websocket = on (default) | off */

	/* [providers] */
	bool providers_section;           /* the file had a [providers] section */
	bool providers_default;           /* ... it did not: the default list is in use */
	size_t n_providers;               /* 0 with providers_section: no built-ins at all */
	struct mc_provider providers[MC_MAX_BUILTINS]; /* file order */

	/* [workspace <uuid>] */
	size_t n_ws_sections;
	struct mc_ws_section *ws_sections; /* heap, sorted by id */

	uint64_t daemon_keys_set;         /* bit i: [daemon] key i was in the file (for printing) */
};

/* One problem of a configuration file. */
struct mc_config_problem {
	unsigned line;                    /* 0: about the file as a whole */
	unsigned seq;                     /* order found */
	int err_no;                       /* EINVAL for content; ENOENT, EACCES, ... for the file */
	char *text;                       /* heap: "FILE:LINE: KEY: problem", one line, no '\n' */
};

#define MC_CONFIG_MAX_PROBLEMS 100    /* kept; more are only counted */

/* Every problem found, in file order (by line; the file-as-a-whole ones,
 * line 0, last). Owns v and the texts: mc_config_problems_free. */
struct mc_config_problems {
	size_t n, cap;
	struct mc_config_problem *v;      /* heap */
	size_t dropped;                   /* found past MC_CONFIG_MAX_PROBLEMS */
	bool nomem;                       /* one could not be recorded (ENOMEM) */
	int err_no;                       /* the first one's (ENOMEM if any is) */
};

/* Parses and validates path into *out. *out is always initialised, so
 * mc_config_free(out) is safe after a failure too (and frees nothing then).
 * On success the caller owns *out (heap arrays: free with mc_config_free).
 * On failure returns -1 with errno (ENOENT, EACCES, ... for the file itself,
 * EINVAL for its content, ENOMEM) and in err every problem, in file order,
 * joined with "; " (as many as fit, then "; and N more"): the first one is
 * always there, so err starts as a single-problem message would. The daemon
 * id is not resolved here: see mc_config_resolve_daemon_id. */
int mc_config_load(const char *path, struct mc_config *out, char *err, size_t err_size);

/* multicad -t: mc_config_load that also checks the token file (as
 * mc_config_token_check, reported at token_file's line, when token_file
 * itself is valid) and hands back every problem in *pr instead of one
 * message. 0 (valid: *out as from mc_config_load, pr->n == 0), or -1 with
 * errno (as mc_config_load) and *out freed. Either way *pr (initialised
 * here) must be released with mc_config_problems_free. */
int mc_config_check(const char *path, struct mc_config *out, struct mc_config_problems *pr);

/* Writes each problem of pr on its own line to f (and a line for problems
 * that were only counted, or lost to ENOMEM); path names the file in those. */
void mc_config_problems_print(const struct mc_config_problems *pr, const char *path, FILE *f);

/* Frees the texts and the array of pr and zeroes it. NULL is a no-op. */
void mc_config_problems_free(struct mc_config_problems *pr);

/* Frees what mc_config_load allocated and zeroes *c. NULL is a no-op. */
void mc_config_free(struct mc_config *c);

/* Reads token_file through mc_secret_from_file to check that it exists, is a
 * regular file of mode 0600 or stricter and holds a non-empty token, then
 * wipes and frees it at once. 0, or -1 with errno and a message naming the
 * file. */
int mc_config_token_check(const struct mc_config *c, char *err, size_t err_size);

/* Fills c->daemon_id. With daemon_id given: nothing to do. Otherwise reads
 * daemon_id_file (whitespace trimmed, validated like daemon_id) or, when it
 * does not exist, creates it atomically and durably with a new random UUID v4
 * (parent directory created with mode 0700 if missing, file mode 0600).
 * Two processes racing to create it end up with the same id. 0, or -1 with
 * errno and a message naming the file. */
int mc_config_resolve_daemon_id(struct mc_config *c, char *err, size_t err_size);

/* The [workspace <ws>] section, or NULL. ws is compared case-insensitively.
 * Borrowed: valid while c is. O(log n). */
const struct mc_ws_section *mc_config_ws_section(const struct mc_config *c, const char *ws);

/* shard = I/N: at most this many hosts share the workspaces. */
#define MC_SHARD_MAX 4096

/* The shard of workspace id ws among n: BLAKE2b with an 8-byte digest of
 * the lowercase id, read as a little-endian integer, modulo n. Stable
 * across hosts, versions and architectures (b2sum -l 64 computes the same
 * digest), so hosts split the workspaces with no coordinator. */
unsigned mc_shard_of(const char *ws, unsigned n);

/* True if this configuration serves ws: workspaces = all (and ws in this
 * host's shard) or ws is listed, and ws is not excluded. (Membership for
 * "all" comes from the server.) O(log n). */
bool mc_config_wants_workspace(const struct mc_config *c, const char *ws);

/* Writes the effective configuration as an INI file to f: every key with
 * its value, "; default" after values that were not in the file, sections
 * in order ([daemon], [providers], [workspace ...] by id). Never prints the
 * token (it is not in *c). */
void mc_config_print(const struct mc_config *c, FILE *f);

/* "debug", "info", "warn" or "error". */
const char *mc_config_log_level_name(enum mc_log_level level);

#endif
