/* The websocket through the whole daemon when the socket misbehaves
 * (issue 14): a half-open socket (the server silent) is found dead by the
 * daemon's read deadline and replaced; server pings every 200 ms are
 * answered for as long as the socket lives, and a server that counts no
 * pong drops it and sees the daemon come back; a fragmented push works, an
 * invalid or unknown message is ignored on the same connection, a 128 KiB
 * message is taken and the socket lives on, a frame header declaring more
 * than 64 MiB makes the daemon close and redial.
 *
 * The read deadline is 60 s in production; the test builds' knob
 * MULTICAD_TEST_WS_SILENCE_MS (read by the link only under MC_TEST_HOOKS)
 * makes it 2 s here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/integration/test_ws.h"

TestSuite(ws_faults, .fini = dfx_fini, .timeout = WSX_SUITE_TIMEOUT);

#define SILENCE_MS 2000

/* A connection other than old exists (the daemon redialled). */
static bool replaced(const char *old)
{
	struct wsx_conn c[4];
	int n = wsx_conns(c, 4);
	for (int i = 0; i < n && i < 4; i++)
		if (strcmp(c[i].id, old) != 0)
			return true;
	return false;
}

/* The only connection's counters into c; false when there is not one. */
static bool conn_now(struct wsx_conn *c)
{
	static struct wsx_conn v[2];
	if (wsx_conns(v, 2) != 1)
		return false;
	*c = v[0];
	return true;
}

/* ---- 5: a dead socket ---- */

Test(ws_faults, silent_socket_is_found_dead_and_replaced)
{
	WSX_NEED_HOOKS();
	static char env_knob[64];
	snprintf(env_knob, sizeof env_knob, "MULTICAD_TEST_WS_SILENCE_MS=%d", SILENCE_MS);
	const char *env[] = { env_knob, NULL };
	struct wsx_opts o = { .n_ws = 1, .env = env };
	wsx_start(&o);
	wsx_settle();
	char old[64];
	cr_assert(wsx_one_conn(old));
	long seq = wsx_last_seq();
	int64_t t0 = dp_now_ms();
	wsx_admin_ok("POST", "/_admin/ws/faults", "{\"silent\":true}");
	/* The deadline, then the backoff (at most 2 s +20 % here). */
	DFX_WAIT_UP(wsx_j_upgrades(seq, 0) >= 1, SILENCE_MS + 2400 + 2000,
		    "no new upgrade after the socket went silent");
	int64_t took = dp_now_ms() - t0;
	cr_assert_geq(took, SILENCE_MS / 2, "redialled after %lld ms: not the deadline",
		      (long long)took);
	wsx_admin_ok("DELETE", "/_admin/ws/faults", NULL);
	DFX_WAIT_UP(replaced(old) && wsx_socket_ready(), 10000, "the socket was not replaced");
	cr_assert(dp_log_has(&D, "websocket", "nothing received", NULL, NULL),
		  "the log does not say the socket went silent");
}

/* ---- 6: ping/pong ---- */

Test(ws_faults, server_pings_are_answered_and_a_pongless_socket_is_redialled)
{
	struct wsx_opts o = { .n_ws = 1 };
	wsx_start(&o);
	wsx_admin_ok("POST", "/_admin/ws/faults", "{\"ping_interval_ms\":200,\"pong_wait_ms\":1000}");
	struct wsx_conn c0, c;
	cr_assert(conn_now(&c0));
	long closed0 = wsx_closed();
	/* 5 s: the same connection throughout, its pongs counted. */
	for (int t = 0; t < 10; t++) {
		dp_sleep_ms(500);
		cr_assert(conn_now(&c) && strcmp(c.id, c0.id) == 0,
			  "the socket did not stay (after %d ms)", (t + 1) * 500);
	}
	cr_assert_geq(c.pongs_received - c0.pongs_received, 15,
		      "%.0f pongs in 5 s at one ping every 200 ms",
		      c.pongs_received - c0.pongs_received);
	cr_assert_geq(c.pings_sent - c0.pings_sent, 15);
	cr_assert_eq(wsx_closed(), closed0);
	cr_assert(wsx_state_is("up"));

	/* Pongs no longer count: dropped after 1 s, and the daemon comes back. */
	wsx_admin_ok("POST", "/_admin/ws/faults",
		     "{\"ping_interval_ms\":200,\"pong_wait_ms\":1000,\"ignore_pongs\":true}");
	DFX_WAIT_UP(wsx_closed() > closed0 && replaced(c0.id), 1000 + 2400 + 3000,
		    "the dropped socket was not redialled");
	wsx_admin_ok("DELETE", "/_admin/ws/faults", NULL);
	wsx_wait_socket_ready(10000);
}

/* ---- 7: frames ---- */

static char prof[DP_ID_LEN + 1];

/* One workspace with one profile, the socket up and quiet. */
static void start_one(void)
{
	wsx_profile_id(1, prof);
	static char profiles[600];
	snprintf(profiles, sizeof profiles, "[%s]", wsx_profile(1, prof, "Before"));
	struct wsx_opts o = { .n_ws = 1, .profiles = profiles };
	wsx_start(&o);
	wsx_settle();
}

/* The push of a change of workspace 1's profile, as JSON. */
static const char *push_json(void)
{
	static char b[256];
	snprintf(b, sizeof b,
		 "{\"type\":\"daemon:runtime_profiles_changed\",\"payload\":{\"workspace_id\":"
		 "\"%s\",\"runtime_profile_id\":\"%s\"}}",
		 WS[1], prof);
	return b;
}

/* POST /_admin/ws/send {<members>, "json": push} */
static void send_push(const char *members)
{
	char body[600];
	snprintf(body, sizeof body, "{%s%s\"json\":%s}", members, members[0] ? "," : "",
		 push_json());
	wsx_admin_ok("POST", "/_admin/ws/send", body);
}

Test(ws_faults, fragmented_push_is_reassembled_and_the_drift_registered)
{
	start_one();
	/* The change happens while the server pushes nothing: the push that
	 * carries it comes later, in five frames. */
	long seq = wsx_last_seq();
	char path[128];
	snprintf(path, sizeof path, "/_admin/profiles/%s", prof);
	wsx_admin_ok("POST", "/_admin/ws/faults", "{\"silent\":true}");
	wsx_admin_ok("PATCH", path, "{\"display_name\":\"After\"}");
	wsx_admin_ok("DELETE", "/_admin/ws/faults", NULL);
	dp_sleep_ms(500);
	cr_assert_eq(wsx_regs_of(seq, 1), 0, "a REG without a push (polls are 1h)");
	char conn[64];
	cr_assert(wsx_one_conn(conn));
	send_push("\"fragments\":5");
	DFX_WAIT_UP(wsx_regs_of(seq, 1) >= 1, 2000, "no REG after the fragmented push");
	char now[64];
	cr_assert(wsx_one_conn(now) && strcmp(now, conn) == 0, "the socket was replaced");
}

Test(ws_faults, invalid_and_unknown_messages_are_ignored_on_the_same_connection)
{
	start_one();
	struct wsx_conn c0, c;
	cr_assert(conn_now(&c0));
	long seq = wsx_last_seq();
	wsx_admin_ok("POST", "/_admin/ws/send", "{\"text\":\"{not json\"}");
	wsx_admin_ok("POST", "/_admin/ws/send",
		     "{\"json\":{\"type\":\"daemon:no_such_event\",\"payload\":{}}}");
	wsx_admin_ok("POST", "/_admin/ws/send",
		     "{\"json\":{\"type\":\"daemon:runtime_profiles_changed\",\"payload\":null}}");
	wsx_admin_ok("POST", "/_admin/ws/send",
		     "{\"json\":{\"type\":\"daemon:runtime_profiles_changed\","
		     "\"payload\":{\"workspace_id\":\"not-a-uuid\"}}}");
	dp_sleep_ms(500);
	cr_assert(conn_now(&c) && strcmp(c.id, c0.id) == 0, "the socket was replaced");
	cr_assert_geq(c.frames_sent - c0.frames_sent, 4, "the server sent %.0f frames",
		      c.frames_sent - c0.frames_sent);
	cr_assert_eq(wsx_fetches_of(seq, 1), 0, "a junk message made the worker check");
	/* And the connection still carries pushes. */
	send_push("");
	DFX_WAIT_UP(wsx_fetches_of(seq, 1) >= 1, 2000, "no check after a push on the same socket");
	cr_assert(conn_now(&c) && strcmp(c.id, c0.id) == 0, "the socket was replaced");
}

Test(ws_faults, message_of_128_kib_is_taken_and_the_socket_lives_on)
{
	start_one();
	struct wsx_conn c0, c;
	cr_assert(conn_now(&c0));
	long seq = wsx_last_seq();
	send_push("\"big_bytes\":131072");
	DFX_WAIT_UP(wsx_fetches_of(seq, 1) >= 1, 2000, "no check after a 128 KiB push");
	long seq2 = wsx_last_seq();
	wsx_settle();
	send_push("");
	DFX_WAIT_UP(wsx_fetches_of(seq2, 1) >= 1, 2000, "no check after the next push");
	cr_assert(conn_now(&c) && strcmp(c.id, c0.id) == 0, "the socket was replaced");
}

Test(ws_faults, frame_header_over_64_mib_closes_and_redials)
{
	start_one();
	char old[64];
	cr_assert(wsx_one_conn(old));
	long closed0 = wsx_closed();
	wsx_admin_ok("POST", "/_admin/ws/send", "{\"oversize\":true}");
	DFX_WAIT_UP(wsx_closed() > closed0 && replaced(old), 2400 + 3000,
		    "the daemon did not close and redial after an oversized frame header");
	wsx_wait_socket_ready(10000);
	cr_assert(dp_log_has(&D, "websocket", "64 MiB", NULL, NULL),
		  "the log does not say the message was too big");
}
