/* The link (one claimer per host) and the supervisor's slots and routing,
 * on the whole daemon against the emulator: one claim per poll interval
 * for the whole host, max_tasks = the free slots, a claim at once after a
 * runtime set change, the legacy per-runtime claim after a 404, a killed
 * link respawned without losing a queued task, a task for a runtime no
 * live worker hosts failed with runtime_offline. Claims are counted in the
 * emulator's journal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#define READY_MS 15000
#define AGENT "7c000000-0000-4000-8000-000000000001"
#define CLAIM "/api/daemon/tasks/claim"

TestSuite(link, .timeout = 120, .fini = dfx_fini);

/* ---- helpers ---- */

static cJSON *status(void)
{
	char *reply = NULL;
	cr_assert_eq(dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000), 0, "no status reply");
	cJSON *j = cJSON_Parse(reply);
	cr_assert(j != NULL, "status is not JSON: %s", reply);
	free(reply);
	return j;
}

/* status.link.pid, 0 when none (or not running). */
static pid_t link_pid(void)
{
	cJSON *s = status();
	const cJSON *l = cJSON_GetObjectItem(s, "link");
	const cJSON *pid = cJSON_GetObjectItem(l, "pid");
	const cJSON *st = cJSON_GetObjectItem(l, "state");
	pid_t p = cJSON_IsNumber(pid) && cJSON_IsString(st) && strcmp(st->valuestring, "running") == 0
		  ? (pid_t)pid->valuedouble : 0;
	cJSON_Delete(s);
	return p;
}

static int link_restarts(void)
{
	cJSON *s = status();
	int n = (int)cJSON_GetObjectItem(cJSON_GetObjectItem(s, "link"), "restarts")->valuedouble;
	cJSON_Delete(s);
	return n;
}

static int claims_since(long seq)
{
	return dp_journal_match(&FP, seq, "POST", CLAIM, NULL, 0);
}

/* Queues a task on runtime rid at the emulator; its id into id. */
static void queue_task(const char *rid, char id[DP_ID_LEN + 1])
{
	char body[256];
	snprintf(body, sizeof body, "{\"runtime_id\":\"%s\",\"agent\":{\"id\":\"" AGENT
		 "\",\"name\":\"agent\"}}", rid);
	char *reply = NULL;
	long st = fp_http(&FP, "POST", "/_admin/tasks", body, NULL, &reply);
	cr_assert_eq(st, 200, "queue task: %ld %s", st, reply ? reply : "");
	cJSON *j = cJSON_Parse(reply);
	const cJSON *v = cJSON_GetObjectItem(j, "id");
	cr_assert(cJSON_IsString(v), "no id in %s", reply);
	snprintf(id, DP_ID_LEN + 1, "%s", v->valuestring);
	cJSON_Delete(j);
	free(reply);
}

/* The task's status at the emulator ("" when unknown): malloc'd. */
static char *task_status(const char *id)
{
	char path[128], *reply = NULL;
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	fp_http(&FP, "GET", path, NULL, NULL, &reply);
	cJSON *j = reply ? cJSON_Parse(reply) : NULL;
	const cJSON *s = cJSON_GetObjectItem(j, "status");
	if (s == NULL)
		s = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "task"), "status");
	char *out = strdup(cJSON_IsString(s) ? s->valuestring : "");
	cJSON_Delete(j);
	free(reply);
	return out;
}

static bool task_left_queue(const char *id)
{
	char *s = task_status(id);
	bool left = s[0] != '\0' && strcmp(s, "queued") != 0;
	free(s);
	return left;
}

static void start(int n_ws, const char *extra)
{
	dfx_start_plane(n_ws, NULL, NULL, NULL);
	struct dp_config c = { .daemon_extra = extra };
	c.workspaces = dfx_ws_list(1, n_ws);
	dfx_start_daemon(&c, NULL);
	for (int i = 1; i <= n_ws; i++)
		dfx_wait_ws_ready(i, 1, READY_MS);
	DFX_WAIT_UP(link_pid() > 0, READY_MS, "the link never ran");
}

/* ---- tests ---- */

Test(link, is_a_process_of_its_own_in_status)
{
	start(1, NULL);
	pid_t pid = link_pid();
	char title[128];
	cr_assert_eq(dp_proc_title(pid, title, sizeof title), 0);
	cr_assert_str_eq(title, "multicad: link");
	cr_assert_eq(dp_proc_ppid(pid), D.pid, "a child of the supervisor");
	cJSON *s = status();
	const cJSON *slots = cJSON_GetObjectItem(s, "slots");
	cr_assert_eq(cJSON_GetObjectItem(slots, "max")->valuedouble, 20, "the default");
	cr_assert_eq(cJSON_GetObjectItem(slots, "used")->valuedouble, 0);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "link"), "last_error")));
	cJSON_Delete(s);
	cr_assert(dp_stop(&D, 10000), "stops in time with the link");
	cr_assert(!dp_pid_alive(pid), "the link is gone with the daemon");
}

Test(link, one_claim_per_poll_interval_for_the_whole_host)
{
	start(6, "task_poll_interval = 1s\nmax_concurrent_tasks = 3\n");
	long seq = dp_journal_last_seq(&FP);
	dp_sleep_ms(5000);
	int n = claims_since(seq);
	/* 6 workspaces, 5 s, 1 s poll: about 5 claims for the host, not 30. */
	cr_assert(n >= 3 && n <= 8, "%d claims in 5 s", n);
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	const struct dp_req *last = NULL;
	for (size_t i = 0; i < j.n; i++)
		if (strcmp(j.v[i].path, CLAIM) == 0)
			last = &j.v[i];
	cr_assert_not_null(last);
	cJSON *b = cJSON_Parse(last->body);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b, "runtime_ids")), 6,
		     "every runtime of the host in one claim: %s", last->body);
	cr_assert_eq(cJSON_GetObjectItem(b, "max_tasks")->valuedouble, 3,
		     "max_tasks is the free slots: %s", last->body);
	cr_assert_str_eq(cJSON_GetObjectItem(b, "daemon_id")->valuestring, "host-1");
	cJSON_Delete(b);
	dp_journal_free(&j);
	cr_assert_eq(dp_journal_match(&FP, 0, "POST", "/api/daemon/runtimes/", "tasks/claim", 0), 0);
}

Test(link, claims_at_once_after_a_runtime_set_change)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .daemon_extra = "task_poll_interval = 1m\n" };
	c.workspaces = dfx_ws_list(1, 1);
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	DFX_WAIT_UP(link_pid() > 0 && claims_since(0) >= 1, READY_MS, "no first claim");
	dp_sleep_ms(500);
	long seq = dp_journal_last_seq(&FP);
	cr_assert_eq(claims_since(seq), 0, "the poll is a minute");
	c.workspaces = dfx_ws_list(1, 2);
	cr_assert_eq(dp_reload(&D, &c), 0);
	dfx_wait_ws_ready(2, 1, READY_MS);
	DFX_WAIT_UP(dp_journal_match(&FP, seq, "POST", CLAIM, NULL, 0) >= 1, 5000,
		    "no claim after the runtime set changed");
	char rid[DP_ID_LEN + 1];
	dfx_runtime_of(2, rid);
	DFX_WAIT_UP(dp_journal_match(&FP, seq, "POST", CLAIM, rid, 0) >= 1, 5000,
		    "the claim names the new runtime");
}

Test(link, batch_404_falls_back_to_legacy_claims)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	cr_assert_eq(fp_fault(&FP, "{\"method\":\"POST\",\"path_prefix\":\"" CLAIM "\","
			      "\"status\":404,\"body\":\"{\\\"error\\\":\\\"not found\\\"}\","
			      "\"count\":1}"), 200);
	struct dp_config c = { .daemon_extra = "task_poll_interval = 500ms\n" };
	c.workspaces = dfx_ws_list(1, 2);
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	DFX_WAIT_UP(dp_journal_match(&FP, 0, "POST", "/api/daemon/runtimes/", NULL, 0) >= 2 &&
		    dp_journal_match(&FP, 0, "POST", CLAIM, NULL, 404) >= 1, 10000,
		    "no legacy claims after the 404");
	char r1[DP_ID_LEN + 1], r2[DP_ID_LEN + 1], path[128];
	dfx_runtime_of(1, r1);
	dfx_runtime_of(2, r2);
	snprintf(path, sizeof path, "/api/daemon/runtimes/%s/tasks/claim", r1);
	DFX_WAIT_UP(dp_journal_match(&FP, 0, "POST", path, NULL, 200) >= 1, 5000, "r1 not claimed");
	snprintf(path, sizeof path, "/api/daemon/runtimes/%s/tasks/claim", r2);
	DFX_WAIT_UP(dp_journal_match(&FP, 0, "POST", path, NULL, 200) >= 1, 5000, "r2 not claimed");
	long seq = dp_journal_last_seq(&FP);
	dp_sleep_ms(1500);
	cr_assert_eq(claims_since(seq), 0, "legacy until the link restarts");
	cr_assert_eq(dp_journal_match(&FP, 0, "POST", CLAIM, NULL, 0), 1, "one batch claim: the 404");
	/* A queued task is claimed the legacy way. */
	char tid[DP_ID_LEN + 1];
	queue_task(r2, tid);
	DFX_WAIT_UP(task_left_queue(tid), 5000, "the task was not claimed");
}

Test(link, killed_link_is_respawned_and_a_queued_task_is_claimed)
{
	start(1, "task_poll_interval = 500ms\n");
	pid_t old = link_pid();
	cr_assert_eq(kill(old, SIGKILL), 0);
	DFX_WAIT_UP(link_pid() > 0 && link_pid() != old, 10000, "no new link");
	cr_assert_eq(link_restarts(), 1);
	cr_assert(dfx_ws_ready(1, 1), "the worker did not notice");
	char rid[DP_ID_LEN + 1], tid[DP_ID_LEN + 1];
	dfx_runtime_of(1, rid);
	queue_task(rid, tid);
	DFX_WAIT_UP(task_left_queue(tid), 10000, "the task was never claimed");
	cr_assert(dp_log_has(&D, "link exited", "signal 9", NULL, NULL));
	/* The server answered before the link's log line is written. */
	DFX_WAIT_UP(dp_log_has(&D, "tasks claimed", NULL, NULL, NULL), 5000,
		    "the new link did not log its claim");
}

Test(link, task_for_a_runtime_no_live_worker_hosts_fails_runtime_offline)
{
	start(1, "task_poll_interval = 300ms\n");
	char rid[DP_ID_LEN + 1], tid[DP_ID_LEN + 1];
	dfx_runtime_of(1, rid);
	/* The dead worker's cleanup cannot finish: its runtime stays in the
	 * ledger (and the link's claim) with no live worker hosting it. */
	cr_assert_eq(fp_fault(&FP, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\","
			      "\"status\":500,\"count\":1000}"), 200);
	pid_t w = dp_worker_pid(&D, WS[1]);
	cr_assert_gt(w, 0);
	cr_assert_eq(kill(w, SIGKILL), 0);
	DFX_WAIT_UP(dp_worker_pid(&D, WS[1]) == 0, 5000, "the worker is still there");
	long seq = dp_journal_last_seq(&FP);
	queue_task(rid, tid);
	char fail_path[128];
	snprintf(fail_path, sizeof fail_path, "/api/daemon/tasks/%s/fail", tid);
	DFX_WAIT_UP(dp_journal_match(&FP, seq, "POST", fail_path, "runtime_offline", 200) >= 1,
		    10000, "the task was not failed with runtime_offline");
	cr_assert_eq(dp_journal_match(&FP, seq, "POST", fail_path,
				      "runtime went offline before the task started", 0), 1);
	char *st = task_status(tid);
	cr_assert_str_eq(st, "failed");
	free(st);
	cJSON *s = status();
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "slots"), "used")->valuedouble, 0,
		     "the slot is not held");
	cJSON_Delete(s);
}

Test(link, reload_with_a_new_poll_interval_restarts_the_link_only)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .daemon_extra = "task_poll_interval = 1m\n" };
	c.workspaces = dfx_ws_list(1, 1);
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	DFX_WAIT_UP(link_pid() > 0, READY_MS, "the link never ran");
	pid_t old = link_pid(), worker = dp_worker_pid(&D, WS[1]);
	c.daemon_extra = "task_poll_interval = 300ms\n";
	cr_assert_eq(dp_reload(&D, &c), 0);
	DFX_WAIT_UP(link_pid() > 0 && link_pid() != old, 10000, "the link kept its old CONFIG");
	cr_assert_eq(link_restarts(), 0, "a restart for a reload is no crash");
	long seq = dp_journal_last_seq(&FP);
	dp_sleep_ms(2000);
	int n = claims_since(seq);
	cr_assert(n >= 3, "the new poll interval is in use: %d claims in 2 s", n);
	cr_assert_eq(dp_worker_pid(&D, WS[1]), worker, "a new poll interval restarts no worker");
}
