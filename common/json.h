/* Strict cJSON field getters for the API decoders.
 *
 * Every getter reads one member of an object, checks its type and, on
 * failure, writes "<path>: <problem>" into err (err_size bytes) and returns
 * -1; otherwise it returns 0. path is the parent's path ("" for the top
 * level, e.g. "runtime_profiles[2]"); the member's own path is built from it
 * so the message names exactly the offending field. errno is not used. */
#ifndef MC_JSON_H
#define MC_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* What a string member may be. */
enum mc_json_str {
	MC_JSON_STR_REQUIRED,   /* present and a string ("" allowed) */
	MC_JSON_STR_NONEMPTY,   /* present and a non-empty string */
	MC_JSON_STR_OR_EMPTY,   /* missing or null -> ""; any other non-string is an error */
	MC_JSON_STR_OR_NULL,    /* missing or null -> NULL; any other non-string is an error */
};

/* Parses len bytes as one JSON value; only whitespace may follow it.
 * Bytes that are not UTF-8 read as U+FFFD each (as in Go's encoding/json);
 * an object with a key twice is refused ("<path>: duplicate key \"k\"").
 * Returns the tree (caller cJSON_Delete()s it) or NULL after filling err
 * ("invalid JSON at byte N", "empty body"). */
cJSON *mc_json_parse(const char *body, size_t len, char *err, size_t err_size);

/* Writes "<fmt...>" prefixed by "<path>: " (or nothing when path is "").
 * Always returns -1 so a decoder can `return mc_json_fail(...)`. */
int mc_json_fail(char *err, size_t err_size, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Child paths: "parent.key" (or "key" at the top) and "parent[i]". */
void mc_json_path_key(char *dst, size_t dst_size, const char *parent, const char *key);
void mc_json_path_index(char *dst, size_t dst_size, const char *parent, size_t i);

/* "string", "number", "null", ... for messages. */
const char *mc_json_type_name(const cJSON *item);

/* Reads obj[key] as a string per mode. On success *out is a malloc'd copy
 * the caller frees (or NULL under MC_JSON_STR_OR_NULL). */
int mc_json_get_string(const cJSON *obj, const char *path, const char *key,
		       enum mc_json_str mode, char **out, char *err, size_t err_size);

/* Reads obj[key] as a bool. required: missing or null is an error; else
 * missing or null gives dflt. */
int mc_json_get_bool(const cJSON *obj, const char *path, const char *key,
		     bool required, bool dflt, bool *out, char *err, size_t err_size);

/* Reads obj[key] as an integer (a JSON number with no fraction that fits a
 * long). Missing or null gives dflt. */
int mc_json_get_long(const cJSON *obj, const char *path, const char *key,
		     long dflt, long *out, char *err, size_t err_size);

/* Finds obj[key] as an array. null_ok: missing or null gives *out = NULL
 * (an empty list); else they are errors. The array stays owned by obj. */
int mc_json_get_array(const cJSON *obj, const char *path, const char *key,
		      bool null_ok, const cJSON **out, char *err, size_t err_size);

/* Reads array element item (path is the element's own path) as a string
 * (a copy the caller frees). */
int mc_json_elem_string(const cJSON *item, const char *path, char **out,
			char *err, size_t err_size);

#endif
