#include "worker/linebuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LINEBUF_MIN 4096u

void mc_linebuf_init(struct mc_linebuf *lb, size_t max)
{
	memset(lb, 0, sizeof *lb);
	lb->max = max;
}

void mc_linebuf_clear(struct mc_linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->len = lb->cap = 0;
	lb->skipping = false;
}

/* Room for need bytes plus a NUL, growing by doubling up to max + 1. */
static int reserve(struct mc_linebuf *lb, size_t need)
{
	if (need + 1 <= lb->cap)
		return 0;
	size_t cap = lb->cap ? lb->cap : LINEBUF_MIN;
	while (cap < need + 1)
		cap *= 2;
	if (cap > lb->max + 1)
		cap = lb->max + 1;
	char *nb = realloc(lb->buf, cap);
	if (nb == NULL)
		return -1;
	lb->buf = nb;
	lb->cap = cap;
	if (cap > lb->peak_cap)
		lb->peak_cap = cap;
	return 0;
}

/* After a line: a buffer grown for a big line goes back to nothing. */
static void shrink(struct mc_linebuf *lb)
{
	lb->len = 0;
	if (lb->cap > MC_LINEBUF_KEEP) {
		free(lb->buf);
		lb->buf = NULL;
		lb->cap = 0;
	}
}

/* Appends a piece of the current line; delivers it truncated once it
 * reaches max. */
static int append(struct mc_linebuf *lb, const char *p, size_t n, mc_line_fn fn, void *ctx)
{
	if (lb->skipping)
		return 0;
	size_t take = n;
	bool over = lb->len + n > lb->max;
	if (over)
		take = lb->max - lb->len;
	if (reserve(lb, lb->len + take) < 0) {
		lb->len = 0;
		lb->skipping = true; /* the line is lost; resync at its end */
		errno = ENOMEM;
		return -1;
	}
	memcpy(lb->buf + lb->len, p, take);
	lb->len += take;
	if (over) {
		lb->buf[lb->len] = '\0';
		fn(ctx, lb->buf, lb->len, true);
		shrink(lb);
		lb->skipping = true;
	}
	return 0;
}

int mc_linebuf_feed(struct mc_linebuf *lb, char *data, size_t n, mc_line_fn fn, void *ctx)
{
	int rc = 0;
	while (n > 0) {
		char *nl = memchr(data, '\n', n);
		size_t part = nl != NULL ? (size_t)(nl - data) : n;
		if (nl == NULL) {
			if (append(lb, data, part, fn, ctx) < 0)
				rc = -1;
			return rc;
		}
		if (lb->skipping) {
			lb->skipping = false; /* the over-long line ends here */
		} else if (lb->len == 0 && part <= lb->max) {
			*nl = '\0'; /* whole line in data: no copy */
			fn(ctx, data, part, false);
		} else if (append(lb, data, part, fn, ctx) < 0) {
			rc = -1;
			lb->skipping = false;
		} else if (lb->skipping) {
			lb->skipping = false; /* delivered truncated just now */
		} else {
			lb->buf[lb->len] = '\0';
			fn(ctx, lb->buf, lb->len, false);
			shrink(lb);
		}
		data = nl + 1;
		n -= part + 1;
	}
	return rc;
}

void mc_linebuf_finish(struct mc_linebuf *lb, mc_line_fn fn, void *ctx)
{
	if (!lb->skipping && lb->len > 0) {
		lb->buf[lb->len] = '\0';
		fn(ctx, lb->buf, lb->len, false);
	}
	lb->skipping = false;
	shrink(lb);
}
