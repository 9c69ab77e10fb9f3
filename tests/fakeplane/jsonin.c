#include "tests/fakeplane/jsonin.h"

#include <ctype.h>
#include <math.h>

#include "tests/fakeplane/util.h"

cJSON *fp_in_parse(const struct fp_request *rq)
{
	return cJSON_ParseWithLengthOpts(rq->body, rq->body_len, NULL, false);
}

bool fp_in_str_ok(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(obj, key);   /* case-insensitive */
	return v == NULL || cJSON_IsNull(v) || cJSON_IsString(v);
}

const char *fp_in_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(obj, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

bool fp_in_array_ok(const cJSON *obj, const char *key, bool (*ok)(const cJSON *))
{
	const cJSON *v = cJSON_GetObjectItem(obj, key);
	if (v == NULL || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsArray(v))
		return false;
	for (const cJSON *e = v->child; e != NULL; e = e->next)
		if (!ok(e))
			return false;
	return true;
}

int fp_in_array_len(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(obj, key);
	return cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
}

bool fp_in_elem_string(const cJSON *e)
{
	return cJSON_IsNull(e) || cJSON_IsString(e);
}

bool fp_in_object_or_null(const cJSON *j)
{
	return cJSON_IsObject(j) || cJSON_IsNull(j);
}

char *fp_in_lowerdup(const char *s)
{
	char *p = fp_xstrdup(s);
	for (char *q = p; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

static bool kind_ok(const cJSON *v, enum fp_in_kind kind)
{
	switch (kind) {
	case FP_IN_STR: return cJSON_IsString(v);
	case FP_IN_INT:
		return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
		       fabs(v->valuedouble) < 9.2e18;
	case FP_IN_BOOL: return cJSON_IsBool(v);
	case FP_IN_OBJECT: return cJSON_IsObject(v);
	case FP_IN_ARRAY: return cJSON_IsArray(v);
	}
	return false;
}

bool fp_in_fields_ok(const cJSON *obj, const struct fp_in_field *fields)
{
	if (!fp_in_object_or_null(obj))
		return false;
	for (const struct fp_in_field *f = fields; f->key != NULL; f++) {
		const cJSON *v = cJSON_GetObjectItem(obj, f->key);
		if (v != NULL && !cJSON_IsNull(v) && !kind_ok(v, f->kind))
			return false;
	}
	return true;
}

long long fp_in_int(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(obj, key);
	return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}
