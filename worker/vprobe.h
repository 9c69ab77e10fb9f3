/* Version probes of custom-profile commands: `<path> <fixed_args...> --version`
 * run asynchronously (the worker loop never waits on a child), bounded by a
 * timeout, and cached per (resolved path, fixed args) for the worker's life,
 * so a probe never repeats per tick. A failed or timed-out probe caches an
 * empty version, as multica does. */
#ifndef MC_WORKER_VPROBE_H
#define MC_WORKER_VPROBE_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/types.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/identity.h"

#define MC_VPROBE_OUTPUT_MAX 4096

struct mc_vprobe_cache;

/* Allocates an empty cache; free with mc_vprobe_cache_free (kills and reaps
 * running probes). */
struct mc_vprobe_cache *mc_vprobe_cache_new(mc_ms_t timeout_ms);
void mc_vprobe_cache_free(struct mc_vprobe_cache *c);

/* How a worker's probes of server-defined commands run (issue 11): forked,
 * in a process group of their own, as the identity, with the environment
 * env(ctx) builds (freed with mc_agent_env_free after the fork; NULL from
 * it: the probe fails), a bare path searched on that environment's PATH
 * in the child. Without it (the supervisor's built-ins): posix_spawn, the
 * daemon's own environ. */
struct mc_vprobe_runas {
	const struct mc_identity *as;    /* borrowed: must outlive the cache */
	char **(*env)(void *ctx);
	void *ctx;
};
/* Copies r (NULL: back to the daemon's own way). */
void mc_vprobe_set_runas(struct mc_vprobe_cache *c, const struct mc_vprobe_runas *r);

/* True when pid is a probe of this cache that runs (the worker's sweep of
 * adopted children leaves it alone). */
bool mc_vprobe_owns(const struct mc_vprobe_cache *c, pid_t pid);

/* Looks up (path, args). Returns 1 with *version (borrowed, valid until the
 * cache is freed) when known; 0 when a probe is running (one is started if
 * needed); -1 with errno if it could not be started (then the version is
 * cached as ""). */
int mc_vprobe_get(struct mc_vprobe_cache *c, const char *path, char *const *args,
		  size_t n_args, const char **version);

/* True while any probe runs. */
bool mc_vprobe_busy(const struct mc_vprobe_cache *c);

/* Appends the pipes of running probes to fds (at most max); returns how many. */
unsigned mc_vprobe_waitfds(const struct mc_vprobe_cache *c, struct curl_waitfd *fds,
			   unsigned max);
/* Reads output, reaps finished probes and kills the ones past their
 * deadline. Call after every poll. Returns true if any probe finished. */
bool mc_vprobe_service(struct mc_vprobe_cache *c, mc_ms_t now);
/* Earliest deadline of a running probe, or -1. */
mc_ms_t mc_vprobe_next_deadline(const struct mc_vprobe_cache *c);
/* Drops what is known of (path, args), killing its probe if it runs: the
 * next mc_vprobe_get probes again (a retry). */
void mc_vprobe_forget(struct mc_vprobe_cache *c, const char *path, char *const *args,
		      size_t n_args);
/* Kills every running probe (stop). */
void mc_vprobe_abort(struct mc_vprobe_cache *c);

/* The version in a probe's output: the first non-empty line, trimmed,
 * printable ASCII only, at most out_size-1 bytes. Exposed for tests. */
void mc_vprobe_parse(const char *output, size_t len, char *out, size_t out_size);

#endif
