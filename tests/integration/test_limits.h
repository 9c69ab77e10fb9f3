/* Shared by the two halves of test_limits (one binary): test_limits.c
 * (the payload builder, the API client, one worker) and
 * test_limits_daemon.c (the whole daemon). */
#ifndef MC_TEST_LIMITS_H
#define MC_TEST_LIMITS_H

#include <stdio.h>

#include "tests/support/daemon_proc.h"

/* test_fault lines take effect only in -DMC_TEST_HOOKS=ON builds. */
#ifdef MC_TEST_HOOKS
#define NEED_HOOKS() ((void)0)
#else
#define NEED_HOOKS() cr_skip_test("needs a build configured with -DMC_TEST_HOOKS=ON")
#endif

/* One timeout for every suite: Criterion 2.4.1's runner leaks 48 bytes
 * (LeakSanitizer) when tests of suites with different timeouts run side
 * by side under --jobs 2. */
#define SUITE_TIMEOUT 240

/* What the worker puts in failed_profiles for a profile past the limit. */
#define OVER_REASON "not registered: multicad registers at most 512 runtimes per workspace " \
		    "(built-ins included)"

/* Profile i (< 10^6) of set (< 10): "a0000000-0000-4000-8<set>00-<i>". */
static inline void profile_id(int set, size_t i, char out[DP_ID_LEN + 1])
{
	snprintf(out, DP_ID_LEN + 1, "a0000000-0000-4000-8%u00-%012u", (unsigned)set % 10u,
		 (unsigned)(i % 1000000u));
}

#endif
