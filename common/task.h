/* A claimed task as the worker's executor reads it
 * (reference/multica-task-execution.md section 3), decoded once from the
 * JSON the server sent and validated field by field.
 *
 * The task token (auth_token, "mat_...") is never part of this struct: the
 * link takes it out of the JSON at claim time into guarded memory
 * (mc_task_take_token) and it travels beside the JSON from then on.
 *
 * Error convention: 0 / -1, with "<field path>: <problem>" in err. */
#ifndef MC_TASK_H
#define MC_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "common/secret.h"

#define MC_TASK_KEY_LEN 12        /* last 12 hex digits of the id, no dashes */

struct mc_kv {
	char *key;
	char *value;
};

enum mc_task_kind {
	MC_TASK_ASSIGNMENT,       /* an issue assigned to the agent */
	MC_TASK_COMMENT,          /* trigger_comment_id set */
	MC_TASK_CHAT,             /* chat_session_id set */
};

/* repos[] of a task (the project's or the workspace's repositories): the
 * local API allows their urls and takes ref as a checkout's default. */
#define MC_TASK_REPOS_MAX    64
#define MC_TASK_REPO_URL_MAX 512   /* bytes with the NUL */
#define MC_TASK_REPO_REF_MAX 256
struct mc_task_repo {
	char url[MC_TASK_REPO_URL_MAX];  /* trimmed, non-empty, no control bytes */
	char ref[MC_TASK_REPO_REF_MAX];  /* "" when none */
};

struct mc_task_comment {          /* coalesced_comments[] */
	char *id, *author_type, *author_name, *content, *created_at;
};

struct mc_task {
	char id[40];              /* canonical UUIDs (checked) */
	char agent_id[40];
	char runtime_id[40];
	char workspace_id[40];
	char key[MC_TASK_KEY_LEN + 1];
	enum mc_task_kind kind;
	/* strings below are malloc'd, "" when the server sent none */
	char *issue_id;
	char *agent_name;
	char *agent_instructions;
	char *model;              /* agent.model */
	char *thinking_level;
	size_t n_custom_env;
	struct mc_kv *custom_env; /* agent.custom_env, in the server's order */
	size_t n_custom_args;
	char **custom_args;       /* agent.custom_args */
	char *prior_session_id;
	char *prior_work_dir;
	bool prior_session_resume_unavailable;
	char *trigger_comment_id;
	char *trigger_thread_id;
	char *trigger_comment_content;
	char *trigger_author_type;
	char *trigger_author_name;
	size_t n_coalesced;
	struct mc_task_comment *coalesced;
	char *chat_session_id;
	char *chat_message;
	char *handoff_note;
	char *thread_name;
	char *workspace_context;
	char *project_title;
	char *project_description;
	char *regenerate_quick_actions_for; /* set: complete empty, never run */
	size_t n_repos;
	struct mc_task_repo *repos; /* heap (task_repos.c), NULL when none */
};

/* Decodes the task object j (auth_token already removed, or ignored).
 * Required: id, agent_id, runtime_id, workspace_id (UUIDs), agent (object)
 * with agent.id == agent_id. Allocates into t; mc_task_clear frees. */
int mc_task_decode(const cJSON *j, struct mc_task *t, char *err, size_t err_size);
/* The same from JSON text. */
int mc_task_parse(const char *json, size_t len, struct mc_task *t, char *err, size_t err_size);
void mc_task_clear(struct mc_task *t);

/* task_repos.c: decodes j.repos (missing or null: none) into t->repos.
 * At most MC_TASK_REPOS_MAX entries, each an object with a url string
 * that fits (trimmed, non-empty) and an optional ref string. */
int mc_task_decode_repos(const cJSON *j, struct mc_task *t, char *err, size_t err_size);

/* Removes "auth_token" from the task object j, wiping cJSON's copy, and
 * returns it in guarded memory (caller frees), or NULL when it is absent
 * or not a string (errno EINVAL). */
struct mc_secret *mc_task_take_token(cJSON *j);

/* True for a UUID in its 8-4-4-4-12 hex form (either case). */
bool mc_task_is_uuid(const char *s);

/* The hex BLAKE2b-256 of the token: how the local API knows a running
 * task's token without holding it (the worker reports the hash). */
#define MC_TOKEN_HASH_HEX 65
void mc_task_token_hash(struct mc_secret *token, char out[MC_TOKEN_HASH_HEX]);
void mc_task_token_hash_bytes(const char *token, size_t len, char out[MC_TOKEN_HASH_HEX]);

/* True when the token is task-scoped: non-empty and starting "mat_". */
bool mc_task_token_scoped(struct mc_secret *token);

#endif
