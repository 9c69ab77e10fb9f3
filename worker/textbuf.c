/* Text helpers: growable buffer and the UTF-8/NUL sanitizer. */
#include "worker/textbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sbuf_reserve(struct mc_sbuf *b, size_t extra)
{
	if (extra > SIZE_MAX / 2 - b->len) {
		errno = EOVERFLOW;
		return -1;
	}
	size_t need = b->len + extra + 1;
	if (b->p && need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int mc_sbuf_add(struct mc_sbuf *b, const void *s, size_t n)
{
	if (sbuf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int mc_sbuf_adds(struct mc_sbuf *b, const char *s)
{
	return mc_sbuf_add(b, s, strlen(s));
}

int mc_sbuf_addf(struct mc_sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sbuf_reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *mc_sbuf_take(struct mc_sbuf *b)
{
	if (!b->p && sbuf_reserve(b, 0) < 0)
		return NULL;
	char *p = b->p;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void mc_sbuf_free(struct mc_sbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

size_t mc_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t k;
	unsigned lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		k = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		k = 3;
		if (c == 0xE0)
			lo = 0xA0;       /* overlong */
		else if (c == 0xED)
			hi = 0x9F;       /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		k = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;       /* > U+10FFFF */
	} else {
		return 0;
	}
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return k;
}

bool mc_text_clean(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t k = mc_utf8_seq(u + i, n - i);
		if (k == 0 || u[i] == 0)
			return false;
		i += k;
	}
	return true;
}

int mc_sbuf_add_clean(struct mc_sbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;     /* u[run..i) is clean, not yet copied */
	while (i < n) {
		if (u[i] != 0 && u[i] < 0x80) { /* the common case: plain ASCII */
			i++;
			continue;
		}
		size_t k = mc_utf8_seq(u + i, n - i);
		if (k != 0 && u[i] != 0) {
			i += k;
			continue;
		}
		if (mc_sbuf_add(b, s + run, i - run) < 0)
			return -1;
		if (k == 0 && mc_sbuf_add(b, "\xEF\xBF\xBD", 3) < 0)
			return -1;
		i++;
		run = i;
	}
	return mc_sbuf_add(b, s + run, n - run);
}

char *mc_text_sanitize(const char *s, size_t n, size_t *out_len)
{
	struct mc_sbuf b = {0};
	if (mc_sbuf_add_clean(&b, s, n) < 0) {
		mc_sbuf_free(&b);
		return NULL;
	}
	size_t len = b.len;
	char *p = mc_sbuf_take(&b);
	if (p && out_len)
		*out_len = len;
	return p;
}

size_t mc_utf8_cut(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	size_t k = max;
	/* back over continuation bytes to the start of the cut sequence */
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return k;
}
