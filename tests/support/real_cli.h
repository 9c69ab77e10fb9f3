/* Test support: the real claude and codex CLIs against our fake model APIs
 * (tests/agents/README.md). Finds the pinned CLIs that
 * scripts/install-agent-clis.sh installed, starts and stops
 * tests/agents/fake_{anthropic,openai}_api.py, makes a throw-away HOME /
 * CODEX_HOME / cwd, and builds the environment a CLI (or a multicad whose
 * agents are these CLIs) needs to reach the fakes and nothing else.
 *
 * Error convention: functions returning int give 0 on success and -1 on
 * failure with a line on stderr saying why (so a failing test shows the
 * cause); rc_find is the exception (enum rc_avail). Parent side only:
 * never call these from a forked child. */
#ifndef MC_TEST_REAL_CLI_H
#define MC_TEST_REAL_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

/* ---- the installed CLIs ---- */

enum rc_avail {
	RC_READY,        /* both CLIs found */
	RC_NO_REGISTRY,  /* the install could not reach the npm registry: skip */
	RC_BROKEN,       /* anything else: the test must fail */
};

struct rc_clis {
	char bin_dir[PATH_MAX];
	char claude[PATH_MAX];
	char codex[PATH_MAX];
};

/* Where the CLIs are, in this order: $MC_AGENT_CLI_BIN (a bin dir); the
 * state file the ctest fixture `real_cli_install` wrote (REAL_CLI_STATE);
 * else runs scripts/install-agent-clis.sh itself (a binary started by
 * hand). why receives the reason for RC_NO_REGISTRY / RC_BROKEN. */
enum rc_avail rc_find(struct rc_clis *out, char *why, size_t why_size);

/* ---- the fake model APIs ---- */

enum rc_api { RC_API_ANTHROPIC, RC_API_OPENAI };

struct rc_fake {
	pid_t pid;              /* 0: not running */
	int port;
	int pipe_fd;            /* its stdin: closing it (or our death) ends it */
	char url[64];           /* "http://127.0.0.1:PORT" */
	char log[PATH_MAX];     /* one JSON line per request */
};

/* Starts the fake for api on 127.0.0.1 (any free port), logging to
 * dir/<api>-requests.jsonl, and waits for its "PORT n" line. */
int rc_fake_start(struct rc_fake *f, enum rc_api api, const char *dir);
/* SIGTERM, reap (SIGKILL after 5 s); safe to repeat. */
void rc_fake_stop(struct rc_fake *f);
/* The requests logged so far as a JSON array (allocates: the caller
 * cJSON_Delete()s it); an empty array when nothing came yet, NULL on a
 * read or parse error. */
cJSON *rc_fake_requests(const struct rc_fake *f);
/* How many logged requests have this method and path (query ignored). */
int rc_fake_count(const struct rc_fake *f, const char *method, const char *path);

/* ---- a throw-away home ---- */

struct rc_sandbox {
	char root[PATH_MAX];        /* mkdtemp; everything below lives here */
	char home[PATH_MAX];        /* HOME: claude writes ~/.claude*, codex ~/.codex */
	char codex_home[PATH_MAX];  /* CODEX_HOME (config.toml, sessions/) */
	char work[PATH_MAX];        /* the CLI's cwd */
	char tmp[PATH_MAX];         /* TMPDIR: claude-0/, codex-bwrap-... */
};

/* Creates root (under $TMPDIR or /tmp) and the four dirs. */
int rc_sandbox_new(struct rc_sandbox *s);
/* Removes root and everything in it; safe to repeat. */
void rc_sandbox_free(struct rc_sandbox *s);

/* Writes codex_home/config.toml: model gpt-5.5 from the provider "fake"
 * at openai->url/v1 (key from $FAKE_OPENAI_API_KEY), no analytics, no
 * plugin sync, no update check, no retries (codex retries a 500 ~25 times
 * otherwise). A daemon's per-task CODEX_HOME must carry this file too. */
int rc_codex_home_seed(const char *codex_home, const struct rc_fake *openai);

/* ---- environments ---- */

/* The variables that point a CLI at the fakes, "NAME=value" each: the
 * claude ones when anthropic is not NULL (ANTHROPIC_BASE_URL,
 * ANTHROPIC_API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1,
 * CLAUDE_CODE_MAX_RETRIES=0, IS_SANDBOX=1 when we are root), the codex
 * ones when openai is not NULL (CODEX_HOME=s->codex_home,
 * FAKE_OPENAI_API_KEY), and HOME / TMPDIR from s. For a daemon these go
 * into its own environment (dp.extra_env): its agents inherit them.
 * Allocates a NULL-terminated array: free it with rc_env_free. */
char **rc_fake_env(const struct rc_sandbox *s, const struct rc_fake *anthropic,
		   const struct rc_fake *openai);
/* A whole environment for running a CLI directly: PATH (bin_dir of clis
 * first, then /usr/local/bin:/usr/bin:/bin), LANG=C.UTF-8, then
 * rc_fake_env. Allocates; free with rc_env_free. */
char **rc_cli_env(const struct rc_clis *clis, const struct rc_sandbox *s,
		  const struct rc_fake *anthropic, const struct rc_fake *openai);
void rc_env_free(char **env);

/* The [providers] body naming the installed CLIs by absolute path, for a
 * daemon config ("claude = /.../claude\ncodex = /.../codex\n"); into buf. */
int rc_providers_config(const struct rc_clis *clis, char *buf, size_t size);

#endif
