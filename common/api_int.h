/* Private to the daemon API client (common/api*.c): the api and call
 * objects and the helpers its files share. See api.h for the contract.
 *
 *   api.c       the client object: global init, the wiping allocator,
 *               mc_api_new/free/set_token, the share handle, URL checks
 *   api_call.c  building calls: constructors, paths, bodies, headers
 *   api_run.c   running calls: perform, start, the enqueue queue, dispatch,
 *               finish, outcome classification, result accessors
 *   api_task.c  the task endpoints (api_task.h)
 *
 * Not thread-safe: one thread drives an mc_api and all of its calls (the
 * worker is a single-threaded event loop), which is also why the share
 * handle needs no lock callbacks and the running-call registry and the
 * queue of waiting calls (api_run.c) are plain static lists.
 *
 * Error convention: as api.h (0 / -1 with errno; NULL with errno). */
#ifndef MC_API_INT_H
#define MC_API_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "common/api.h"
#include "common/api_task.h"

#ifndef MC_VERSION
#define MC_VERSION "0.0.0"
#endif

#define CALL_MAGIC 0x4d4343414c4c3031ULL /* "MCCALL01" */
#define CALL_DEAD  0x4445414443414c4cULL /* "DEADCALL": freed */
#define WHAT_MAX 256
#define BODY_INITIAL_CAP 4096

struct mc_api {
	char *base_url;             /* "scheme://host[:port]", no trailing slash */
	struct mc_secret *token;
	char *client_version;
	long timeout_ms;
	long connect_timeout_ms;
	char *ca_file;              /* NULL: the system's CA store */
	char *no_proxy;             /* loopback plus the environment's no_proxy */
	size_t max_body;
	CURLSH *share;              /* keep-alive pool + DNS; NULL: make it lazily */
	unsigned in_flight;         /* calls whose easy is attached to share */
	bool drop_idle_pending;     /* close_idle asked while calls were running */
	struct mc_api_lane lane;    /* enqueued calls without a lane of their own */
	char *etag;                 /* of the cached workspace list, or NULL */
	bool have_ws_cache;
	struct mc_workspace_list ws_cache;
};

/* WAITING: enqueued behind another call of its api, not yet handed to
 * libcurl (mc_call_enqueue). */
enum call_state { CALL_IDLE, CALL_WAITING, CALL_RUNNING, CALL_DONE };

struct mc_call {
	uint64_t magic;             /* CALL_MAGIC while allocated */
	struct mc_call *run_prev;   /* registry of calls running in a multi */
	struct mc_call *run_next;
	struct mc_call *wait_prev;  /* FIFO of every waiting call, all apis */
	struct mc_call *wait_next;
	CURLM *wait_multi;          /* where a waiting call will run */
	uint64_t wait_seq;          /* order of enqueueing */
	struct mc_api *api;
	struct mc_api_lane *lane;   /* whose turn it waits for (mc_call_enqueue) */
	enum mc_api_endpoint ep;
	const char *method;         /* "GET" / "POST" (static strings) */
	char *path;                 /* "/api/daemon/...", ids escaped */
	char *body;                 /* request JSON; NULL for GET */
	char *runtime_id;           /* heartbeat / recover-orphans / prepare-lease */
	char *task_id;              /* task endpoints: the task of the path */
	int task_op;                /* MC_EP_TASK_OP: its enum mc_task_op */
	size_t max_body;            /* response cap; 0: the api's */
	size_t expected_n;          /* register: runtimes in the request */
	CURL *easy;
	CURLM *multi;               /* set while running in a multi */
	struct curl_slist *headers; /* set while running (holds the token) */
	enum call_state state;
	bool sent_etag;
	char errbuf[CURL_ERROR_SIZE];
	char *resp;                 /* response body, NUL-terminated; wiped and freed
	                               after decoding (a claim's holds task tokens) */
	size_t resp_len;
	size_t resp_cap;
	bool resp_too_large;
	mc_call_done_fn done_fn;
	void *done_arg;
	struct mc_api_error err;
	long long elapsed_us;
	long num_connects;
	bool not_modified;
	long orphaned;
	long retried;
	bool have_result;           /* a take_* result is waiting */
	struct mc_workspace_list ws;
	struct mc_profile_list profiles;
	struct mc_runtime_list runtimes;
	struct mc_claimed claimed;  /* claims: the tasks, tokens already taken out */
	char *task_status;          /* status call: the decoded status */
	struct mc_workspace_repos repos; /* workspace-repos call */
};

/* ---- api.c ---- */

/* Drops the api's pool (closing its idle connections) and starts a new
 * one; only when no easy handle is attached. */
void mci_share_reset(struct mc_api *api);
/* Deep copy of a workspace list; 0 or -1 (ENOMEM, dst left empty). */
int mci_workspace_list_copy(struct mc_workspace_list *dst, const struct mc_workspace_list *src);

/* ---- api_call.c ---- */

/* Allocates a call with its easy handle; the caller frees it with
 * mc_call_free. NULL with errno=ENOMEM. */
struct mc_call *mci_call_alloc(struct mc_api *api, enum mc_api_endpoint ep, const char *method);
/* Sets the path, prefix + escaped id + suffix (id may be NULL), and the
 * URL. 0, or -1 with errno. */
int mci_call_set_path(struct mc_call *c, const char *prefix, const char *id, const char *suffix);
/* Takes ownership of json (NULL: a GET). 0, or -1 with errno. */
int mci_call_set_body(struct mc_call *c, char *json);
/* "{}" built like every other body. malloc'd; NULL with errno=ENOMEM. */
char *mci_empty_object_json(void);
/* Finishes a constructor: on failure frees the call, keeping errno. */
struct mc_call *mci_call_built(struct mc_call *c, bool ok);
/* Common tail of the POST constructors: json is taken (NULL = encoding
 * failed, errno set by the encoder). */
struct mc_call *mci_post_call(struct mc_api *api, enum mc_api_endpoint ep, const char *prefix,
			      const char *id, const char *suffix, char *json);
/* Builds this request's header list; the caller owns it. NULL on ENOMEM. */
struct curl_slist *mci_build_headers(struct mc_call *c);

/* The response cap of a call: its own, else its api's. */
size_t mci_call_max_body(const struct mc_call *c);
/* Wipes and frees the response buffer. */
void mci_resp_release(struct mc_call *c);

/* ---- api_run.c ---- */

/* "METHOD PATH" of the call into dst. */
void mci_call_what(const struct mc_call *c, char *dst, size_t size);
/* Fills c->err with kind and "METHOD PATH: <fmt...>". */
void mci_set_error(struct mc_call *c, enum mc_api_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));


/* ---- api_task.c ---- */

/* True for the endpoints of api_task.h. */
bool mci_task_endpoint(enum mc_api_endpoint ep);
/* Decodes the 2xx answer of a task endpoint into the call. 0, or -1
 * after filling derr (never with a value from the body: it holds tokens). */
int mci_task_decode(struct mc_call *c, const char *body, size_t len, struct mc_api_error *derr);
/* Frees what mci_task_decode left in the call (wiping what is secret). */
void mci_task_reset(struct mc_call *c);

#endif
