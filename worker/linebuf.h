/* Splitting a byte stream (an agent's stdout) into lines, with a bound:
 * a line longer than max is delivered once, truncated to max bytes and
 * flagged, and the rest of it up to the next '\n' is skipped. The buffer
 * only holds the current partial line and shrinks back after a big one,
 * so memory never exceeds max + a little whatever the agent prints.
 *
 * Lines are delivered without their '\n' (a trailing '\r' is kept), in a
 * writable buffer NUL-terminated at len (the callee may modify it in
 * place, e.g. strip bytes, but not keep it past the call).
 *
 * Error convention: mc_linebuf_feed returns 0, or -1 with errno ENOMEM (the
 * partial line is then dropped; later lines still split correctly). */
#ifndef MC_WORKER_LINEBUF_H
#define MC_WORKER_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Capacity kept between lines; anything bigger is freed after the line. */
#define MC_LINEBUF_KEEP (16u * 1024u)

typedef void (*mc_line_fn)(void *ctx, char *line, size_t len, bool truncated);

struct mc_linebuf {
	char *buf;          /* malloc'd partial line, or NULL */
	size_t len, cap;
	size_t max;         /* longest line delivered whole */
	size_t peak_cap;    /* largest capacity ever held (for tests) */
	bool skipping;      /* inside the tail of an over-long line */
};

void mc_linebuf_init(struct mc_linebuf *lb, size_t max);
/* Frees the buffer (a partial line is dropped). */
void mc_linebuf_clear(struct mc_linebuf *lb);
/* Splits data[0..n) (modified in place: each '\n' becomes '\0'); every
 * complete line goes to fn. */
int mc_linebuf_feed(struct mc_linebuf *lb, char *data, size_t n, mc_line_fn fn, void *ctx);
/* At EOF: delivers a last line that had no '\n'. */
void mc_linebuf_finish(struct mc_linebuf *lb, mc_line_fn fn, void *ctx);

#endif
