/* The link's websocket session (link/ws_session.c) in a link of its own
 * making: its supervisor socket is a socketpair the test reads, its server
 * a tiny websocket server thread on loopback. What the supervisor sees
 * (PUSH_STATE, PUSH) and what the server sees (upgrades, their runtime
 * ids): a burst of runtime-set changes costs one upgrade, an unchanged set
 * none, a real change one more; pushes are routed and garbage is ignored;
 * an empty set closes the socket. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/api.h"
#include "common/clock.h"
#include "ipc/ws_msgs.h"
#include "link/link_int.h"
#include "link/ws.h"

/* ---- the server: one thread per connection ---- */

#define MAX_CONNS 16

struct srv {
	int lfd, port;
	atomic_int upgrades, closes;
	char targets[MAX_CONNS][8192];
	const char *const *frames;   /* text frames sent after the 101 */
	pthread_t th;
};

static struct srv S;

static void write_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void send_text(int fd, const char *s)
{
	size_t n = strlen(s);
	unsigned char h[4] = { 0x81 };
	size_t hl = 2;
	if (n < 126) {
		h[1] = (unsigned char)n;
	} else {
		h[1] = 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	}
	write_all(fd, h, hl);
	write_all(fd, s, n);
}

static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[8192];
	size_t n = 0;
	while (n + 1 < sizeof req && (n == 0 || strstr(req, "\r\n\r\n") == NULL)) {
		ssize_t r = read(fd, req + n, sizeof req - 1 - n);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		req[n] = '\0';
	}
	int k = atomic_fetch_add(&S.upgrades, 1);
	if (k < MAX_CONNS) {
		char *sp = strchr(req + 4, ' ');
		snprintf(S.targets[k], sizeof S.targets[k], "%.*s", sp ? (int)(sp - req - 4) : 0, req + 4);
	}
	const char *kh = strstr(req, "Sec-WebSocket-Key: ");
	char key[32] = "", acc[29], resp[256];
	if (kh != NULL)
		sscanf(kh + 19, "%31[^\r]", key);
	mc_ws_accept_for(key, acc);
	int rl = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
			  "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
	write_all(fd, resp, (size_t)rl);
	for (const char *const *f = S.frames; f != NULL && *f != NULL; f++)
		send_text(fd, *f);
	unsigned char b[512];
	ssize_t r;
	while ((r = read(fd, b, sizeof b)) > 0)
		if ((b[0] & 0x0f) == 0x8)
			break; /* a CLOSE frame (the first bytes of a read, good enough here) */
	atomic_fetch_add(&S.closes, 1);
out:
	close(fd);
	return NULL;
}

static void *accept_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(S.lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		pthread_t t;
		pthread_create(&t, NULL, conn_thread, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

static void srv_start(const char *const *frames)
{
	memset(&S, 0, sizeof S);
	S.frames = frames;
	S.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(S.lfd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(S.lfd, 16), 0);
	socklen_t al = sizeof a;
	getsockname(S.lfd, (struct sockaddr *)&a, &al);
	S.port = ntohs(a.sin_port);
	pthread_create(&S.th, NULL, accept_thread, NULL);
	pthread_detach(S.th);
}

/* ---- the link ---- */

static struct mc_link L;
static int sup_fd;
static struct mc_ipc_reader sup_rd;
static int ups, downs, pushes_profiles, pushes_ws;
static char last_push_ws[40];

static void link_start(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
	memset(&L, 0, sizeof L);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	L.fd = sv[0];
	sup_fd = sv[1];
	mc_ipc_writer_init(&L.wr);
	cr_assert_eq(mc_ipc_reader_init(&sup_rd, mc_ipc_type_ok_from_link), 0);
	L.peer = LP_READY;
	L.cs = CS_IDLE;
	L.cfg.task_poll_interval_ms = 3600000;
	snprintf(L.cfg.server_url, sizeof L.cfg.server_url, "http://127.0.0.1:%d", S.port);
	L.push = mc_ws_new();
	cr_assert_not_null(L.push);
	struct mc_secret *tok = mc_secret_new("mdt_t", 5);
	mc_ws_set_token(&L, tok);
	mc_secret_free(tok);
	mc_ws_ready(&L);
	ups = downs = pushes_profiles = pushes_ws = 0;
}

static void read_supervisor(void)
{
	while (mc_ipc_reader_fill(&sup_rd, sup_fd) > 0) {
		struct mc_ipc_frame f;
		char err[128];
		while (mc_ipc_reader_next(&sup_rd, &f) == 1) {
			bool up;
			struct mc_push_msg m;
			if (f.type == MC_IPC_PUSH_STATE) {
				cr_assert_eq(mc_ipc_parse_push_state(&f, &up, err, sizeof err), 0);
				*(up ? &ups : &downs) += 1;
			} else if (f.type == MC_IPC_PUSH) {
				cr_assert_eq(mc_ipc_parse_push(&f, &m, err, sizeof err), 0, "%s", err);
				if (m.event == MC_PUSH_PROFILES_CHANGED) {
					pushes_profiles++;
					strlcpy(last_push_ws, m.workspace_id, sizeof last_push_ws);
				} else {
					pushes_ws++;
				}
			}
		}
	}
}

/* One turn of the link's loop, as link.c runs it (the channel's part). */
static void turn(int max_ms)
{
	mc_ms_t now = mc_now_ms();
	mc_ws_timers(&L, now);
	mc_link_peer_flush(&L);
	struct curl_waitfd w[MC_WS_MAX_FDS];
	unsigned n = mc_ws_poll_fds(&L, w, MC_WS_MAX_FDS);
	struct pollfd p[MC_WS_MAX_FDS];
	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){ w[i].fd, (short)((w[i].events & CURL_WAIT_POLLIN ? POLLIN : 0) |
					     (w[i].events & CURL_WAIT_POLLOUT ? POLLOUT : 0)), 0 };
	poll(p, n, mc_ms_wait(mc_ws_next_deadline(&L), now, max_ms));
	mc_ws_on_poll(&L, w, n);
	read_supervisor();
}

static void run_for(int ms)
{
	mc_ms_t end = mc_now_ms() + ms;
	while (mc_now_ms() < end)
		turn(20);
}

static bool run_until_up(int ms)
{
	mc_ms_t end = mc_now_ms() + ms;
	while (mc_now_ms() < end && !mc_ws_up(&L))
		turn(20);
	return mc_ws_up(&L);
}

static void link_end(void)
{
	mc_ws_stop(&L);
	mc_ws_free(L.push);
	L.push = NULL;
	mc_link_runtimes_free(&L);
	mc_ipc_writer_free(&L.wr);
	mc_ipc_reader_free(&sup_rd);
	close(L.fd);
	close(sup_fd);
	close(S.lfd);
}

static void set_ws(int i, int n_ids, int variant)
{
	char ws[40];
	snprintf(ws, sizeof ws, "10000000-0000-4000-8000-%012d", i);
	char (*ids)[40] = calloc((size_t)n_ids + 1, 40);
	for (int k = 0; k < n_ids; k++)
	{
		char id[64];
		snprintf(id, sizeof id, "%d%07d-0000-4000-8000-%012d", variant, 999999 - i, k);
		strlcpy(ids[k], id, 40);
	}
	cr_assert_geq(mc_link_set_runtimes(&L, ws, (size_t)n_ids, ids), 0);
}

TestSuite(ws_session, .timeout = 60);

Test(ws_session, a_burst_of_set_changes_costs_one_upgrade)
{
	srv_start(NULL);
	link_start();
	/* 100 workspaces arrive over about a second: one socket, after it. */
	for (int i = 0; i < 100; i++) {
		set_ws(i, 2, 1);
		run_for(10);
	}
	cr_assert(run_until_up(5000), "the socket did not come up");
	cr_assert_eq(atomic_load(&S.upgrades), 1, "%d upgrades for one burst",
		     atomic_load(&S.upgrades));
	/* All 200 ids, sorted: the last workspace's come first. */
	const char *t = S.targets[0];
	cr_assert(strncmp(t, "/api/daemon/ws?runtime_ids=10999900-0000-4000-8000-000000000000"
			  "%2C10999900-0000-4000-8000-000000000001%2C10999901", 100) == 0, "%.200s", t);
	size_t commas = 0;
	for (const char *p = t; (p = strstr(p, "%2C")) != NULL; p += 3)
		commas++;
	cr_assert_eq(commas, 199);
	run_for(100);
	cr_assert_eq(ups, 1, "PUSH_STATE {up:true} on connect");

	/* The same set again (another RUNTIMES with the same ids): nothing. */
	set_ws(5, 2, 1);
	run_for(1200);
	cr_assert_eq(atomic_load(&S.upgrades), 1, "an unchanged set reconnected");

	/* A real change: exactly one more upgrade, the old socket closed. */
	set_ws(5, 3, 1);
	run_for(700);
	cr_assert(run_until_up(5000));
	run_for(200);
	cr_assert_eq(atomic_load(&S.upgrades), 2);
	/* A redial for a new set is no outage: the supervisor would otherwise
	 * ask every worker to re-check its profiles for one registration. */
	cr_assert_eq(downs, 0, "a set-change redial told the supervisor the socket went down");
	cr_assert_eq(ups, 1);
	cr_assert(strstr(S.targets[1], "%2C10999994-0000-4000-8000-000000000002"));

	/* No runtimes at all: the socket closes and none is dialled. */
	for (int i = 0; i < 100; i++)
		set_ws(i, 0, 1);
	run_for(800);
	cr_assert_not(mc_ws_up(&L));
	cr_assert_eq(downs, 1, "no runtimes: the socket is down for good");
	mc_ms_t end = mc_now_ms() + 2000;
	while (atomic_load(&S.closes) < 2 && mc_now_ms() < end)
		run_for(20);
	cr_assert_eq(atomic_load(&S.closes), 2, "the server saw the sockets close");
	run_for(1500);
	cr_assert_eq(atomic_load(&S.upgrades), 2, "dialled with an empty set");
	link_end();
}

Test(ws_session, pushes_are_routed_and_garbage_ignored)
{
	static const char *const frames[] = {
		"{\"type\":\"daemon:runtime_profiles_changed\",\"payload\":{\"workspace_id\":"
		"\"0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f\",\"runtime_profile_id\":\"x\"},"
		"\"event_id\":\"01J0000000000000000000000\"}",
		"{\"type\":\"daemon:runtime_profiles_changed\",\"payload\":{\"workspace_id\":\"nope\"}}",
		"{\"type\":\"daemon:workspaces_changed\",\"payload\":{}}",
		"{\"type\":\"daemon:heartbeat_ack\",\"payload\":{\"runtime_id\":\"r\"}}",
		"{\"type\":\"daemon:task_available\",\"payload\":null}",
		"not json at all",
		"[1,2,3]",
		"{\"type\":\"daemon:task_available\",\"payload\":{\"runtime_id\":\"r\"}}",
		NULL,
	};
	srv_start(frames);
	link_start();
	set_ws(1, 1, 2);
	cr_assert(run_until_up(5000));
	mc_ms_t end = mc_now_ms() + 3000;
	while (mc_ws_stats(&L)->msgs < 8 && mc_now_ms() < end)
		turn(20);
	run_for(100);
	cr_assert_eq(mc_ws_stats(&L)->msgs, 8);
	cr_assert_eq(pushes_profiles, 1);
	cr_assert_str_eq(last_push_ws, "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f");
	cr_assert_eq(pushes_ws, 1);
	cr_assert_eq(mc_ws_stats(&L)->ignored, 5);
	cr_assert(mc_ws_up(&L), "garbage closed the socket");
	cr_assert_eq(atomic_load(&S.upgrades), 1);
	link_end();
}
