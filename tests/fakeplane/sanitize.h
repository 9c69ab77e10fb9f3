/* multica-fakeplane: what the server does to task text before storing it
 * (reference section 2.9: NUL bytes and invalid UTF-8 sanitized), so that
 * the admin view shows what multica would keep. The journal keeps the raw
 * request. Allocation failure aborts (util.h). */
#ifndef FP_SANITIZE_H
#define FP_SANITIZE_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Allocates a copy of the JSON text body[0..len) without NUL bytes and
 * without \u0000 escapes inside strings (cJSON would cut a string there),
 * NUL-terminated; *out_len gets its length. */
char *fp_strip_nul(const char *body, size_t len, size_t *out_len);
/* Allocates a copy of s with every invalid UTF-8 sequence replaced by
 * U+FFFD, as Go's encoding/json decodes it. */
char *fp_utf8_repair(const char *s);
/* Repairs every string value in the tree j in place. */
void fp_json_repair_utf8(cJSON *j);

#endif
