/* Inside the codex backend: its state and the helpers its two files
 * share (backend_codex.c: handshake, requests, result;
 * backend_codex_events.c: notifications of both dialects, usage). */
#ifndef MC_WORKER_BACKEND_CODEX_INT_H
#define MC_WORKER_BACKEND_CODEX_INT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "worker/backend.h"

enum cx_state { CX_INIT, CX_THREAD, CX_TURN, CX_RUNNING, CX_DONE, CX_NSTATES };
enum cx_event {
	EV_INIT_OK, EV_INIT_ERR, EV_THREAD_OK, EV_THREAD_ERR, EV_TURN_OK, EV_TURN_ERR,
	EV_NOTIFY, EV_OVERSIZE, CX_NEVENTS
};
enum rpc_kind { K_NONE, K_INIT, K_START, K_RESUME, K_NAME, K_TURN };
enum dialect { D_UNKNOWN, D_V2, D_LEGACY };

#define MAX_PENDING 8

struct usage_tot {
	int64_t input, cached, output;
};

struct codex {
	enum cx_state st;
	long next_id;
	struct { long id; enum rpc_kind kind; } pend[MAX_PENDING];
	enum dialect dialect;
	char thread_id[128];
	char turn_id[128];
	char model[128];
	bool resuming, fell_back, resume_rejected, tool_ran;
	bool failed, aborted, completed;  /* how the turn ended (DONE) */
	char *error;                      /* first terminal error */
	char *final_answer, *last_message;
	bool have_base, have_turn_usage;
	struct usage_tot base;            /* thread totals before this run */
	mc_ms_t rpc_deadline;             /* the handshake RPC in flight, or 0 */
	enum rpc_kind rpc_waiting;
};

struct cx_ev {
	const cJSON *j;          /* the whole frame */
	const cJSON *payload;    /* result, error, or params */
	const char *method;      /* the RPC's method, or the notification's */
};

typedef void (*cx_fn)(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e);

const char *cx_str_of(const cJSON *o, const char *key);
const cJSON *cx_obj_of(const cJSON *o, const char *key);
int64_t cx_num_any(const cJSON *o, const char *const *keys);
void cx_set_str(char *dst, size_t size, const char *src);
/* *dst = a copy of src cut at MC_BACKEND_OUTPUT_MAX (old value freed). */
void cx_set_owned(char **dst, const char *src);
/* The turn is over: state DONE, turn_done, stdin closed. */
void cx_end_turn(struct mc_backend_session *s, struct codex *c);
/* The run failed with msg (the first failure's text is kept). */
void cx_fail(struct mc_backend_session *s, struct codex *c, const char *msg);
/* A notification after turn/start (the dialect lock, the thread filter). */
void cx_on_notify(struct mc_backend_session *s, struct codex *c, const struct cx_ev *e);

#endif
