#include "tests/fakeplane/sanitize.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakeplane/util.h"

char *fp_strip_nul(const char *body, size_t len, size_t *out_len)
{
	char *out = fp_xmalloc(len + 1);
	size_t n = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = body[i];
		if (c == '\0')
			continue;
		if (in_string && c == '\\' && i + 1 < len) {
			if (i + 5 < len && memcmp(body + i + 1, "u0000", 5) == 0) {
				i += 5;   /* the escape of a NUL: dropped */
				continue;
			}
			out[n++] = c;
			out[n++] = body[++i];   /* an escape pair stays whole */
			continue;
		}
		if (c == '"')
			in_string = !in_string;
		out[n++] = c;
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	uint32_t cp, min;
	if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
	else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
	else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
	else return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

char *fp_utf8_repair(const char *s)
{
	size_t len = strlen(s);
	char *out = fp_xmalloc(3 * len + 1);   /* each bad byte may become 3 */
	size_t n = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p != '\0') {
		size_t k = utf8_seq(p);
		if (k == 0) {
			memcpy(out + n, "\xef\xbf\xbd", 3);   /* U+FFFD */
			n += 3;
			p++;
			continue;
		}
		memcpy(out + n, p, k);
		n += k;
		p += k;
	}
	out[n] = '\0';
	return out;
}

void fp_json_repair_utf8(cJSON *j)
{
	for (cJSON *c = j; c != NULL; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring != NULL) {
			char *fixed = fp_utf8_repair(c->valuestring);
			if (strcmp(fixed, c->valuestring) != 0)
				cJSON_SetValuestring(c, fixed);
			free(fixed);
		}
		if (c->child != NULL)
			fp_json_repair_utf8(c->child);   /* member names are left alone */
	}
}
