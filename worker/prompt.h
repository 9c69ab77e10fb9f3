/* The prompt handed to the agent for one task
 * (reference/multica-task-execution.md step 7): our own wording, the same
 * facts as multica's prompt.go. The kind comes from the task: chat
 * (chat_session_id), comment (trigger_comment_id), else assignment. The
 * long standing instructions live in the brief file (workdir.h), not here.
 *
 * Error convention: NULL with errno (ENOMEM, EINVAL for a NULL task). */
#ifndef MC_WORKER_PROMPT_H
#define MC_WORKER_PROMPT_H

#include <stdbool.h>

#include "common/task.h"

/* Builds the prompt for provider ("claude", "codex", ...). resume_dropped:
 * a prior session existed but this run starts a fresh one (work dir not
 * reused, or the CLI rejected the resume); with it, or with the task's
 * prior_session_resume_unavailable, the continuity notice is appended
 * (appended, never prepended: the stable head stays cacheable).
 * Returns a malloc'd string the caller frees. */
char *mc_prompt_build(const struct mc_task *t, const char *provider, bool resume_dropped);

/* The continuity notice itself (static text), for tests and backends. */
const char *mc_prompt_continuity_notice(void);

#endif
