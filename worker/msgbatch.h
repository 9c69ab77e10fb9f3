/* One task's message stream toward POST /api/daemon/tasks/{id}/messages
 * (reference/multica-task-execution.md step 9, section 2.9).
 *
 * seq starts at 1 and only grows, for the whole task: keep one batch
 * across a fresh-session retry. tool_use, tool_result and error messages
 * are numbered on arrival; text and thinking accumulate and are numbered
 * at flush (thinking first, then text), as multica does. Every string is
 * stripped of NULs and repaired to valid UTF-8; tool_result output is cut
 * to 8192 bytes; a tool input is always a JSON object.
 *
 * Bounded: at most MC_MSGBATCH_WINDOW_CAP bytes are pending per flush
 * window and MC_MSGBATCH_TOTAL_CAP bytes are accepted per task; the rest is
 * dropped and counted, with one note message per window that dropped
 * something (and one when the task cap is reached, after which nothing
 * more is sent). The pending buffer is freed by each flush.
 *
 * Error convention: adders return 0, or -1 with errno ENOMEM (the message
 * is lost and counted as dropped); mc_msgbatch_new returns NULL. */
#ifndef MC_WORKER_MSGBATCH_H
#define MC_WORKER_MSGBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/clock.h"

#define MC_MSGBATCH_FLUSH_MS      500
#define MC_MSGBATCH_TOOL_OUTPUT   8192u
#define MC_MSGBATCH_WINDOW_CAP    (1u << 20)
#define MC_MSGBATCH_TOTAL_CAP     (64ull << 20)
#define MC_MSGBATCH_LAST_LINE     160u

struct mc_msgbatch;

/* Allocates an empty stream (caller frees with mc_msgbatch_free); caps of
 * 0 take the defaults above (tests pass small ones). */
struct mc_msgbatch *mc_msgbatch_new(size_t window_cap, uint64_t total_cap);
void mc_msgbatch_free(struct mc_msgbatch *b);

int mc_msgbatch_text(struct mc_msgbatch *b, const char *s, size_t n);
int mc_msgbatch_thinking(struct mc_msgbatch *b, const char *s, size_t n);
int mc_msgbatch_error(struct mc_msgbatch *b, const char *s, size_t n);
/* input is copied (NULL: {}; a non-object is wrapped as {"input": v}). */
int mc_msgbatch_tool_use(struct mc_msgbatch *b, const char *tool, const cJSON *input);
/* The same with the input as JSON text (invalid JSON: {"raw": "<text>"}). */
int mc_msgbatch_tool_use_text(struct mc_msgbatch *b, const char *tool, const char *json,
			      size_t n);
int mc_msgbatch_tool_result(struct mc_msgbatch *b, const char *tool, const char *out,
			    size_t n);

/* True when a flush would produce a body. */
bool mc_msgbatch_pending(const struct mc_msgbatch *b);
/* When the next flush is due (mc_now_ms time): MC_MSGBATCH_FLUSH_MS after
 * the first message that arrived since the last flush; -1 when nothing is
 * pending. The stream's end is one last flush, whatever the deadline. */
mc_ms_t mc_msgbatch_deadline(const struct mc_msgbatch *b);
/* Builds {"messages":[...]} from everything pending and empties the batch
 * (memory released). Returns the malloc'd body (caller frees; *len may be
 * NULL), or NULL with errno 0 when nothing is pending (or ENOMEM). */
char *mc_msgbatch_flush(struct mc_msgbatch *b, size_t *len);

/* The last line of the agent's output (at most MC_MSGBATCH_LAST_LINE
 * bytes, valid UTF-8, no control characters); "" before any. Borrowed. */
const char *mc_msgbatch_last_line(const struct mc_msgbatch *b);
/* The last seq handed out (0 before any). */
uint64_t mc_msgbatch_seq(const struct mc_msgbatch *b);
/* Bytes of agent output dropped so far by the caps. */
uint64_t mc_msgbatch_dropped(const struct mc_msgbatch *b);
/* Bytes currently held (pending messages and text), for memory checks. */
size_t mc_msgbatch_held(const struct mc_msgbatch *b);

#endif
