#include "common/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 160

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
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
