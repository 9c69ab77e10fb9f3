#include "tests/fakeplane/limits.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"

#define BACKLOG_MAX 65535

static long rl_long(rlim_t v)
{
	return v == RLIM_INFINITY || v > (rlim_t)LONG_MAX ? LONG_MAX : (long)v;
}

int fp_limits_fit(long *max_conns, bool explicit, char *err, size_t errlen)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	long want = *max_conns + FP_FD_RESERVE, hard = rl_long(rl.rlim_max);
	if (rl_long(rl.rlim_cur) < want) {
		rl.rlim_cur = hard < want ? rl.rlim_max : (rlim_t)want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			snprintf(err, errlen, "cannot raise the open-files limit to %ld: %s",
				 rl_long(rl.rlim_cur), strerror(errno));
			return -1;
		}
	}
	long got = rl_long(rl.rlim_cur);
	if (got < want && explicit) {
		snprintf(err, errlen, "--max-connections %ld needs %ld open files, but the hard "
			 "limit of open files is %ld (RLIMIT_NOFILE: raise it, or ask for at "
			 "most %ld)", *max_conns, want, hard, hard - FP_FD_RESERVE);
		return -1;
	}
	if (got < want) {
		if (got <= FP_FD_RESERVE) {
			snprintf(err, errlen, "the hard limit of open files (%ld) leaves no room "
				 "for connections", hard);
			return -1;
		}
		mc_log(MC_LOG_WARN, "connection limit lowered to fit the open-files limit",
		       "max_connections", MC_LOG_NUM(got - FP_FD_RESERVE),
		       "wanted", MC_LOG_NUM(*max_conns), "nofile_hard", MC_LOG_NUM(hard), NULL);
		*max_conns = got - FP_FD_RESERVE;
	}
	return 0;
}

unsigned fp_listen_backlog(long max_conns)
{
	return max_conns > BACKLOG_MAX ? BACKLOG_MAX : (unsigned)max_conns;
}

long fp_listen_backlog_effective(long max_conns)
{
	long want = fp_listen_backlog(max_conns), cap = -1;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
	if (f != NULL) {
		if (fscanf(f, "%ld", &cap) != 1)
			cap = -1;
		fclose(f);
	}
	return cap > 0 && cap < want ? cap : want;
}
