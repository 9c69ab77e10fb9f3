/* multica-fakeplane: reading daemon request bodies the way the server's Go
 * encoding/json does: a member of the wrong JSON type fails the whole body
 * ("invalid request body"), null or a missing member leaves the zero value,
 * and member names match case-insensitively. */
#ifndef FP_JSONIN_H
#define FP_JSONIN_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "tests/fakeplane/app.h"

/* Allocates the first JSON value of the body (trailing bytes are ignored,
 * as by Go's Decoder). NULL when it is not JSON. */
cJSON *fp_in_parse(const struct fp_request *rq);
/* True when obj[key] is missing, null or a string. */
bool fp_in_str_ok(const cJSON *obj, const char *key);
/* obj[key] when it is a string, else "". */
const char *fp_in_str(const cJSON *obj, const char *key);
/* True when obj[key] is missing, null, or an array whose elements all
 * pass ok(). */
bool fp_in_array_ok(const cJSON *obj, const char *key, bool (*ok)(const cJSON *));
/* Elements of the array obj[key]; 0 when it is not an array. */
int fp_in_array_len(const cJSON *obj, const char *key);
/* Element checks for fp_in_array_ok. */
bool fp_in_elem_string(const cJSON *e);
bool fp_in_object_or_null(const cJSON *j);
/* Member kinds for fp_in_fields_ok. */
enum fp_in_kind { FP_IN_STR, FP_IN_INT, FP_IN_BOOL, FP_IN_OBJECT, FP_IN_ARRAY };
struct fp_in_field {
	const char *key;
	enum fp_in_kind kind;
};
/* True when obj is an object (or null) and each listed member is missing,
 * null or of its kind (FP_IN_INT: an integral number); others are ignored.
 * The list ends with a NULL key. */
bool fp_in_fields_ok(const cJSON *obj, const struct fp_in_field *fields);
/* obj[key] as an integer when it is a number, else 0. */
long long fp_in_int(const cJSON *obj, const char *key);
/* Allocates a lower-cased copy of s. */
char *fp_in_lowerdup(const char *s);

#endif
