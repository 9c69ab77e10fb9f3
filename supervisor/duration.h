/* Durations as the configuration writes them: an integer amount followed by
 * a unit, ms, s, m or h, optionally combined from the largest unit down
 * ("1h30m", "1m30s", "2s500ms").
 *
 * Error convention: 0, or -1 with errno set (EINVAL, ERANGE). Nothing here
 * allocates. */
#ifndef MC_SV_DURATION_H
#define MC_SV_DURATION_H

#include <stddef.h>

/* Parses s into milliseconds. Grammar: one or more <digits><unit> groups,
 * units strictly decreasing (h, m, s, ms) so that each appears at most once.
 * No sign, no spaces, no fractions, no empty string, no bare number.
 * Returns 0 and sets *out, or -1 with errno=EINVAL (syntax) or ERANGE (the
 * total does not fit in a long); *out is untouched on error. */
int mc_parse_duration_ms(const char *s, long *out);

/* Writes ms in the same notation ("1m30s", "250ms", "0ms"; a negative
 * value gets a leading '-') into buf, truncated to n-1 bytes and always
 * NUL-terminated when n > 0. Its output parses back to ms when ms >= 0. */
void mc_format_duration(long ms, char *buf, size_t n);

#endif
