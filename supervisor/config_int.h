/* Internals shared by the configuration's files; not an API (config.h is).
 *
 *   config.c        loading: the file, the problems found, whole-file checks,
 *                   lookups
 *   config_parse.c  the line reader around libinih, its handler and the
 *                   validation of every key and section
 *   config_id.c     the token file check and the daemon id file
 *   config_print.c  mc_config_print
 *   config_url.c    server_url
 *   config_tasks.c  the task keys' setters (integers, durations in days)
 *                   and their whole-file defaults
 *
 * Every problem is recorded (mc_cfg_problem) and parsing goes on, so that
 * multicad -t reports all of a file's problems at once. */
#ifndef MC_SV_CONFIG_INT_H
#define MC_SV_CONFIG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "supervisor/config.h"

#define DAEMON_ID_MAX_LEN 63
#define PROFILE_PREFIX "profile_command."
#define KEY_MAX 128                          /* longest key we remember */
#define DKEYS_MAX 64                         /* daemon_keys_set is 64 bits */

/* SEC_SKIP: the keys of a rejected section header are not looked at (the
 * header's problem is reported; its keys would only add noise). */
enum section { SEC_NONE, SEC_DAEMON, SEC_PROVIDERS, SEC_WORKSPACE, SEC_SKIP };

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

struct parse;
struct dkey;

typedef int (*dkey_set)(struct parse *p, const struct dkey *k, const char *v, bool cont);

/* One [daemon] key. */
struct dkey {
	const char *name;
	dkey_set set;
	size_t off;             /* field in struct mc_config */
	long min, max;          /* durations */
	const char *def;        /* default as written in a file; NULL: none or computed */
	bool list;              /* may continue on indented lines */
};

struct parse {
	struct mc_config *c;
	const char *path;
	struct mc_config_problems *pr;
	bool fatal;               /* out of memory: stop reading */

	/* reader: the file in memory, the current physical line */
	const char *buf;
	size_t len, pos;
	unsigned line;
	bool indented;            /* the current line starts with a blank */

	enum section sec;
	size_t ws_idx;            /* current [workspace] in c->ws_sections */
	char prev_key[KEY_MAX];   /* last key of this section: continuations */
	bool prev_failed;         /* ... its line was rejected: skip its continuations */
	unsigned daemon_line, providers_line;

	unsigned dkey_line[DKEYS_MAX]; /* line of each [daemon] key, 0 = not given */
	bool dkey_bad[DKEYS_MAX];      /* ... given and rejected: no whole-file checks on it */
	unsigned provider_line[MC_MAX_BUILTINS];
	bool ws_all;              /* "all" seen in the current workspaces value */
	unsigned ws_all_line;
	struct idlist ws, ex;
	size_t ws_cap;            /* capacity of c->ws_sections */
	size_t ov_cap;            /* capacity of the current section's overrides */
};

/* config_agentapi.c */
int mc_cfg_set_agent_api(struct parse *p, const struct dkey *k, const char *v, bool cont);

/* ---- problems (config.c) ---- */

/* Records a problem at line (0: the file as a whole) about key (may be
 * NULL): "FILE:LINE: KEY: message". Always returns -1, so that a validator
 * can `return mc_cfg_problem(...)`. ENOMEM also makes the parse fatal. */
int mc_cfg_problem(struct parse *p, int err_no, unsigned line, const char *key,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A problem about key on the current line. */
#define fail_key(p, key, ...) mc_cfg_problem((p), EINVAL, (p)->line, (key), __VA_ARGS__)
/* Out of memory: recorded, and the parse stops. -1. */
int mc_cfg_nomem(struct parse *p);
/* Number of problems recorded so far (kept or not). */
size_t mc_cfg_n_problems(const struct parse *p);
/* Writes a message that is not about a line of the file into err; -1 with
 * errno = err_no. */
int mc_cfg_plain_err(char *err, size_t err_size, int err_no, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- the [daemon] keys and the parser (config_parse.c) ---- */

extern const struct dkey mc_cfg_dkeys[];
extern const size_t mc_cfg_n_dkeys;
/* Index of a [daemon] key in mc_cfg_dkeys, or -1. */
int mc_cfg_dkey_index(const char *name);
/* The set function of duration keys (mc_config_print formats them). */
int mc_cfg_set_duration(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* The default of every [daemon] key that has one, and the default
 * provider list. */
void mc_cfg_apply_defaults(struct parse *p);
/* Runs libinih over p->buf, recording every problem of every line. */
void mc_cfg_parse_buffer(struct parse *p);

bool mc_cfg_has_control_chars(const char *s);

/* ---- config_url.c, config_tasks.c ---- */

int mc_cfg_set_url(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* An int field, decimal, within [k->min, k->max]. */
int mc_cfg_set_int(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* A duration that may also be written in whole days ("7d"). */
int mc_cfg_set_days(struct parse *p, const struct dkey *k, const char *v, bool cont);
#define MC_CFG_TASK_MS_MAX (400L * 86400000L)   /* what the worker's CONFIG takes */
/* Writes a mc_cfg_set_days value as it would be written ("7d", "1h"). */
void mc_cfg_format_days(long ms, char *buf, size_t n);
/* The task keys' whole-file part: workspaces_root defaults to
 * <state_dir>/work. */
void mc_cfg_finish_tasks(struct parse *p);
bool mc_cfg_is_daemon_id(const char *s);

/* ---- the agents' identity keys and websocket (config_agents.c) ---- */

int mc_cfg_set_agent_user(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* agent_uid_range / agent_gid_range: "LO-HI" ("" : not set, uid only). */
int mc_cfg_set_id_range(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* An absolute path or "" (none). */
int mc_cfg_set_opt_path(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* A bool field: true|false|yes|no|on|off|1|0. */
int mc_cfg_set_bool(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* A bool field: on|off. */
int mc_cfg_set_onoff(struct parse *p, const struct dkey *k, const char *v, bool cont);
/* agent_user_given, the two ranges apart, agent_env_file's owner and mode. */
void mc_cfg_finish_agents(struct parse *p);
/* Their lines of mc_config_print. */
void mc_cfg_print_agents(const struct mc_config *c, FILE *f);

/* ---- the token file (config_id.c) ---- */

/* multicad -t: a problem at token_file's line when token_file (given and
 * valid) is not a usable token file. */
void mc_cfg_check_token(struct parse *p);

#endif
