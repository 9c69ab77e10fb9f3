/* Test support shared by the worker suites: one emulator with one
 * workspace, fake agent CLIs on a temp PATH, and a worker forked through
 * the harness. Parent side only (the helpers assert with Criterion). */
#ifndef MC_TEST_WORKER_FIXTURE_H
#define MC_TEST_WORKER_FIXTURE_H

#include <stdbool.h>

#include "tests/support/fakeplane_proc.h"
#include "tests/support/worker_harness.h"

#define WS    "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define PROF1 "a1111111-1111-4111-8111-111111111111"
#define PROF2 "a2222222-2222-4222-8222-222222222222"
#define TOKEN "mul_test_token"

#define REG_PATH   "/api/daemon/register"
#define DEREG_PATH "/api/daemon/deregister"
#define PROF_PATH  "/api/daemon/workspaces/" WS "/runtime-profiles"
#define HB_PATH    "/api/daemon/heartbeat"
#define RO_PREFIX  "/api/daemon/runtimes/"

/* The built-in the harness hands over as a probe result. */
extern const struct mc_builtin FX_CLAUDE;

struct fixture {
	struct fp_proc fp;
	struct wh h;
	char *cli_dir;          /* holds my-claude and other-claude (version 9.9.9) */
	char path_env[600];
};

/* A seed with TOKEN -> u1, member of WS, and these profiles (a JSON array).
 * Returns a static buffer. */
const char *fx_seed_with(const char *profiles_json);
/* One enabled/disabled claude-family profile of WS; two static buffers
 * alternate, so two results can be used in one call. */
const char *fx_profile_json(const char *id, const char *name, const char *cmd, bool enabled);

void fx_start_plane_args(struct fixture *fx, const char *profiles_json, const char *const *extra);
void fx_start_plane(struct fixture *fx, const char *profiles_json);
/* Defaults: the emulator's URL, TOKEN, WS, the fixture's PATH. */
void fx_start_worker_opts(struct fixture *fx, struct wh_opts o);
void fx_start_worker(struct fixture *fx, bool with_claude);
/* The common case: profile P1 (command my-claude) on the server, a worker
 * with the claude built-in, both runtimes registered and reported. */
void fx_start_builtin_and_profile(struct fixture *fx);
void fx_stop(struct fixture *fx);

/* Journal entries matching method (NULL: any) and path prefix. */
int fx_count(struct fixture *fx, const char *method, const char *prefix);
/* Pumps the worker until fx_count reaches want or the timeout passes. */
bool fx_wait_count(struct fixture *fx, const char *method, const char *prefix, int want,
		   int timeout_ms);
void fx_assert_status(struct fixture *fx, const char *id, const char *want);
/* An admin request to the emulator; returns the HTTP status. */
long fx_admin(struct fixture *fx, const char *method, const char *path, const char *body);
/* The id of the online row of profile pid (NULL: the built-in), malloc'd;
 * NULL when there is none. */
char *fx_runtime_of(struct fixture *fx, const char *pid);

/* Any answer status, for fx_jcount. */
#define FX_ANY_STATUS (-1)

/* Journal entries matching method and path prefix (NULL: any), with the
 * given answer status (FX_ANY_STATUS: any), seq above after_seq (-1: all),
 * and whose body contains body_has (NULL: any). */
int fx_jcount(struct fixture *fx, const char *method, const char *prefix, int status,
	      double after_seq, const char *body_has);
/* Pumps the worker until fx_jcount reaches want or the timeout passes. */
bool fx_wait_jcount(struct fixture *fx, const char *method, const char *prefix, int status,
		    double after_seq, const char *body_has, int want, int timeout_ms);
/* The seq of the newest journal entry, -1 when the journal is empty. */
double fx_last_seq(struct fixture *fx);
/* Pumps the worker until runtime id has the status want on the server. */
bool fx_wait_status(struct fixture *fx, const char *id, const char *want, int timeout_ms);

#endif
