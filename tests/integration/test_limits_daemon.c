/* Limits of the whole daemon, each tested one past its edge (see
 * test_limits.c, the other half of this binary): a workspace of too many
 * profiles, oversized answers from the server, the control socket's
 * clients and request size, a reload whose profile_commands overflow the
 * worker's CONFIG frame, and workers sending frames at and past the IPC
 * limits. Each asserts the error a user sees, naming the limit, and that
 * the other workers keep their pid and online rows while the supervisor
 * answers its control socket. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>

#include "common/api.h"
#include "ipc/messages.h"
#include "tests/integration/test_limits.h"
#include "tests/support/daemon_fixture.h"
#include "worker/payload.h"

#define READY_MS 30000

static char *LIST;   /* workspaces 1..n of start_plane (the fixture's) */

TestSuite(limits, .timeout = SUITE_TIMEOUT, .fini = dfx_fini);

/* ---- fixture (tests/support/daemon_fixture.h) ---- */

static void start_plane(int n_ws, const char *profiles)
{
	dfx_start_plane(n_ws, NULL, profiles, NULL);
	LIST = dfx_ws_list(1, n_ws);
}

static void start_daemon(struct dp_config *c)
{
	c->workspaces = LIST;
	dfx_start_daemon(c, NULL);
}

/* The supervisor answers a status request within 3 s, and it is ok. */
static bool control_ok(void)
{
	char *out = NULL;
	bool ok = dp_control(&D, "{\"cmd\":\"status\"}", &out, 3000) == 0 &&
		  strstr(out, "\"ok\":true") != NULL;
	free(out);
	return ok;
}

static void assert_control_answers(void)
{
	cr_assert(control_ok(), "the control socket did not answer a status request");
}

/* The healthy workspace i kept its worker and its n online rows. */
static void assert_untouched(int i, pid_t pid, int n)
{
	cr_expect_eq(dp_worker_pid(&D, WS[i]), pid, "workspace %d's worker was replaced", i);
	cr_expect_eq(dp_count_online(&FP, WS[i]), n, "workspace %d's rows changed", i);
	cr_expect_eq(dp_log_count(&D, "killing worker", WS[i], NULL, NULL), 0);
}

/* n claude-family profiles (command claude: the fake CLI on the daemon's
 * PATH) for each of workspaces first..last (set w for workspace w), as a
 * JSON array (heap). */
static char *ws_profiles(int first, int last, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	fputc('[', f);
	for (int w = first; w <= last; w++)
		for (size_t i = 0; i < n; i++) {
			char id[DP_ID_LEN + 1], ws[DP_ID_LEN + 1];
			profile_id(w, i, id);
			dp_ws_id(w, ws);
			fprintf(f, "%s{\"id\":\"%s\",\"workspace_id\":\"%s\",\"display_name\":"
				"\"P%zu\",\"protocol_family\":\"claude\",\"command_name\":\"claude\","
				"\"fixed_args\":[],\"visibility\":\"workspace\",\"enabled\":true}",
				w == first && i == 0 ? "" : ",", id, ws, i);
		}
	fputc(']', f);
	cr_assert_eq(fclose(f), 0);
	return text;
}

/* Rows of ws that are offline with the over-limit reason. */
static int over_limit_rows(const char *ws)
{
	cJSON *st = fp_state(&FP);
	cr_assert_not_null(st);
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(r, "metadata"), "runtime_profile_failure_reason"));
		n += w && strcmp(w, ws) == 0 && status && strcmp(status, "offline") == 0 && why &&
		     strcmp(why, OVER_REASON) == 0;
	}
	cJSON_Delete(st);
	return n;
}

/* Every id of ids is in a successful DEREG after seq. */
static bool all_deregistered(const struct dp_rt *ids, int n, long seq)
{
	struct dp_journal j;
	if (dp_journal_load(&FP, &j) < 0)
		return false;
	bool all = true;
	for (int i = 0; i < n && all; i++)
		all = dp_j_count(&j, seq, "POST", "/api/daemon/deregister", ids[i].id, 200) > 0;
	dp_journal_free(&j);
	return all;
}

/* Workspace 2 has 1100 profiles: its worker registers the built-in and
 * 511 of them, lists 512 more in failed_profiles (offline rows whose
 * reason names the limit), logs the limits, keeps running, and its ledger
 * holds every id it registered, so that its death takes them all offline.
 * Workspace 1 sees none of it. */
Test(limits, workspace_with_too_many_profiles_registers_the_limit_and_keeps_its_ledger)
{
	char *profiles = ws_profiles(2, 2, 1100);
	start_plane(2, profiles);
	free(profiles);
	struct dp_config c = { .heartbeat_interval = "30s", .profile_sync_interval = "3s" };
	start_daemon(&c);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, MC_MAX_RUNTIMES, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);

	cr_assert(DP_WAIT(over_limit_rows(WS[2]) == MC_MAX_FAILED_PROFILES, 10000),
		  "%d rows say why they are offline, want %d", over_limit_rows(WS[2]),
		  MC_MAX_FAILED_PROFILES);
	cr_expect(dp_log_has(&D, "more runtime profiles than one registration holds", WS[2],
			     "runtimes_max=512 over_runtimes_max=589", "not_sent=77"),
		  "no log line naming the limits");
	static char ledger[2 * MC_MAX_REPORT][DP_ID_LEN + 1];
	cr_assert(DP_WAIT(dp_ledger_ids(&D, WS[2], ledger, 2 * MC_MAX_REPORT) == MC_MAX_RUNTIMES,
			  10000), "the ledger holds %d ids of workspace 2, want %d",
		  dp_ledger_ids(&D, WS[2], ledger, 2 * MC_MAX_REPORT), MC_MAX_RUNTIMES);

	/* Some drift checks later: nothing restarted, nothing re-registered. */
	long seq = dp_journal_last_seq(&FP);
	dp_sleep_ms(7000);
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2, "the worker of the big workspace restarted");
	cr_expect_eq(dp_journal_match(&FP, seq, "POST", "/api/daemon/register", NULL, 0), 0,
		     "the same profiles were registered again");
	assert_untouched(1, p1, 1);
	assert_control_answers();

	/* Its death: the supervisor's cleanup takes every one of its ids. */
	struct dp_rt *rows = calloc(2 * MC_MAX_REPORT, sizeof *rows);
	cr_assert_not_null(rows);
	int n = dp_runtimes(&FP, WS[2], true, rows, 2 * MC_MAX_REPORT);
	cr_assert_eq(n, MC_MAX_RUNTIMES);
	seq = dp_journal_last_seq(&FP);
	cr_assert_eq(kill(p2, SIGKILL), 0);
	bool gone = DP_WAIT(all_deregistered(rows, n, seq), 15000);
	free(rows);
	cr_assert(gone, "the killed worker's runtimes were not all deregistered");
	assert_untouched(1, p1, 1);
}

/* An answer one byte over the body limit (workspace 2) and a header line
 * at libcurl's limit (workspace 3), on every profile fetch: each worker
 * logs the limit by name and registers its built-in without the profiles,
 * none restarts, and workspace 1 sees none of it. */
Test(limits, oversized_answers_fail_only_their_request_and_name_the_limit)
{
	char *profiles = ws_profiles(1, 3, 1);
	start_plane(3, profiles);
	free(profiles);
	char spec[512];
	snprintf(spec, sizeof spec, "{\"path_prefix\":\"/api/daemon/workspaces/%s/runtime-profiles\","
		 "\"status\":200,\"body_size\":%u,\"count\":-1}", WS[2], MC_API_DEFAULT_MAX_BODY + 1);
	cr_assert_eq(fp_fault(&FP, spec), 200);
	snprintf(spec, sizeof spec, "{\"path_prefix\":\"/api/daemon/workspaces/%s/runtime-profiles\","
		 "\"status\":200,\"body\":\"{}\",\"header_size\":%d,\"count\":-1}", WS[3],
		 CURL_MAX_HTTP_HEADER - 22);
	cr_assert_eq(fp_fault(&FP, spec), 200);
	/* The drift poll at its own interval: with the push channel up it
	 * would stretch, and this test counts its requests. */
	struct dp_config c = { .daemon_extra = "websocket = off\n" };
	start_daemon(&c);
	dfx_wait_ws_ready(1, 2, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	dfx_wait_ws_ready(3, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]),
	      p3 = dp_worker_pid(&D, WS[3]);
	cr_assert(DP_WAIT(dp_log_has(&D, "fetching runtime profiles failed", WS[2],
				     "response body larger than the 4194304-byte limit", "too-large"),
			  10000), "workspace 2's log does not name the body limit");
	cr_assert(DP_WAIT(dp_log_has(&D, "fetching runtime profiles failed", WS[3],
				     "response header line longer than libcurl's 102400-byte limit",
				     "too-large"), 10000),
		  "workspace 3's log does not name the header limit");
	/* Several failed drift checks later (every second): still the same. */
	long seq = dp_journal_last_seq(&FP);
	char path3[128];
	snprintf(path3, sizeof path3, "/api/daemon/workspaces/%s/runtime-profiles", WS[3]);
	cr_assert(DP_WAIT(dp_journal_match(&FP, seq, "GET", path3, NULL, 0) >= 3, 15000),
		  "workspace 3 stopped asking for its profiles");
	cr_expect_eq(dp_worker_pid(&D, WS[2]), p2);
	cr_expect_eq(dp_worker_pid(&D, WS[3]), p3);
	cr_expect_eq(dp_count_online(&FP, WS[2]), 1, "workspace 2's built-in went offline");
	cr_expect_eq(dp_count_online(&FP, WS[3]), 1, "workspace 3's built-in went offline");
	assert_untouched(1, p1, 2);
	assert_control_answers();
}

/* A client of the control socket, connected and idle (blocking). */
static int ctl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cr_assert_lt(strlen(D.sock_path), sizeof sa.sun_path);
	memcpy(sa.sun_path, D.sock_path, strlen(D.sock_path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

/* multicactl -s <socket> status: its output (stdout and stderr, heap).
 * The binary sits beside multicad in the build tree. */
static char *multicactl_status(void)
{
	char bin[512];
	snprintf(bin, sizeof bin, "%s", MULTICAD_BIN);
	char *slash = strrchr(bin, '/');
	cr_assert_not_null(slash);
	snprintf(slash + 1, sizeof bin - (size_t)(slash + 1 - bin), "multicactl");
	char *cmd = NULL;
	cr_assert_gt(asprintf(&cmd, "'%s' -s '%s' status 2>&1", bin, D.sock_path), 0);
	FILE *p = popen(cmd, "r");
	free(cmd);
	cr_assert_not_null(p);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	cr_assert_not_null(out);
	int ch;
	while ((ch = fgetc(p)) != EOF)
		fputc(ch, out);
	pclose(p);
	cr_assert_eq(fclose(out), 0);
	return text;
}

#define CTL_MAX_CLIENTS 32   /* supervisor/control.c */
#define CTL_REQUEST_MAX 4096

/* 32 idle clients are served (the 33rd is told the limit), then a request
 * of exactly 4096 bytes is answered and one of 4097 refused by name; the
 * worker never notices. */
Test(limits, control_socket_limits_are_named_and_the_daemon_keeps_serving)
{
	signal(SIGPIPE, SIG_IGN); /* dp_control write()s: a lost race fails, never kills */
	start_plane(1, NULL);
	struct dp_config c = { 0 };
	start_daemon(&c);
	dfx_wait_ws_ready(1, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]);

	int fds[CTL_MAX_CLIENTS];
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		fds[i] = ctl_connect();
	dp_sleep_ms(300); /* all accepted: none waits in the listen queue */
	/* Each further client is told the limit, also when the daemon answers
	 * and closes before the request is even sent (multicactl: at once). */
	for (int i = 0; i < 10; i++) {
		char *said = multicactl_status();
		cr_assert_not_null(strstr(said, "too many control clients (at most 32 at once)"),
			     "multicactl #%d said: %s", i, said);
		free(said);
	}
	char *out = NULL;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	cr_assert(DP_WAIT(control_ok(), 5000),
		  "the control socket did not serve again after its clients left");

	/* The request line, newline included, may be 4096 bytes. */
	char req[CTL_REQUEST_MAX + 1];
	memset(req, ' ', sizeof req);
	memcpy(req, "{\"cmd\":\"status\"}", 16);
	req[CTL_REQUEST_MAX - 1] = '\0';
	cr_assert_eq(dp_control(&D, req, &out, 3000), 0);
	cr_assert_not_null(strstr(out, "\"ok\":true"), "a 4096-byte request: %.200s", out);
	free(out);
	req[CTL_REQUEST_MAX - 1] = ' ';
	req[CTL_REQUEST_MAX] = '\0';
	cr_assert_eq(dp_control(&D, req, &out, 3000), 0);
	cr_assert_str_eq(out, "{\"ok\":false,\"error\":\"request longer than the 4096-byte "
			 "limit\"}\n");
	free(out);
	assert_control_answers();
	assert_untouched(1, p1, 1);
}

/* A [workspace] section of 256 profile_command lines of the longest path
 * a line holds, every character a '"' (a legal path): 85 KiB in the
 * worker's CONFIG, past a frame. The reload is refused naming the limit;
 * both workers keep running. */
Test(limits, reload_with_profile_commands_past_the_config_frame_is_refused_by_name)
{
	start_plane(2, NULL);
	struct dp_config c = { 0 };
	start_daemon(&c);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);

	char *tail = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&tail, &len);
	cr_assert_not_null(f);
	fprintf(f, "\n[workspace %s]\n", WS[2]);
	char quotes[144];
	memset(quotes, '"', sizeof quotes);
	quotes[sizeof quotes - 1] = '\0';
	for (int i = 0; i < MC_MAX_OVERRIDES; i++)
		fprintf(f, "profile_command.9f000000-2222-4c4c-9d9d-%012d = /%s\n", i, quotes);
	cr_assert_eq(fclose(f), 0);
	c.tail = tail;
	cr_assert_eq(dp_write_config(&D, &c), 0);
	free(tail);
	char *out = NULL;
	cr_assert_eq(dp_control(&D, "{\"cmd\":\"reload\"}", &out, 10000), 0);
	cr_assert_not_null(strstr(out, "\"ok\":false"), "reload: %.300s", out);
	cr_assert_not_null(strstr(out, "more than its 49152-byte limit"), "reload: %.300s", out);
	free(out);
	dp_sleep_ms(2000);
	assert_untouched(1, p1, 1);
	assert_untouched(2, p2, 1);
	assert_control_answers();
}

/* Workspace 2's worker sends a frame at or past an IPC limit (test hook);
 * killed: the supervisor logs why, takes its rows offline, and workspace 1
 * keeps its worker. */
static void ipc_limit(const char *hook, const char *reason)
{
	NEED_HOOKS();
	start_plane(2, NULL);
	char tail[256];
	snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = %s\n", WS[2], hook);
	struct dp_config c = { .tail = tail };
	start_daemon(&c);
	dfx_wait_ws_ready(1, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]);
	cr_assert(DP_WAIT(dp_log_has(&D, "killing worker", WS[2], reason, NULL), 10000),
		  "the %s worker was not killed for \"%s\"", hook, reason);
	char rt2[DP_ID_LEN + 1];
	cr_assert(DP_WAIT(dp_runtime_id(&FP, WS[2], "claude", NULL, rt2), 5000));
	cr_assert(DP_WAIT(dp_journal_match(&FP, 0, "POST", "/api/daemon/deregister", rt2, 200) >= 1,
			  10000), "the killed worker's runtime was not deregistered");
	assert_untouched(1, p1, 1);
	assert_control_answers();
}

Test(limits, worker_frame_one_byte_past_the_ipc_limit_is_killed_alone)
{
	ipc_limit("ipc_frame_over_max", "oversized frame from worker");
}

Test(limits, worker_report_one_id_past_its_limit_is_killed_alone)
{
	ipc_limit("ipc_report_over_max", "runtime_ids: more than 1024 entries");
}

/* The largest frame a worker may send (a REPORT blank-padded to
 * MC_IPC_MAX_PAYLOAD) is taken like any other. */
Test(limits, worker_report_frame_of_exactly_the_ipc_limit_is_accepted)
{
	NEED_HOOKS();
	start_plane(2, NULL);
	char tail[256];
	snprintf(tail, sizeof tail, "\n[workspace %s]\ntest_fault = ipc_report_at_max\n", WS[2]);
	struct dp_config c = { .tail = tail };
	start_daemon(&c);
	dfx_wait_ws_ready(1, 1, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
	pid_t p1 = dp_worker_pid(&D, WS[1]), p2 = dp_worker_pid(&D, WS[2]);
	cr_assert(DP_WAIT(dp_log_has(&D, "test hook: raw report queued", WS[2], "bytes=65536",
				     NULL), 10000), "the padded report was never sent");
	dp_sleep_ms(2000);
	cr_expect_eq(dp_log_count(&D, "killing worker", WS[2], NULL, NULL), 0);
	assert_untouched(2, p2, 1);
	assert_untouched(1, p1, 1);
	static char ledger[4][DP_ID_LEN + 1];
	cr_expect_eq(dp_ledger_ids(&D, WS[2], ledger, 4), 1);
	assert_control_answers();
}
