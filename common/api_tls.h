/* TLS set-up of the API client (api.c), process-wide and built before the
 * supervisor forks: OpenSSL's lazily built library state, and the system
 * trust store, loaded once and shared copy-on-write by every process forked
 * afterwards instead of being parsed again for each connection.
 *
 * The system store is what libcurl loads by default (its compiled-in
 * CAINFO bundle and CAPATH directory, e.g. /etc/ssl/certs/ca-certificates.crt
 * and /etc/ssl/certs): the same certificates, with the same verification
 * flags, so verification is exactly as strict. It is used only for calls
 * without a ca_file and only with libcurl's OpenSSL backend; when it cannot
 * be built, libcurl's per-connection default stays in force.
 *
 * Test builds (MC_TEST_HOOKS) only: MC_TEST_SYSTEM_CA_FILE and
 * MC_TEST_SYSTEM_CA_PATH, when either is set, replace both locations
 * (unset or empty: none), read once by mc_api_tls_init. */
#ifndef MC_API_TLS_H
#define MC_API_TLS_H

#include <stdbool.h>

#include <curl/curl.h>

/* Pre-warms OpenSSL and builds the shared system store (a failure to build
 * it is logged and leaves libcurl's default). Once per process, after
 * curl_global_init. */
void mc_api_tls_init(void);
/* Drops this process's reference to the store (connections still open keep
 * theirs). */
void mc_api_tls_cleanup(void);
/* For a call without a ca_file: makes easy verify with the shared store
 * instead of loading the system's CA files for each new connection. False
 * when libcurl refused an option (the handle is then unusable). */
bool mc_api_tls_use_system_store(CURL *easy);

#endif
