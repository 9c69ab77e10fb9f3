/* Fault injection over the whole daemon with tasks, part 2: the server's
 * faults on every task endpoint (5xx, a timeout: delay_ms over the call's
 * timeout, a reset connection, 404). Each task of a test has its own fault
 * on its own endpoint, in place before it is queued, so one daemon runs
 * them all side by side. What must hold (reference section 2, step 16):
 *   /start        a failure fails the task; no agent runs
 *   /status       never cancels (only a terminal status or "task not found")
 *   /messages, /progress, /usage, /session: not retried, the task completes
 *   /complete, /fail, /cancel-ack: retried, delivered once; a permanent 4xx
 *                 on /complete falls back to /fail
 * and every task ends terminal exactly once with nothing of it left
 * (test_tasks_faults.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/integration/test_tasks_faults.h"

static void fini(void)
{
	dfx_fini();
}

TestSuite(tasks_server_faults, .fini = fini, .timeout = 120);

/* A fault of each kind: http_timeout is 2 s, the small calls' 5 s. */
struct kind {
	const char *name;
	const char *spec;
};

#define K_5XX     { "503", "\"status\":503" }
#define K_502     { "502", "\"status\":502" }
#define K_404     { "404", "\"status\":404" }
#define K_RESET   { "reset", "\"reset\":true" }
#define K_TIMEOUT { "timeout", "\"delay_ms\":3000" }      /* over http_timeout */
#define K_SLOW    { "timeout", "\"delay_ms\":6000" }      /* over the small calls' 5 s */

#define SLOW_ENV "\"FAKE_AGENT_MODE\":\"slow\",\"FAKE_AGENT_DELAY_MS\":\"1100\""

#define MAX_TASKS 16

struct run {
	int n;
	char id[MAX_TASKS][TF_ID_LEN];
	const char *what[MAX_TASKS];
};

/* One task per kind, each with the fault spec + count on its endpoint op. */
static void queue_faulted_ws(struct run *r, int ws, const char *op, const struct kind *k,
			     int nk, const char *count, const char *env)
{
	for (int i = 0; i < nk; i++) {
		cr_assert_lt(r->n, MAX_TASKS);
		char spec[256];
		snprintf(spec, sizeof spec, "%s,\"count\":%s", k[i].spec, count);
		char *id = r->id[r->n];
		tf_new_id(id);
		tf_fault_on(id, op, spec);
		tf_queue_id(ws, id, env);
		static char what[MAX_TASKS][64];
		snprintf(what[r->n], sizeof what[r->n], "%s %s", op, k[i].name);
		r->what[r->n] = what[r->n];
		r->n++;
	}
}

static void queue_faulted(struct run *r, const char *op, const struct kind *k, int nk,
			  const char *count, const char *env)
{
	queue_faulted_ws(r, 1, op, k, nk, count, env);
}

static void wait_all_terminal(const struct run *r, int timeout_ms)
{
	int64_t t0 = dp_now_ms();
	for (int i = 0; i < r->n; i++) {
		cr_assert(tf_wait_terminal(r->id[i], timeout_ms), "task with %s never ended",
			  r->what[i]);
		cr_log_info("%s: ended after %lld ms", r->what[i], (long long)(dp_now_ms() - t0));
	}
}

static void start(void)
{
	tf_start(&(struct tf_opts){ .n_ws = 1 });
}

/* Calls of op the server carried out for the task (faulted ones not). */
static int handled(const char *id, const char *op)
{
	struct tf_tally t;
	tf_tally(id, &t);
	return fpt_count_op(t.calls, op);
}

/* ---- /start ---- */

Test(tasks_server_faults, start_failure_fails_the_task_and_no_agent_runs)
{
	start();
	static const struct kind k[] = { K_5XX, K_404, K_RESET, K_TIMEOUT };
	struct run r = { 0 };
	/* Every attempt: libcurl sends a request reset on a reused
	 * connection once more by itself. */
	queue_faulted(&r, "start", k, 4, "-1", "");
	wait_all_terminal(&r, 20000);
	for (int i = 0; i < r.n; i++) {
		cr_log_info("%s:", r.what[i]);
		tf_assert_once(r.id[i], "failed", NULL, 0);
		struct tf_tally t;
		tf_tally(r.id[i], &t);
		cr_expect_eq(t.messages + t.completes, 0, "%s: an agent ran: %s", r.what[i], t.calls);
		cr_expect_leq(tf_requests(r.id[i], "start"), i == 2 ? 2 : 1, "%s: /start retried",
			      r.what[i]);
	}
	DFX_WAIT_UP(tf_slots_used() == 0, 5000, "a failed task keeps its slot");
}

/* ---- /status ---- */

Test(tasks_server_faults, status_faults_never_cancel_the_task)
{
	start();
	static const struct kind k[] = { K_5XX, { "404 no such task text", "\"status\":404" },
					 K_RESET, K_SLOW };
	struct run r = { 0 };
	/* Longer than the 5 s poll: the periodic poll and the final check
	 * both meet the fault. */
	queue_faulted(&r, "status", k, 4, "-1", SLOW_ENV);
	wait_all_terminal(&r, 40000);
	for (int i = 0; i < r.n; i++) {
		cr_log_info("%s:", r.what[i]);
		tf_assert_once(r.id[i], "completed", NULL, 1);
		struct tf_tally t;
		tf_tally(r.id[i], &t);
		cr_expect_eq(t.acks + t.fails, 0, "%s cancelled the task: %s", r.what[i], t.calls);
		/* A delayed request is journaled once the server is done with it. */
		cr_expect(DP_WAIT(tf_faulted(r.id[i], "status") >= 2, 8000), "%s: polled %d times",
			  r.what[i], tf_faulted(r.id[i], "status"));
	}
}

/* ---- the calls that are not retried ---- */

Test(tasks_server_faults, messages_progress_usage_session_faults_are_not_retried)
{
	/* One workspace per endpoint: a worker's calls share one connection,
	 * and four held ones in a row would take 20 s. */
	tf_start(&(struct tf_opts){ .n_ws = 4 });
	static const struct kind k[] = { K_5XX, K_404, K_RESET, K_SLOW };
	static const char *const ops[] = { "messages", "progress", "usage", "session" };
	struct run r = { 0 };
	for (int o = 0; o < 4; o++)
		queue_faulted_ws(&r, o + 1, ops[o], k, 4, "1", "");
	wait_all_terminal(&r, 40000);
	for (int i = 0; i < r.n; i++) {
		cr_log_info("%s:", r.what[i]);
		tf_assert_once(r.id[i], "completed", NULL, 1);
		const char *op = ops[i / 4];
		/* A reset before any answer on a reused connection is sent
		 * again once by libcurl itself (and then reaches the server);
		 * the executor never sends it again. */
		/* Two progress calls a task (Launching, Finishing), one of each
		 * other kind; the fault takes the first. */
		int per = strcmp(op, "progress") == 0 ? 2 : 1;
		int sent = 0, most = per + (i % 4 == 2 ? 1 : 0);
		/* A delayed request is journaled once the server is done with it. */
		cr_expect(DP_WAIT((sent = tf_requests(r.id[i], op)) >= 1, 8000), "%s: never sent",
			  r.what[i]);
		cr_expect_leq(sent, most, "%s: sent %d times", r.what[i], sent);
		cr_expect_leq(handled(r.id[i], op), per, "%s: taken %d times", r.what[i],
			      handled(r.id[i], op));
	}
}

/* ---- the terminal calls ---- */

Test(tasks_server_faults, complete_faults_are_retried_and_delivered_once)
{
	start();
	static const struct kind k[] = { K_502, { "429", "\"status\":429" }, K_RESET, K_TIMEOUT };
	struct run r = { 0 };
	queue_faulted(&r, "complete", k, 4, "1", "");
	wait_all_terminal(&r, 30000);
	for (int i = 0; i < r.n; i++) {
		cr_log_info("%s:", r.what[i]);
		tf_assert_once(r.id[i], "completed", NULL, 1);
		struct tf_tally t;
		tf_tally(r.id[i], &t);
		cr_expect_eq(t.fails, 0, "%s: %s", r.what[i], t.calls);
		cr_expect(DP_WAIT(tf_requests(r.id[i], "complete") == 2, 10000),
			  "%s: /complete sent %d times, not twice", r.what[i],
			  tf_requests(r.id[i], "complete"));
		cr_expect(!tf_in_outbox(1, r.id[i]), "%s: the report stays in the outbox", r.what[i]);
	}
}

Test(tasks_server_faults, complete_refused_for_good_falls_back_to_fail)
{
	start();
	static const struct kind k[] = { K_404, { "400", "\"status\":400" } };
	struct run r = { 0 };
	queue_faulted(&r, "complete", k, 2, "1", "");
	wait_all_terminal(&r, 20000);
	for (int i = 0; i < r.n; i++) {
		cr_log_info("%s:", r.what[i]);
		tf_assert_once(r.id[i], "failed", NULL, 1);
		struct tf_tally t;
		tf_tally(r.id[i], &t);
		cr_expect_eq(t.fails, 1, "%s: %s", r.what[i], t.calls);
		cr_expect_eq(tf_requests(r.id[i], "complete"), 1, "%s: a refused /complete retried",
			     r.what[i]);
	}
}

Test(tasks_server_faults, fail_faults_are_retried_and_delivered_once)
{
	start();
	static const struct kind k[] = { K_502, K_RESET, K_TIMEOUT };
	struct run r = { 0 };
	queue_faulted(&r, "fail", k, 3, "1", "\"FAKE_AGENT_MODE\":\"error\"");
	wait_all_terminal(&r, 30000);
	for (int i = 0; i < r.n; i++) {
		cr_log_info("%s:", r.what[i]);
		tf_assert_once(r.id[i], "failed", NULL, 1);
		struct tf_tally t;
		tf_tally(r.id[i], &t);
		cr_expect_eq(t.completes, 0, "%s: an error run completed: %s", r.what[i], t.calls);
		cr_expect(DP_WAIT(tf_requests(r.id[i], "fail") == 2, 10000),
			  "%s: /fail sent %d times, not twice", r.what[i], tf_requests(r.id[i], "fail"));
	}
}

Test(tasks_server_faults, cancel_ack_faults_are_retried_and_delivered_once)
{
	start();
	static const struct kind k[] = { K_502, K_RESET, K_404 };
	struct run r = { 0 };
	queue_faulted(&r, "cancel-ack", k, 3, "1", "\"FAKE_AGENT_MODE\":\"grandchild\"");
	for (int i = 0; i < r.n; i++)
		tf_wait_running(r.id[i], 15000);
	for (int i = 0; i < r.n; i++)
		tf_cancel(r.id[i]);
	for (int i = 0; i < r.n; i++) {
		cr_assert(tf_no_procs(r.id[i], 15000), "%s: the agent outlived the cancel",
			  r.what[i]);
		/* Transient: sent again (4 s later) and taken; 404: refused for
		 * good, never sent again. */
		bool once = i == 2;
		int want = once ? 1 : 2;
		cr_assert(DP_WAIT(tf_requests(r.id[i], "cancel-ack") == want, 15000),
			  "%s: cancel-ack sent %d times, not %d", r.what[i],
			  tf_requests(r.id[i], "cancel-ack"), want);
		tf_assert_cancelled(r.id[i]);
		struct tf_tally t;
		tf_tally(r.id[i], &t);
		cr_expect_eq(t.acks, once ? 0 : 1, "%s: %s", r.what[i], t.calls);
		cr_expect_eq(t.completes + t.fails, 0, "%s: %s", r.what[i], t.calls);
	}
	DFX_WAIT_UP(tf_slots_used() == 0, 5000, "a cancelled task keeps its slot");
	dp_sleep_ms(1000);
	cr_expect_eq(tf_requests(r.id[2], "cancel-ack"), 1, "a refused cancel-ack was sent again");
}

/* ---- one held call and the rest of the workspace ---- */

/* A task call the server holds (here /messages, until its 5 s timeout)
 * must not hold up the other tasks of the workspace nor its heartbeats:
 * a worker's requests share one connection (worker/loop.c), and a
 * request queued behind a held one waits, or times out unsent. */
/* Disabled: fails today (the other task waits the held call's 5 s out:
 * the executor's calls of a workspace go one at a time, task_exec.c
 * exec_api); reported to the lead. */
Test(tasks_server_faults, a_held_call_of_one_task_holds_up_no_other_task)
{
	start();
	char a[TF_ID_LEN], b[TF_ID_LEN], rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	tf_new_id(a);
	tf_fault_on(a, "messages", "\"delay_ms\":6000,\"count\":1");
	tf_queue_id(1, a, SLOW_ENV);
	DFX_WAIT_UP(tf_faults_left() == 0, 15000, "no /messages came");
	int64_t t0 = dp_now_ms(), w0 = dp_wall_ms();
	tf_queue(1, "", b);
	cr_assert(fpt_wait_status(&FP, b, "completed", 20000, NULL), "the other task never ran");
	int64_t took = dp_now_ms() - t0;
	cr_assert(tf_wait_terminal(a, 20000));
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	int beats;
	int64_t gap = dp_j_heartbeat_gap(&j, rt, w0, w0 + 5000, &beats);
	dp_journal_free(&j);
	cr_log_info("the other task took %lld ms; heartbeats paused up to %lld ms (%d beats)",
		    (long long)took, (long long)gap, beats);
	cr_expect_leq(took, 2500, "a held call of another task held this one up %lld ms",
		      (long long)took);
	cr_expect_leq(gap, 2500, "a held task call paused the heartbeats %lld ms", (long long)gap);
}
