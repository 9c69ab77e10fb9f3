#include "common/json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 160

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) at s, n bytes left; 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t k = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
	if (k == 0 || k > n || (k == 2 && c < 0xc2) || c > 0xf4)
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	unsigned char d = s[1];
	if ((c == 0xe0 && d < 0xa0) || (c == 0xed && d > 0x9f) || (c == 0xf0 && d < 0x90) ||
	    (c == 0xf4 && d > 0x8f))
		return 0;
	return k;
}

static bool utf8_valid(const char *body, size_t len)
{
	const unsigned char *s = (const unsigned char *)body;
	for (size_t i = 0, k; i < len; i += k)
		if ((k = utf8_seq(s + i, len - i)) == 0)
			return false;
	return true;
}

/* A copy of body where every byte that starts no well-formed sequence is
 * U+FFFD, as Go's encoding/json reads it (so multica and the daemon see
 * the same strings, and logs and requests stay valid UTF-8). Allocates;
 * the caller frees. NULL when out of memory. */
static char *utf8_repair(const char *body, size_t len, size_t *out_len)
{
	static const char fffd[] = "\xef\xbf\xbd";
	const unsigned char *s = (const unsigned char *)body;
	char *out = len <= (SIZE_MAX - 1) / 3 ? malloc(3 * len + 1) : NULL;
	if (out == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq(s + i, len - i);
		if (k == 0) {
			memcpy(out + o, fffd, 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key as it may appear in a message: printable ASCII, at most 40 bytes. */
static void key_for_message(char *dst, size_t size, const char *key)
{
	size_t n = 0;
	for (; key[n] != '\0' && n < 40 && n + 1 < size; n++)
		dst[n] = key[n] >= 0x20 && key[n] < 0x7f ? key[n] : '?';
	dst[n] = '\0';
}

static int no_duplicates(const cJSON *item, const char *path, char *err, size_t err_size);

/* The members of one object, sorted, have no two equal keys. */
static int object_keys_unique(const cJSON *obj, const char *path, char *err, size_t err_size)
{
	size_t n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, obj)
		n++;
	if (n < 2)
		return 0;
	const char **keys = malloc(n * sizeof *keys);
	if (keys == NULL)
		return mc_json_fail(err, err_size, path, "out of memory");
	size_t i = 0;
	cJSON_ArrayForEach(it, obj)
		keys[i++] = it->string != NULL ? it->string : "";
	qsort(keys, n, sizeof *keys, cmp_key);
	int rc = 0;
	for (i = 1; i < n && rc == 0; i++) {
		if (strcmp(keys[i - 1], keys[i]) == 0) {
			char k[48];
			key_for_message(k, sizeof k, keys[i]);
			rc = mc_json_fail(err, err_size, path, "duplicate key \"%s\"", k);
		}
	}
	free(keys);
	return rc;
}

/* No object anywhere in the tree has a key twice: cJSON would read the
 * first, Go (the server's language) the last, so either reading could be
 * the wrong one. Recursion is bounded by cJSON's nesting limit. */
static int no_duplicates(const cJSON *item, const char *path, char *err, size_t err_size)
{
	bool obj = cJSON_IsObject(item);
	if (!obj && !cJSON_IsArray(item))
		return 0;
	if (obj && object_keys_unique(item, path, err, err_size) < 0)
		return -1;
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, item) {
		char p[PATH_MAX_LEN];
		if (obj)
			mc_json_path_key(p, sizeof p, path, it->string != NULL ? it->string : "");
		else
			mc_json_path_index(p, sizeof p, path, i++);
		if (no_duplicates(it, p, err, err_size) < 0)
			return -1;
	}
	return 0;
}

/* Parses exactly len bytes; the trailing-data check of mc_json_parse. */
static cJSON *parse_exact(const char *body, size_t len, char *err, size_t err_size)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (root == NULL) {
		size_t at = end != NULL && end >= body ? (size_t)(end - body) : 0;
		mc_json_fail(err, err_size, "", "invalid JSON at byte %zu", at);
		return NULL;
	}
	/* cJSON stops after the first value; anything but whitespace after it
	 * means the body is not the single document we expect. */
	for (size_t at = (size_t)(end - body); at < len; at++) {
		if (!is_ws(body[at])) {
			cJSON_Delete(root);
			mc_json_fail(err, err_size, "", "invalid JSON: trailing data at byte %zu", at);
			return NULL;
		}
	}
	return root;
}

cJSON *mc_json_parse(const char *body, size_t len, char *err, size_t err_size)
{
	size_t i = 0;
	while (i < len && is_ws(body[i]))
		i++;
	if (i == len) {
		mc_json_fail(err, err_size, "", "empty body, expected JSON");
		return NULL;
	}
	char *repaired = NULL;
	if (!utf8_valid(body, len)) {
		repaired = utf8_repair(body, len, &len);
		if (repaired == NULL) {
			mc_json_fail(err, err_size, "", "out of memory");
			return NULL;
		}
		body = repaired; /* byte offsets below are of the repaired text */
	}
	cJSON *root = parse_exact(body, len, err, err_size);
	if (repaired != NULL)
		explicit_bzero(repaired, len); /* a claim body holds task tokens */
	free(repaired);
	if (root != NULL && no_duplicates(root, "", err, err_size) < 0) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int mc_json_fail(char *err, size_t err_size, const char *path, const char *fmt, ...)
{
	if (err == NULL || err_size == 0)
		return -1;
	int n = 0;
	if (path != NULL && path[0] != '\0')
		n = snprintf(err, err_size, "%s: ", path);
	if (n < 0 || (size_t)n >= err_size)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

void mc_json_path_key(char *dst, size_t dst_size, const char *parent, const char *key)
{
	if (parent == NULL || parent[0] == '\0')
		snprintf(dst, dst_size, "%s", key);
	else
		snprintf(dst, dst_size, "%s.%s", parent, key);
}

void mc_json_path_index(char *dst, size_t dst_size, const char *parent, size_t i)
{
	snprintf(dst, dst_size, "%s[%zu]", parent != NULL ? parent : "", i);
}

const char *mc_json_type_name(const cJSON *item)
{
	if (item == NULL)
		return "nothing";
	if (cJSON_IsNull(item))
		return "null";
	if (cJSON_IsBool(item))
		return "bool";
	if (cJSON_IsNumber(item))
		return "number";
	if (cJSON_IsString(item))
		return "string";
	if (cJSON_IsArray(item))
		return "array";
	if (cJSON_IsObject(item))
		return "object";
	return "invalid";
}

static bool absent(const cJSON *item)
{
	return item == NULL || cJSON_IsNull(item);
}

int mc_json_get_string(const cJSON *obj, const char *path, const char *key,
		       enum mc_json_str mode, char **out, char *err, size_t err_size)
{
	char p[PATH_MAX_LEN];
	mc_json_path_key(p, sizeof p, path, key);
	*out = NULL;
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (absent(item)) {
		if (mode == MC_JSON_STR_OR_NULL)
			return 0;
		if (mode == MC_JSON_STR_OR_EMPTY) {
			*out = strdup("");
			return *out == NULL ? mc_json_fail(err, err_size, p, "out of memory") : 0;
		}
		if (item == NULL)
			return mc_json_fail(err, err_size, p, "missing");
		return mc_json_fail(err, err_size, p, "expected string, got null");
	}
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return mc_json_fail(err, err_size, p, "expected string, got %s",
				    mc_json_type_name(item));
	if (mode == MC_JSON_STR_NONEMPTY && item->valuestring[0] == '\0')
		return mc_json_fail(err, err_size, p, "must not be empty");
	*out = strdup(item->valuestring);
	return *out == NULL ? mc_json_fail(err, err_size, p, "out of memory") : 0;
}

int mc_json_get_bool(const cJSON *obj, const char *path, const char *key,
		     bool required, bool dflt, bool *out, char *err, size_t err_size)
{
	char p[PATH_MAX_LEN];
	mc_json_path_key(p, sizeof p, path, key);
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (absent(item)) {
		if (!required) {
			*out = dflt;
			return 0;
		}
		if (item == NULL)
			return mc_json_fail(err, err_size, p, "missing");
		return mc_json_fail(err, err_size, p, "expected bool, got null");
	}
	if (!cJSON_IsBool(item))
		return mc_json_fail(err, err_size, p, "expected bool, got %s",
				    mc_json_type_name(item));
	*out = cJSON_IsTrue(item);
	return 0;
}

int mc_json_get_long(const cJSON *obj, const char *path, const char *key,
		     long dflt, long *out, char *err, size_t err_size)
{
	char p[PATH_MAX_LEN];
	mc_json_path_key(p, sizeof p, path, key);
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (absent(item)) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(item))
		return mc_json_fail(err, err_size, p, "expected integer, got %s",
				    mc_json_type_name(item));
	double d = item->valuedouble;
	/* LONG_MAX is not exactly representable as a double: bound by 2^63 so
	 * the conversion is always defined (the negated test also rejects NaN),
	 * then a round trip rejects fractions. */
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
	    (double)(long)d != d)
		return mc_json_fail(err, err_size, p, "expected integer, got %g", d);
	*out = (long)d;
	return 0;
}

int mc_json_get_array(const cJSON *obj, const char *path, const char *key,
		      bool null_ok, const cJSON **out, char *err, size_t err_size)
{
	char p[PATH_MAX_LEN];
	mc_json_path_key(p, sizeof p, path, key);
	*out = NULL;
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (absent(item)) {
		if (null_ok)
			return 0;
		if (item == NULL)
			return mc_json_fail(err, err_size, p, "missing");
		return mc_json_fail(err, err_size, p, "expected array, got null");
	}
	if (!cJSON_IsArray(item))
		return mc_json_fail(err, err_size, p, "expected array, got %s",
				    mc_json_type_name(item));
	*out = item;
	return 0;
}

int mc_json_elem_string(const cJSON *item, const char *path, char **out,
			char *err, size_t err_size)
{
	*out = NULL;
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return mc_json_fail(err, err_size, path, "expected string, got %s",
				    mc_json_type_name(item));
	*out = strdup(item->valuestring);
	return *out == NULL ? mc_json_fail(err, err_size, path, "out of memory") : 0;
}
