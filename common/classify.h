/* The failure reason of a failed agent run, from its error text
 * (reference/multica-task-execution.md section 1 step 16): an ordered,
 * case-insensitive substring table of our own, in classify.c. The reasons
 * are multica's strings, so the server's auto-retry and its UI treat them
 * as multica's own.
 *
 * Error convention: none; pure functions returning static strings. */
#ifndef MC_CLASSIFY_H
#define MC_CLASSIFY_H

#include <stdbool.h>

/* "agent_error.<class>" for error_text; "agent_error.unknown" when nothing
 * matches or error_text is NULL or empty. */
const char *mc_failure_classify(const char *error_text);

/* True for the reasons the server retries on its own (runtime_offline,
 * runtime_recovery, timeout, codex_semantic_inactivity,
 * agent_error.provider_network, skill_bundle_unavailable). */
bool mc_failure_reason_retryable(const char *reason);

#endif
