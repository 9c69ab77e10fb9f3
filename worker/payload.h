/* Builds a workspace's registration payload from the supervisor's built-in
 * probe result and the server's custom profiles, the way multica does
 * (reference/multica-daemon-behavior.md section 4): built-ins sorted by
 * provider, then each enabled profile in server order, resolved through its
 * path override or PATH; unsupported families and unresolvable commands go
 * to failed_profiles with multica's reason strings; profiles without
 * command_name or protocol_family are skipped with a warning.
 *
 * Bounded: at most MC_MAX_RUNTIMES runtimes (built-ins first); a profile
 * that would be one more goes to failed_profiles with a reason naming the
 * limit, unresolved (a workspace of thousands of profiles costs no PATH
 * search for them). At most MC_MAX_FAILED_PROFILES failed entries, which
 * bounds the REG body; the profiles past that are counted, not sent. */
#ifndef MC_WORKER_PAYLOAD_H
#define MC_WORKER_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "common/api.h"
#include "common/profile.h"
#include "ipc/messages.h"
#include "worker/tracked.h"

#define MC_MAX_FAILED_PROFILES 512

struct mc_payload_rt {
	char *name;          /* with " (device)" */
	char *type;
	char *version;       /* built-in: probed; custom: filled by the version probe */
	char *profile_id;    /* NULL for a built-in */
	char *path;          /* custom: resolved executable */
	size_t n_args;       /* custom: the profile's fixed_args */
	char **args;
	bool version_known;
};

struct mc_payload_failed {
	char *profile_id;
	char *command_name;
	char *reason;
};

struct mc_payload {
	size_t n_rt;
	struct mc_payload_rt *rt;
	size_t n_failed;
	struct mc_payload_failed *failed;
	size_t n_skipped;    /* profiles skipped for a missing command/family */
	size_t n_over_limit; /* profiles past MC_MAX_RUNTIMES (in failed, or unlisted) */
	size_t n_unlisted;   /* failures past MC_MAX_FAILED_PROFILES: not sent at all */
};

/* Fills *out (caller clears it). profiles may be NULL (fetch failed: built-ins
 * only). path_env is the PATH to search (NULL: no PATH lookup). Returns 0 or
 * -1 with errno=ENOMEM. */
int mc_payload_build(struct mc_payload *out, const struct mc_probes *builtins,
		     const struct mc_profile_list *profiles,
		     const struct mc_worker_config *cfg, const char *path_env);
void mc_payload_clear(struct mc_payload *p);
/* Says which limit kept profiles of the n_profiles out of p, if one did
 * (once a minute: every drift check rebuilds the same payload). */
void mc_payload_warn_limits(const struct mc_payload *p, size_t n_profiles);

static inline bool mc_payload_empty(const struct mc_payload *p)
{
	return p->n_rt == 0 && p->n_failed == 0;
}

/* Views the payload as a register request. Allocates *rt_buf and *failed_buf
 * (caller frees both; the strings stay owned by the payload). */
int mc_payload_request(const struct mc_payload *p, const struct mc_worker_config *cfg,
		       struct mc_register_request *req, struct mc_reg_runtime **rt_buf,
		       struct mc_reg_failed **failed_buf);

/* How many ids the worker answers for once a REG of p succeeded: p's
 * runtimes, the n_dropped ids whose DEREG is pending, and the tracked ids
 * p does not register again (they are dropped). The server keys a custom
 * row on its profile_id and a built-in on its provider, so an entry of p
 * keeps the tracked id with the same key. What the next REPORT must hold. */
size_t mc_payload_ids_after(const struct mc_payload *p, const struct mc_tracked *t,
			    size_t n_dropped);

#define MC_PAYLOAD_FP_BYTES 16
/* What this host resolved for the payload (each entry's profile or provider,
 * resolved path, failure reason). A change means a command appeared,
 * vanished or moved on this host even though the server's profiles did not
 * change. */
void mc_payload_fingerprint(const struct mc_payload *p, unsigned char out[MC_PAYLOAD_FP_BYTES]);

/* True when family is one of multica's supported protocol families. */
bool mc_protocol_family_supported(const char *family);

/* Resolves command: an override that is an executable regular file wins;
 * else a command containing '/' is checked as is; else the first executable
 * match in the absolute entries of path_env. Returns a malloc'd path, or NULL
 * with *override_problem set (malloc'd, caller frees) when an override was
 * given but unusable. */
char *mc_resolve_command(const char *command, const char *override_path,
			 const char *path_env, char **override_problem);

#endif
