#include "supervisor/duration.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Units from the largest down; a group's unit must come after the previous
 * group's in this table, which rules out "30s1m" and "1s1s". */
static const struct unit {
	const char *name;
	long ms;
} units[] = {
	{ "h", 3600000L },
	{ "m", 60000L },
	{ "s", 1000L },
	{ "ms", 1L },
};
#define N_UNITS (sizeof units / sizeof units[0])

/* Reads the digits at *p into *amount. Returns 0, or -1 with errno. */
static int read_amount(const char **p, long *amount)
{
	const char *s = *p;
	long v = 0;
	if (*s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		int d = *s - '0';
		if (v > (LONG_MAX - d) / 10) {
			errno = ERANGE;
			return -1;
		}
		v = v * 10 + d;
	}
	*p = s;
	*amount = v;
	return 0;
}

/* Matches the unit at *p, the longest name winning ("ms" over "m").
 * Returns its index in units[] and advances *p, or -1 with errno=EINVAL. */
static int read_unit(const char **p)
{
	int best = -1;
	size_t best_len = 0;
	for (size_t i = 0; i < N_UNITS; i++) {
		size_t n = strlen(units[i].name);
		if (n > best_len && strncmp(*p, units[i].name, n) == 0) {
			best = (int)i;
			best_len = n;
		}
	}
	if (best < 0) {
		errno = EINVAL;
		return -1;
	}
	*p += best_len;
	return best;
}

int mc_parse_duration_ms(const char *s, long *out)
{
	if (s == NULL || *s == '\0') {
		errno = EINVAL;
		return -1;
	}
	long total = 0;
	int last_unit = -1;
	const char *p = s;
	while (*p != '\0') {
		long amount;
		if (read_amount(&p, &amount) < 0)
			return -1;
		int u = read_unit(&p);
		if (u < 0)
			return -1;
		if (u <= last_unit) {
			errno = EINVAL;
			return -1;
		}
		last_unit = u;
		if (amount > LONG_MAX / units[u].ms ||
		    total > LONG_MAX - amount * units[u].ms) {
			errno = ERANGE;
			return -1;
		}
		total += amount * units[u].ms;
	}
	*out = total;
	return 0;
}

void mc_format_duration(long ms, char *buf, size_t n)
{
	if (n == 0)
		return;
	buf[0] = '\0';
	/* unsigned arithmetic so that LONG_MIN has a magnitude too */
	unsigned long rest = ms < 0 ? 0UL - (unsigned long)ms : (unsigned long)ms;
	size_t used = 0;
	if (ms < 0)
		used = (size_t)snprintf(buf, n, "-");
	if (rest == 0) {
		snprintf(buf + used, n - used, "0ms");
		return;
	}
	for (size_t i = 0; i < N_UNITS && used < n; i++) {
		unsigned long q = rest / (unsigned long)units[i].ms;
		rest %= (unsigned long)units[i].ms;
		if (q == 0)
			continue;
		int w = snprintf(buf + used, n - used, "%lu%s", q, units[i].name);
		if (w < 0)
			return;
		used += (size_t)w;
	}
}
