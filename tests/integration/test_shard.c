/* shard = I/N: two whole daemons (build's multicad) with workspaces = all
 * and shards 0/2 and 1/2 against one emulator split the workspaces with no
 * coordinator: disjoint sets whose union is every workspace, each host with
 * its own daemon_id, and a membership change moves nothing that did not
 * change shard. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "supervisor/config.h"
#include "tests/support/daemon_fixture.h"

#define N_WS 10
#define READY_MS 20000

/* Two daemons of their own; the fixture's emulator (daemon_fixture.h). */
static struct dp HOST[2];

static void suite_fini(void)
{
	dp_free(&HOST[0]);
	dp_free(&HOST[1]);
	dfx_fini();
}

TestSuite(shard, .timeout = 120, .fini = suite_fini);

static void start_host(int k)
{
	char extra[128], id[32];
	snprintf(extra, sizeof extra, "shard = %d/2\nworkspace_sync_interval = 500ms\n", k);
	snprintf(id, sizeof id, "shard-host-%d", k);
	struct dp_config c = { .server_url = FP.url, .workspaces = "all", .daemon_extra = extra,
			       .daemon_id = id };
	cr_assert_eq(dp_init(&HOST[k], NULL, NULL, NULL), 0);
	cr_assert_eq(dp_write_config(&HOST[k], &c), 0);
	cr_assert_eq(dp_start(&HOST[k]), 0);
}

/* Host k serves workspace i: a worker there and its row online. */
static bool served_by(int k, int i)
{
	return dp_worker_pid(&HOST[k], WS[i]) != 0;
}

/* Every workspace of 1..n is served by exactly the host of its shard, and
 * has its one row online. */
static bool split_is_right(int n)
{
	for (int i = 1; i <= n; i++) {
		int k = (int)mc_shard_of(WS[i], 2);
		if (!served_by(k, i) || served_by(1 - k, i) || dp_count_online(&FP, WS[i]) != 1)
			return false;
	}
	return true;
}

/* The daemon_id of the online row of ws. */
static void row_daemon(const char *ws, char *out, size_t n)
{
	char *body = NULL;
	cr_assert_eq(fp_http(&FP, "GET", "/_admin/state", NULL, NULL, &body), 200);
	char key[64];
	snprintf(key, sizeof key, "\"workspace_id\":\"%s\"", ws);
	const char *at = strstr(body, key);
	cr_assert_not_null(at, "no row of %s", ws);
	/* the row object around the match */
	const char *start = at;
	while (start > body && *start != '{')
		start--;
	const char *d = strstr(start, "\"daemon_id\":\"");
	cr_assert_not_null(d);
	d += strlen("\"daemon_id\":\"");
	size_t len = strcspn(d, "\"");
	cr_assert_lt(len, n);
	memcpy(out, d, len);
	out[len] = '\0';
	free(body);
}

Test(shard, two_hosts_split_the_workspaces_and_a_new_one_moves_nothing)
{
	dfx_start_plane(N_WS, NULL, NULL, NULL);
	/* both shards must be non-empty for the test to mean anything */
	int on0 = 0;
	for (int i = 1; i <= N_WS; i++)
		on0 += mc_shard_of(WS[i], 2) == 0;
	cr_assert(on0 > 0 && on0 < N_WS, "the test ids all fall in one shard");

	start_host(0);
	start_host(1);
	cr_assert(DP_WAIT(split_is_right(N_WS) || !dp_alive(&HOST[0]) || !dp_alive(&HOST[1]),
			  READY_MS) && split_is_right(N_WS),
		  "the workspaces were not split by shard (host 0 serves the even-hash ones)");
	cr_expect_eq(dp_count_online(&FP, NULL), N_WS, "a workspace is online twice");

	/* each host registers with its own daemon_id */
	char d0[128] = "", d1[128] = "";
	for (int i = 1; i <= N_WS; i++) {
		char d[128];
		row_daemon(WS[i], d, sizeof d);
		char *mine = mc_shard_of(WS[i], 2) == 0 ? d0 : d1;
		if (mine[0] == '\0')
			strlcpy(mine, d, sizeof d0);
		cr_expect_str_eq(d, mine, "one host registered under two daemon ids");
	}
	cr_expect_str_neq(d0, d1, "both hosts use the same daemon_id");

	/* A workspace joins: exactly its shard's host picks it up, and no
	 * other worker of either host is touched. */
	pid_t before[2][N_WS + 1];
	for (int i = 1; i <= N_WS; i++)
		for (int k = 0; k < 2; k++)
			before[k][i] = dp_worker_pid(&HOST[k], WS[i]);
	char body[256];
	snprintf(body, sizeof body, "{\"id\":\"%s\",\"name\":\"new\",\"members\":[\"" DP_USER "\"]}",
		 WS[N_WS + 1]);
	cr_assert_eq(fp_http(&FP, "POST", "/_admin/workspaces", body, NULL, NULL), 200);
	cr_assert(DP_WAIT(split_is_right(N_WS + 1), READY_MS),
		  "the new workspace was not picked up by the host of its shard only");
	for (int i = 1; i <= N_WS; i++)
		for (int k = 0; k < 2; k++)
			cr_expect_eq(dp_worker_pid(&HOST[k], WS[i]), before[k][i],
				     "host %d's worker of workspace %d changed", k, i);

	for (int k = 0; k < 2; k++)
		cr_expect(dp_stop(&HOST[k], 15000), "host %d did not stop cleanly", k);
	cr_expect_eq(dp_count_online(&FP, NULL), 0, "rows left online after both stopped");
}
