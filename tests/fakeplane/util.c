#include "tests/fakeplane/util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static void oom(void)
{
	static const char msg[] = "multica-fakeplane: out of memory\n";
	fwrite(msg, 1, sizeof msg - 1, stderr);
	abort();
}

void *fp_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

void *fp_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		oom();
	return p;
}

void *fp_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom();
	return q;
}

char *fp_xstrdup(const char *s)
{
	return s ? fp_xstrndup(s, strlen(s)) : NULL;
}

char *fp_xstrndup(const char *s, size_t n)
{
	char *p = fp_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *fp_trimdup(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return fp_xstrndup(s, n);
}

char *fp_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	char *p = fp_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void fp_replace_str(char **p, char *new_value)
{
	free(*p);
	*p = new_value;
}

bool fp_uuid_valid(const char *s)
{
	if (s == NULL || strlen(s) != FP_UUID_LEN)
		return false;
	for (int i = 0; i < FP_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

int fp_uuid_canon(const char *s, char out[FP_UUID_LEN + 1])
{
	if (!fp_uuid_valid(s))
		return -1;
	for (int i = 0; i < FP_UUID_LEN; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[FP_UUID_LEN] = '\0';
	return 0;
}

void fp_uuid_generate(char out[FP_UUID_LEN + 1])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, FP_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

int64_t fp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fp_time_fmt(int64_t ms, char out[FP_TIME_LEN])
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, FP_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int unit_ms(const char *u, size_t n, int64_t *out)
{
	static const struct { const char *name; int64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strlen(units[i].name) == n && memcmp(u, units[i].name, n) == 0) {
			*out = units[i].ms;
			return 0;
		}
	}
	return -1;
}

int fp_parse_duration_ms(const char *s, int64_t *out)
{
	int64_t total = 0;
	const char *p = s;
	if (s == NULL || *s == '\0')
		return -1;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		char *end;
		long long n = strtoll(p, &end, 10);
		if (errno != 0 || n < 0)
			return -1;
		const char *u = end;
		while (*end && isalpha((unsigned char)*end))
			end++;
		int64_t mult;
		if (unit_ms(u, (size_t)(end - u), &mult) < 0)
			return -1;
		if (n > (INT64_MAX - total) / mult)
			return -1;
		total += n * mult;
		p = end;
	}
	*out = total;
	return 0;
}

int fp_parse_ll(const char *s, long long min, long long max, long long *out)
{
	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	long long n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

void fp_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(out, 65, h, sizeof h);
}

void fp_vec_push(struct fp_vec *v, void *item)
{
	if (v->len == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 8;
		v->items = fp_xrealloc(v->items, v->cap * sizeof *v->items);
	}
	v->items[v->len++] = item;
}

void fp_vec_remove(struct fp_vec *v, size_t i)
{
	memmove(&v->items[i], &v->items[i + 1], (v->len - i - 1) * sizeof *v->items);
	v->len--;
}

void fp_vec_release(struct fp_vec *v)
{
	free(v->items);
	v->items = NULL;
	v->len = v->cap = 0;
}
