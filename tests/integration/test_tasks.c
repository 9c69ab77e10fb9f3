/* Tasks through the whole daemon: queued at the emulator, claimed by the
 * link, routed by the supervisor, run by a worker with the fake claude CLI
 * (tests/agents), and what happens to them when things go wrong: a killed
 * worker, link or supervisor, a stop, a cancel. After each, every task
 * ends terminal at the emulator exactly once and no agent process is left
 * (checked through /proc: nothing carries the task's MULTICA_TASK_ID). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"
#include "tests/support/fp_tasks.h"

static void fini(void)
{
	dfx_fini();
}

TestSuite(tasks, .fini = fini, .timeout = 120);

/* n workspaces, each with the claude built-in being the fake claude. */
static void start(int n, const char *extra)
{
	dfx_start_plane(n, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = dfx_ws_list(1, n) };
	static char daemon_extra[1024], providers[600];
	snprintf(daemon_extra, sizeof daemon_extra,
		 "task_poll_interval = 300ms\ntask_stop_grace = 1s\n%s",
		 extra ? extra : "");
	snprintf(providers, sizeof providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	c.daemon_extra = daemon_extra;
	c.providers = providers;
	c.stop_timeout = "8s";
	dfx_start_daemon(&c, NULL);
	for (int i = 1; i <= n; i++)
		dfx_wait_ws_ready(i, 1, 15000);
}

static void queue(int ws, const char *env, char id[40])
{
	char rid[DP_ID_LEN + 1];
	dfx_runtime_of(ws, rid);
	fpt_queue(&FP, rid, env, "", id);
}

static bool status_is(const char *id, const char *want)
{
	char *s = fpt_field(&FP, id, "status");
	bool eq = strcmp(s, want) == 0;
	free(s);
	return eq;
}

static bool wait_status(const char *id, const char *want, int ms)
{
	return fpt_wait_status(&FP, id, want, ms, NULL);
}

static void assert_terminal_once(const char *id)
{
	char calls[4096];
	fpt_calls(&FP, id, calls, sizeof calls);
	int n = fpt_count_op(calls, "complete") + fpt_count_op(calls, "fail") +
		fpt_count_op(calls, "cancel-ack") + fpt_count_op(calls, "recover-orphans");
	cr_assert_geq(n, 1, "no terminal call: %s", calls);
	char *st = fpt_field(&FP, id, "status");
	cr_assert(strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
		  strcmp(st, "cancelled") == 0, "status %s is not terminal", st);
	free(st);
}

static bool wait_no_task_procs(const char *id, int ms)
{
	for (int t = 0; t < ms; t += 50) {
		if (fpt_count_task_procs(id) == 0)
			return true;
		usleep(50000);
	}
	return fpt_count_task_procs(id) == 0;
}

/* Running means: /start was answered and the agent is up. */
static void wait_running(const char *id)
{
	DFX_WAIT_UP(fpt_count_task_procs(id) > 0, 15000, "the task's agent never ran");
	cr_assert(wait_status(id, "running", 5000));
}

Test(tasks, queued_task_runs_through_link_and_worker_to_completed)
{
	start(2, NULL);
	char id[40];
	queue(2, "\"FAKE_AGENT_MODE\":\"tool\"", id);
	cr_assert(wait_status(id, "completed", 20000), "the task did not complete");
	char calls[4096];
	fpt_calls(&FP, id, calls, sizeof calls);
	cr_assert_eq(fpt_count_op(calls, "complete"), 1, "%s", calls);
	cr_assert_eq(fpt_count_op(calls, "fail"), 0, "%s", calls);
	cr_assert(fpt_seqs_increase(&FP, id));
	cr_assert(wait_no_task_procs(id, 3000));
}

Test(tasks, cancel_while_running_acks_and_leaves_no_process)
{
	start(1, NULL);
	char id[40], path[128];
	queue(1, "\"FAKE_AGENT_MODE\":\"grandchild\"", id);
	wait_running(id);
	snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", id);
	cr_assert_eq(dfx_admin("POST", path, "{}"), 200);
	cr_assert(wait_no_task_procs(id, 15000), "the agent outlived the cancel");
	char calls[4096];
	for (int t = 0; t < 100 && fpt_count_op(calls, "cancel-ack") == 0; t++) {
		usleep(50000);
		fpt_calls(&FP, id, calls, sizeof calls);
	}
	cr_assert_eq(fpt_count_op(calls, "cancel-ack"), 1, "%s", calls);
	cr_assert_eq(fpt_count_op(calls, "complete") + fpt_count_op(calls, "fail"), 0, "%s", calls);
}

Test(tasks, sigterm_fails_running_tasks_runtime_offline_and_leaves_nothing)
{
	start(1, NULL);
	char id[40];
	queue(1, "\"FAKE_AGENT_MODE\":\"hang\"", id);
	wait_running(id);
	cr_assert(dp_stop(&D, 12000), "the daemon did not stop in time");
	char *st = fpt_field(&FP, id, "status"), *why = fpt_field(&FP, id, "failure_reason");
	cr_assert_str_eq(st, "failed");
	cr_assert_str_eq(why, "runtime_offline");
	free(st);
	free(why);
	cr_assert(wait_no_task_procs(id, 2000));
	cr_assert_eq(dp_count_online(&FP, WS[1]), 0, "a runtime stayed online");
}

Test(tasks, killed_worker_task_ends_once_and_its_agent_dies)
{
	start(1, NULL);
	char id[40];
	queue(1, "\"FAKE_AGENT_MODE\":\"hang\"", id);
	wait_running(id);
	pid_t w = dp_worker_pid(&D, WS[1]);
	cr_assert_gt(w, 0);
	cr_assert_eq(kill(w, SIGKILL), 0);
	cr_assert(wait_no_task_procs(id, 3000), "the agent outlived its worker");
	DFX_WAIT_UP(status_is(id, "failed"), 15000,
		    "the task was not failed after its worker died");
	char *why = fpt_field(&FP, id, "failure_reason");
	cr_assert_str_eq(why, "runtime_recovery", "retryable: the server re-runs it");
	free(why);
	assert_terminal_once(id);
	dfx_wait_ws_ready(1, 1, 15000);
}

Test(tasks, killed_link_is_respawned_and_later_tasks_still_run)
{
	start(1, NULL);
	size_t before = dp_count_children_titled(&D, "multicad: link");
	cr_assert_eq(before, 1, "one link process");
	static pid_t kids[64];
	size_t n = dp_children(&D, kids, 64);
	pid_t link = 0;
	for (size_t i = 0; i < n; i++) {
		char t[128];
		if (dp_proc_title(kids[i], t, sizeof t) == 0 && strcmp(t, "multicad: link") == 0)
			link = kids[i];
	}
	cr_assert_gt(link, 0);
	kill(link, SIGKILL);
	char id[40];
	queue(1, "", id);
	cr_assert(wait_status(id, "completed", 20000), "no task ran after the link died");
	DFX_WAIT_UP(dp_count_children_titled(&D, "multicad: link") == 1, 5000, "link respawned");
}

Test(tasks, slots_cap_the_tasks_running_at_once)
{
	start(1, "max_concurrent_tasks = 2\n");
	char ids[5][40];
	for (int i = 0; i < 5; i++)
		queue(1, "\"FAKE_AGENT_MODE\":\"slow\",\"FAKE_AGENT_DELAY_MS\":\"150\"", ids[i]);
	int max_running = 0;
	for (int t = 0; t < 600; t++) {
		int running = 0, done = 0;
		for (int i = 0; i < 5; i++) {
			char *s = fpt_field(&FP, ids[i], "status");
			running += strcmp(s, "running") == 0;
			done += strcmp(s, "completed") == 0;
			free(s);
		}
		if (running > max_running)
			max_running = running;
		if (done == 5)
			break;
		usleep(50000);
	}
	for (int i = 0; i < 5; i++)
		cr_assert(wait_status(ids[i], "completed", 100), "task %d did not complete", i);
	cr_assert_leq(max_running, 2, "more tasks ran at once than max_concurrent_tasks");
	cr_assert_eq(max_running, 2, "the slots were not used");
}

/* A claimed task can be large (chat history): 2 MiB runs; one past the
 * IPC limit is failed at the server with a reason naming it, and nothing
 * else is disturbed. */
static char *big_extra(size_t n)
{
	char *s = malloc(n + 256);
	cr_assert_not_null(s);
	int k = snprintf(s, 256, "\"chat_session_id\":\"e1111111-1111-4111-8111-111111111111\","
			 "\"chat_message\":\"");
	memset(s + k, 'x', n);
	strlcpy(s + k + n, "\"", 2);
	return s;
}

Test(tasks, large_task_runs_and_one_past_the_limit_is_failed_with_the_reason)
{
	start(1, NULL);
	char rid[DP_ID_LEN + 1], big[40], huge[40];
	dfx_runtime_of(1, rid);
	char *e = big_extra(2u << 20);
	fpt_queue(&FP, rid, "", e, big);
	free(e);
	cr_assert(wait_status(big, "completed", 30000), "a 2 MiB task did not complete");
	e = big_extra(9u << 20);
	fpt_queue(&FP, rid, "", e, huge);
	free(e);
	cr_assert(wait_status(huge, "failed", 30000), "a 9 MiB task was not failed");
	char *err = fpt_field(&FP, huge, "error");
	cr_assert(strstr(err, "8 MiB") != NULL, "the error names the limit: %s", err);
	free(err);
	cr_assert(dp_alive(&D) && dp_count_online(&FP, WS[1]) == 1, "the daemon was disturbed");
}

/* A task queued before the daemon starts is claimed only after the first
 * registration's recover-orphans have landed: claimed before, it would be
 * failed by them (runtime_recovery) before it ever started. The slow
 * recover-orphans make the window wide. */
Test(tasks, no_claim_before_the_first_recover_orphans_landed)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	cr_assert_eq(fp_fault(&FP, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/runtimes/\","
				   "\"delay_ms\":1500,\"count\":1}"), 200);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 1) };
	static char providers[600];
	snprintf(providers, sizeof providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	c.daemon_extra = "task_poll_interval = 200ms\n";
	c.providers = providers;
	dfx_start_daemon(&c, NULL);
	char rid[DP_ID_LEN + 1], id[40];
	DFX_WAIT_UP(dp_runtime_id(&FP, WS[1], "claude", NULL, rid), 10000, "no runtime row");
	/* Slow enough to be running when the held recover-orphans lands. */
	fpt_queue(&FP, rid, "\"FAKE_AGENT_MODE\":\"slow\",\"FAKE_AGENT_DELAY_MS\":\"500\"", "", id);
	cr_assert(wait_status(id, "completed", 20000), "the task did not complete");
	char *why = fpt_field(&FP, id, "failure_reason");
	cr_assert_str_eq(why, "", "the task was failed first: %s", why);
	free(why);
}
