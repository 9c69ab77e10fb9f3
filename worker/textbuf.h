/* Text helpers of the task executor: a growable byte buffer, and the
 * sanitizer every string bound for the server goes through (a NUL byte or
 * invalid UTF-8 in /messages or /complete makes the server's database
 * refuse the write and wedges the task: multica #7124).
 *
 * Error convention: int functions return 0, or -1 with errno (ENOMEM,
 * EOVERFLOW); allocators return NULL with errno. */
#ifndef MC_WORKER_TEXTBUF_H
#define MC_WORKER_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct mc_sbuf {
	char *p;          /* malloc'd, NUL-terminated when non-NULL */
	size_t len, cap;
};

/* Appends n bytes (any bytes; the buffer stays NUL-terminated). */
int mc_sbuf_add(struct mc_sbuf *b, const void *s, size_t n);
int mc_sbuf_adds(struct mc_sbuf *b, const char *s);
int mc_sbuf_addf(struct mc_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with NULs stripped and invalid UTF-8 repaired (U+FFFD). */
int mc_sbuf_add_clean(struct mc_sbuf *b, const char *s, size_t n);
/* Hands the string over to the caller (who frees it) and empties b; an
 * empty buffer gives "" (allocated). NULL on ENOMEM. */
char *mc_sbuf_take(struct mc_sbuf *b);
/* Frees the storage (not wiped: never put a secret in one). */
void mc_sbuf_free(struct mc_sbuf *b);

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * no surrogates, <= U+10FFFF), 0 when it is not one. */
size_t mc_utf8_seq(const unsigned char *s, size_t n);
/* True when the n bytes are valid UTF-8 without a NUL. */
bool mc_text_clean(const char *s, size_t n);
/* A malloc'd copy of the n bytes with NULs dropped and each invalid byte
 * replaced by U+FFFD; *out_len (may be NULL) gets its length. */
char *mc_text_sanitize(const char *s, size_t n, size_t *out_len);
/* The largest k <= max such that s[0..k) does not end inside a UTF-8
 * sequence (s is valid UTF-8 of length n). */
size_t mc_utf8_cut(const char *s, size_t n, size_t max);

#endif
