/* The supervisor's side of tasks, on the whole daemon against the
 * emulator: `multicactl tasks` and the task fields of status, drain (at
 * once with no task; with --timeout), a dead worker's agent group killed,
 * the order of a dead worker's cleanup (outbox, recover-orphans, DEREG) in
 * the emulator's journal, and the subreaper reaping an adopted orphan.
 *
 * Until workers execute tasks, a task in flight is put in the supervisor's
 * table through the test-only control request "test-task" (a build with
 * -DMC_TEST_HOOKS=ON), and a dead worker's report is a file written into
 * its outbox. The "agent" is a real descendant of the worker: the version
 * probe of a custom profile (a script on the daemon's PATH) leaves a
 * "holder" behind in the worker's own process group (which neither the
 * probe's end nor the worker's own sweep of adopted processes touches),
 * and the holder's child, the agent, in a session of its own, as an agent
 * CLI runs. The worker's death must take the agent's group down, and the
 * holder, adopted by the supervisor, must be reaped when it dies. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"

#ifdef MC_TEST_HOOKS
#define NEED_HOOKS() ((void)0)
#else
#define NEED_HOOKS() cr_skip_test("needs a build configured with -DMC_TEST_HOOKS=ON")
#endif

#define READY_MS 15000
#define PROF_ID  "7a000000-0000-4000-8000-000000000001"
#define TASK_A   "7b000000-0000-4000-8000-00000000000a"
#define TASK_B   "7b000000-0000-4000-8000-00000000000b"

extern char **environ;

static char AGENTS[400];   /* the file the fake agents append their pids to */

/* Kills whatever fake agent is still alive: they live in sessions of their
 * own, outside the daemon's process group that dfx_fini cleans up. */
static void kill_agents(void)
{
	FILE *f = AGENTS[0] ? fopen(AGENTS, "r") : NULL;
	long pid;
	while (f != NULL && fscanf(f, "%*s %ld", &pid) == 1)
		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	if (f != NULL)
		fclose(f);
}

static void suite_fini(void)
{
	kill_agents();
	dfx_fini();
}

TestSuite(sv_tasks, .timeout = 120, .fini = suite_fini);

/* ---- helpers ---- */

static cJSON *control(const char *req)
{
	char *reply = NULL;
	cr_assert_eq(dp_control(&D, req, &reply, 5000), 0, "no reply to %s", req);
	cJSON *j = cJSON_Parse(reply);
	cr_assert(j != NULL, "reply to %s is not JSON: %s", req, reply);
	free(reply);
	return j;
}

static const cJSON *ws_of(const cJSON *status, const char *ws)
{
	const cJSON *w;
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(status, "workspaces"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(w, "id")), ws) == 0)
			return w;
	return NULL;
}

/* Puts a running task in the table (test hook); its agent's group pgid. */
static void add_task(const char *ws, const char *task, const char *rt, pid_t pgid)
{
	char req[400];
	snprintf(req, sizeof req, "{\"cmd\":\"test-task\",\"workspace\":\"%s\",\"task_id\":\"%s\","
		 "\"runtime_id\":\"%s\",\"pgid\":%d}", ws, task, rt, (int)pgid);
	cJSON *r = control(req);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "test-task refused: %s",
		  cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")));
	cJSON_Delete(r);
}

/* multicactl ARGS... with stdout+stderr into out_path; its pid. */
static pid_t ctl_spawn(const char *out_path, const char *const *args)
{
	const char *argv[12] = { MULTICACTL_BIN, "-s", D.sock_path };
	int n = 3;
	for (; args[n - 3] != NULL && n < 11; n++)
		argv[n] = args[n - 3];
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid = 0;
	int rc = posix_spawn(&pid, MULTICACTL_BIN, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "cannot run multicactl: %s", strerror(rc));
	return pid;
}

/* Its exit code, or -1 when it did not end within timeout_ms (then killed). */
static int ctl_wait(pid_t pid, int timeout_ms)
{
	int st = 0;
	int64_t until = dp_now_ms() + timeout_ms;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (dp_now_ms() >= until) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		dp_sleep_ms(20);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Runs multicactl to the end; its output (static buffer) and exit code. */
static char *ctl_run(int *rc, const char *const *args)
{
	char out[400];
	snprintf(out, sizeof out, "%s/ctl.out", D.dir);
	pid_t pid = ctl_spawn(out, args);
	*rc = ctl_wait(pid, 15000);
	return slurp(out);
}

/* A custom profile "fakeagent" on workspace 1, whose version probe
 * leaves a holder (in the worker's process group) and its child, the agent
 * (in a session of its own: pgid = its pid), behind; "holder PID" and
 * "agent PID" lines in AGENTS. The probe waits for both lines: its process
 * group is killed once its output ends. */
static void start_with_fake_agent(int n_ws)
{
	dfx_ws_ids();
	char profiles[600];
	snprintf(profiles, sizeof profiles,
		 "[{\"id\":\"" PROF_ID "\",\"workspace_id\":\"%s\",\"display_name\":\"Fake\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"fakeagent\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true}]", WS[1]);
	dfx_start_plane(n_ws, NULL, profiles, NULL);
	struct dp_config c = { .restart_backoff_min = "300ms", .restart_backoff_max = "1s" };
	c.workspaces = dfx_ws_list(1, n_ws);
	dfx_prepare_daemon(&c, NULL);
	snprintf(AGENTS, sizeof AGENTS, "%s/agents", D.dir);
	char path[512], text[2048];
	snprintf(path, sizeof path, "%s/fakeagent", D.cli_dir);
	snprintf(text, sizeof text,
		 "#!/bin/sh\n"
		 "a=%s\n"
		 "n=$(cat $a 2>/dev/null | wc -l)\n"
		 "wpg=$(sed 's/.*) //' /proc/$PPID/stat | cut -d' ' -f3)\n"
		 "perl -MPOSIX -e '\n"
		 "  my ($pg, $a) = @ARGV;\n"
		 "  POSIX::setpgid(0, $pg) or die \"setpgid: $!\";\n"
		 "  my $pid = fork();\n"
		 "  if ($pid == 0) {\n"
		 "    POSIX::setsid();\n"
		 "    open(my $f, \">>\", $a); print $f \"agent $$\\n\"; close $f;\n"
		 "    exec \"sleep\", \"300\";\n"
		 "  }\n"
		 "  open(my $f, \">>\", $a); print $f \"holder $$\\n\"; close $f;\n"
		 "  waitpid($pid, 0);\n"
		 "  sleep 300;' \"$wpg\" \"$a\" </dev/null >/dev/null 2>&1 &\n"
		 "i=0\n"
		 "while [ \"$(cat $a 2>/dev/null | wc -l)\" -lt $((n + 2)) ] && [ $i -lt 250 ]; do\n"
		 "  sleep 0.02; i=$((i+1))\n"
		 "done\n"
		 "echo 'fakeagent 1.0'\n", AGENTS);
	FILE *f = fopen(path, "w");
	cr_assert(f != NULL);
	fputs(text, f);
	fclose(f);
	chmod(path, 0755);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 2, READY_MS);
	for (int i = 2; i <= n_ws; i++)
		dfx_wait_ws_ready(i, 1, READY_MS);
}

/* The pid on the first "<tag> PID" line of AGENTS, once it is there. */
static pid_t fake_pid(const char *tag)
{
	pid_t pid = 0;
	cr_assert(DP_WAIT(({
		FILE *f = fopen(AGENTS, "r");
		char t[16];
		long v;
		pid = 0;
		while (f != NULL && pid == 0 && fscanf(f, "%15s %ld", t, &v) == 2)
			if (strcmp(t, tag) == 0)
				pid = (pid_t)v;
		if (f != NULL)
			fclose(f);
		pid > 0;
	}), 10000), "the fake %s did not start", tag);
	return pid;
}

static bool proc_gone(pid_t pid)
{
	return dp_proc_state(pid) == 0;
}

static void start_plain(int n_ws, const char *extra)
{
	dfx_start_plane(n_ws, NULL, NULL, NULL);
	struct dp_config c = { .daemon_extra = extra };
	c.workspaces = dfx_ws_list(1, n_ws);
	dfx_start_daemon(&c, NULL);
	for (int i = 1; i <= n_ws; i++)
		dfx_wait_ws_ready(i, 1, READY_MS);
}

/* ---- multicactl tasks and status ---- */

Test(sv_tasks, tasks_and_status_show_the_table)
{
	start_plain(2, NULL);
	int rc;
	char *out = ctl_run(&rc, (const char *const[]){ "tasks", NULL });
	cr_assert_eq(rc, 0, "tasks: exit %d: %s", rc, out);
	cr_assert_str_eq(out, "no tasks running\n");
	out = ctl_run(&rc, (const char *const[]){ "tasks", "--json", NULL });
	cr_assert_eq(rc, 0);
	cJSON *arr = cJSON_Parse(out);
	cr_assert(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 0, "tasks --json: %s", out);
	cJSON_Delete(arr);

	cJSON *s = control("{\"cmd\":\"status\"}");
	const cJSON *slots = cJSON_GetObjectItem(s, "slots");
	cr_assert(slots != NULL, "status has no slots");
	cr_expect_eq(cJSON_GetObjectItem(slots, "max")->valueint, 20);
	cr_expect_eq(cJSON_GetObjectItem(slots, "used")->valueint, 0);
	const cJSON *w1 = ws_of(s, WS[1]);
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(w1, "tasks")));
	cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(w1, "tasks")), 0);
	cJSON_Delete(s);

	NEED_HOOKS();
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(2, rt);
	add_task(WS[2], TASK_A, rt, 0);
	out = ctl_run(&rc, (const char *const[]){ "tasks", "--json", NULL });
	cr_assert_eq(rc, 0);
	arr = cJSON_Parse(out);
	cr_assert(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 1, "tasks --json: %s", out);
	const cJSON *t = cJSON_GetArrayItem(arr, 0);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "id")), TASK_A);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "workspace")), WS[2]);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "runtime_id")), rt);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "state")), "running");
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "family")), "claude");
	cJSON_Delete(arr);

	out = ctl_run(&rc, (const char *const[]){ "tasks", NULL });
	cr_assert_eq(rc, 0);
	cr_expect(strstr(out, "WORKSPACE") != NULL && strstr(out, "LAST OUTPUT") != NULL, "%s", out);
	cr_expect(strstr(out, TASK_A) != NULL && strstr(out, " running ") != NULL, "%s", out);
	cr_expect(strstr(out, "\n1 task running\n") != NULL, "%s", out);

	s = control("{\"cmd\":\"status\"}");
	cr_expect_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "slots"), "used")->valueint, 1);
	const cJSON *w2 = ws_of(s, WS[2]);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(w2, "tasks")), 1);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(w2, "tasks"), 0)),
			 TASK_A);
	cJSON_Delete(s);

	/* The plain table: a TASKS column, and the slots under it. */
	out = ctl_run(&rc, (const char *const[]){ "status", NULL });
	cr_assert_eq(rc, 0);
	cr_expect(strstr(out, " TASKS ") != NULL, "%s", out);
	cr_expect(strstr(out, "\n1 task running, 1 of 20 slots used\n") != NULL, "%s", out);
}

/* ---- drain ---- */

Test(sv_tasks, drain_with_no_task_stops_at_once)
{
	start_plain(2, NULL);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	int64_t t0 = dp_now_ms();
	int rc;
	char *out = ctl_run(&rc, (const char *const[]){ "drain", NULL });
	cr_assert_eq(rc, 0, "drain: exit %d: %s", rc, out);
	cr_expect(strncmp(out, "drained after ", 14) == 0, "drain printed: %s", out);
	cr_assert(dp_wait_exit(&D, 10000), "multicad did not stop after the drain");
	cr_expect(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 0, "exit status %d", D.status);
	cr_log_info("drained and stopped in %lld ms", (long long)(dp_now_ms() - t0));
	cr_expect_eq(dp_count_online(&FP, NULL), 0, "runtimes online after the drain");
}

Test(sv_tasks, drain_timeout_stops_with_the_task_still_running)
{
	NEED_HOOKS();
	start_plain(2, NULL);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	add_task(WS[1], TASK_A, rt, 0); /* never ends by itself */
	char out_path[400];
	snprintf(out_path, sizeof out_path, "%s/drain.out", D.dir);
	int64_t t0 = dp_now_ms();
	pid_t ctl = ctl_spawn(out_path, (const char *const[]){ "drain", "--timeout", "2s", NULL });

	/* Meanwhile: the workspace with a task shows draining, the other not,
	 * and no slot is granted. */
	DFX_WAIT_UP(({
		cJSON *s = control("{\"cmd\":\"status\"}");
		bool d = cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "supervisor"),
							  "draining"));
		cJSON_Delete(s);
		d;
	}), 5000, "status never says draining");
	cJSON *s = control("{\"cmd\":\"status\"}");
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(ws_of(s, WS[1]), "state")),
			 "draining");
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(ws_of(s, WS[2]), "state")),
			 "running");
	cJSON_Delete(s);
	cr_expect_eq(waitpid(ctl, NULL, WNOHANG), 0, "drain returned before its timeout");

	int rc = ctl_wait(ctl, 20000);
	int64_t took = dp_now_ms() - t0;
	char *out = slurp(out_path);
	cr_assert_eq(rc, 0, "drain: exit %d: %s", rc, out);
	cr_expect(strstr(out, "drain timed out after") != NULL && strstr(out, "1 task running"),
		  "drain printed: %s", out);
	cr_expect_geq(took, 1900, "drain returned after %lld ms, before its 2 s", (long long)took);
	cr_assert(dp_wait_exit(&D, 10000), "multicad did not stop after the drain's timeout");
	cr_expect(WIFEXITED(D.status) && WEXITSTATUS(D.status) == 0, "exit status %d", D.status);
}

Test(sv_tasks, drain_usage_errors)
{
	start_plain(1, NULL);
	int rc;
	ctl_run(&rc, (const char *const[]){ "drain", "--timeout", "soon", NULL });
	cr_expect_eq(rc, 2);
	ctl_run(&rc, (const char *const[]){ "drain", "now", NULL });
	cr_expect_eq(rc, 2);
	cJSON *r = control("{\"cmd\":\"drain\",\"timeout_ms\":-5}");
	cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
	cJSON_Delete(r);
	cr_expect(dp_alive(&D), "a bad drain request stopped the daemon");
}

/* ---- a worker dies with a task running ---- */

Test(sv_tasks, killed_workers_agent_group_is_killed_and_reaped)
{
	NEED_HOOKS();
	start_with_fake_agent(2);
	pid_t agent = fake_pid("agent");
	cr_assert(dp_pid_alive(agent), "the fake agent is not running");
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	add_task(WS[1], TASK_A, rt, agent);
	pid_t wk = dp_worker_pid(&D, WS[1]);
	cr_assert(wk > 0);
	int64_t t0 = dp_now_ms();
	cr_assert_eq(kill(wk, SIGKILL), 0);
	cr_assert(DP_WAIT(!dp_pid_alive(agent), 5000), "the dead worker's agent %d still runs",
		  (int)agent);
	int64_t killed = dp_now_ms() - t0;
	cr_assert(DP_WAIT(proc_gone(agent), 5000), "the killed agent %d was not reaped (state %c)",
		  (int)agent, dp_proc_state(agent));
	cr_log_info("agent killed %lld ms, reaped %lld ms after its worker's death",
		    (long long)killed, (long long)(dp_now_ms() - t0));
	cr_expect_leq(killed, 1000, "the agent outlived its worker by %lld ms", (long long)killed);
	/* The task left the table with the cleanup; the worker is back. */
	DFX_WAIT_UP(({
		cJSON *s = control("{\"cmd\":\"status\"}");
		int used = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "slots"), "used")->valueint;
		cJSON_Delete(s);
		used == 0;
	}), 10000, "the dead worker's task stays in the table");
	dfx_wait_ws_ready(1, 2, READY_MS);
	cr_expect(dp_log_has(&D, "killed the agent of a dead worker's task", TASK_A, NULL, NULL));
}

Test(sv_tasks, subreaper_reaps_an_adopted_orphan)
{
	start_with_fake_agent(1);
	pid_t holder = fake_pid("holder");
	pid_t wk = dp_worker_pid(&D, WS[1]);
	cr_assert(wk > 0);
	cr_assert(DP_WAIT(dp_proc_ppid(holder) == wk, 5000), "the holder's parent is %d, not "
		  "the worker %d", (int)dp_proc_ppid(holder), (int)wk);
	/* Its worker dies: it is the supervisor's now, not init's. */
	cr_assert_eq(kill(wk, SIGKILL), 0);
	cr_assert(DP_WAIT(dp_proc_ppid(holder) == D.pid, 5000),
		  "the orphan's parent is %d, not the supervisor %d", (int)dp_proc_ppid(holder),
		  (int)D.pid);
	cr_assert_eq(kill(holder, SIGKILL), 0);
	cr_assert(DP_WAIT(proc_gone(holder), 5000), "the adopted orphan %d is left as state %c",
		  (int)holder, dp_proc_state(holder));
	cr_expect(dp_alive(&D));
	dfx_wait_ws_ready(1, 2, READY_MS); /* respawned as usual */
	cr_expect(DP_WAIT(dp_count_zombies(&D) == 0, 5000),
		  "zombies left among the supervisor's children");
}

/* ---- the cleanup's order ---- */

static void write_outbox(const char *ws, const char *task, const char *rt)
{
	char dir[600], path[700];
	mkdir(D.state_dir, 0700);
	snprintf(dir, sizeof dir, "%s/outbox", D.state_dir);
	mkdir(dir, 0700);
	snprintf(dir, sizeof dir, "%s/outbox/%s", D.state_dir, ws);
	mkdir(dir, 0700);
	snprintf(path, sizeof path, "%s/%s.json", dir, task);
	FILE *f = fopen(path, "w");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	fprintf(f, "{\"op\":\"complete\",\"task_id\":\"%s\",\"runtime_id\":\"%s\","
		"\"body\":{\"output\":\"done by the dead worker\"},\"attempts\":1,"
		"\"created_at\":1767225600000}\n", task, rt);
	fclose(f);
}

/* seq of the first request after after_seq matching method and path
 * prefix, or -1. */
static long first_seq(const struct dp_journal *j, long after_seq, const char *method,
		      const char *prefix)
{
	for (size_t i = 0; i < j->n; i++)
		if (j->v[i].seq > after_seq && strcmp(j->v[i].method, method) == 0 &&
		    strncmp(j->v[i].path, prefix, strlen(prefix)) == 0)
			return j->v[i].seq;
	return -1;
}

Test(sv_tasks, dead_worker_cleanup_delivers_outbox_then_recovers_then_deregisters)
{
	NEED_HOOKS();
	start_plain(2, NULL);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	add_task(WS[1], TASK_A, rt, 0);
	add_task(WS[1], TASK_B, rt, 0);
	dp_sleep_ms(300); /* the worker's own start-up delivery is long over */
	write_outbox(WS[1], TASK_A, rt);
	long seq0 = dp_journal_last_seq(&FP);
	pid_t wk = dp_worker_pid(&D, WS[1]);
	cr_assert_eq(kill(wk, SIGKILL), 0);
	cr_assert(DP_WAIT(dp_runtime_is(&FP, rt, "offline"), 5000), "%s not taken offline", rt);
	dfx_wait_ws_ready(1, 1, READY_MS);

	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&FP, &j), 0);
	char complete[128], recover[128];
	snprintf(complete, sizeof complete, "/api/daemon/tasks/%s/complete", TASK_A);
	snprintf(recover, sizeof recover, "/api/daemon/runtimes/%s/recover-orphans", rt);
	long s_out = first_seq(&j, seq0, "POST", complete);
	long s_rec = first_seq(&j, seq0, "POST", recover);
	long s_dereg = first_seq(&j, seq0, "POST", "/api/daemon/deregister");
	int outbox_posts = dp_j_count(&j, seq0, "POST", complete, "done by the dead worker", 0);
	dp_journal_free(&j);
	cr_expect_eq(outbox_posts, 1, "the outbox report was POSTed %d times", outbox_posts);
	cr_assert(s_out > 0 && s_rec > 0 && s_dereg > 0,
		  "cleanup requests missing: complete %ld, recover-orphans %ld, deregister %ld",
		  s_out, s_rec, s_dereg);
	cr_expect(s_out < s_rec && s_rec < s_dereg,
		  "cleanup order: complete %ld, recover-orphans %ld, deregister %ld", s_out, s_rec,
		  s_dereg);
	char path[700];
	snprintf(path, sizeof path, "%s/outbox/%s/%s.json", D.state_dir, WS[1], TASK_A);
	cr_expect_neq(access(path, F_OK), 0, "the delivered report is still in the outbox");
	cJSON *s = control("{\"cmd\":\"status\"}");
	cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ws_of(s, WS[1]), "tasks")), 0);
	cJSON_Delete(s);
}

Test(sv_tasks, outbox_of_an_unconfigured_workspace_is_delivered_at_start)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { 0 };
	c.workspaces = dfx_ws_list(1, 1);
	dfx_prepare_daemon(&c, NULL);
	/* A previous run served workspace 2 and left a report behind. */
	char rt[] = "7c000000-0000-4000-8000-000000000001";
	write_outbox(WS[2], TASK_B, rt);
	long seq0 = dp_journal_last_seq(&FP);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, READY_MS);
	char complete[128];
	snprintf(complete, sizeof complete, "/api/daemon/tasks/%s/complete", TASK_B);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq0, "POST", complete, NULL, 0) == 1, 10000),
		  "the leftover report was not delivered once");
	char path[700];
	snprintf(path, sizeof path, "%s/outbox/%s/%s.json", D.state_dir, WS[2], TASK_B);
	cr_assert(DP_WAIT(access(path, F_OK) != 0, 5000), "the leftover report stays");
}

/* ---- reload with a task running ---- */

Test(sv_tasks, reload_drains_a_changed_workspace_before_restarting_it)
{
	NEED_HOOKS();
	dfx_start_plane(2, NULL, NULL, NULL);
	struct dp_config c = { .daemon_extra = "task_drain_timeout = 2s\n" };
	c.workspaces = dfx_ws_list(1, 2);
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	add_task(WS[1], TASK_A, rt, 0);
	pid_t pid1 = dp_worker_pid(&D, WS[1]), pid2 = dp_worker_pid(&D, WS[2]);

	/* Both workspaces' configuration changes; only 1 has a task. */
	char tail[400];
	snprintf(tail, sizeof tail,
		 "\n[workspace %s]\nprofile_command.a1111111-1111-4111-8111-111111111111 = /bin/true\n"
		 "\n[workspace %s]\nprofile_command.a1111111-1111-4111-8111-111111111111 = /bin/true\n",
		 WS[1], WS[2]);
	c.tail = tail;
	cr_assert_eq(dp_write_config(&D, &c), 0);
	int rc;
	char *out = ctl_run(&rc, (const char *const[]){ "reload", NULL });
	cr_assert_eq(rc, 0, "reload: %s", out);
	cr_expect(strstr(out, "1 draining first") != NULL, "reload said: %s", out);
	int64_t t0 = dp_now_ms();

	cJSON *s = control("{\"cmd\":\"status\"}");
	const cJSON *w1 = ws_of(s, WS[1]);
	cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(w1, "state")), "draining");
	cr_expect_eq(cJSON_GetObjectItem(w1, "pid")->valueint, (int)pid1, "restarted at once");
	cJSON_Delete(s);
	/* The other one restarts at once, as before tasks. */
	DFX_WAIT_UP(dp_worker_pid(&D, WS[2]) != 0 && dp_worker_pid(&D, WS[2]) != pid2, 10000,
		    "workspace 2 was not restarted by the reload");
	/* Workspace 1: once task_drain_timeout passed. */
	DFX_WAIT_UP(dp_worker_pid(&D, WS[1]) != 0 && dp_worker_pid(&D, WS[1]) != pid1, 15000,
		    "the draining workspace was never restarted");
	int64_t took = dp_now_ms() - t0;
	cr_expect_geq(took, 1900, "restarted after %lld ms, before task_drain_timeout",
		      (long long)took);
	cr_expect(dp_log_has(&D, "drain of a changed workspace timed out", WS[1], NULL, NULL));
	dfx_wait_ws_ready(1, 1, READY_MS);
}

/* ---- sd_notify ---- */

/* Reads datagrams from fd until one contains want (within timeout_ms). */
static bool notify_saw(int fd, const char *want, int timeout_ms, char *last, size_t last_size)
{
	int64_t until = dp_now_ms() + timeout_ms;
	while (dp_now_ms() < until) {
		char buf[1024];
		ssize_t r = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
		if (r < 0) {
			dp_sleep_ms(25);
			continue;
		}
		buf[r] = '\0';
		snprintf(last, last_size, "%s", buf);
		if (strstr(buf, want) != NULL)
			return true;
	}
	return false;
}

Test(sv_tasks, sd_notify_status_counts_running_tasks)
{
	NEED_HOOKS();
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { 0 };
	c.workspaces = dfx_ws_list(1, 1);
	dfx_prepare_daemon(&c, NULL);
	char path[400], env[420];
	snprintf(path, sizeof path, "%s/notify.sock", D.dir);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cr_assert(fd >= 0 && strlen(path) < sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
	snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", path);
	const char *extra[] = { env, NULL };
	D.extra_env = extra;
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, READY_MS);
	char last[1024] = "";
	cr_assert(notify_saw(fd, "0 tasks running", 10000, last, sizeof last),
		  "no STATUS= with the task count; last: %s", last);
	char rt[DP_ID_LEN + 1];
	dfx_runtime_of(1, rt);
	add_task(WS[1], TASK_A, rt, 0);
	cr_assert(notify_saw(fd, "STATUS=1 workspaces, 1 runtimes online, 0 failed, 1 task running",
			     10000, last, sizeof last), "the count did not follow; last: %s", last);
	close(fd);
}
