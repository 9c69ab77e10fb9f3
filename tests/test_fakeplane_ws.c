/* multica-fakeplane's daemon websocket (GET /api/daemon/ws): the upgrade
 * and its refusals, the pushes and who gets them, pings and the pong
 * deadline, the admin faults and frames, and the same over TLS.
 *
 * The tiny client is test_fakeplane_ws_client.c. Each test runs its own
 * emulator on an ephemeral port. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include "tests/test_fakeplane_ws_client.h"

#define WS_A "11111111-0000-4000-8000-000000000001"
#define WS_B "11111111-0000-4000-8000-000000000002"
#define RT_A "22222222-0000-4000-8000-000000000001"
#define RT_B "22222222-0000-4000-8000-000000000002"
#define P_A "33333333-0000-4000-8000-000000000001"
#define P_B "33333333-0000-4000-8000-000000000002"
#define NOPE "99999999-9999-4999-8999-999999999999"
#define TASK1 "44444444-0000-4000-8000-000000000001"
#define TASK2 "44444444-0000-4000-8000-000000000002"

static const char SEED[] =
	"{ \"tokens\": { \"tok-u1\": \"u1\" },"
	"  \"workspaces\": ["
	"    { \"id\": \"" WS_A "\", \"name\": \"A\", \"members\": [\"u1\"] },"
	"    { \"id\": \"" WS_B "\", \"name\": \"B\", \"members\": [\"u1\"] } ],"
	"  \"profiles\": ["
	"    { \"id\": \"" P_A "\", \"workspace_id\": \"" WS_A "\", \"display_name\": \"PA\","
	"      \"protocol_family\": \"claude\", \"command_name\": \"pa\" },"
	"    { \"id\": \"" P_B "\", \"workspace_id\": \"" WS_B "\", \"display_name\": \"PB\","
	"      \"protocol_family\": \"claude\", \"command_name\": \"pb\" } ],"
	"  \"runtimes\": ["
	"    { \"id\": \"" RT_A "\", \"workspace_id\": \"" WS_A "\", \"daemon_id\": \"d1\","
	"      \"provider\": \"claude\" },"
	"    { \"id\": \"" RT_B "\", \"workspace_id\": \"" WS_B "\", \"daemon_id\": \"d1\","
	"      \"provider\": \"claude\" } ] }";

static bool fp_up;

static void fini(void)
{
	if (fp_up)
		fp_stop(&fp);
	fp_up = false;
}

TestSuite(fakeplane_ws, .fini = fini, .timeout = 60);

static void start(const char *const *args)
{
	cr_assert_eq(fp_start(&fp, SEED, args), 0, "fakeplane did not start");
	fp_up = true;
}


/* The first connection of a GET /_admin/ws answer. */
static const cJSON *first_conn(const cJSON *j)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "connections"), 0);
}

/* ---- the upgrade ---- */

Test(fakeplane_ws, upgrade_answers_101_with_the_accept_and_records_the_scope)
{
	start(NULL);
	struct wsc c;
	/* Repeated, comma-joined (%2C and literal), padded and duplicated ids. */
	open_ok(&c, "runtime_ids=" RT_A "%2C%20" RT_B "&runtime_id=" RT_A "," RT_A);
	cr_assert(strcasestr(c.head, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"), "%s", c.head);
	cr_assert(strcasestr(c.head, "Upgrade: websocket"), "%s", c.head);
	cr_assert_null(strcasestr(c.head, "Sec-WebSocket-Protocol"));
	cr_assert_null(strcasestr(c.head, "Sec-WebSocket-Extensions"));
	wait_conns(1);
	cJSON *j = admin_json("/_admin/ws");
	const cJSON *conn = first_conn(j);
	const cJSON *rts = cJSON_GetObjectItemCaseSensitive(conn, "runtime_ids");
	const cJSON *wss = cJSON_GetObjectItemCaseSensitive(conn, "workspace_ids");
	cr_assert_eq(cJSON_GetArraySize(rts), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(rts, 0)->valuestring, RT_A);
	cr_assert_str_eq(cJSON_GetArrayItem(rts, 1)->valuestring, RT_B);
	cr_assert_eq(cJSON_GetArraySize(wss), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(wss, 0)->valuestring, WS_A);
	cr_assert_str_eq(cJSON_GetArrayItem(wss, 1)->valuestring, WS_B);
	cr_assert_gt(num(conn, "connected_at_ms"), 0);
	cr_assert_eq(num(cJSON_GetObjectItemCaseSensitive(j, "upgrades"), "101"), 1);
	cJSON_Delete(j);
	cr_assert_eq(fp_journal_count(&fp, "GET", "/api/daemon/ws"), 1);
	cJSON *jr = fp_journal(&fp);
	const cJSON *e = cJSON_GetArrayItem(jr, cJSON_GetArraySize(jr) - 1);
	cr_assert_eq(num(e, "status"), 101);
	cJSON_Delete(jr);
	wsc_close(&c);
}

Test(fakeplane_ws, upgrade_refusals_answer_as_the_server)
{
	start(NULL);
	struct wsc c;
	cr_assert_eq(wsc_open(&c, "runtime_ids=" RT_A "," NOPE, AUTH), 404);
	cr_assert_str_eq(c.body, "{\"error\":\"runtime not found\"}\n");
	wsc_close(&c);
	cr_assert_eq(wsc_open(&c, "runtime_ids=" RT_A, "Bearer wrong"), 401);
	wsc_close(&c);
	cr_assert_eq(wsc_open(&c, "runtime_ids=" RT_A, NULL), 401);
	wsc_close(&c);
	cr_assert_eq(wsc_open(&c, "runtime_ids=%2C", AUTH), 400);
	cr_assert_str_eq(c.body, "{\"error\":\"runtime_ids or user identity required\"}\n");
	wsc_close(&c);
	cr_assert_eq(wsc_open(&c, "runtime_ids=not-a-uuid", AUTH), 400);
	wsc_close(&c);
	cJSON *j = admin_json("/_admin/ws");
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(j, "upgrades");
	cr_assert_eq(num(up, "404"), 1);
	cr_assert_eq(num(up, "401"), 2);
	cr_assert_eq(num(up, "400"), 2);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(up, "101"));
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "connections")), 0);
	cJSON_Delete(j);
	cr_assert_eq(fp_journal_count(&fp, "GET", "/api/daemon/ws"), 5);
}

Test(fakeplane_ws, refuse_fault_answers_every_upgrade_until_cleared)
{
	start(NULL);
	admin_ok("POST", "/_admin/ws/faults", "{\"refuse\":503}");
	struct wsc c;
	cr_assert_eq(wsc_open(&c, "runtime_ids=" RT_A, AUTH), 503);
	wsc_close(&c);
	cr_assert_eq(wsc_open(&c, "runtime_ids=" RT_A, AUTH), 503);
	wsc_close(&c);
	admin_ok("DELETE", "/_admin/ws/faults", NULL);
	open_ok(&c, "runtime_ids=" RT_A);
	wsc_close(&c);
}

/* ---- pushes ---- */

Test(fakeplane_ws, task_push_reaches_only_the_socket_of_its_runtime)
{
	start(NULL);
	struct wsc a, b;
	open_ok(&a, "runtime_ids=" RT_A);
	open_ok(&b, "runtime_ids=" RT_B);
	wait_conns(2);
	admin_ok("POST", "/_admin/tasks", "{\"id\":\"" TASK1 "\",\"runtime_id\":\"" RT_A "\"}");
	expect_push(&a, "daemon:task_available", "runtime_id", RT_A, "task_id", TASK1);
	/* b's first message is its own task's: a's never reached it. */
	admin_ok("POST", "/_admin/tasks", "{\"id\":\"" TASK2 "\",\"runtime_id\":\"" RT_B "\"}");
	expect_push(&b, "daemon:task_available", "runtime_id", RT_B, "task_id", TASK2);
	/* A terminal transition: {runtime_id} only. */
	admin_ok("POST", "/_admin/tasks/" TASK1 "/cancel", NULL);
	expect_push(&a, "daemon:task_available", "runtime_id", RT_A, "task_id", NULL);
	wsc_close(&a);
	wsc_close(&b);
}

Test(fakeplane_ws, profile_push_reaches_only_the_socket_of_its_workspace)
{
	start(NULL);
	struct wsc a, b;
	open_ok(&a, "runtime_ids=" RT_A);
	open_ok(&b, "runtime_ids=" RT_B);
	wait_conns(2);
	admin_ok("PATCH", "/_admin/profiles/" P_A, "{\"display_name\":\"PA2\"}");
	expect_push(&a, "daemon:runtime_profiles_changed", "workspace_id", WS_A,
		    "runtime_profile_id", P_A);
	admin_ok("PATCH", "/_admin/profiles/" P_B, "{\"enabled\":false}");
	expect_push(&b, "daemon:runtime_profiles_changed", "workspace_id", WS_B,
		    "runtime_profile_id", P_B);
	/* a's next message is the membership change, not b's profile. */
	admin_ok("POST", "/_admin/workspaces",
		 "{\"id\":\"" WS_A "\",\"name\":\"A\",\"members\":[\"u1\",\"u2\"]}");
	expect_push(&a, "daemon:workspaces_changed", NULL, NULL, NULL, NULL);
	expect_push(&b, "daemon:workspaces_changed", NULL, NULL, NULL, NULL);
	/* Create and delete push too. */
	admin_ok("POST", "/_admin/profiles",
		 "{\"workspace_id\":\"" WS_A "\",\"display_name\":\"New\","
		 "\"protocol_family\":\"codex\",\"command_name\":\"n\"}");
	expect_push(&a, "daemon:runtime_profiles_changed", "workspace_id", WS_A, NULL, NULL);
	admin_ok("DELETE", "/_admin/profiles/" P_A, NULL);
	expect_push(&a, "daemon:runtime_profiles_changed", "workspace_id", WS_A,
		    "runtime_profile_id", P_A);
	wsc_close(&a);
	wsc_close(&b);
}

/* ---- pings ---- */

Test(fakeplane_ws, pings_come_at_the_interval_and_a_pongless_socket_is_dropped)
{
	const char *args[] = { "--ws-ping-interval", "200ms", "--ws-pong-wait", "1s", NULL };
	start(args);
	struct wsc c;
	open_ok(&c, "runtime_ids=" RT_A);
	int64_t t0 = now_ms(), first = 0, last = 0;
	int pings = 0;
	struct frame f;
	/* 1.5 s with pongs: the socket stays, past the 1 s pong wait. */
	while (now_ms() - t0 < 1500) {
		int rc = wsc_frame(&c, &f, 500, false);
		cr_assert_eq(rc, 1, "no ping within 500 ms (rc %d)", rc);
		cr_assert_eq(f.h.opcode, FP_WS_PING);
		cr_assert_eq(f.h.len, 0);
		cr_assert(!f.h.masked);
		free(f.payload);
		last = now_ms();
		if (pings++ == 0)
			first = last;
		wsc_send(&c, FP_WS_PONG, true, "", 0, true);
	}
	cr_assert_geq(pings, 5, "%d pings in 1.5 s at 200 ms", pings);
	double per = (double)(last - first) / (pings - 1);
	cr_assert(per > 150 && per < 300, "a ping every %.0f ms", per);
	/* A client PING gets a PONG with the same payload. */
	wsc_send(&c, FP_WS_PING, true, "hello", 5, true);
	for (;;) {
		cr_assert_eq(wsc_frame(&c, &f, 1000, false), 1);
		bool pong = f.h.opcode == FP_WS_PONG;
		if (pong)
			cr_assert_str_eq((char *)f.payload, "hello");
		free(f.payload);
		if (pong)
			break;
	}
	cJSON *j = admin_json("/_admin/ws");
	const cJSON *conn = first_conn(j);
	cr_assert_geq(num(conn, "pongs_received"), 5);
	cr_assert_geq(num(conn, "pings_sent"), 5);
	cr_assert_geq(num(conn, "frames_received"), 6);
	cJSON_Delete(j);
	/* No more pongs: closed about a pong wait after the last one. */
	int64_t quiet = now_ms();
	int rc;
	while ((rc = wsc_frame(&c, &f, 3000, false)) == 1)
		free(f.payload);
	cr_assert_eq(rc, -1, "still open 3 s after the last pong");
	int64_t took = now_ms() - quiet;
	cr_assert(took >= 700 && took < 2000, "closed %lld ms after the last pong",
		  (long long)took);
	wait_conns(0);
	j = admin_json("/_admin/ws");
	cr_assert_eq(num(j, "closed"), 1);
	cJSON_Delete(j);
	wsc_close(&c);
}

Test(fakeplane_ws, ignore_pongs_silent_and_pong_delay_faults)
{
	start(NULL);
	struct wsc c;
	open_ok(&c, "runtime_ids=" RT_A);
	admin_ok("POST", "/_admin/ws/faults", "{\"pong_delay_ms\":400}");
	int64_t t0 = now_ms();
	wsc_send(&c, FP_WS_PING, true, "x", 1, true);
	struct frame f;
	cr_assert_eq(wsc_frame(&c, &f, 2000, false), 1);
	cr_assert_eq(f.h.opcode, FP_WS_PONG);
	free(f.payload);
	cr_assert_geq(now_ms() - t0, 350, "the pong was not late");
	/* Silent: no pong, no push. */
	admin_ok("POST", "/_admin/ws/faults", "{\"pong_delay_ms\":0,\"silent\":true}");
	wsc_send(&c, FP_WS_PING, true, "y", 1, true);
	admin_ok("POST", "/_admin/tasks", "{\"id\":\"" TASK1 "\",\"runtime_id\":\"" RT_A "\"}");
	cr_assert_eq(wsc_frame(&c, &f, 500, false), 0, "a silent socket sent something");
	/* Back: the push made while silent is lost, the next one comes. */
	admin_ok("DELETE", "/_admin/ws/faults", NULL);
	admin_ok("POST", "/_admin/tasks", "{\"id\":\"" TASK2 "\",\"runtime_id\":\"" RT_A "\"}");
	expect_push(&c, "daemon:task_available", "runtime_id", RT_A, "task_id", TASK2);
	/* ignore_pongs: dropped pong_wait after connect despite the pongs. */
	admin_ok("POST", "/_admin/ws/faults",
		 "{\"ignore_pongs\":true,\"ping_interval_ms\":100,\"pong_wait_ms\":600}");
	int rc;
	t0 = now_ms();
	while ((rc = wsc_frame(&c, &f, 3000, false)) == 1) {
		if (f.h.opcode == FP_WS_PING)
			wsc_send(&c, FP_WS_PONG, true, "", 0, true);
		free(f.payload);
	}
	cr_assert_eq(rc, -1, "not dropped while its pongs were ignored");
	cr_assert_lt(now_ms() - t0, 2000);
	wsc_close(&c);
}

/* ---- client frames ---- */

Test(fakeplane_ws, unmasked_and_oversized_client_frames_are_closed_with_codes)
{
	start(NULL);
	struct wsc c;
	open_ok(&c, "runtime_ids=" RT_A);
	wsc_send(&c, FP_WS_TEXT, true, "{}", 2, false);
	cr_assert_eq(close_code(&c), 1002);
	wsc_close(&c);
	open_ok(&c, "runtime_ids=" RT_A);
	/* 64 KiB is fine, one byte more (over two frames) is not. */
	char *big = malloc((64 << 10) + 1);
	memset(big, ' ', (64 << 10) + 1);
	wsc_send(&c, FP_WS_TEXT, true, big, 64 << 10, true);
	wsc_send(&c, FP_WS_PING, true, "k", 1, true);
	struct frame f;
	cr_assert_eq(wsc_frame(&c, &f, 2000, false), 1);
	cr_assert_eq(f.h.opcode, FP_WS_PONG, "a 64 KiB message was refused");
	free(f.payload);
	wsc_send(&c, FP_WS_TEXT, false, big, 32 << 10, true);
	wsc_send(&c, FP_WS_CONT, true, big, (32 << 10) + 1, true);
	free(big);
	cr_assert_eq(close_code(&c), 1009);
	wsc_close(&c);
}

/* ---- admin frames ---- */

Test(fakeplane_ws, send_variants_reach_the_client_as_specified)
{
	start(NULL);
	struct wsc a, b;
	open_ok(&a, "runtime_ids=" RT_A);
	open_ok(&b, "runtime_ids=" RT_B);
	wait_conns(2);
	double a_id = conn_id(RT_A), b_id = conn_id(RT_B);
	struct frame f;
	/* Every send below goes to a only, but for the one to b. */
#define SEND_A(members) send_to(a_id, members)

	SEND_A("\"json\":{\"type\":\"x\",\"payload\":null}}");
	cr_assert_eq(wsc_frame(&a, &f, 2000, false), 1);
	cr_assert_eq(f.h.opcode, FP_WS_TEXT);
	cr_assert(f.h.fin && !f.h.masked);
	cr_assert_str_eq((char *)f.payload, "{\"type\":\"x\",\"payload\":null}");
	free(f.payload);

	SEND_A("\"text\":\"{not json\"}");
	cr_assert_eq(wsc_frame(&a, &f, 2000, false), 1);
	cr_assert_str_eq((char *)f.payload, "{not json");
	free(f.payload);

	/* Fragments: TEXT, CONT, CONT with FIN on the last only. */
	SEND_A("\"fragments\":3,\"json\":{\"type\":\"frag\"}}");
	char whole[256] = "";
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(wsc_frame(&a, &f, 2000, false), 1);
		cr_assert_eq(f.h.opcode, i == 0 ? FP_WS_TEXT : FP_WS_CONT, "frame %d", i);
		cr_assert_eq(f.h.fin, i == 2, "frame %d", i);
		cr_assert_gt(f.h.len, 0);
		strncat(whole, (char *)f.payload, sizeof whole - strlen(whole) - 1);
		free(f.payload);
	}
	cr_assert_str_eq(whole, "{\"type\":\"frag\"}");

	/* big_bytes: exactly that many bytes, still the JSON given. */
	SEND_A("\"big_bytes\":131072,\"json\":{\"type\":\"big\",\"payload\":{}}}");
	cr_assert_eq(wsc_frame(&a, &f, 3000, false), 1);
	cr_assert_eq(f.h.len, 131072);
	cJSON *m = cJSON_Parse((char *)f.payload);
	cr_assert_str_eq(jstr(m, "type"), "big");
	cJSON_Delete(m);
	free(f.payload);

	/* raw_hex: bytes as given (FIN + all reserved bits + opcode 3). */
	SEND_A("\"raw_hex\":\"f3026869\"}");
	cr_assert_eq(wsc_frame(&a, &f, 2000, false), 1);
	cr_assert_eq(f.h.rsv, 7);
	cr_assert_eq(f.h.opcode, 3);
	cr_assert_str_eq((char *)f.payload, "hi");
	free(f.payload);

	/* To one connection: b gets it, a does not (its next is the next one). */
	char body[128];
	snprintf(body, sizeof body, "{\"connection\":%.0f,\"text\":\"only-b\"}", b_id);
	admin_ok("POST", "/_admin/ws/send", body);
	cr_assert_eq(wsc_frame(&b, &f, 2000, false), 1);
	cr_assert_str_eq((char *)f.payload, "only-b");
	free(f.payload);
	cr_assert_eq(admin("POST", "/_admin/ws/send", "{\"connection\":999,\"text\":\"x\"}", NULL),
		     404);

	/* Oversize: a header declaring 65 MiB + 1. */
	SEND_A("\"oversize\":true}");
	cr_assert_eq(wsc_frame(&a, &f, 2000, true), 1);
	cr_assert_eq(f.h.len, (65ull << 20) + 1);
	free(f.payload);
	cr_assert_eq(admin("POST", "/_admin/ws/send", "{\"nothing\":1}", NULL), 400);
	/* And b got nothing but its own. */
	cr_assert_eq(wsc_frame(&b, &f, 300, false), 0, "b got a frame sent to a");
#undef SEND_A
	/* Without a connection: every one. */
	char *out = NULL;
	cr_assert_eq(admin("POST", "/_admin/ws/send", "{\"text\":\"all\"}", &out), 200);
	cr_assert(strstr(out, "\"connections\":2"), "%s", out);
	free(out);
	cr_assert_eq(wsc_frame(&b, &f, 2000, false), 1);
	cr_assert_str_eq((char *)f.payload, "all");
	free(f.payload);
	wsc_close(&a);
	wsc_close(&b);
}

Test(fakeplane_ws, drop_closes_every_socket_with_or_without_a_close_frame)
{
	start(NULL);
	struct wsc a, b;
	open_ok(&a, "runtime_ids=" RT_A);
	open_ok(&b, "runtime_ids=" RT_B);
	wait_conns(2);
	admin_ok("POST", "/_admin/ws/drop", "{\"close_frame\":true}");
	cr_assert_eq(close_code(&a), 0, "no empty CLOSE frame");
	cr_assert_eq(close_code(&b), 0);
	struct frame f;
	cr_assert_eq(wsc_frame(&a, &f, 2000, false), -1, "still open after the CLOSE");
	wsc_close(&a);
	wsc_close(&b);
	wait_conns(0);
	open_ok(&a, "runtime_ids=" RT_A);
	wait_conns(1);
	admin_ok("POST", "/_admin/ws/drop", "{\"close_frame\":false}");
	cr_assert_eq(close_code(&a), -1, "a CLOSE frame was sent");
	wsc_close(&a);
	wait_conns(0);
	cJSON *j = admin_json("/_admin/ws");
	cr_assert_eq(num(j, "closed"), 3);
	cJSON_Delete(j);
}

Test(fakeplane_ws, a_push_into_a_full_queue_evicts_the_socket)
{
	start(NULL);
	struct wsc a, b;
	open_ok(&a, "runtime_ids=" RT_A);
	open_ok(&b, "runtime_ids=" RT_B);
	wait_conns(2);
	/* a reads nothing: 32 MiB fill the socket buffers and stall its writer. */
	for (int i = 0; i < 8; i++)
		send_to(conn_id(RT_A), "\"big_bytes\":4194304,\"json\":{}}");
	/* Then 16 pushes fill its queue and the next one evicts it. */
	char body[160];
	for (int i = 0; i < 17 + 8; i++) {
		snprintf(body, sizeof body,
			 "{\"id\":\"55555555-0000-4000-8000-%012d\",\"runtime_id\":\"" RT_A "\"}",
			 i);
		admin_ok("POST", "/_admin/tasks", body);
	}
	wait_conns(1);
	cJSON *j = admin_json("/_admin/ws");
	const cJSON *left = first_conn(j);
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(left, "runtime_ids"),
					    0)->valuestring, RT_B, "the wrong socket went");
	cr_assert_eq(num(j, "closed"), 1);
	cJSON_Delete(j);
	wsc_close(&a);
	wsc_close(&b);
}

/* ---- TLS ---- */

static bool run_quiet(char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

Test(fakeplane_ws, upgrade_and_pushes_work_over_tls)
{
	char dir[] = "/tmp/fp-ws-tls-XXXXXX", cert[64], key[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	char *const gen[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
			      "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
			      "/CN=127.0.0.1", "-keyout", key, "-out", cert, NULL };
	bool made = run_quiet(gen);
	const char *args[] = { "--tls-cert", cert, "--tls-key", key, "--ws-ping-interval", "300ms",
			       NULL };
	int started = made ? fp_start(&fp, SEED, args) : -1;
	fp_up = started == 0;
	unlink(cert);
	unlink(key);
	rmdir(dir);
	if (!made)
		cr_skip_test("openssl cannot make a test certificate");
	cr_assert_eq(started, 0);
	snprintf(tls_url, sizeof tls_url, "https://127.0.0.1:%d", fp.port);
	struct wsc c;
	open_ok(&c, "runtime_ids=" RT_A);
	cr_assert(strcasestr(c.head, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
	struct frame f;
	cr_assert_eq(wsc_frame(&c, &f, 2000, false), 1);
	cr_assert_eq(f.h.opcode, FP_WS_PING);
	free(f.payload);
	wsc_send(&c, FP_WS_PONG, true, "", 0, true);
	admin_ok("POST", "/_admin/tasks", "{\"id\":\"" TASK1 "\",\"runtime_id\":\"" RT_A "\"}");
	expect_push(&c, "daemon:task_available", "runtime_id", RT_A, "task_id", TASK1);
	wsc_send(&c, FP_WS_PING, true, "tls", 3, true);
	for (;;) {
		cr_assert_eq(wsc_frame(&c, &f, 2000, false), 1);
		bool pong = f.h.opcode == FP_WS_PONG;
		if (pong)
			cr_assert_str_eq((char *)f.payload, "tls");
		free(f.payload);
		if (pong)
			break;
	}
	admin_ok("POST", "/_admin/ws/drop", "{\"close_frame\":true}");
	cr_assert_eq(close_code(&c), 0);
	wsc_close(&c);
	wait_conns(0);
}
