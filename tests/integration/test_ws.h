/* What the whole-daemon websocket suites share (test_ws_daemon.c: the
 * push carries drift and tasks, reconnects, 404, coalescing, HTTPS, off;
 * test_ws_daemon_faults.c: a dead socket, ping/pong deadlines, frames).
 *
 * The whole daemon (daemon_fixture.h) against the emulator's socket
 * (tests/fakeplane/ws*.c). A test asserts what the server saw (its journal,
 * GET /_admin/ws: connections, their runtime ids and counters, upgrades by
 * status) and what a user sees (status --json "link"."websocket"."state").
 * Polls are set to 1h where a test proves a push did the work: nothing
 * else could have. Parent side only; asserts with Criterion. */
#ifndef MC_TEST_WS_H
#define MC_TEST_WS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tests/support/daemon_fixture.h"

#ifdef MC_TEST_HOOKS
#define WSX_NEED_HOOKS() ((void)0)
#else
#define WSX_NEED_HOOKS() cr_skip_test("needs a build configured with -DMC_TEST_HOOKS=ON")
#endif

#define WSX_READY_MS 20000
#define WSX_REG "/api/daemon/register"
#define WSX_UPGRADE "/api/daemon/ws"
/* One suite timeout for every suite of a binary: Criterion 2.4.1 leaks
 * under --jobs 2 when suites' timeouts differ (test_limits.h). */
#define WSX_SUITE_TIMEOUT 150

/* A profile of workspace i with id prof (its command: my-claude, a fake
 * CLI on the daemon's PATH). Static buffer, one of 4 rotating. */
const char *wsx_profile(int i, const char *prof, const char *name);
/* A profile id: "a0000000-0000-4000-8000-<k as 12 digits>". */
void wsx_profile_id(int k, char out[DP_ID_LEN + 1]);

/* The daemon's settings of a test (NULL / 0: the default). */
struct wsx_opts {
	int n_ws;                   /* workspaces 1..n_ws (0: 2) */
	const char *profiles;       /* the seed's profiles (JSON array) */
	const char *profile_sync;   /* profile_sync_interval (1h) */
	const char *task_poll;      /* task_poll_interval (1h) */
	const char *daemon_extra;   /* more [daemon] lines */
	const char *const *fp_args; /* more emulator flags */
	const char *ws_fault;       /* POST /_admin/ws/faults before the daemon starts */
	const char *const *env;     /* more daemon environment (NULL-terminated) */
	bool no_wait;               /* do not wait for the socket (refused, off) */
	/* The emulator serves HTTPS (fp_args hold --tls-cert/--tls-key): the
	 * admin API goes over it, verified with this CA; the daemon's
	 * server_url is https (its ca_file: in daemon_extra). */
	const char *https_ca;
	/* Called once the emulator is up, before the daemon starts: may set
	 * wsx_daemon_url (a relay in front of the emulator). */
	void (*before_daemon)(void);
};

/* The daemon's server_url when not "" (set by a before_daemon hook). */
extern char wsx_daemon_url[96];

/* The emulator, then the daemon with the fake claude as claude and
 * my-claude on PATH, every workspace ready (its rows online), then (unless
 * no_wait) the socket up with every online runtime in its set. */
void wsx_start(const struct wsx_opts *o);

/* ---- the emulator (the admin API over HTTP, or over HTTPS after
 * wsx_use_https: then with ca_file as the trusted CA) ---- */
void wsx_use_https(const char *url, const char *ca_file);
/* One admin request; the status (-1: no answer); *out (may be NULL) gets
 * the body, malloc'd. */
long wsx_http(const char *method, const char *path, const char *body, char **out);
/* wsx_http asserting 200. */
void wsx_admin_ok(const char *method, const char *path, const char *body);
/* GET path parsed (caller deletes), or NULL. */
cJSON *wsx_get(const char *path);

struct wsx_conn {
	char id[64];                /* the emulator's id, printed */
	int n_rt;
	char rt[128][DP_ID_LEN + 1];
	double pings_sent, pongs_received, frames_received, frames_sent;
};
/* The emulator's websocket connections (at most max stored); their count,
 * or -1 when GET /_admin/ws fails. */
int wsx_conns(struct wsx_conn *out, int max);
/* upgrades[status] of GET /_admin/ws (NULL: the sum over all statuses). */
long wsx_upgrades(const char *status);
/* "closed" of GET /_admin/ws. */
long wsx_closed(void);
/* Upgrade requests in the journal after seq with status (0: any). */
int wsx_j_upgrades(long after_seq, long status);
/* The lowest seq after after_seq of a journal entry as j_count matches
 * (0: none); *time_ms (may be NULL) gets its time (wall clock ms). */
long wsx_j_first(long after_seq, const char *method, const char *prefix, const char *has,
		 long status, int64_t *time_ms);
/* The journal's highest seq (0: empty). */
long wsx_last_seq(void);
/* Waits until no profile fetch, upgrade or REG was added for 700 ms (at
 * most 8 s): the reconcile after a connect is over. */
void wsx_settle(void);
/* The id of the only connection into out; false when there is not exactly one. */
bool wsx_one_conn(char out[64]);

/* ---- the daemon ---- */
/* status --json "link"."websocket"."state" into out ("" if absent). */
void wsx_state(char *out, size_t n);
bool wsx_state_is(const char *want);
/* "link"."websocket"."connects" (-1 if absent). */
long wsx_connects(void);
/* One connection, its runtime set equal to every online row at the
 * emulator, and the daemon says "up". */
bool wsx_socket_ready(void);
void wsx_wait_socket_ready(int timeout_ms);
/* Journal entries after seq: REGs naming workspace i; profile fetches of i. */
int wsx_regs_of(long after_seq, int i);
int wsx_fetches_of(long after_seq, int i);

#endif
