/* Test support: the fixture of the whole-daemon suites. One emulator (FP)
 * with workspaces 1..n, one daemon (D) serving some of them, the workspace
 * ids in WS, and dfx_fini, the suites' .fini, tearing it all down.
 *
 * The state is global: Criterion runs every test in a process of its own,
 * so each test starts from zeroed state and one fixture. A suite that needs
 * more teardown calls dfx_fini from its own .fini. Not with
 * worker_fixture.h in one file (its WS is a macro). */
#ifndef MC_TEST_DAEMON_FIXTURE_H
#define MC_TEST_DAEMON_FIXTURE_H

#include <stdbool.h>

#include <criterion/criterion.h>

#include "tests/support/daemon_proc.h"
#include "tests/support/fakeplane_proc.h"

#define DFX_MAX_WS 63   /* test_supervisor: 50 workspaces and one more */

extern struct fp_proc FP;                        /* the emulator */
extern struct dp D;                              /* the daemon */
extern char WS[DFX_MAX_WS + 1][DP_ID_LEN + 1];   /* WS[i]: workspace i (1-based) */

/* Asserts that cond comes to hold within timeout_ms with the supervisor
 * alive (a supervisor that died fails at once); the rest: cr_assert's
 * message and its arguments. */
#define DFX_WAIT_UP(cond, timeout_ms, ...)                                     \
	cr_assert(DP_WAIT((cond) || !dp_alive(&D), (timeout_ms)) && dp_alive(&D), \
		  __VA_ARGS__)

/* Fills WS[1..DFX_MAX_WS] (dfx_start_plane does it too: for a seed that
 * needs the ids before the emulator starts). */
void dfx_ws_ids(void);
/* WS filled, then the emulator seeded by dp_seed(n_ws, extra_ws, profiles)
 * and started with more flags args (NULL-terminated; NULL: none). */
void dfx_start_plane(int n_ws, const char *extra_ws, const char *profiles,
		    const char *const *args);
/* dp_ws_list(first, last), owned by the fixture: dfx_fini frees it. */
char *dfx_ws_list(int first, int last);

/* dp_init(&D) with clis (as dp_init's; NULL: claude), c->server_url set to
 * the emulator's, c written. Not started: a test can still change D. */
void dfx_prepare_daemon(struct dp_config *c, const char *const *clis);
/* dfx_prepare_daemon and dp_start. */
void dfx_start_daemon(struct dp_config *c, const char *const *clis);

/* Workspace i has a live worker and exactly n online rows. */
bool dfx_ws_ready(int i, int n);
/* Asserts dfx_ws_ready(i, n) within timeout_ms. */
void dfx_wait_ws_ready(int i, int n, int timeout_ms);
/* The id of workspace i's claude built-in row (asserted to exist). */
void dfx_runtime_of(int i, char out[DP_ID_LEN + 1]);
/* One admin request to the emulator; its HTTP status (the body dropped). */
long dfx_admin(const char *method, const char *path, const char *body);

/* Frees the lists, stops the daemon (dp_free) and the emulator. Safe to
 * call when nothing was started. */
void dfx_fini(void);

#endif
