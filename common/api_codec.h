/* Pure JSON codecs of the daemon API: request bodies out, response bodies
 * in, and the classification of error responses. No I/O; unit-tested on
 * their own. Decoders are strict: a missing or mistyped required field is an
 * error whose message names the field path (e.g.
 * "runtime_profiles[1].fixed_args[0]: expected string"); unknown fields are
 * ignored; null is accepted where the server sends it. */
#ifndef MC_API_CODEC_H
#define MC_API_CODEC_H

#include <stddef.h>

#include "common/api.h"

/* Encoders return a malloc'd NUL-terminated JSON string the caller frees,
 * or NULL with errno (ENOMEM, EINVAL). */
char *mc_encode_register(const struct mc_register_request *req);
char *mc_encode_deregister(size_t n, const char *const *runtime_ids);
char *mc_encode_heartbeat(const char *runtime_id);

/* Decoders return 0 (err then says MC_API_OK), or -1 after filling err
 * (kind MC_API_ERR_DECODE, the message naming the offending field). On
 * success the caller owns *out; on failure *out is empty. */
int mc_decode_workspaces(const char *body, size_t len, struct mc_workspace_list *out,
			 struct mc_api_error *err);
int mc_decode_profiles(const char *body, size_t len, struct mc_profile_list *out,
		       struct mc_api_error *err);
/* expected_n: the number of runtimes the request carried (the server answers
 * one per entry, in order); a different count is a decode error, and so is
 * a runtime id that is not a UUID ("runtimes[1].id: not a UUID"). */
int mc_decode_register(const char *body, size_t len, size_t expected_n,
		       struct mc_runtime_list *out, struct mc_api_error *err);
/* Heartbeat ack: must be a JSON object; runtime_gone: true is reported as
 * MC_API_ERR_RUNTIME_NOT_FOUND (returns -1). */
int mc_decode_heartbeat(const char *body, size_t len, struct mc_api_error *err);
int mc_decode_recover(const char *body, size_t len, long *orphaned, long *retried,
		      struct mc_api_error *err);
/* GET .../workspaces/{id}/repos: repos[] objects with a string url
 * (required, non-empty), repos_version a string or absent, settings any
 * JSON value (kept printed) or absent/null. */
int mc_decode_workspace_repos(const char *body, size_t len, struct mc_workspace_repos *out,
			      struct mc_api_error *err);

/* Fills err for an HTTP status >= 400: kind HTTP or RUNTIME_NOT_FOUND, the
 * server's "error" text when the body is {"error": "..."} else the first
 * bytes of the body with control characters replaced; what is "METHOD PATH". */
void mc_classify_http_error(const char *what, long status, const char *body, size_t len,
			    struct mc_api_error *err);

#endif
