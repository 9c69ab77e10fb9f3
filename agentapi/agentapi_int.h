/* Private to the agent-api process (the agentapi/ files).
 *
 *   main.c          process set-up, the IPC loop (the main thread)
 *   http.c          libmicrohttpd, thread per connection: routing, bodies,
 *                   replies, /health, /shutdown
 *   checkout_api.c  POST /repo/checkout: checks, readiness, the checkout
 *   registry.c      the running tasks by token hash
 *
 * The context is written by the main thread before the HTTP server starts
 * (configuration, repo cache) and read by connection threads afterwards;
 * what changes later has its own lock (registry, api, workspace states) or
 * is atomic (counters).
 *
 * Error convention: 0 / -1 with errno. */
#ifndef MC_AGENTAPI_INT_H
#define MC_AGENTAPI_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agentapi/registry.h"
#include "agentapi/repocache.h"
#include "common/api.h"
#include "ipc/messages.h"

#define MCA_BODY_MAX          (1024 * 1024)   /* request bodies: 413 past it */
#define MCA_LOCK_WAIT_MS      10000           /* retry_busy's bounded lock wait */
#define MCA_CHECKOUT_BUDGET_MS (5 * 60 * 1000)/* the CLI's deadline: git stops by then */
#define MCA_REFRESH_TIMEOUT_MS 30000          /* GET .../repos */
#define MCA_SYNC_BUDGET_MS    (10 * 60 * 1000)
#define MCA_REGISTER_GRACE_MS 2000            /* an unknown token: its AGENT_TASK may be in flight */

/* One workspace's readiness state (reference 2.3 "Readiness"). */
struct mca_ws {
	struct mca_ws *next;
	char id[MCA_ID_MAX];
	pthread_mutex_t refresh_mu;     /* one refresh at a time per workspace */
	pthread_mutex_t mu;             /* guards allowed */
	size_t n_allowed;
	char **allowed;                 /* heap: the server's last list */
};

struct mca_ctx {
	struct mc_worker_config cfg;    /* from CONFIG; fixed once serving */
	struct mca_registry *reg;
	struct mc_repocache *rc;        /* NULL: "repo cache not initialized" */
	pthread_mutex_t api_mu;         /* mc_api is single-threaded */
	struct mc_api *api;             /* the daemon token's client; NULL before TOKEN */
	pthread_mutex_t ws_mu;          /* guards the ws list (entries live till exit) */
	struct mca_ws *ws;
	int64_t started_ms;             /* CLOCK_MONOTONIC */
	long lock_wait_ms;
	atomic_long checkouts_running;
	atomic_long checkout_waiters;
	struct mca_http *http;
	int listen_fd;
	pid_t daemon_pid;               /* the supervisor: /health's pid */
};

/* ---- gc.c ---- */
/* The main loop's turn: starts the cache maintenance when it is due. */
void mca_gc_tick(struct mca_ctx *ctx, int64_t now_ms);
int64_t mca_gc_next(void);
/* At exit (before the cache is freed). */
void mca_gc_join(void);

/* ---- http.c ---- */
struct mca_reply {
	unsigned status;
	char *body;                     /* heap, NUL-terminated; taken by the sender */
	bool json;                      /* application/json, else text/plain error */
	bool retry_busy;                /* 503 + X-Multica-Retryable + Retry-After */
};
/* An error reply: text + "\n", text/plain. */
void mca_reply_error(struct mca_reply *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A JSON reply (the printed object + "\n"); takes nothing from obj. */
void mca_reply_json(struct mca_reply *r, unsigned status, const void *cjson_obj);

/* Starts serving on ctx->listen_fd. 0 or -1 with errno. */
int mca_http_start(struct mca_ctx *ctx);
void mca_http_stop(struct mca_ctx *ctx);
/* GET /health's object (cJSON *). */
void *mca_health_json(struct mca_ctx *ctx);
/* Go's time.Duration.String() of whole seconds: "0s", "2m5s", "1h0m0s". */
void mca_go_duration(int64_t secs, char *out, size_t out_size);

/* ---- checkout_api.c ---- */
struct mca_request {
	const char *method;
	const char *authorization;      /* the header, or NULL */
	const char *body;
	size_t body_len;
	bool body_too_large;
};
void mca_checkout_handle(struct mca_ctx *ctx, const struct mca_request *rq,
			 struct mca_reply *out);
/* Frees the workspace states. */
void mca_ws_free_all(struct mca_ctx *ctx);

#endif
