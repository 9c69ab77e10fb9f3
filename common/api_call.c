/* Building daemon API calls: the easy handle and its options, paths,
 * bodies, the constructors of api.h and the request headers. See
 * api_int.h for how the client is split into files. */
#include "common/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/api_codec.h"
#include "common/api_int.h"
#include "common/api_tls.h"

static const char bearer_prefix[] = "Authorization: Bearer ";

/* ---- building a call ---- */

size_t mci_call_max_body(const struct mc_call *c)
{
	return c->max_body > 0 ? c->max_body : c->api->max_body;
}

void mci_resp_release(struct mc_call *c)
{
	if (c->resp != NULL)
		explicit_bzero(c->resp, c->resp_cap);
	free(c->resp);
	c->resp = NULL;
	c->resp_len = c->resp_cap = 0;
}

/* Grows the response buffer to at least need bytes (capped at max + 1).
 * Never realloc: a moved block would leave an unwiped copy of what was
 * read so far (a claim's body holds task tokens). false on ENOMEM. */
static bool resp_grow(struct mc_call *c, size_t need, size_t max)
{
	size_t cap = c->resp_cap > 0 ? c->resp_cap : BODY_INITIAL_CAP;
	while (cap < need)
		cap *= 2;
	if (cap > max + 1)
		cap = max + 1;
	char *p = malloc(cap);
	if (p == NULL)
		return false;
	size_t len = c->resp_len;
	if (c->resp != NULL)
		memcpy(p, c->resp, len + 1);
	mci_resp_release(c);
	c->resp = p;
	c->resp_len = len;
	c->resp_cap = cap;
	return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct mc_call *c = ud;
	size_t n = size * nmemb;
	size_t max = mci_call_max_body(c);
	if (n > max - c->resp_len) {
		c->resp_too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	size_t need = c->resp_len + n + 1;
	if (need > c->resp_cap && !resp_grow(c, need, max))
		return 0;
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
struct mc_call *mci_call_alloc(struct mc_api *api, enum mc_api_endpoint ep,
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
	c->lane = &api->lane;
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
int mci_call_set_path(struct mc_call *c, const char *prefix, const char *id,
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
int mci_call_set_body(struct mc_call *c, char *json)
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
char *mci_empty_object_json(void)
{
	cJSON *o = cJSON_CreateObject();
	char *s = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

/* Finishes a constructor: on failure frees the call, keeping errno. */
struct mc_call *mci_call_built(struct mc_call *c, bool ok)
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
	struct mc_call *c = mci_call_alloc(api, MC_EP_LIST_WORKSPACES, "GET");
	if (c == NULL)
		return NULL;
	return mci_call_built(c, mci_call_set_path(c, "/api/daemon/workspaces", NULL, "") == 0 &&
			      mci_call_set_body(c, NULL) == 0);
}

struct mc_call *mc_call_runtime_profiles(struct mc_api *api, const char *workspace_id)
{
	if (workspace_id == NULL || workspace_id[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	struct mc_call *c = mci_call_alloc(api, MC_EP_RUNTIME_PROFILES, "GET");
	if (c == NULL)
		return NULL;
	return mci_call_built(c, mci_call_set_path(c, "/api/daemon/workspaces/", workspace_id,
						   "/runtime-profiles") == 0 &&
			      mci_call_set_body(c, NULL) == 0);
}

/* Common tail of the POST constructors: json is taken (NULL = encoding
 * failed, errno set by the encoder). */
struct mc_call *mci_post_call(struct mc_api *api, enum mc_api_endpoint ep,
			      const char *prefix, const char *id, const char *suffix,
			      char *json)
{
	if (json == NULL)
		return NULL;
	struct mc_call *c = mci_call_alloc(api, ep, "POST");
	if (c == NULL) {
		free(json);
		return NULL;
	}
	if (mci_call_set_body(c, json) < 0)
		return mci_call_built(c, false);
	return mci_call_built(c, mci_call_set_path(c, prefix, id, suffix) == 0);
}

struct mc_call *mc_call_register(struct mc_api *api, const struct mc_register_request *req)
{
	struct mc_call *c = mci_post_call(api, MC_EP_REGISTER, "/api/daemon/register", NULL, "",
					  mc_encode_register(req));
	if (c != NULL)
		c->expected_n = req->n_runtimes;
	return c;
}

struct mc_call *mc_call_deregister(struct mc_api *api, size_t n, const char *const *runtime_ids)
{
	return mci_post_call(api, MC_EP_DEREGISTER, "/api/daemon/deregister", NULL, "",
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
	return with_runtime_id(mci_post_call(api, MC_EP_HEARTBEAT, "/api/daemon/heartbeat", NULL, "",
					     mc_encode_heartbeat(runtime_id)),
			       runtime_id);
}

struct mc_call *mc_call_recover_orphans(struct mc_api *api, const char *runtime_id)
{
	if (runtime_id == NULL || runtime_id[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	return with_runtime_id(mci_post_call(api, MC_EP_RECOVER_ORPHANS,
					     "/api/daemon/runtimes/", runtime_id, "/recover-orphans",
					     mci_empty_object_json()),
			       runtime_id);
}

struct mc_call *mc_call_renew_token(struct mc_api *api)
{
	return mci_post_call(api, MC_EP_RENEW_TOKEN, "/api/tokens/current/renew", NULL, "",
			     mci_empty_object_json());
}

struct mc_call *mc_call_workspace_repos(struct mc_api *api, const char *workspace_id)
{
	if (workspace_id == NULL || workspace_id[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	struct mc_call *c = mci_call_alloc(api, MC_EP_WORKSPACE_REPOS, "GET");
	if (c == NULL)
		return NULL;
	return mci_call_built(c, mci_call_set_path(c, "/api/daemon/workspaces/", workspace_id,
						   "/repos") == 0 &&
			      mci_call_set_body(c, NULL) == 0);
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

/* ---- headers ---- */

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
struct curl_slist *mci_build_headers(struct mc_call *c)
{
	struct mc_api *api = c->api;
	struct curl_slist *l = NULL, *n;
#define ADD(expr) do { n = (expr); if (n == NULL) goto fail; l = n; } while (0)
	ADD(append_auth(l, api->token));
	ADD(append_header(l, "X-Client-Platform", "daemon"));
	ADD(append_header(l, "X-Client-Version", api->client_version));
	ADD(append_header(l, "X-Client-OS", "linux"));
	ADD(append_header(l, "X-Client-Capabilities", MC_CLIENT_CAPABILITIES));
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
