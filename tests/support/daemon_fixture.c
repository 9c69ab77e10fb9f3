/* Test support: the whole-daemon suites' fixture (daemon_fixture.h). */
#include "tests/support/daemon_fixture.h"

#include <stdlib.h>

#define DFX_MAX_LISTS 8

struct fp_proc FP;
struct dp D;
char WS[DFX_MAX_WS + 1][DP_ID_LEN + 1];

static bool fp_up;
/* Lists handed out by dfx_ws_list, so that a failed assertion leaks none. */
static char *lists[DFX_MAX_LISTS];
static size_t n_lists;

void dfx_ws_ids(void)
{
	for (int i = 1; i <= DFX_MAX_WS; i++)
		dp_ws_id(i, WS[i]);
}

void dfx_start_plane(int n_ws, const char *extra_ws, const char *profiles,
		    const char *const *args)
{
	dfx_ws_ids();
	char *seed = dp_seed(n_ws, extra_ws, profiles);
	cr_assert_not_null(seed);
	int rc = fp_start(&FP, seed, args);
	free(seed);
	cr_assert_eq(rc, 0, "the emulator did not start");
	fp_up = true;
}

/* The list is the fixture's (freed by dfx_fini). */
char *dfx_ws_list(int first, int last)
{
	char *l = dp_ws_list(first, last);
	cr_assert_not_null(l);
	cr_assert_lt(n_lists, (size_t)DFX_MAX_LISTS, "more than %d workspace lists in one test",
		     DFX_MAX_LISTS);
	lists[n_lists++] = l;
	return l;
}

void dfx_prepare_daemon(struct dp_config *c, const char *const *clis)
{
	cr_assert_eq(dp_init(&D, NULL, clis, NULL), 0);
	c->server_url = FP.url;
	cr_assert_eq(dp_write_config(&D, c), 0);
}

void dfx_start_daemon(struct dp_config *c, const char *const *clis)
{
	dfx_prepare_daemon(c, clis);
	cr_assert_eq(dp_start(&D), 0);
}

bool dfx_ws_ready(int i, int n)
{
	return dp_worker_pid(&D, WS[i]) != 0 && dp_count_online(&FP, WS[i]) == n;
}

void dfx_wait_ws_ready(int i, int n, int timeout_ms)
{
	DFX_WAIT_UP(dfx_ws_ready(i, n), timeout_ms,
		   "workspace %d did not come up with %d online rows (%d)", i, n,
		   dp_count_online(&FP, WS[i]));
}

void dfx_runtime_of(int i, char out[DP_ID_LEN + 1])
{
	cr_assert(dp_runtime_id(&FP, WS[i], "claude", NULL, out),
		  "no claude runtime row for workspace %d", i);
}

long dfx_admin(const char *method, const char *path, const char *body)
{
	char *out = NULL;
	long st = fp_http(&FP, method, path, body, NULL, &out);
	free(out);
	return st;
}

void dfx_fini(void)
{
	while (n_lists > 0)
		free(lists[--n_lists]);
	dp_free(&D);
	if (fp_up)
		fp_stop(&FP);
	fp_up = false;
}
