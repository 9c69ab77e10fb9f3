/* The environment of a task's agent process
 * (reference/multica-task-execution.md step 6, INTERFACE.md "Agents"):
 * the daemon's own environment minus every MULTICA_* key and the Claude
 * Code markers, plus the task's MULTICA_* facts and private temp dir, then
 * the agent's custom_env without the blocked keys. Between the daemon's
 * environment and the task's facts: the operator's agent_env_file and the
 * agent identity's HOME, USER and LOGNAME. Each key exactly once
 * (later sources win; execve does not de-duplicate). No value may contain
 * the daemon's token: such a variable is dropped (its key logged).
 *
 * Error convention: mc_agent_env_build returns NULL with errno (ENOMEM;
 * EINVAL for a missing task token or input) and a reason in err. */
#ifndef MC_WORKER_AGENT_ENV_H
#define MC_WORKER_AGENT_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "common/secret.h"
#include "common/task.h"

struct mc_agent_env_in {
	char *const *base;               /* the daemon's environ (NULL: empty) */
	const struct mc_task *task;      /* ids, agent name, custom_env */
	struct mc_secret *task_token;    /* "mat_..." -> MULTICA_TOKEN (required) */
	struct mc_secret *forbidden;     /* the daemon token; may be NULL */
	const char *server_url;          /* MULTICA_SERVER_URL */
	const char *daemon_port;         /* MULTICA_DAEMON_PORT; NULL/"": omitted */
	int slot;                        /* MULTICA_TASK_SLOT */
	const char *config_root;         /* MULTICA_TASK_CONFIG_ROOT; NULL: omitted */
	const char *workspaces_root;     /* MULTICA_TASK_WORKSPACES_ROOT; NULL: omitted */
	const char *tmpdir;              /* TMPDIR, TMP, TEMP (required) */
	const char *codex_home;          /* CODEX_HOME (codex only); NULL: omitted */
	/* the agent identity's (issue 11) */
	char *const *extra;              /* agent_env_file's KEY=VALUE; NULL: none */
	const char *home;                /* HOME; NULL: base's */
	const char *user;                /* USER and LOGNAME; NULL: base's */
};

/* Builds the NULL-terminated envp. Allocates: free with mc_agent_env_free
 * (it holds the task token). */
char **mc_agent_env_build(const struct mc_agent_env_in *in, char *err, size_t err_size);
/* The environment of what runs as the agent outside a task (the version
 * probes of custom profiles): base without the stripped keys, then extra
 * (its blocked keys refused), then HOME, USER and LOGNAME when given;
 * nothing holding forbidden. Allocates: mc_agent_env_free. NULL with
 * errno ENOMEM. */
char **mc_agent_env_base_build(char *const *base, char *const *extra, const char *home,
			       const char *user, struct mc_secret *forbidden);

/* Wipes every string (MULTICA_TOKEN is one of them) and frees. NULL ok. */
void mc_agent_env_free(char **envp);

/* True for a key the agent's custom_env may never set. */
bool mc_agent_env_blocked(const char *key);
/* True for a key removed from the daemon's own environment. */
bool mc_agent_env_stripped(const char *key);
/* The value of key in envp (borrowed), NULL when absent. */
const char *mc_agent_env_get(char *const *envp, const char *key);

#endif
