/* TLS set-up of the API client: the pre-warm and the shared system trust
 * store (api_tls.h). */
#include "common/api_tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/log.h"

/* NULL: calls without a ca_file keep libcurl's default, which parses the
 * system's CA bundle again for every new connection (about 0.9 MB of heap
 * per connection with Debian's 145 certificates). */
static X509_STORE *system_store;

/* OpenSSL builds much of its library state (method tables, error strings,
 * providers) lazily, on the first SSL_CTX. Built here, in the supervisor
 * before it forks, that state is shared copy-on-write by every worker
 * instead of being rebuilt privately in each (about 130 KiB per worker
 * over HTTPS, measured with tests/bench/sv_bench). */
static void prewarm(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_free(ctx);
}

/* The SSL_CTX that CURLOPT_SSL_CTX_FUNCTION hands over is one of ours only
 * when libcurl's TLS backend is the OpenSSL this process links. */
static bool backend_is_our_openssl(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	char want[32];
	snprintf(want, sizeof want, "OpenSSL/%u.", OPENSSL_version_major());
	return v != NULL && v->ssl_version != NULL &&
	       strncmp(v->ssl_version, want, strlen(want)) == 0;
}

/* Copies s into *out (NULL or "" -> NULL). False when out of memory. */
static bool dup_location(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL || s[0] == '\0')
		return true;
	*out = strdup(s);
	return *out != NULL;
}

/* The CA bundle and directory libcurl verifies with when no option names
 * one (its build's --with-ca-bundle / --with-ca-path; CURLINFO_CAINFO and
 * CURLINFO_CAPATH say which). Allocates both (NULL: none); false when they
 * cannot be known, and then *file and *path are NULL. */
static bool curl_default_locations(char **file, char **path)
{
	*file = *path = NULL;
#if CURL_AT_LEAST_VERSION(7, 84, 0)
	CURL *e = curl_easy_init();
	char *f = NULL, *p = NULL;
	bool ok = e != NULL && curl_easy_getinfo(e, CURLINFO_CAINFO, &f) == CURLE_OK &&
		  curl_easy_getinfo(e, CURLINFO_CAPATH, &p) == CURLE_OK &&
		  dup_location(f, file) && dup_location(p, path);
	curl_easy_cleanup(e);
	if (!ok) {
		free(*file);
		free(*path);
		*file = *path = NULL;
	}
	return ok;
#else
	return false;
#endif
}

/* Where the system store comes from; both allocated (NULL: none). */
static bool store_locations(char **file, char **path)
{
#ifdef MC_TEST_HOOKS
	/* Test builds only: a test CA as "the system's", to exercise this path. */
	const char *tf = getenv("MC_TEST_SYSTEM_CA_FILE"), *tp = getenv("MC_TEST_SYSTEM_CA_PATH");
	if (tf != NULL || tp != NULL) {
		if (dup_location(tf, file) && dup_location(tp, path))
			return true;
		free(*file);
		free(*path);
		*file = *path = NULL;
		return false;
	}
#endif
	return curl_default_locations(file, path);
}

/* Allocates a store with file's certificates and a lookup in the hashed
 * directory path (read only for an issuer that is not in file), like
 * libcurl's own loading of the same two. NULL when either fails to load:
 * never a store that trusts less (or more) than libcurl would. */
static X509_STORE *store_new(const char *file, const char *path)
{
	if (file == NULL && path == NULL)
		return NULL;
	X509_STORE *st = X509_STORE_new();
	if (st == NULL)
		return NULL;
	if (X509_STORE_load_locations(st, file, path) != 1) {
		X509_STORE_free(st);
		return NULL;
	}
	/* The first lookup sorts the certificates in place: done here, once,
	 * or every worker would write (and so copy) those shared pages. */
	sk_X509_OBJECT_sort(X509_STORE_get0_objects(st));
	return st;
}

struct store_job {
	const char *file, *path;
	X509_STORE *store;
};

static void *store_thread(void *arg)
{
	struct store_job *job = arg;
	job->store = store_new(job->file, job->path);
	return NULL;
}

/* store_new on a short-lived thread, so that the store and the garbage of
 * parsing it live in a malloc arena of their own (glibc gives a new thread
 * a new arena). Built by this thread, the store would be interleaved with
 * free chunks of the main heap, which every worker's own allocations then
 * reuse, copying each of those shared pages: +0.5 MB of Private_Dirty per
 * process forked afterwards, whether it ever used the store or not
 * (tests/bench/README.md). Falls back to this thread if none can start. */
static X509_STORE *store_new_apart(const char *file, const char *path)
{
	struct store_job job = { file, path, NULL };
	pthread_t t;
	if (pthread_create(&t, NULL, store_thread, &job) != 0)
		return store_new(file, path);
	pthread_join(t, NULL);
	return job.store;
}

void mc_api_tls_init(void)
{
	prewarm();
	if (system_store != NULL || !backend_is_our_openssl())
		return;
	char *file = NULL, *path = NULL;
	if (!store_locations(&file, &path)) {
		mc_log(MC_LOG_WARN, "cannot tell where the system CA store is; "
		       "libcurl loads it for each connection", NULL);
		return;
	}
	system_store = store_new_apart(file, path);
	if (system_store == NULL && (file != NULL || path != NULL))
		mc_log(MC_LOG_WARN, "cannot load the system CA store; libcurl loads it for each "
		       "connection", "file", file != NULL ? file : "none",
		       "path", path != NULL ? path : "none", NULL);
	else if (system_store != NULL)
		mc_log(MC_LOG_DEBUG, "system CA store loaded", "file", file != NULL ? file : "none",
		       "path", path != NULL ? path : "none", "certificates",
		       MC_LOG_NUM(sk_X509_OBJECT_num(X509_STORE_get0_objects(system_store))), NULL);
	free(file);
	free(path);
	/* A failed load leaves errors queued, which libcurl would later
	 * report as the reason of an unrelated TLS failure. */
	ERR_clear_error();
}

void mc_api_tls_cleanup(void)
{
	X509_STORE_free(system_store);
	system_store = NULL;
}

/* CURLOPT_SSL_CTX_FUNCTION: for each new connection, before its handshake.
 * The context's own store is empty (the call names no CA location); it is
 * replaced by the shared one, up-referenced, so freeing the context never
 * frees it. The verification flags libcurl set on the context's store
 * (trusted-first, partial chain) move to the context's parameters, which
 * verification merges in: the same flags as before, and the shared store
 * is never written. Any failure fails the connection. */
static CURLcode install_store(CURL *easy, void *sslctx, void *arg)
{
	(void)easy;
	SSL_CTX *ctx = sslctx;
	X509_STORE *shared = arg;
	if (ctx == NULL || shared == NULL)
		return CURLE_SSL_CONNECT_ERROR;
	X509_STORE *own = SSL_CTX_get_cert_store(ctx);
	unsigned long flags = own != NULL ? X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(own))
			      : 0;
	if (flags != 0 && X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), flags) != 1)
		return CURLE_SSL_CONNECT_ERROR;
	SSL_CTX_set1_cert_store(ctx, shared);
	return CURLE_OK;
}

bool mc_api_tls_use_system_store(CURL *easy)
{
	if (system_store == NULL)
		return true;
	if (curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, install_store) != CURLE_OK)
		return true; /* not available: libcurl's default stays */
	/* No CA location: libcurl then loads nothing itself; without the
	 * callback's store nothing would verify (it fails closed). */
	return curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, (void *)system_store) == CURLE_OK &&
	       curl_easy_setopt(easy, CURLOPT_CAINFO, (char *)NULL) == CURLE_OK &&
	       curl_easy_setopt(easy, CURLOPT_CAPATH, (char *)NULL) == CURLE_OK;
}
