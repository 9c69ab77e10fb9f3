/* The task keys of [daemon] (config.h): their setters and the defaults that
 * need the whole file. */
#include "supervisor/config_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/duration.h"

#define DAY_MS 86400000L
#define FIELD(p, k, type) ((type)((char *)(p)->c + (k)->off))

int mc_cfg_set_int(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end == v || *end != '\0' || errno != 0 || v[0] < '0' || v[0] > '9')
		return fail_key(p, k->name, "\"%s\" is not a whole number", v);
	if (n < k->min || n > k->max)
		return fail_key(p, k->name, "%ld is out of range (%ld to %ld)", n, k->min, k->max);
	*FIELD(p, k, int *) = (int)n;
	return 0;
}

/* "<N>d": whole days. 0, or -1 with errno (EINVAL: not that form). */
static int parse_days(const char *v, long *out)
{
	size_t n = strlen(v);
	if (n < 2 || v[n - 1] != 'd' || v[0] < '0' || v[0] > '9') {
		errno = EINVAL;
		return -1;
	}
	long days = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (v[i] < '0' || v[i] > '9') {
			errno = EINVAL;
			return -1;
		}
		if (days > (LONG_MAX / DAY_MS - 9) / 10) {
			errno = ERANGE;
			return -1;
		}
		days = days * 10 + (v[i] - '0');
	}
	*out = days * DAY_MS;
	return 0;
}

int mc_cfg_set_days(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	long ms;
	if (parse_days(v, &ms) < 0 && (errno == ERANGE || mc_parse_duration_ms(v, &ms) < 0)) {
		if (errno == ERANGE)
			return fail_key(p, k->name, "\"%s\" is too large", v);
		return fail_key(p, k->name,
				"\"%s\" is not a duration (use ms, s, m or h, or whole days: 7d)", v);
	}
	if (ms < k->min || ms > k->max) {
		char lo[32], hi[32];
		mc_cfg_format_days(k->min, lo, sizeof lo);
		mc_cfg_format_days(k->max, hi, sizeof hi);
		return fail_key(p, k->name, "\"%s\" is out of range (%s to %s)", v, lo, hi);
	}
	*FIELD(p, k, long *) = ms;
	return 0;
}

void mc_cfg_format_days(long ms, char *buf, size_t n)
{
	if (ms > 0 && ms % DAY_MS == 0)
		snprintf(buf, n, "%ldd", ms / DAY_MS);
	else
		mc_format_duration(ms, buf, n);
}

void mc_cfg_finish_tasks(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->workspaces_root[0] != '\0' || p->dkey_bad[mc_cfg_dkey_index("workspaces_root")])
		return;
	if ((size_t)snprintf(c->workspaces_root, sizeof c->workspaces_root, "%s/work",
			     c->state_dir) >= sizeof c->workspaces_root)
		mc_cfg_problem(p, EINVAL, 0, "workspaces_root",
			       "<state_dir>/work is longer than %d characters; set workspaces_root",
			       MC_PATH_MAX - 1);
}
