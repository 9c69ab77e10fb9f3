/* The reconnect's spread (supervisor/push.h): after the link's socket comes
 * back every worker checks its profiles once, at most MC_PUSH_SPREAD_PER_S
 * a second, never in one burst. */
#include <criterion/criterion.h>

#include "supervisor/push.h"

TestSuite(push_spread);

Test(push_spread, the_first_goes_at_once_and_the_order_holds)
{
	cr_assert_eq(mc_push_spread_delay_ms(0), 0);
	for (size_t i = 1; i < 5000; i++)
		cr_assert_geq(mc_push_spread_delay_ms(i), mc_push_spread_delay_ms(i - 1));
}

Test(push_spread, ten_workspaces_within_twenty_ms)
{
	cr_assert_leq(mc_push_spread_delay_ms(9), 20);
}

Test(push_spread, a_thousand_workspaces_over_two_seconds)
{
	mc_ms_t last = mc_push_spread_delay_ms(999);
	cr_assert(last >= 1900 && last <= 2000, "the 1000th goes at %lld ms", (long long)last);
}

Test(push_spread, no_second_holds_more_than_the_rate)
{
	/* Every 1 s window, wherever it starts, over 5000 workspaces. */
	size_t n = 5000, lo = 0;
	for (size_t hi = 0; hi < n; hi++) {
		while (mc_push_spread_delay_ms(hi) - mc_push_spread_delay_ms(lo) >= 1000)
			lo++;
		cr_assert_leq(hi - lo + 1, MC_PUSH_SPREAD_PER_S, "%zu in the second from %lld ms",
			      hi - lo + 1, (long long)mc_push_spread_delay_ms(lo));
	}
}

/* ---- the routing, on a supervisor made by hand ----
 * Workers are socketpairs the test reads from; the push timer is driven by
 * the test's own loop over the supervisor's timer queue. */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "ipc/ws_msgs.h"
#include "supervisor/sv.h"

#define WSFMT "0c6e1f4a-8a51-4d27-9d3c-%012d"

static struct mc_sv sv;
static int peer_fd[1200];
static struct mc_ipc_reader peer_rd[1200];
static struct mc_wk *wks[1200];
static int n_wk;

static void sv_setup(void)
{
	memset(&sv, 0, sizeof sv);
	sv.epfd = epoll_create1(EPOLL_CLOEXEC);
	cr_assert_geq(sv.epfd, 0);
	mc_timerq_init(&sv.timers);
	RB_INIT(&sv.workers);
	sv.started_at = mc_now_ms();
	sv.cfg.websocket = true;
	mc_push_init(&sv);
	n_wk = 0;
}

/* A worker in state st whose socket the test reads. */
static struct mc_wk *add_wk(enum mc_wk_state st)
{
	int sp[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	struct mc_wk *wk = calloc(1, sizeof *wk);
	cr_assert_not_null(wk);
	snprintf(wk->ws, sizeof wk->ws, WSFMT, n_wk);
	wk->state = st;
	wk->fd = sp[0];
	wk->pid = 0;
	wk->pidfd = -1;
	mc_ipc_writer_init(&wk->wr);
	RB_INSERT(mc_wk_tree, &sv.workers, wk);
	sv.n_workers++;
	peer_fd[n_wk] = sp[1];
	cr_assert_eq(mc_ipc_reader_init(&peer_rd[n_wk], mc_ipc_type_ok_for_worker), 0);
	wks[n_wk] = wk;
	return wks[n_wk++];
}

static void sv_teardown(void)
{
	for (int i = 0; i < n_wk; i++) {
		RB_REMOVE(mc_wk_tree, &sv.workers, wks[i]);
		mc_ipc_writer_free(&wks[i]->wr);
		close(wks[i]->fd);
		close(peer_fd[i]);
		mc_ipc_reader_free(&peer_rd[i]);
		free(wks[i]);
	}
	mc_timerq_free(&sv.timers);
	close(sv.epfd);
}

/* What worker i was sent since the last call: "S+" "S-" (PUSH_STATE up,
 * down), "N:reason" (SYNC_NOW), space-separated. */
static const char *sent_to(int i)
{
	static char out[512];
	out[0] = '\0';
	while (mc_ipc_reader_fill(&peer_rd[i], peer_fd[i]) > 0)
		;
	struct mc_ipc_frame f;
	char err[128], reason[MC_SYNC_REASON_MAX];
	bool up;
	while (mc_ipc_reader_next(&peer_rd[i], &f) == 1) {
		if (out[0])
			strlcat(out, " ", sizeof out);
		if (f.type == MC_IPC_PUSH_STATE) {
			cr_assert_eq(mc_ipc_parse_push_state(&f, &up, err, sizeof err), 0);
			strlcat(out, up ? "S+" : "S-", sizeof out);
		} else if (f.type == MC_IPC_SYNC_NOW) {
			cr_assert_eq(mc_ipc_parse_sync_now(&f, reason, sizeof reason, err, sizeof err), 0);
			strlcat(out, "N:", sizeof out);
			strlcat(out, reason, sizeof out);
		} else {
			strlcat(out, "?", sizeof out);
		}
	}
	return out;
}

static void link_says(uint16_t type, const char *json)
{
	struct mc_ipc_frame f = { .type = type, .len = (uint32_t)strlen(json),
				  .payload = (const uint8_t *)json };
	mc_push_link_frame(&sv, &f);
}

/* Runs the supervisor's due timers (only the push timer is armed here)
 * for ms; returns the largest number of SYNC_NOWs sent by any instant
 * beyond what MC_PUSH_SPREAD_PER_S allows since the up. */
static long run_timers(int ms)
{
	mc_ms_t until = mc_now_ms() + ms;
	long worst = 0;
	while (mc_now_ms() < until) {
		struct mc_timer *t;
		while ((t = mc_timerq_pop_due(&sv.timers, mc_now_ms())) != NULL) {
			cr_assert_eq(t->kind, TIMER_PUSH);
			mc_push_on_timer(&sv);
			mc_ms_t el = mc_now_ms() - sv.push.spread_start;
			long over = (long)sv.push.spread_sent - (long)(el * MC_PUSH_SPREAD_PER_S / 1000);
			if (over > worst)
				worst = over;
		}
		usleep(1000);
	}
	return worst;
}

TestSuite(push_route, .init = sv_setup, .fini = sv_teardown, .timeout = 30);

Test(push_route, up_is_forwarded_then_every_running_worker_checks_once)
{
	for (int i = 0; i < 10; i++)
		add_wk(WK_RUNNING);
	add_wk(WK_STARTING);
	mc_ms_t t0 = mc_now_ms();
	link_says(MC_IPC_PUSH_STATE, "{\"up\":true}");
	run_timers(60);
	cr_assert(!sv.push.spreading, "10 workers still spreading after %lld ms",
		  (long long)(mc_now_ms() - t0));
	for (int i = 0; i < 10; i++)
		cr_assert_str_eq(sent_to(i), "S+ N:reconnect", "worker %d", i);
	cr_assert_str_eq(sent_to(10), "", "a worker in its handshake gets it after the handshake");
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_push_handshake(&sv, &w), 0);
	cr_assert_gt(mc_ipc_writer_pending(&w), 0, "the handshake carries PUSH_STATE up");
	mc_ipc_writer_free(&w);
	cr_assert_eq(sv.push.connects, 1);
}

Test(push_route, a_thousand_workers_are_spread_over_two_seconds)
{
	for (int i = 0; i < 1000; i++)
		add_wk(WK_RUNNING);
	mc_ms_t t0 = mc_now_ms();
	link_says(MC_IPC_PUSH_STATE, "{\"up\":true}");
	long worst = run_timers(1000);
	cr_assert(sv.push.spreading, "all done within 1 s: a burst");
	/* Below the rate only on a loaded host, whose timers fire late. */
	cr_assert(sv.push.spread_sent >= 100 && sv.push.spread_sent <= 520,
		  "%zu sent in the first second", sv.push.spread_sent);
	while (sv.push.spreading && mc_now_ms() - t0 < 8000) {
		long w = run_timers(100);
		worst = w > worst ? w : worst;
	}
	mc_ms_t took = mc_now_ms() - t0;
	cr_assert(!sv.push.spreading, "not done after %lld ms", (long long)took);
	cr_assert_geq(took, 1990, "1000 checks in %lld ms: faster than the rate", (long long)took);
	cr_assert_leq(worst, 2 * MC_PUSH_SPREAD_PER_S * MC_PUSH_SPREAD_TICK_MS / 1000 + 1,
		      "%ld ahead of the rate", worst);
	for (int i = 0; i < 1000; i++)
		cr_assert_str_eq(sent_to(i), "S+ N:reconnect", "worker %d", i);
}

Test(push_route, down_cancels_the_rest_of_the_spread)
{
	for (int i = 0; i < 200; i++)
		add_wk(WK_RUNNING);
	link_says(MC_IPC_PUSH_STATE, "{\"up\":true}");
	run_timers(100);
	size_t sent = sv.push.spread_sent;
	cr_assert(sent > 0 && sent < 200, "%zu sent after 100 ms", sent);
	mc_push_link_gone(&sv); /* the link died: as a down */
	cr_assert(!sv.push.spreading);
	cr_assert(!sv.push.up);
	run_timers(500);
	int synced = 0;
	for (int i = 0; i < 200; i++) {
		const char *s = sent_to(i);
		if (strcmp(s, "S+ N:reconnect S-") == 0)
			synced++;
		else
			cr_assert_str_eq(s, "S+ S-", "worker %d", i);
	}
	cr_assert_eq((size_t)synced, sent);
}

Test(push_route, profiles_changed_goes_to_that_workspace_only)
{
	add_wk(WK_RUNNING);
	add_wk(WK_RUNNING);
	add_wk(WK_BACKOFF);
	char msg[160];
	snprintf(msg, sizeof msg, "{\"event\":\"profiles_changed\",\"workspace_id\":\"" WSFMT "\"}", 1);
	link_says(MC_IPC_PUSH, msg);
	snprintf(msg, sizeof msg, "{\"event\":\"profiles_changed\",\"workspace_id\":\"" WSFMT "\"}", 2);
	link_says(MC_IPC_PUSH, msg);
	snprintf(msg, sizeof msg, "{\"event\":\"profiles_changed\",\"workspace_id\":\"" WSFMT "\"}", 77);
	link_says(MC_IPC_PUSH, msg);
	link_says(MC_IPC_PUSH, "{\"event\":\"workspaces_changed\"}"); /* explicit list: ignored */
	cr_assert_str_eq(sent_to(0), "");
	cr_assert_str_eq(sent_to(1), "N:push");
	cr_assert_str_eq(sent_to(2), "", "a worker that is not running gets nothing");
	cr_assert_eq(mc_timerq_peek(&sv.timers), NULL, "no membership refresh, no spread");
}

Test(push_route, workspaces_changed_refreshes_the_membership_once_more)
{
	sv.cfg.all_workspaces = true;
	mc_timer_init(&sv.membership_timer, TIMER_MEMBERSHIP, &sv);
	link_says(MC_IPC_PUSH, "{\"event\":\"workspaces_changed\"}");
	cr_assert(mc_timer_armed(&sv.membership_timer), "the membership timer's fetch, now");
	cr_assert_leq(sv.membership_timer.deadline, mc_now_ms());
	mc_timerq_cancel(&sv.timers, &sv.membership_timer);
	sv.membership = (struct mc_helper *)&sv; /* one in flight (never dereferenced) */
	link_says(MC_IPC_PUSH, "{\"event\":\"workspaces_changed\"}");
	cr_assert(!mc_timer_armed(&sv.membership_timer));
	cr_assert(sv.membership_again, "one more after the one in flight");
	sv.membership = NULL;
}

Test(push_route, status_says_up_down_or_off)
{
	cJSON *link = cJSON_CreateObject();
	mc_push_status(&sv, link);
	cJSON *ws = cJSON_GetObjectItem(link, "websocket");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(ws, "state")), "down");
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(ws, "connects")), 0);
	cJSON_Delete(link);

	link_says(MC_IPC_PUSH_STATE, "{\"up\":true}");
	link_says(MC_IPC_PUSH_STATE, "{\"up\":false}");
	link_says(MC_IPC_PUSH_STATE, "{\"up\":true}");
	link = cJSON_CreateObject();
	mc_push_status(&sv, link);
	ws = cJSON_GetObjectItem(link, "websocket");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(ws, "state")), "up");
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(ws, "connects")), 2);
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(ws, "since_s")), 0);
	cJSON_Delete(link);

	sv.cfg.websocket = false;
	link = cJSON_CreateObject();
	mc_push_status(&sv, link);
	ws = cJSON_GetObjectItem(link, "websocket");
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(ws, "state")), "off");
	cJSON_Delete(link);
}
