/* Fault injection over the whole daemon with tasks, part 3: the server
 * cancels or deletes a task at every stage (before /start, while the agent
 * runs, after the result while the terminal call is being retried), and
 * the daemon stops (SIGTERM), drains (multicactl drain) or reloads (a
 * changed workspace drains first; a removed one stops like SIGTERM) with
 * tasks running. After each, every task ends terminal exactly once (or is
 * gone, deleted) and nothing of it is left (test_tasks_faults.h). */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/integration/test_tasks_faults.h"

extern char **environ;

static void fini(void)
{
	dfx_fini();
}

TestSuite(tasks_stop_faults, .fini = fini, .timeout = 120);

#define HANG "\"FAKE_AGENT_MODE\":\"grandchild\""
/* About 3 s of output, then a result. */
#define SLOW "\"FAKE_AGENT_MODE\":\"slow\",\"FAKE_AGENT_DELAY_MS\":\"600\""

/* Requests naming the task (a deleted row has no call log any more). */
static int requests_of(const char *id)
{
	char path[128];
	snprintf(path, sizeof path, "/api/daemon/tasks/%s/", id);
	return dp_journal_match(&FP, 0, NULL, path, NULL, 0);
}

/* A deleted task: its agent is gone, its slot free, and the daemon stops
 * calling the server about it. */
static void assert_deleted_and_left_alone(int ws, const char *id)
{
	cr_assert(tf_no_procs(id, 15000), "the deleted task's agent is still running");
	DFX_WAIT_UP(tf_slots_used() == 0, 15000, "the deleted task keeps its slot");
	cr_expect(DP_WAIT(!tf_in_outbox(ws, id), 5000), "the deleted task's report stays");
	int n = requests_of(id);
	dp_sleep_ms(1500);
	cr_expect_eq(requests_of(id), n, "the daemon still calls about a deleted task");
}

/* ---- before /start ---- */

Test(tasks_stop_faults, cancel_or_delete_before_start_runs_no_agent)
{
	/* Two workspaces: a worker's calls go one after the other. */
	tf_start(&(struct tf_opts){ .n_ws = 2 });
	char a[TF_ID_LEN], b[TF_ID_LEN];
	tf_new_id(a);
	tf_new_id(b);
	/* /start held 1.5 s at the server: the task ends meanwhile. */
	tf_fault_on(a, "start", "\"delay_ms\":1500,\"count\":1");
	tf_fault_on(b, "start", "\"delay_ms\":1500,\"count\":1");
	tf_queue_id(1, a, HANG);
	tf_queue_id(2, b, HANG);
	DFX_WAIT_UP(tf_faults_left() == 0, 10000, "no /start came");
	tf_cancel(a);
	tf_delete(b);
	DFX_WAIT_UP(tf_requests(a, "start") == 1, 5000, "the held /start was not answered");
	DFX_WAIT_UP(tf_slots_used() == 0, 10000, "the ended tasks keep their slots");
	tf_assert_cancelled(a);
	struct tf_tally t;
	tf_tally(a, &t);
	cr_expect_eq(t.starts + t.messages, 0, "the cancelled task ran: %s", t.calls);
	cr_expect_eq(fpt_count_task_procs(a), 0);
	assert_deleted_and_left_alone(2, b);
}

/* ---- while the agent runs ---- */

Test(tasks_stop_faults, cancel_or_delete_while_running_stops_the_agent)
{
	tf_start(&(struct tf_opts){ 0 });
	char a[TF_ID_LEN], b[TF_ID_LEN];
	tf_queue(1, HANG, a);
	tf_queue(1, HANG, b);
	tf_wait_running(a, 15000);
	tf_wait_running(b, 15000);
	tf_cancel(a);
	tf_delete(b);
	/* The 5 s status poll, then the group: SIGTERM, 1 s, SIGKILL. */
	cr_assert(tf_no_procs(a, 15000), "the cancelled task's agent is still running");
	cr_assert(DP_WAIT(({ struct tf_tally t; tf_tally(a, &t); t.acks == 1; }), 5000),
		  "no cancel-ack");
	tf_assert_cancelled(a);
	struct tf_tally t;
	tf_tally(a, &t);
	cr_expect_eq(t.completes + t.fails, 0, "%s", t.calls);
	assert_deleted_and_left_alone(1, b);
}

/* ---- after the result, while /complete is being retried ---- */

Test(tasks_stop_faults, cancel_or_delete_while_complete_is_retried_ends_the_retries)
{
	tf_start(&(struct tf_opts){ 0 });
	char a[TF_ID_LEN], b[TF_ID_LEN];
	tf_new_id(a);
	tf_new_id(b);
	tf_fault_on(a, "complete", "\"status\":502,\"count\":-1");
	tf_fault_on(b, "complete", "\"status\":502,\"count\":-1");
	tf_queue_id(1, a, "");
	tf_queue_id(1, b, "");
	DFX_WAIT_UP(tf_faulted(a, "complete") >= 1 && tf_faulted(b, "complete") >= 1, 20000,
		    "no /complete came");
	cr_assert(tf_in_outbox(1, a) && tf_in_outbox(1, b), "a report being retried is not in the outbox");
	tf_cancel(a);
	tf_delete(b);
	tf_faults_clear();
	/* The next attempt (4 s after the first) meets a cancelled row (200,
	 * unchanged) and a deleted one (404: refused for good). */
	DFX_WAIT_UP(tf_slots_used() == 0, 15000, "the retried reports never ended");
	cr_expect(DP_WAIT(!tf_in_outbox(1, a), 5000), "the cancelled task's report stays");
	tf_assert_cancelled(a);
	struct tf_tally t;
	tf_tally(a, &t);
	cr_expect_leq(t.completes, 1, "%s", t.calls);
	cr_expect_eq(t.fails + t.acks, 0, "%s", t.calls);
	assert_deleted_and_left_alone(1, b);
}

/* ---- SIGTERM ---- */

Test(tasks_stop_faults, sigterm_fails_the_running_task_and_keeps_an_undelivered_report)
{
	tf_start(&(struct tf_opts){ 0 });
	char run[TF_ID_LEN], rep[TF_ID_LEN];
	tf_new_id(rep);
	tf_fault_on(rep, "complete", "\"status\":502,\"count\":-1");
	tf_queue_id(1, rep, "");
	tf_queue(1, HANG, run);
	tf_wait_running(run, 15000);
	DFX_WAIT_UP(tf_faulted(rep, "complete") >= 1, 15000, "no /complete came");
	cr_assert(dp_stop(&D, 12000), "the daemon did not stop in time");
	tf_assert_once(run, "failed", "runtime_offline", 1);
	/* The server never took the other one's report: it waits in the
	 * outbox for the next start, which delivers it before anything else. */
	cr_assert(tf_in_outbox(1, rep), "the undelivered report was dropped at the stop");
	char *st = fpt_field(&FP, rep, "status");
	cr_expect_str_eq(st, "running");
	free(st);
	tf_faults_clear();
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, TF_READY_MS);
	cr_assert(tf_wait_terminal(rep, 10000), "the kept report was not delivered");
	tf_assert_once(rep, "completed", NULL, 1);
	cr_expect(!tf_in_outbox(1, rep), "the delivered report stays in the outbox");
	tf_assert_once(run, "failed", "runtime_offline", 1);
}

/* ---- drain ---- */

/* multicactl drain, output into D.dir/drain.out; its pid. */
static pid_t drain_spawn(void)
{
	char out[400];
	snprintf(out, sizeof out, "%s/drain.out", D.dir);
	const char *argv[] = { MULTICACTL_BIN, "-s", D.sock_path, "drain", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid = 0;
	int rc = posix_spawn(&pid, MULTICACTL_BIN, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "cannot run multicactl: %s", strerror(rc));
	return pid;
}

static bool draining(void)
{
	char *reply = NULL;
	if (dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000) < 0)
		return false;
	bool d = strstr(reply, "\"draining\":true") != NULL;
	free(reply);
	return d;
}

Test(tasks_stop_faults, drain_lets_the_running_task_complete_and_claims_no_more)
{
	tf_start(&(struct tf_opts){ 0 });
	char a[TF_ID_LEN], b[TF_ID_LEN];
	tf_queue(1, SLOW, a);
	tf_wait_running(a, 15000);
	pid_t ctl = drain_spawn();
	DFX_WAIT_UP(draining(), 5000, "status never says draining");
	tf_queue(1, "", b);
	int st = 0;
	cr_assert(DP_WAIT(waitpid(ctl, &st, WNOHANG) == ctl, 20000), "drain never returned");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "drain: status %d", st);
	cr_assert(dp_wait_exit(&D, 10000), "multicad did not stop after the drain");
	cr_expect(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 0, "exit status %d", D.status);
	tf_assert_once(a, "completed", NULL, 1);
	struct tf_tally t;
	tf_tally(b, &t);
	cr_expect_str_eq(t.status, "queued", "claimed while draining: %s", t.calls);
	cr_expect_eq(t.claims, 0, "%s", t.calls);
}

/* ---- reload ---- */

Test(tasks_stop_faults, reload_drains_a_changed_workspace_before_restarting_it)
{
	struct dp_config c;
	tf_start(&(struct tf_opts){ .keep = &c });
	char a[TF_ID_LEN];
	tf_queue(1, SLOW, a);
	tf_wait_running(a, 15000);
	pid_t w = dp_worker_pid(&D, WS[1]);
	static char tail[300];
	snprintf(tail, sizeof tail, "\n[workspace %s]\nprofile_command."
		 "a1111111-1111-4111-8111-111111111111 = /bin/true\n", WS[1]);
	c.tail = tail;
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(fpt_wait_status(&FP, a, "completed", 20000, NULL),
		  "the task of the changed workspace did not complete");
	tf_assert_once(a, "completed", NULL, 1);
	DFX_WAIT_UP(dp_worker_pid(&D, WS[1]) != 0 && dp_worker_pid(&D, WS[1]) != w, 10000,
		    "the changed workspace was not restarted after its drain");
	dfx_wait_ws_ready(1, 1, TF_READY_MS);
}

Test(tasks_stop_faults, reload_without_a_workspace_stops_its_task_like_sigterm)
{
	struct dp_config c;
	tf_start(&(struct tf_opts){ .n_ws = 2, .keep = &c });
	char a[TF_ID_LEN], b[TF_ID_LEN];
	tf_queue(2, HANG, a);
	tf_wait_running(a, 15000);
	pid_t w2 = dp_worker_pid(&D, WS[2]);
	c.workspaces = dfx_ws_list(1, 1);
	cr_assert_eq(dp_reload(&D, &c), 0);
	cr_assert(tf_wait_terminal(a, 15000), "the removed workspace's task never ended");
	tf_assert_once(a, "failed", "runtime_offline", 1);
	DFX_WAIT_UP(!dp_pid_alive(w2), 10000, "the removed workspace's worker still runs");
	DFX_WAIT_UP(dp_count_online(&FP, WS[2]) == 0, 10000, "its runtime stays online");
	tf_queue(1, "", b);
	cr_assert(fpt_wait_status(&FP, b, "completed", 20000, NULL), "workspace 1 runs no task");
}
