/* The daemon API client: transport (libcurl easy/multi/share), headers,
 * limits, outcome classification and the glue to the pure codecs of
 * api_codec.c. See api.h for the contract.
 *
 * Not thread-safe: one thread drives an mc_api and all of its calls (the
 * worker is a single-threaded event loop), which is also why the share
 * handle needs no lock callbacks and the running-call registry and the
 * queue of waiting calls below are plain static lists. */
#include "common/api.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/api_codec.h"
#include "common/api_tls.h"

#ifndef MC_VERSION
#define MC_VERSION "0.0.0"
#endif

#define CALL_MAGIC 0x4d4343414c4c3031ULL /* "MCCALL01" */
#define CALL_DEAD  0x4445414443414c4cULL /* "DEADCALL": freed */
#define WHAT_MAX 256
#define BODY_INITIAL_CAP 4096
static const char bearer_prefix[] = "Authorization: Bearer ";
static const char loopback_hosts[] = "127.0.0.1,localhost,::1";

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
	struct mc_call *on_wire;    /* the mc_call_enqueue'd call running, or NULL */
	unsigned n_waiting;         /* enqueued calls waiting their turn */
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
	enum mc_api_endpoint ep;
	const char *method;         /* "GET" / "POST" (static strings) */
	char *path;                 /* "/api/daemon/...", ids escaped */
	char *body;                 /* request JSON; NULL for GET */
	char *runtime_id;           /* heartbeat / recover-orphans */
	size_t expected_n;          /* register: runtimes in the request */
	CURL *easy;
	CURLM *multi;               /* set while running in a multi */
	struct curl_slist *headers; /* set while running (holds the token) */
	enum call_state state;
	bool sent_etag;
	char errbuf[CURL_ERROR_SIZE];
	char *resp;                 /* response body, NUL-terminated; freed after decoding */
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
};

static struct mc_call *running_head;
static struct mc_call *waiting_head, *waiting_tail;
static uint64_t waiting_seq;

/* ---- process-wide initialisation: an allocator that wipes ---- */

/* libcurl copies the Authorization header into its own heap blocks (the
 * header list, the request buffer). Every block it frees or moves is wiped
 * first so the token does not linger in freed heap memory. */
static void *wipe_malloc(size_t n)
{
	return malloc(n);
}

static void wipe_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* Never realloc in place: glibc could move the block and leave the old
 * copy unwiped. Allocate, copy, wipe the old block, free it. */
static void *wipe_realloc(void *p, size_t n)
{
	if (p == NULL)
		return malloc(n);
	void *q = malloc(n > 0 ? n : 1);
	if (q == NULL)
		return NULL; /* like realloc: the old block stays valid */
	size_t old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static char *wipe_strdup(const char *s)
{
	return strdup(s);
}

static void *wipe_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}

static bool global_ready;

int mc_api_global_init(void)
{
	if (global_ready)
		return 0;
	if (sodium_init() < 0) {
		errno = ENOMEM;
		return -1;
	}
	CURLcode rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, wipe_malloc, wipe_free,
					   wipe_realloc, wipe_strdup, wipe_calloc);
	if (rc != CURLE_OK) {
		errno = rc == CURLE_OUT_OF_MEMORY ? ENOMEM : EIO;
		return -1;
	}
	/* Before any fork: what it builds is shared by every process forked
	 * afterwards (api_tls.h). */
	mc_api_tls_init();
	global_ready = true;
	return 0;
}

void mc_api_global_cleanup(void)
{
	if (!global_ready)
		return;
	mc_api_tls_cleanup();
	curl_global_cleanup();
	global_ready = false;
}

/* ---- the api object ---- */

/* Allocates the share handle: one keep-alive pool and DNS cache for every
 * call of an api, blocking or multi. NULL on failure. */
static CURLSH *share_new(void)
{
	CURLSH *sh = curl_share_init();
	if (sh == NULL)
		return NULL;
	if (curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
	    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
		curl_share_cleanup(sh);
		return NULL;
	}
	return sh;
}

/* Drops the pool (closing its idle connections) and starts a new one. Only
 * when no easy handle is attached: curl refuses to free a share in use. */
static void share_reset(struct mc_api *api)
{
	if (api->share != NULL && curl_share_cleanup(api->share) != CURLSHE_OK)
		return; /* still referenced: keep it rather than leak a live pool */
	api->share = share_new();
	api->drop_idle_pending = false;
}

static bool is_http_scheme(const char *s)
{
	return strcmp(s, "http") == 0 || strcmp(s, "https") == 0;
}

/* A part that must be absent from the server URL. */
static bool url_part_absent(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(u, part, &v, 0);
	curl_free(v);
	return rc != CURLUE_OK;
}

/* Validates the server URL (http(s), a host, no credentials, no path other
 * than "/", no query or fragment) and returns "scheme://host[:port]" in
 * malloc'd memory the caller frees. NULL with errno EINVAL or ENOMEM. */
static char *base_url_new(const char *url)
{
	CURLU *u = curl_url();
	if (u == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	char *scheme = NULL, *path = NULL, *full = NULL, *out = NULL;
	int err = EINVAL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    !is_http_scheme(scheme) || url_part_absent(u, CURLUPART_HOST) ||
	    !url_part_absent(u, CURLUPART_USER) || !url_part_absent(u, CURLUPART_PASSWORD) ||
	    !url_part_absent(u, CURLUPART_OPTIONS) || !url_part_absent(u, CURLUPART_QUERY) ||
	    !url_part_absent(u, CURLUPART_FRAGMENT))
		goto out;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    (strcmp(path, "/") != 0 && path[0] != '\0'))
		goto out;
	if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
		goto out;
	size_t len = strlen(full);
	while (len > 0 && full[len - 1] == '/')
		len--;
	out = strndup(full, len);
	err = out == NULL ? ENOMEM : 0;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(full);
	curl_url_cleanup(u);
	if (out == NULL)
		errno = err;
	return out;
}

/* Header values must be one line of visible ASCII: a CR or LF in a token or
 * version string would let it inject headers. */
static bool header_safe(const char *s, size_t len, bool allow_space)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch > 0x7e || ch < 0x20 || (ch == ' ' && !allow_space))
			return false;
	}
	return true;
}

static bool token_usable(struct mc_secret *token)
{
	size_t len = mc_secret_len(token);
	bool ok = len > 0 && header_safe(mc_secret_open(token), len, false);
	mc_secret_close(token);
	return ok;
}

/* CURLOPT_NOPROXY replaces the environment's no_proxy instead of adding to
 * it, so the list handed to libcurl is loopback plus what the environment
 * says (read as libcurl reads it: no_proxy, then NO_PROXY). Otherwise a
 * host excluded by the operator would go through the proxy, with the token.
 * Allocates; the caller frees. NULL when out of memory. */
static char *no_proxy_list(void)
{
	const char *env = getenv("no_proxy");
	if (env == NULL || env[0] == '\0')
		env = getenv("NO_PROXY");
	if (env == NULL || env[0] == '\0')
		return strdup(loopback_hosts);
	if (strcmp(env, "*") == 0)
		return strdup("*"); /* every host direct: a list would weaken it */
	size_t n = sizeof loopback_hosts + 1 + strlen(env);
	char *list = malloc(n);
	if (list != NULL)
		snprintf(list, n, "%s,%s", loopback_hosts, env);
	return list;
}

struct mc_api *mc_api_new(const struct mc_api_config *cfg)
{
	if (cfg == NULL || cfg->server_url == NULL || cfg->token == NULL ||
	    cfg->timeout_ms < 0 || cfg->connect_timeout_ms < 0 || !token_usable(cfg->token) ||
	    (cfg->client_version != NULL &&
	     !header_safe(cfg->client_version, strlen(cfg->client_version), true))) {
		errno = EINVAL;
		return NULL;
	}
	/* Normally done by main before forking; harmless when it was. */
	if (mc_api_global_init() < 0)
		return NULL;
	struct mc_api *api = calloc(1, sizeof *api);
	if (api == NULL)
		return NULL;
	api->base_url = base_url_new(cfg->server_url);
	if (api->base_url == NULL)
		goto fail;
	api->token = mc_secret_dup(cfg->token);
	api->client_version = strdup(cfg->client_version != NULL ? cfg->client_version
				     : "multicad/" MC_VERSION);
	api->share = share_new();
	if (api->token == NULL || api->client_version == NULL || api->share == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	api->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : MC_API_DEFAULT_TIMEOUT_MS;
	api->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
				  : MC_API_DEFAULT_CONNECT_MS;
	api->max_body = cfg->max_body > 0 ? cfg->max_body : MC_API_DEFAULT_MAX_BODY;
	if (cfg->ca_file != NULL && cfg->ca_file[0] && (api->ca_file = strdup(cfg->ca_file)) == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	if ((api->no_proxy = no_proxy_list()) == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	return api;
fail:;
	int e = errno;
	mc_api_free(api);
	errno = e;
	return NULL;
}

void mc_api_free(struct mc_api *api)
{
	if (api == NULL)
		return;
	if (api->share != NULL)
		curl_share_cleanup(api->share); /* fails only while a call runs: a caller bug */
	mc_secret_free(api->token);
	free(api->base_url);
	free(api->client_version);
	free(api->no_proxy);
	free(api->ca_file);
	free(api->etag);
	mc_workspace_list_clear(&api->ws_cache);
	free(api);
}

int mc_api_set_token(struct mc_api *api, struct mc_secret *token)
{
	if (api == NULL || token == NULL || !token_usable(token)) {
		errno = EINVAL;
		return -1;
	}
	struct mc_secret *copy = mc_secret_dup(token);
	if (copy == NULL)
		return -1;
	mc_secret_free(api->token);
	api->token = copy;
	return 0;
}

void mc_api_close_idle(struct mc_api *api)
{
	if (api->in_flight > 0) {
		api->drop_idle_pending = true; /* done when the last call finishes */
		return;
	}
	share_reset(api);
}

/* ---- running-call registry ---- */

/* A finished transfer's CURLINFO_PRIVATE is only trusted when it points to a
 * call in this list: a foreign easy in the same multi may carry any private
 * pointer, which must never be dereferenced. */
static void running_link(struct mc_call *c)
{
	c->run_prev = NULL;
	c->run_next = running_head;
	if (running_head != NULL)
		running_head->run_prev = c;
	running_head = c;
}

static void running_unlink(struct mc_call *c)
{
	if (c->run_prev != NULL)
		c->run_prev->run_next = c->run_next;
	else if (running_head == c)
		running_head = c->run_next;
	if (c->run_next != NULL)
		c->run_next->run_prev = c->run_prev;
	c->run_prev = c->run_next = NULL;
}

static struct mc_call *running_find(CURL *easy, CURLM *multi)
{
	char *priv = NULL;
	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
		return NULL;
	for (struct mc_call *c = running_head; c != NULL; c = c->run_next)
		if ((char *)c == priv && c->magic == CALL_MAGIC && c->easy == easy &&
		    c->multi == multi)
			return c;
	return NULL;
}

/* ---- the per-api queue of mc_call_enqueue ---- */

static void waiting_link(struct mc_call *c)
{
	c->wait_seq = ++waiting_seq;
	c->wait_next = NULL;
	c->wait_prev = waiting_tail;
	if (waiting_tail != NULL)
		waiting_tail->wait_next = c;
	else
		waiting_head = c;
	waiting_tail = c;
	c->api->n_waiting++;
}

static void waiting_unlink(struct mc_call *c)
{
	if (c->wait_prev != NULL)
		c->wait_prev->wait_next = c->wait_next;
	else
		waiting_head = c->wait_next;
	if (c->wait_next != NULL)
		c->wait_next->wait_prev = c->wait_prev;
	else
		waiting_tail = c->wait_prev;
	c->wait_prev = c->wait_next = NULL;
	c->wait_multi = NULL;
	c->api->n_waiting--;
}

/* The api's call on the wire is leaving it (finished or freed). Outside
 * mc_multi_dispatch, the next one is started by the next dispatch: the
 * wakeup makes curl_multi_poll return for it at once. */
static void leave_wire(struct mc_call *c, CURLM *multi, bool in_dispatch)
{
	struct mc_api *api = c->api;
	if (api->on_wire != c)
		return;
	api->on_wire = NULL;
#if CURL_AT_LEAST_VERSION(7, 68, 0)
	if (!in_dispatch && api->n_waiting > 0 && multi != NULL)
		curl_multi_wakeup(multi);
#else
	(void)multi;
	(void)in_dispatch;
#endif
}

/* ---- building a call ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct mc_call *c = ud;
	size_t n = size * nmemb;
	size_t max = c->api->max_body;
	if (n > max - c->resp_len) {
		c->resp_too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	size_t need = c->resp_len + n + 1;
	if (need > c->resp_cap) {
		size_t cap = c->resp_cap > 0 ? c->resp_cap : BODY_INITIAL_CAP;
		while (cap < need)
			cap *= 2;
		if (cap > max + 1)
			cap = max + 1;
		char *p = realloc(c->resp, cap);
		if (p == NULL)
			return 0;
		c->resp = p;
		c->resp_cap = cap;
	}
	memcpy(c->resp + c->resp_len, data, n);
	c->resp_len += n;
	c->resp[c->resp_len] = '\0';
	return n;
}

/* Options every request gets. Returns false if libcurl refused one. */
static bool set_common_options(struct mc_call *c)
{
	struct mc_api *api = c->api;
	CURL *e = c->easy;
	bool ok = true;
	ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK;
	/* HTTP/1.1 only, never h2 over ALPN: nghttp2 copies every header (the
	 * token's too) into memory of its own, freed unwiped; libcurl's copies
	 * go through our wiping allocator. */
	ok &= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, api->timeout_ms) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, api->connect_timeout_ms) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)api->max_body) == CURLE_OK;
	/* Production honours the proxy environment, no_proxy included;
	 * loopback never goes through a proxy (tests, a local control plane). */
	ok &= curl_easy_setopt(e, CURLOPT_NOPROXY, api->no_proxy) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	/* Ids are escaped; keep curl from folding "/../" in an odd id. */
	ok &= curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, "multicad/" MC_VERSION) == CURLE_OK;
	/* Verification itself (VERIFYPEER, VERIFYHOST) keeps libcurl's strict
	 * defaults; only where the trusted CAs come from differs. */
	if (api->ca_file != NULL)
		ok &= curl_easy_setopt(e, CURLOPT_CAINFO, api->ca_file) == CURLE_OK;
	else
		ok &= mc_api_tls_use_system_store(e);
	return ok;
}

/* Allocates a call with its easy handle; the caller frees it with
 * mc_call_free. NULL with errno=ENOMEM. */
static struct mc_call *call_alloc(struct mc_api *api, enum mc_api_endpoint ep,
				  const char *method)
{
	if (api == NULL) {
		errno = EINVAL;
		return NULL;
	}
	struct mc_call *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->magic = CALL_MAGIC;
	c->api = api;
	c->ep = ep;
	c->method = method;
	c->orphaned = c->retried = -1;
	c->num_connects = -1;
	c->easy = curl_easy_init();
	if (c->easy == NULL || !set_common_options(c)) {
		mc_call_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

/* Sets the path, prefix + escaped id + suffix (id may be NULL), and the
 * URL. 0, or -1 with errno. */
static int call_set_path(struct mc_call *c, const char *prefix, const char *id,
			 const char *suffix)
{
	char *esc = NULL;
	if (id != NULL) {
		esc = curl_easy_escape(c->easy, id, 0);
		if (esc == NULL) {
			errno = ENOMEM;
			return -1;
		}
	}
	int n = asprintf(&c->path, "%s%s%s", prefix, esc != NULL ? esc : "", suffix);
	curl_free(esc);
	if (n < 0) {
		c->path = NULL;
		errno = ENOMEM;
		return -1;
	}
	char *url = NULL;
	if (asprintf(&url, "%s%s", c->api->base_url, c->path) < 0) {
		errno = ENOMEM;
		return -1;
	}
	CURLcode rc = curl_easy_setopt(c->easy, CURLOPT_URL, url);
	free(url);
	if (rc != CURLE_OK) {
		errno = rc == CURLE_OUT_OF_MEMORY ? ENOMEM : EINVAL;
		return -1;
	}
	return 0;
}

/* Takes ownership of json (NULL: a GET). 0, or -1 with errno. */
static int call_set_body(struct mc_call *c, char *json)
{
	if (json == NULL)
		return curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -1;
	c->body = json;
	if (curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
			     (curl_off_t)strlen(c->body)) != CURLE_OK) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* "{}" built like every other body. malloc'd; NULL with errno=ENOMEM. */
static char *empty_object_json(void)
{
	cJSON *o = cJSON_CreateObject();
	char *s = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

/* Finishes a constructor: on failure frees the call, keeping errno. */
static struct mc_call *call_built(struct mc_call *c, bool ok)
{
	if (ok)
		return c;
	int e = errno;
	mc_call_free(c);
	errno = e;
	return NULL;
}

struct mc_call *mc_call_list_workspaces(struct mc_api *api)
{
	struct mc_call *c = call_alloc(api, MC_EP_LIST_WORKSPACES, "GET");
	if (c == NULL)
		return NULL;
	return call_built(c, call_set_path(c, "/api/daemon/workspaces", NULL, "") == 0 &&
			  call_set_body(c, NULL) == 0);
}

struct mc_call *mc_call_runtime_profiles(struct mc_api *api, const char *workspace_id)
{
	if (workspace_id == NULL || workspace_id[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	struct mc_call *c = call_alloc(api, MC_EP_RUNTIME_PROFILES, "GET");
	if (c == NULL)
		return NULL;
	return call_built(c, call_set_path(c, "/api/daemon/workspaces/", workspace_id,
					   "/runtime-profiles") == 0 &&
			  call_set_body(c, NULL) == 0);
}

/* Common tail of the POST constructors: json is taken (NULL = encoding
 * failed, errno set by the encoder). */
static struct mc_call *post_call(struct mc_api *api, enum mc_api_endpoint ep,
				 const char *prefix, const char *id, const char *suffix,
				 char *json)
{
	if (json == NULL)
		return NULL;
	struct mc_call *c = call_alloc(api, ep, "POST");
	if (c == NULL) {
		free(json);
		return NULL;
	}
	if (call_set_body(c, json) < 0)
		return call_built(c, false);
	return call_built(c, call_set_path(c, prefix, id, suffix) == 0);
}

struct mc_call *mc_call_register(struct mc_api *api, const struct mc_register_request *req)
{
	struct mc_call *c = post_call(api, MC_EP_REGISTER, "/api/daemon/register", NULL, "",
				      mc_encode_register(req));
	if (c != NULL)
		c->expected_n = req->n_runtimes;
	return c;
}

struct mc_call *mc_call_deregister(struct mc_api *api, size_t n, const char *const *runtime_ids)
{
	return post_call(api, MC_EP_DEREGISTER, "/api/daemon/deregister", NULL, "",
			 mc_encode_deregister(n, runtime_ids));
}

/* Heartbeat and recover-orphans remember their runtime id for the caller. */
static struct mc_call *with_runtime_id(struct mc_call *c, const char *runtime_id)
{
	if (c == NULL)
		return NULL;
	c->runtime_id = strdup(runtime_id);
	if (c->runtime_id == NULL) {
		mc_call_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

struct mc_call *mc_call_heartbeat(struct mc_api *api, const char *runtime_id)
{
	return with_runtime_id(post_call(api, MC_EP_HEARTBEAT, "/api/daemon/heartbeat", NULL, "",
					 mc_encode_heartbeat(runtime_id)),
			       runtime_id);
}

struct mc_call *mc_call_recover_orphans(struct mc_api *api, const char *runtime_id)
{
	if (runtime_id == NULL || runtime_id[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	return with_runtime_id(post_call(api, MC_EP_RECOVER_ORPHANS,
					 "/api/daemon/runtimes/", runtime_id, "/recover-orphans",
					 empty_object_json()),
			       runtime_id);
}

struct mc_call *mc_call_renew_token(struct mc_api *api)
{
	return post_call(api, MC_EP_RENEW_TOKEN, "/api/tokens/current/renew", NULL, "",
			 empty_object_json());
}

void mc_call_set_done(struct mc_call *call, mc_call_done_fn fn, void *arg)
{
	call->done_fn = fn;
	call->done_arg = arg;
}

void mc_call_set_timeout(struct mc_call *call, long timeout_ms)
{
	/* A running transfer keeps the limit it started with. */
	if (call->state == CALL_RUNNING)
		return;
	long ms = timeout_ms > 0 ? timeout_ms : call->api->timeout_ms;
	curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, ms);
}

void *mc_call_arg(const struct mc_call *call)
{
	return call->done_arg;
}

/* ---- running a call ---- */

/* Appends "Authorization: Bearer <token>". The line is assembled in guarded
 * memory, copied by libcurl (into blocks our allocator wipes) and wiped at
 * once; the secret is readable only for the copy. */
static struct curl_slist *append_auth(struct curl_slist *list, struct mc_secret *token)
{
	size_t tlen = mc_secret_len(token);
	size_t plen = sizeof bearer_prefix - 1;
	char *line = sodium_malloc(plen + tlen + 1);
	if (line == NULL)
		return NULL;
	memcpy(line, bearer_prefix, plen);
	memcpy(line + plen, mc_secret_open(token), tlen);
	mc_secret_close(token);
	line[plen + tlen] = '\0';
	struct curl_slist *r = curl_slist_append(list, line);
	sodium_free(line);
	return r;
}

/* Appends a "Name: value" header. NULL on failure (list left intact). */
static struct curl_slist *append_header(struct curl_slist *list, const char *name,
					const char *value)
{
	char *line = NULL;
	if (asprintf(&line, "%s: %s", name, value) < 0)
		return NULL;
	struct curl_slist *r = curl_slist_append(list, line);
	free(line);
	return r;
}

/* Builds this request's header list; the caller owns it. NULL on ENOMEM. */
static struct curl_slist *build_headers(struct mc_call *c)
{
	struct mc_api *api = c->api;
	struct curl_slist *l = NULL, *n;
#define ADD(expr) do { n = (expr); if (n == NULL) goto fail; l = n; } while (0)
	ADD(append_auth(l, api->token));
	ADD(append_header(l, "X-Client-Platform", "daemon"));
	ADD(append_header(l, "X-Client-Version", api->client_version));
	ADD(append_header(l, "X-Client-OS", "linux"));
	if (c->body != NULL) {
		ADD(append_header(l, "Content-Type", "application/json"));
		/* No "Expect: 100-continue" round trip on larger bodies. */
		ADD(curl_slist_append(l, "Expect:"));
	}
	c->sent_etag = false;
	if (c->ep == MC_EP_LIST_WORKSPACES && api->etag != NULL && api->have_ws_cache) {
		ADD(append_header(l, "If-None-Match", api->etag));
		c->sent_etag = true;
	}
#undef ADD
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

/* Forgets a previous outcome so a finished call can run again. */
static void reset_outcome(struct mc_call *c)
{
	free(c->resp);
	c->resp = NULL;
	c->resp_len = c->resp_cap = 0;
	c->resp_too_large = false;
	c->errbuf[0] = '\0';
	memset(&c->err, 0, sizeof c->err);
	c->elapsed_us = 0;
	c->num_connects = -1;
	c->not_modified = false;
	c->orphaned = c->retried = -1;
	c->have_result = false;
	mc_workspace_list_clear(&c->ws);
	mc_profile_list_clear(&c->profiles);
	mc_runtime_list_clear(&c->runtimes);
}

/* Attaches headers and the api's share. 0, or -1 with errno (EBUSY when
 * already running or waiting, ENOMEM). */
static int call_prepare(struct mc_call *c)
{
	if (c->state == CALL_RUNNING || c->state == CALL_WAITING) {
		errno = EBUSY;
		return -1;
	}
	reset_outcome(c);
	struct mc_api *api = c->api;
	if (api->share == NULL && api->in_flight == 0)
		share_reset(api);
	if (api->share == NULL) {
		errno = ENOMEM;
		return -1;
	}
	c->headers = build_headers(c);
	if (c->headers == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_SHARE, api->share) != CURLE_OK) {
		curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
		curl_slist_free_all(c->headers);
		c->headers = NULL;
		errno = ENOMEM;
		return -1;
	}
	api->in_flight++;
	c->state = CALL_RUNNING;
	return 0;
}

/* Undoes call_prepare: frees the header list (wiped by our allocator) and
 * detaches the share so the api can drop its pool. */
static void call_detach(struct mc_call *c)
{
	struct mc_api *api = c->api;
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	curl_slist_free_all(c->headers);
	c->headers = NULL;
	curl_easy_setopt(c->easy, CURLOPT_SHARE, (CURLSH *)NULL);
	api->in_flight--;
	if (api->in_flight == 0 && api->drop_idle_pending)
		share_reset(api);
}

static void call_what(const struct mc_call *c, char *dst, size_t size)
{
	snprintf(dst, size, "%s %s", c->method, c->path != NULL ? c->path : "?");
}

static void set_error(struct mc_call *c, enum mc_api_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fills c->err with kind and "METHOD PATH: <fmt...>". */
static void set_error(struct mc_call *c, enum mc_api_error_kind kind, const char *fmt, ...)
{
	char what[WHAT_MAX];
	char text[MC_API_ERROR_TEXT_MAX];
	call_what(c, what, sizeof what);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	c->err.kind = kind;
	strlcpy(c->err.message, what, sizeof c->err.message);
	strlcat(c->err.message, ": ", sizeof c->err.message);
	strlcat(c->err.message, text, sizeof c->err.message);
}

/* libcurl refuses a response header line of CURL_MAX_HTTP_HEADER bytes
 * (7.x: as "out of memory", with no message; 8.6+: CURLE_TOO_LARGE). An
 * out-of-memory after the status line and before any body byte is that. */
static bool header_too_large(struct mc_call *c, CURLcode rc)
{
	long code = 0;
#if CURL_AT_LEAST_VERSION(8, 6, 0)
	if (rc == CURLE_TOO_LARGE && c->resp_len == 0)
		return true;
#endif
	return rc == CURLE_OUT_OF_MEMORY && c->resp_len == 0 &&
	       curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code > 0;
}

/* A curl-level failure: timeout, body or header cap, or anything else
 * (transport). */
static void classify_curl_failure(struct mc_call *c, CURLcode rc)
{
	const char *detail = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		set_error(c, MC_API_ERR_TIMEOUT, "timed out: %s", detail);
	else if (rc == CURLE_FILESIZE_EXCEEDED || (rc == CURLE_WRITE_ERROR && c->resp_too_large))
		set_error(c, MC_API_ERR_TOO_LARGE, "response body larger than the %zu-byte limit",
			  c->api->max_body);
	else if (header_too_large(c, rc))
		set_error(c, MC_API_ERR_TOO_LARGE, "response header line longer than libcurl's "
			  "%d-byte limit (CURL_MAX_HTTP_HEADER)", CURL_MAX_HTTP_HEADER);
	else
		set_error(c, MC_API_ERR_TRANSPORT, "%s", detail);
}

/* Deep copy of a workspace list; 0 or -1 (ENOMEM, dst left empty). */
static int workspace_list_copy(struct mc_workspace_list *dst, const struct mc_workspace_list *src)
{
	dst->n = 0;
	dst->v = NULL;
	if (src->n == 0)
		return 0;
	struct mc_workspace_list l = { 0, calloc(src->n, sizeof *l.v) };
	if (l.v == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		l.n++;
		l.v[i].id = strdup(src->v[i].id);
		l.v[i].name = strdup(src->v[i].name);
		if (l.v[i].id == NULL || l.v[i].name == NULL) {
			mc_workspace_list_clear(&l);
			return -1;
		}
	}
	*dst = l;
	return 0;
}

/* After a 200 on list-workspaces: remember ETag + a copy of the list for
 * the next conditional request. Losing the cache only costs a full answer. */
static void store_ws_cache(struct mc_call *c)
{
	struct mc_api *api = c->api;
	struct curl_header *h = NULL;
	free(api->etag);
	api->etag = NULL;
	mc_workspace_list_clear(&api->ws_cache);
	api->have_ws_cache = false;
	if (workspace_list_copy(&api->ws_cache, &c->ws) < 0)
		return;
	api->have_ws_cache = true;
	if (curl_easy_header(c->easy, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
	    h->value != NULL && h->value[0] != '\0')
		api->etag = strdup(h->value);
}

/* Sets c->err from a decoder's failure: its kind, the field message
 * prefixed with "METHOD PATH: ". */
static void decode_failed(struct mc_call *c, const struct mc_api_error *derr)
{
	set_error(c, derr->kind, "%s", derr->message);
}

int mc_api_seed_workspaces(struct mc_api *api, const char *etag,
			   const struct mc_workspace_list *list)
{
	char *e = strdup(etag);
	struct mc_workspace_list copy = { 0 };
	if (e == NULL || workspace_list_copy(&copy, list) < 0) {
		free(e);
		errno = ENOMEM;
		return -1;
	}
	free(api->etag);
	mc_workspace_list_clear(&api->ws_cache);
	api->etag = e;
	api->ws_cache = copy;
	api->have_ws_cache = true;
	return 0;
}

const char *mc_api_workspaces_etag(const struct mc_api *api)
{
	return api->etag;
}

static void decode_workspaces(struct mc_call *c, long status)
{
	struct mc_api *api = c->api;
	if (status == 304) {
		if (!api->have_ws_cache) {
			set_error(c, MC_API_ERR_HTTP, "304 without a cached workspace list");
			return;
		}
		if (workspace_list_copy(&c->ws, &api->ws_cache) < 0) {
			set_error(c, MC_API_ERR_TRANSPORT, "out of memory copying the workspace list");
			return;
		}
		c->not_modified = true;
		c->have_result = true;
		return;
	}
	struct mc_api_error derr;
	if (mc_decode_workspaces(c->resp != NULL ? c->resp : "", c->resp_len, &c->ws, &derr) < 0) {
		decode_failed(c, &derr);
		return;
	}
	c->have_result = true;
	store_ws_cache(c);
}

/* The answer's media type when it is HTML, without parameters and cut to
 * printable ASCII, into type; false otherwise. */
static bool html_answer(struct mc_call *c, char *type, size_t size)
{
	char *ct = NULL;
	if (curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || ct == NULL)
		return false;
	if (strncasecmp(ct, "text/html", 9) != 0 &&
	    strncasecmp(ct, "application/xhtml+xml", 21) != 0)
		return false;
	size_t n = 0;
	for (; ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && n + 1 < size; n++)
		type[n] = ct[n] > 0x20 && ct[n] < 0x7f ? ct[n] : '?';
	type[n] = '\0';
	return true;
}

/* A 2xx (or list-workspaces' 304): decode what the endpoint needs. The
 * decoders fill a scratch error so c->err changes only on failure. An HTML
 * 2xx is a login page, a proxy's notice or a web front-end's index, never
 * the API's answer: refused on every endpoint, or a deregister would
 * "succeed" against a captive portal and its runtimes stay online. */
static void decode_success(struct mc_call *c, long status)
{
	char type[64];
	if (html_answer(c, type, sizeof type)) {
		set_error(c, MC_API_ERR_DECODE, "expected a JSON answer, got %s", type);
		return;
	}
	const char *body = c->resp != NULL ? c->resp : "";
	struct mc_api_error derr;
	int rc = 0;
	switch (c->ep) {
	case MC_EP_LIST_WORKSPACES:
		decode_workspaces(c, status);
		return;
	case MC_EP_RUNTIME_PROFILES:
		rc = mc_decode_profiles(body, c->resp_len, &c->profiles, &derr);
		break;
	case MC_EP_REGISTER:
		rc = mc_decode_register(body, c->resp_len, c->expected_n, &c->runtimes, &derr);
		break;
	case MC_EP_HEARTBEAT:
		rc = mc_decode_heartbeat(body, c->resp_len, &derr);
		break;
	case MC_EP_RECOVER_ORPHANS:
		rc = mc_decode_recover(body, c->resp_len, &c->orphaned, &c->retried, &derr);
		break;
	case MC_EP_DEREGISTER:
	case MC_EP_RENEW_TOKEN:
		break; /* the body carries nothing the daemon needs */
	}
	if (rc == 0) {
		c->have_result = c->ep == MC_EP_RUNTIME_PROFILES || c->ep == MC_EP_REGISTER;
		return;
	}
	c->orphaned = c->retried = -1;
	decode_failed(c, &derr);
}

/* Appends the first n bytes of src to the NUL-terminated dst, truncating. */
static void append_span(char *dst, size_t size, const char *src, size_t n)
{
	size_t used = strlen(dst);
	if (used + 1 >= size)
		return;
	if (n > size - 1 - used)
		n = size - 1 - used;
	memcpy(dst + used, src, n);
	dst[used + n] = '\0';
}

/* Rewrites every occurrence of the token in the error message: a server
 * that echoes the Authorization header must not put it into our logs. */
static void redact_token(struct mc_call *c)
{
	struct mc_secret *tok = c->api->token;
	if (mc_secret_len(tok) == 0 || c->err.message[0] == '\0')
		return;
	const char *t = mc_secret_open(tok);
	size_t tlen = mc_secret_len(tok);
	char out[MC_API_ERROR_TEXT_MAX] = "";
	const char *p = c->err.message;
	const char *hit;
	bool found = false;
	while ((hit = strstr(p, t)) != NULL) {
		found = true;
		append_span(out, sizeof out, p, (size_t)(hit - p));
		strlcat(out, "[redacted]", sizeof out);
		p = hit + tlen;
	}
	mc_secret_close(tok);
	if (!found)
		return;
	strlcat(out, p, sizeof out);
	strlcpy(c->err.message, out, sizeof c->err.message);
}

/* The transfer ended (rc from libcurl): record timing, classify, decode. */
static void call_finish(struct mc_call *c, CURLcode rc)
{
	long status = 0;
	curl_off_t us = 0;
	long conns = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c->easy, CURLINFO_TOTAL_TIME_T, &us);
	curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &conns);
	c->elapsed_us = (long long)us;
	c->num_connects = conns;
	c->err.kind = MC_API_OK;
	c->err.message[0] = '\0';

	if (rc != CURLE_OK) {
		classify_curl_failure(c, rc);
	} else if (status >= 400) {
		char what[WHAT_MAX];
		call_what(c, what, sizeof what);
		mc_classify_http_error(what, status, c->resp, c->resp_len, &c->err);
	} else if (status == 304 && c->ep == MC_EP_LIST_WORKSPACES) {
		decode_success(c, status);
	} else if (status >= 300) {
		set_error(c, MC_API_ERR_TRANSPORT, "unexpected redirect (status %ld)", status);
	} else if (status < 200) {
		set_error(c, MC_API_ERR_TRANSPORT, "unexpected status %ld", status);
	} else {
		decode_success(c, status);
	}
	c->err.status = status;
	redact_token(c);
	call_detach(c);
	free(c->resp); /* decoded; no need to keep the raw body */
	c->resp = NULL;
	c->resp_len = c->resp_cap = 0;
	c->state = CALL_DONE;
}

int mc_call_perform(struct mc_call *call)
{
	int saved = errno;
	if (call_prepare(call) < 0) {
		if (errno != EBUSY) {
			int e = errno;
			set_error(call, MC_API_ERR_TRANSPORT, "could not start: %s", strerror(e));
			call->state = CALL_DONE;
			errno = e;
		}
		return -1;
	}
	CURLcode rc = curl_easy_perform(call->easy);
	call_finish(call, rc);
	if (call->done_fn != NULL)
		call->done_fn(call, call->done_arg);
	errno = saved;
	return call->err.kind == MC_API_OK ? 0 : -1;
}

/* Hands call to libcurl in multi. 0, or -1 with errno (the call is then
 * idle, its outcome reset). */
static int start_in_multi(struct mc_call *call, CURLM *multi)
{
	if (call_prepare(call) < 0)
		return -1;
	CURLMcode mrc = curl_multi_add_handle(multi, call->easy);
	if (mrc != CURLM_OK) {
		call_detach(call);
		call->state = CALL_IDLE;
		errno = mrc == CURLM_OUT_OF_MEMORY ? ENOMEM : EINVAL;
		return -1;
	}
	call->multi = multi;
	running_link(call);
	return 0;
}

int mc_call_start(struct mc_call *call, CURLM *multi)
{
	if (call == NULL || multi == NULL) {
		errno = EINVAL;
		return -1;
	}
	return start_in_multi(call, multi);
}

int mc_call_enqueue(struct mc_call *call, CURLM *multi)
{
	if (call == NULL || multi == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (call->state == CALL_RUNNING || call->state == CALL_WAITING) {
		errno = EBUSY;
		return -1;
	}
	struct mc_api *api = call->api;
	if (api->on_wire == NULL && api->n_waiting == 0) {
		if (start_in_multi(call, multi) < 0)
			return -1;
		api->on_wire = call;
		return 0;
	}
	reset_outcome(call);
	call->state = CALL_WAITING;
	waiting_link(call);
	call->wait_multi = multi;
	return 0;
}

/* Starts, oldest first, the waiting calls of multi whose api has nothing
 * on the wire. One that cannot start finishes at once with the reason (its
 * callback runs, and may free or enqueue calls: the walk starts over; what
 * it enqueues waits for the next dispatch, so out of memory cannot spin).
 * Returns how many calls finished. */
static int start_waiting(CURLM *multi)
{
	int finished = 0;
	uint64_t upto = waiting_seq;
	struct mc_call *c = waiting_head;
	while (c != NULL) {
		struct mc_call *next = c->wait_next;
		if (c->wait_seq > upto)
			break; /* FIFO: everything after it is newer too */
		if (c->wait_multi != multi || c->api->on_wire != NULL) {
			c = next;
			continue;
		}
		waiting_unlink(c);
		c->state = CALL_IDLE;
		if (start_in_multi(c, multi) == 0) {
			c->api->on_wire = c;
			c = next;
			continue;
		}
		set_error(c, MC_API_ERR_TRANSPORT, "could not start: %s", strerror(errno));
		c->state = CALL_DONE;
		finished++;
		if (c->done_fn != NULL)
			c->done_fn(c, c->done_arg); /* may free c and others */
		c = waiting_head;
	}
	return finished;
}

int mc_multi_dispatch(CURLM *multi)
{
	int finished = 0;
	int left = 0;
	CURLMsg *m;
	/* A callback may free calls or start new ones; removing an easy also
	 * drops its queued message, so the loop never sees a freed call. */
	while ((m = curl_multi_info_read(multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		struct mc_call *c = running_find(easy, multi);
		if (c == NULL)
			continue;
		curl_multi_remove_handle(multi, easy);
		running_unlink(c);
		c->multi = NULL;
		leave_wire(c, multi, true);
		call_finish(c, rc);
		finished++;
		if (c->done_fn != NULL)
			c->done_fn(c, c->done_arg); /* may free c */
	}
	return finished + start_waiting(multi);
}

void mc_call_free(struct mc_call *call)
{
	if (call == NULL)
		return;
	if (call->state == CALL_WAITING)
		waiting_unlink(call); /* never sent */
	if (call->state == CALL_RUNNING) {
		if (call->multi != NULL) {
			leave_wire(call, call->multi, false);
			curl_multi_remove_handle(call->multi, call->easy);
			running_unlink(call);
			call->multi = NULL;
		}
		call_detach(call);
	}
	if (call->easy != NULL)
		curl_easy_cleanup(call->easy);
	reset_outcome(call);
	free(call->path);
	free(call->body);
	free(call->runtime_id);
	call->magic = CALL_DEAD;
	free(call);
}

/* ---- results ---- */

enum mc_api_endpoint mc_call_endpoint(const struct mc_call *call) { return call->ep; }
const struct mc_api_error *mc_call_error(const struct mc_call *call) { return &call->err; }
bool mc_call_ok(const struct mc_call *call)
{
	return call->state == CALL_DONE && call->err.kind == MC_API_OK;
}
long mc_call_status(const struct mc_call *call) { return call->err.status; }
const char *mc_call_runtime_id(const struct mc_call *call) { return call->runtime_id; }
long long mc_call_elapsed_us(const struct mc_call *call) { return call->elapsed_us; }
long mc_call_num_connects(const struct mc_call *call) { return call->num_connects; }
bool mc_call_not_modified(const struct mc_call *call) { return call->not_modified; }
long mc_call_orphaned(const struct mc_call *call) { return call->orphaned; }
long mc_call_retried(const struct mc_call *call) { return call->retried; }

/* Common guard of the take_* accessors. */
static bool can_take(const struct mc_call *call, enum mc_api_endpoint ep)
{
	if (call == NULL || call->ep != ep || !mc_call_ok(call) || !call->have_result) {
		errno = EINVAL;
		return false;
	}
	return true;
}

int mc_call_take_workspaces(struct mc_call *call, struct mc_workspace_list *out)
{
	if (!can_take(call, MC_EP_LIST_WORKSPACES))
		return -1;
	*out = call->ws;
	call->ws.n = 0;
	call->ws.v = NULL;
	call->have_result = false;
	return 0;
}

int mc_call_take_profiles(struct mc_call *call, struct mc_profile_list *out)
{
	if (!can_take(call, MC_EP_RUNTIME_PROFILES))
		return -1;
	*out = call->profiles;
	call->profiles.n = 0;
	call->profiles.v = NULL;
	call->have_result = false;
	return 0;
}

int mc_call_take_runtimes(struct mc_call *call, struct mc_runtime_list *out)
{
	if (!can_take(call, MC_EP_REGISTER))
		return -1;
	*out = call->runtimes;
	call->runtimes.n = 0;
	call->runtimes.v = NULL;
	call->have_result = false;
	return 0;
}
