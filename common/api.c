/* The daemon API client object: process-wide initialisation (the wiping
 * allocator), mc_api_new/free/set_token, the share handle, the checks of
 * the server URL and header values, the workspace-list cache. See api.h
 * for the contract, api_int.h for how the client is split into files. */
#include "common/api.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/api_int.h"
#include "common/api_tls.h"

static const char loopback_hosts[] = "127.0.0.1,localhost,::1";

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
void mci_share_reset(struct mc_api *api)
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
	mci_share_reset(api);
}

/* Deep copy of a workspace list; 0 or -1 (ENOMEM, dst left empty). */
int mci_workspace_list_copy(struct mc_workspace_list *dst, const struct mc_workspace_list *src)
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

int mc_api_seed_workspaces(struct mc_api *api, const char *etag,
			   const struct mc_workspace_list *list)
{
	char *e = strdup(etag);
	struct mc_workspace_list copy = { 0 };
	if (e == NULL || mci_workspace_list_copy(&copy, list) < 0) {
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
