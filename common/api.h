/* The multica daemon API client (reference/multica-protocol.md sections 1-2).
 *
 * One struct mc_api per server identity (URL + token). Each request is a
 * struct mc_call that owns its libcurl easy handle, request body, response
 * buffer and decoded result. A call can be driven two ways:
 *   - blocking:   mc_call_perform(call)          (tests, short helpers)
 *   - event loop: mc_call_start(call, multi) or mc_call_enqueue (one at a
 *                 time per api), then mc_multi_dispatch(multi) after
 *                 curl_multi_perform/socket_action; the call's done
 *                 callback runs from there and may free the call or start
 *                 new ones.
 * All calls of one mc_api share a libcurl connection cache (keep-alive).
 *
 * Error convention of this module: functions returning int return 0 or -1
 * with errno; constructors return NULL with errno. HTTP-level outcomes are
 * never errno: they are in mc_call_error(). */
#ifndef MC_API_H
#define MC_API_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "common/profile.h"
#include "common/secret.h"

#define MC_API_DEFAULT_TIMEOUT_MS   30000
#define MC_API_DEFAULT_CONNECT_MS   10000
#define MC_API_DEFAULT_MAX_BODY     (4u * 1024u * 1024u)
#define MC_API_ERROR_TEXT_MAX       512
/* What the executor handles, as X-Client-Capabilities on every request
 * (the server shapes claimed tasks by it; README "Tasks"): the coalesced
 * comments structure only. Not skill-bundles-v1 (skill refs would need
 * the resolve endpoint; without it skills come inline, and multicad does
 * not install skills yet), not local-worktree-v1 (worktree tasks are then
 * cancelled by the server with a reason instead of run wrongly here), not
 * rpc-v1 (no websocket yet). */
#define MC_CLIENT_CAPABILITIES      "coalesced-comments-v1"

/* Once per process, before any other call and before forking workers:
 * curl_global_init with an allocator that wipes freed memory (libcurl keeps
 * its own copy of the Authorization header), and sodium_init. */
int mc_api_global_init(void);
void mc_api_global_cleanup(void);

struct mc_api_config {
	const char *server_url;     /* "http://host:port" or "https://...", no path */
	struct mc_secret *token;    /* borrowed for the call only: mc_api_new dups it */
	const char *client_version; /* X-Client-Version, e.g. "multicad/0.1.0" */
	long timeout_ms;            /* whole request; 0 = MC_API_DEFAULT_TIMEOUT_MS */
	long connect_timeout_ms;    /* 0 = MC_API_DEFAULT_CONNECT_MS */
	size_t max_body;            /* response cap; 0 = MC_API_DEFAULT_MAX_BODY */
	const char *ca_file;        /* PEM bundle to verify the server with; NULL: system CAs */
};

struct mc_api;
struct mc_workspace_list;

/* Allocates a client; copies the config (the token into guarded memory).
 * Returns NULL with errno (EINVAL for a bad URL: not http(s), or with a path,
 * query or credentials; or for a token that is empty or holds anything but
 * visible ASCII, or a client_version with control characters: either would
 * go into a header line). Free with mc_api_free. */
struct mc_api *mc_api_new(const struct mc_api_config *cfg);
/* Free every call of the api first (a running call uses the api's pool). */
void mc_api_free(struct mc_api *api);
/* Replaces the token (rotated token file). 0 or -1 with errno (EINVAL: a
 * token mc_api_new would refuse). */
int mc_api_set_token(struct mc_api *api, struct mc_secret *token);
/* Seeds the workspace-list cache (a short-lived helper process carries the
 * supervisor's last list and ETag): the next list call sends If-None-Match
 * and a 304 returns a copy of list. Copies both. 0 or -1 with errno. */
int mc_api_seed_workspaces(struct mc_api *api, const char *etag,
			   const struct mc_workspace_list *list);
/* The ETag of the cached list, or NULL. Borrowed. */
const char *mc_api_workspaces_etag(const struct mc_api *api);
/* Drops idle keep-alive connections (after repeated transient failures). */
void mc_api_close_idle(struct mc_api *api);

/* ---- outcome of a call ---- */

enum mc_api_error_kind {
	MC_API_OK = 0,
	MC_API_ERR_TRANSPORT,         /* connect refused, DNS, TLS, reset, 3xx */
	MC_API_ERR_TIMEOUT,
	MC_API_ERR_HTTP,              /* status >= 400 */
	MC_API_ERR_RUNTIME_NOT_FOUND, /* 404 whose body contains "runtime not found"
	                                 (case-insensitive), or a heartbeat ack with
	                                 runtime_gone: true */
	MC_API_ERR_DECODE,            /* 2xx whose body is not the expected JSON */
	MC_API_ERR_TOO_LARGE,         /* body over max_body */
};

struct mc_api_error {
	enum mc_api_error_kind kind;
	long status;                  /* HTTP status; 0 when there was none */
	/* e.g. "POST /api/daemon/register: 409 runtime profile is disabled: <id>"
	 * or "GET .../runtime-profiles: runtime_profiles[2].fixed_args[0]: expected string" */
	char message[MC_API_ERROR_TEXT_MAX];
};

/* "ok", "transport", "timeout", "http", "runtime-not-found", "decode", "too-large" */
const char *mc_api_error_kind_name(enum mc_api_error_kind kind);
/* Transport, timeout, 5xx, 408, 429, decode and too-large are transient
 * (worth retrying later); other 4xx are permanent. */
bool mc_api_error_is_transient(const struct mc_api_error *err);

/* ---- request and response shapes ---- */

struct mc_reg_runtime {
	const char *name;        /* "Claude (build-7)" */
	const char *type;        /* provider key or protocol_family */
	const char *version;     /* may be "" */
	const char *profile_id;  /* NULL for a built-in (key omitted) */
};

struct mc_reg_failed {
	const char *profile_id;
	const char *command_name;
	const char *reason;
};

struct mc_register_request {
	const char *workspace_id;
	const char *daemon_id;
	const char *device_name;
	const char *cli_version;
	size_t n_runtimes;
	const struct mc_reg_runtime *runtimes;
	size_t n_failed;                      /* 0: "failed_profiles": null */
	const struct mc_reg_failed *failed;
};

struct mc_runtime {
	char *id;
	char *name;
	char *provider;
	char *status;
	char *profile_id; /* NULL for a built-in (server sent null or nothing) */
};

struct mc_runtime_list {
	size_t n;
	struct mc_runtime *v;
};
void mc_runtime_list_clear(struct mc_runtime_list *l);

struct mc_workspace {
	char *id;
	char *name;
};

struct mc_workspace_list {
	size_t n;
	struct mc_workspace *v;
};
void mc_workspace_list_clear(struct mc_workspace_list *l);

/* GET /api/daemon/workspaces/{id}/repos: {"workspace_id", "repos":
 * [{"url", "description"?}], "repos_version", "settings"?}. */
struct mc_workspace_repos {
	size_t n;
	char **urls;            /* heap strings, the server's order */
	char *repos_version;    /* "" when absent */
	char *settings;         /* the raw settings object printed, or NULL */
};
void mc_workspace_repos_clear(struct mc_workspace_repos *r);

/* ---- calls ---- */

enum mc_api_endpoint {
	MC_EP_LIST_WORKSPACES,
	MC_EP_RUNTIME_PROFILES,
	MC_EP_REGISTER,
	MC_EP_DEREGISTER,
	MC_EP_HEARTBEAT,
	MC_EP_RECOVER_ORPHANS,
	MC_EP_RENEW_TOKEN,
	/* the task endpoints of common/api_task.h */
	MC_EP_CLAIM_TASKS,
	MC_EP_CLAIM_RUNTIME_TASK,
	MC_EP_TASK_OP,
	MC_EP_TASK_STATUS,
	MC_EP_TASK_PREPARE_LEASE,
	/* the agents' local API (agentapi/) */
	MC_EP_WORKSPACE_REPOS,
};

struct mc_call;
typedef void (*mc_call_done_fn)(struct mc_call *call, void *arg);

/* Each constructor builds a ready-to-run call; the caller owns it and frees
 * it with mc_call_free. NULL with errno on failure (EINVAL: empty id list,
 * NULL/empty id, neither runtimes nor failed profiles in a register). */
struct mc_call *mc_call_list_workspaces(struct mc_api *api); /* If-None-Match from the api's cache */
struct mc_call *mc_call_runtime_profiles(struct mc_api *api, const char *workspace_id);
struct mc_call *mc_call_register(struct mc_api *api, const struct mc_register_request *req);
struct mc_call *mc_call_deregister(struct mc_api *api, size_t n, const char *const *runtime_ids);
struct mc_call *mc_call_heartbeat(struct mc_api *api, const char *runtime_id);
struct mc_call *mc_call_recover_orphans(struct mc_api *api, const char *runtime_id);
struct mc_call *mc_call_renew_token(struct mc_api *api);
/* GET /api/daemon/workspaces/{id}/repos (the local API's readiness). */
struct mc_call *mc_call_workspace_repos(struct mc_api *api, const char *workspace_id);

void mc_call_set_done(struct mc_call *call, mc_call_done_fn fn, void *arg);
/* Overrides the api's whole-request timeout for this call (before it starts),
 * e.g. the 5 s bound of the shutdown deregistration. */
void mc_call_set_timeout(struct mc_call *call, long timeout_ms);
void *mc_call_arg(const struct mc_call *call);

/* Blocking: runs the call to completion, decodes, then runs the done
 * callback if one is set (the callback must not free the call here).
 * Returns 0 when the outcome is MC_API_OK, else -1 (errno untouched; see
 * mc_call_error). A finished call may be performed again. If the call could
 * not even start, -1 with errno: EBUSY (running in a multi; its outcome is
 * untouched) or ENOMEM (mc_call_error says so; no callback). */
int mc_call_perform(struct mc_call *call);

/* Event loop: adds the call to multi. 0, or -1 with errno. */
int mc_call_start(struct mc_call *call, CURLM *multi);
/* Event loop, one request at a time per api (so one keep-alive connection):
 * starts the call in multi at once when no other enqueued call of its api
 * is running or waiting, else it waits, unsent, in a FIFO, and the
 * mc_multi_dispatch that sees the running one finish (or the next one
 * after it was freed: curl_multi_poll is woken) starts it. Its timeout
 * counts from then: libcurl's own queue (CURLMOPT_MAX_HOST_CONNECTIONS)
 * counts the wait in CURLOPT_TIMEOUT and times out a transfer that never
 * left it (libcurl 7.88.1). A waiting call may get mc_call_set_timeout;
 * mc_call_free drops it unsent; one that cannot start when its turn comes
 * finishes with a transport error from that dispatch. Calls started with
 * mc_call_start ignore the queue. 0, or -1 with errno (EBUSY: running or
 * waiting already; or mc_call_start's). */
int mc_call_enqueue(struct mc_call *call, CURLM *multi);
/* A lane of an api: the calls enqueued on one lane go one at a time, in
 * the order they were enqueued; lanes run side by side (each call on a
 * keep-alive connection of the api's pool). Every call starts on its
 * api's own lane. Zero-initialise one; it must outlive its calls. */
struct mc_api_lane {
	struct mc_call *on_wire;    /* the lane's call running, or NULL */
	unsigned n_waiting;         /* its calls waiting their turn */
};
/* Before mc_call_enqueue: the lane the call waits its turn on (NULL: its
 * api's own). Ignored while the call is waiting or running. */
void mc_call_set_lane(struct mc_call *call, struct mc_api_lane *lane);
/* Reads every finished transfer of multi, decodes it and runs its call's done
 * callback, which may free the call and start others; then starts the
 * enqueued calls whose turn it is. Transfers that are not
 * mc_calls are left alone (not removed, not touched), but their CURLMSG_DONE
 * message is consumed: libcurl cannot put it back, so give mc_calls a multi
 * of their own. Returns how many calls finished. */
int mc_multi_dispatch(CURLM *multi);
/* Frees a call; if it is running in a multi it is removed first. NULL ok. */
void mc_call_free(struct mc_call *call);

/* ---- results (valid after completion, until mc_call_free) ---- */

enum mc_api_endpoint mc_call_endpoint(const struct mc_call *call);
const struct mc_api_error *mc_call_error(const struct mc_call *call);
bool mc_call_ok(const struct mc_call *call);
long mc_call_status(const struct mc_call *call);
/* The runtime id a heartbeat / recover-orphans call was for, else NULL. */
const char *mc_call_runtime_id(const struct mc_call *call);
/* Elapsed wall time of the transfer in microseconds. */
long long mc_call_elapsed_us(const struct mc_call *call);
/* New connections the transfer opened (CURLINFO_NUM_CONNECTS): 0 when it
 * reused a keep-alive connection; -1 before it finished. */
long mc_call_num_connects(const struct mc_call *call);

/* Move the decoded result out of a finished, successful call; the caller
 * then owns *out. -1 with errno=EINVAL when the call is of another endpoint
 * or did not succeed. */
int mc_call_take_workspaces(struct mc_call *call, struct mc_workspace_list *out);
int mc_call_take_profiles(struct mc_call *call, struct mc_profile_list *out);
int mc_call_take_runtimes(struct mc_call *call, struct mc_runtime_list *out);
int mc_call_take_workspace_repos(struct mc_call *call, struct mc_workspace_repos *out);
/* list-workspaces only: the answer was 304 and came from the cache. */
bool mc_call_not_modified(const struct mc_call *call);
/* recover-orphans only. */
long mc_call_orphaned(const struct mc_call *call);
long mc_call_retried(const struct mc_call *call);

#endif
