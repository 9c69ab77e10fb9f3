/* Fault injection over the whole daemon with tasks, part 1: the deaths.
 * SIGKILL (or a test build's fault hook, _exit at an exact point) of the
 * worker at each stage of a task: claimed, started, streaming, result
 * read, terminal call being retried, report in the outbox; of the link in
 * the middle of a claim; of the supervisor with a task running, then a
 * restart on the same state_dir. After each, the task ends terminal at the
 * emulator exactly once, a completed result is never run again, and no
 * agent process is left (test_tasks_faults.h). Part 2, the server's
 * faults, cancel, delete, stop, drain and reload: test_tasks_faults_server.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/integration/test_tasks_faults.h"

static void fini(void)
{
	dfx_fini();
}

TestSuite(tasks_faults, .fini = fini, .timeout = 120);

/* One workspace whose worker carries the fault hook `hook` (NULL: none). */
static void start_with_hook(const char *hook)
{
	static char tail[200];
	dfx_ws_ids();
	tail[0] = '\0';
	if (hook != NULL)
		snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = %s\n", WS[1], hook);
	tf_start(&(struct tf_opts){ .tail = tail });
}

/* The worker of workspace 1 (asserted alive). */
static pid_t worker1(void)
{
	pid_t w = dp_worker_pid(&D, WS[1]);
	cr_assert_gt(w, 0, "workspace 1 has no worker");
	return w;
}

/* The worker's cleanup ran and the daemon takes tasks again: a new task
 * completes on the respawned worker. */
static void assert_daemon_goes_on(void)
{
	dfx_wait_ws_ready(1, 1, TF_READY_MS);
	DFX_WAIT_UP(tf_slots_used() == 0, 10000, "the dead worker's task keeps its slot");
	char id[TF_ID_LEN];
	tf_queue(1, "", id);
	cr_assert(fpt_wait_status(&FP, id, "completed", 20000, NULL),
		  "no task ran after the worker's death");
}

/* ---- the worker dies at each stage ---- */

Test(tasks_faults, worker_dies_claimed_before_start_task_recovered_never_started)
{
	TF_NEED_HOOKS();
	start_with_hook("exit_before_start");
	pid_t w = worker1();
	char id[TF_ID_LEN];
	tf_queue(1, "", id);
	DFX_WAIT_UP(!dp_pid_alive(w), 15000, "the hook did not end the worker");
	cr_assert(tf_wait_terminal(id, 15000), "the claimed task was left unfinished");
	tf_assert_once(id, "failed", "runtime_recovery", 0);
	struct tf_tally t;
	tf_tally(id, &t);
	cr_expect_eq(t.claims, 1, "claimed again: %s", t.calls);
	cr_expect_eq(t.messages, 0, "an agent ran: %s", t.calls);
}

Test(tasks_faults, worker_dies_started_before_spawn_task_recovered_no_agent)
{
	TF_NEED_HOOKS();
	start_with_hook("exit_before_spawn");
	pid_t w = worker1();
	char id[TF_ID_LEN];
	tf_queue(1, "", id);
	DFX_WAIT_UP(!dp_pid_alive(w), 15000, "the hook did not end the worker");
	cr_assert(tf_wait_terminal(id, 15000), "the started task was left running");
	tf_assert_once(id, "failed", "runtime_recovery", 1);
	struct tf_tally t;
	tf_tally(id, &t);
	cr_expect_eq(t.messages + t.completes + t.fails, 0, "the task went on: %s", t.calls);
}

Test(tasks_faults, worker_killed_while_streaming_agent_dies_task_recovered)
{
	start_with_hook(NULL);
	char id[TF_ID_LEN];
	tf_queue(1, "\"FAKE_AGENT_MODE\":\"slow\",\"FAKE_AGENT_DELAY_MS\":\"1000\"", id);
	struct tf_tally t;
	DFX_WAIT_UP(({ tf_tally(id, &t); t.messages > 0; }), 20000, "no message ever came");
	cr_assert_gt(fpt_count_task_procs(id), 0, "the agent is not running");
	cr_assert_eq(kill(worker1(), SIGKILL), 0);
	cr_assert(tf_no_procs(id, 2000), "the agent outlived its worker");
	cr_assert(tf_wait_terminal(id, 15000), "the streaming task was left running");
	tf_assert_once(id, "failed", "runtime_recovery", 1);
	tf_tally(id, &t);
	cr_expect_eq(t.completes, 0, "a result of a killed agent: %s", t.calls);
	assert_daemon_goes_on();
}

Test(tasks_faults, worker_dies_after_the_result_before_the_report_task_recovered_once)
{
	TF_NEED_HOOKS();
	start_with_hook("exit_after_result");
	pid_t w = worker1();
	char id[TF_ID_LEN];
	tf_queue(1, "\"FAKE_AGENT_MODE\":\"tool\"", id);
	DFX_WAIT_UP(!dp_pid_alive(w), 20000, "the hook did not end the worker");
	cr_assert(tf_wait_terminal(id, 15000), "the task was left running");
	/* Not in the outbox yet: lost, and failed retryable, never completed
	 * by someone else. */
	tf_assert_once(id, "failed", "runtime_recovery", 1);
	struct tf_tally t;
	tf_tally(id, &t);
	cr_expect_eq(t.completes + t.fails, 0, "%s", t.calls);
	cr_expect_eq(t.claims, 1, "the task ran again: %s", t.calls);
}

Test(tasks_faults, worker_killed_while_complete_is_retried_cleanup_delivers_it)
{
	start_with_hook(NULL);
	char id[TF_ID_LEN];
	tf_new_id(id);
	tf_fault_on(id, "complete", "\"status\":502,\"count\":1");
	tf_queue_id(1, id, "");
	/* The first /complete was answered 502: the worker waits 4 s to retry. */
	DFX_WAIT_UP(tf_faulted(id, "complete") == 1, 20000, "no /complete came");
	cr_assert_eq(kill(worker1(), SIGKILL), 0);
	cr_assert(tf_wait_terminal(id, 15000), "the outbox report was not delivered");
	tf_assert_once(id, "completed", NULL, 1);
	struct tf_tally t;
	tf_tally(id, &t);
	cr_expect_eq(t.fails + t.recovers, 0, "%s", t.calls);
	cr_expect_eq(tf_requests(id, "complete"), 2, "the report was sent %d times",
		     tf_requests(id, "complete"));
	cr_expect(DP_WAIT(!tf_in_outbox(1, id), 5000), "the delivered report stays in the outbox");
	assert_daemon_goes_on();
	cr_expect_eq(tf_requests(id, "complete"), 2, "the respawned worker sent it again");
}

Test(tasks_faults, worker_dies_after_the_outbox_write_cleanup_delivers_it)
{
	TF_NEED_HOOKS();
	start_with_hook("exit_after_outbox");
	pid_t w = worker1();
	char id[TF_ID_LEN];
	tf_queue(1, "", id);
	DFX_WAIT_UP(!dp_pid_alive(w), 20000, "the hook did not end the worker");
	cr_assert(tf_wait_terminal(id, 15000), "the outbox report was not delivered");
	tf_assert_once(id, "completed", NULL, 1);
	struct tf_tally t;
	tf_tally(id, &t);
	cr_expect_eq(t.completes, 1, "%s", t.calls);
	cr_expect_eq(t.fails + t.recovers, 0, "%s", t.calls);
	cr_expect(DP_WAIT(!tf_in_outbox(1, id), 5000), "the delivered report stays in the outbox");
}

/* ---- the link dies in the middle of a claim ---- */

Test(tasks_faults, link_killed_mid_claim_the_task_is_claimed_again_and_runs_once)
{
	const char *args[] = { "--redeliver-after", "2s", "--prepare-lease", "1s", NULL };
	tf_start(&(struct tf_opts){ .fp_args = args });
	/* The next claim is held 1.5 s at the server (under http_timeout). */
	tf_fault_path("POST", "/api/daemon/tasks/claim", "\"delay_ms\":1500,\"count\":1");
	DFX_WAIT_UP(tf_faults_left() == 0, 5000, "the link made no claim");
	/* Held: the respawned link's claims fail until the held one is over,
	 * so that only the held one can hand the task out. */
	tf_fault_path("POST", "/api/daemon/tasks/claim", "\"status\":503,\"count\":-1");
	char id[TF_ID_LEN];
	tf_queue(1, "", id);
	pid_t link = tf_link_pid();
	cr_assert_gt(link, 0, "no link");
	cr_assert_eq(kill(link, SIGKILL), 0);
	/* The server commits the claim nobody hears of. */
	cr_assert(fpt_wait_status(&FP, id, "dispatched", 5000, NULL), "the held claim did not land");
	DFX_WAIT_UP(tf_link_pid() != 0 && tf_link_pid() != link, 5000, "the link is not respawned");
	tf_faults_clear();
	cr_assert(fpt_wait_status(&FP, id, "completed", 20000, NULL),
		  "the task of the lost claim never ran");
	tf_assert_once(id, "completed", NULL, 1);
	struct tf_tally t;
	tf_tally(id, &t);
	cr_expect_eq(t.claims, 2, "handed out %d times: %s", t.claims, t.calls);
	cr_expect_eq(t.completes, 1, "%s", t.calls);
}

/* ---- the supervisor dies ---- */

Test(tasks_faults, supervisor_killed_task_ends_once_and_a_restart_runs_the_next)
{
	start_with_hook(NULL);
	char id[TF_ID_LEN];
	tf_queue(1, "\"FAKE_AGENT_MODE\":\"grandchild\"", id);
	tf_wait_running(id, 15000);
	pid_t w = worker1();
	cr_assert_eq(dp_signal(&D, SIGKILL), 0);
	cr_assert(dp_wait_exit(&D, 5000), "the supervisor did not die");
	/* The worker got SIGTERM (PDEATHSIG): it stops its agent and fails
	 * the task runtime_offline. */
	cr_assert(DP_WAIT(!dp_pid_alive(w), 15000), "the worker outlived its supervisor");
	cr_assert(tf_no_procs(id, 2000), "the agent outlived its supervisor");
	if (!tf_wait_terminal(id, 1000))
		cr_log_info("the task is still unfinished: the next start recovers it");
	/* The next start on the same state_dir. */
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, TF_READY_MS);
	cr_assert(tf_wait_terminal(id, 10000), "the task stays unfinished after the restart");
	struct tf_tally t;
	tf_tally(id, &t);
	cr_assert_str_eq(t.status, "failed", "%s", t.calls);
	cr_assert(strcmp(t.reason, "runtime_offline") == 0 || strcmp(t.reason, "runtime_recovery") == 0,
		  "failure_reason %s", t.reason);
	tf_assert_once(id, "failed", NULL, 1);
	char id2[TF_ID_LEN];
	tf_queue(1, "", id2);
	cr_assert(fpt_wait_status(&FP, id2, "completed", 20000, NULL), "the restart runs no task");
	tf_assert_once(id2, "completed", NULL, 1);
	tf_tally(id, &t);
	cr_expect_eq(t.effective, 1, "the first task changed again: %s", t.calls);
}

Test(tasks_faults, host_crash_with_a_task_running_next_start_recovers_it_once)
{
	start_with_hook(NULL);
	char id[TF_ID_LEN];
	tf_queue(1, "\"FAKE_AGENT_MODE\":\"grandchild\"", id);
	tf_wait_running(id, 15000);
	/* Everything at once, the agents too (in groups of their own: killed
	 * by hand, as the crash of the host or of the service's cgroup would). */
	dp_kill_all(&D);
	/* (Under load the agent may already be gone by now: what matters is
	 * what the next start does with the task.) */
	tf_kill_task_procs(id);
	cr_assert(tf_no_procs(id, 2000));
	char *st = fpt_field(&FP, id, "status");
	cr_assert_str_eq(st, "running", "nobody reported the crash yet");
	free(st);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, TF_READY_MS);
	cr_assert(tf_wait_terminal(id, 10000), "the next start did not recover the task");
	tf_assert_once(id, "failed", "runtime_recovery", 1);
	char id2[TF_ID_LEN];
	tf_queue(1, "", id2);
	cr_assert(fpt_wait_status(&FP, id2, "completed", 20000, NULL), "the restart runs no task");
}
