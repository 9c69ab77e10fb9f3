/* multica-fakeplane: small helpers shared by every module.
 *
 * Error convention: allocation failure aborts the process (this is a test
 * tool; a half-built reply is worse than a crash). Parsers return 0 on
 * success and -1 on a bad input. */
#ifndef FP_UTIL_H
#define FP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_UUID_LEN 36
#define FP_TIME_LEN 64   /* "2026-11-28T22:19:26.123Z", with room for any year */

/* Allocating wrappers that abort on out-of-memory. */
void *fp_xmalloc(size_t n);
void *fp_xcalloc(size_t n, size_t size);
void *fp_xrealloc(void *p, size_t n);
/* Allocates a copy of s; NULL stays NULL. */
char *fp_xstrdup(const char *s);
/* Allocates a copy of s[0..n) plus a NUL. */
char *fp_xstrndup(const char *s, size_t n);
/* Allocates a copy of s without leading/trailing ASCII whitespace. */
char *fp_trimdup(const char *s);
/* Allocates the result of a printf-style format. */
char *fp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees *p and stores the new value (which the caller allocated). */
void fp_replace_str(char **p, char *new_value);

/* True when s is exactly 8-4-4-4-12 hex digits. */
bool fp_uuid_valid(const char *s);
/* Validates s and writes its lower-case form to out. Returns 0 or -1. */
int fp_uuid_canon(const char *s, char out[FP_UUID_LEN + 1]);
/* A fresh random (version 4) UUID. */
void fp_uuid_generate(char out[FP_UUID_LEN + 1]);

/* Wall-clock milliseconds since the epoch (timestamps, staleness). */
int64_t fp_now_ms(void);
/* RFC 3339 UTC with milliseconds. */
void fp_time_fmt(int64_t ms, char out[FP_TIME_LEN]);

/* "150s", "50ms", "1m30s", "2h": sums number+unit pairs (ms, s, m, h).
 * Returns 0 with *out in milliseconds, or -1. */
int fp_parse_duration_ms(const char *s, int64_t *out);
/* Whole decimal number in [min, max]; returns 0 or -1. */
int fp_parse_ll(const char *s, long long min, long long max, long long *out);

/* Lower-case hex SHA-256 of data. */
void fp_sha256_hex(const void *data, size_t len, char out[65]);

/* A growable array of pointers. */
struct fp_vec {
	void **items;
	size_t len, cap;
};
void fp_vec_push(struct fp_vec *v, void *item);
/* Removes item i, keeping the order of the rest. */
void fp_vec_remove(struct fp_vec *v, size_t i);
/* Frees the array itself (not the items). */
void fp_vec_release(struct fp_vec *v);

#endif
