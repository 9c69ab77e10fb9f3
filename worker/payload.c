#include "worker/payload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/log.h"
#include "worker/backend.h"

_Static_assert(MC_MAX_BUILTINS <= MC_MAX_RUNTIMES, "the built-ins always fit a registration");

static const char *const supported_families[] = {
	"claude", "codebuddy", "codex", "copilot", "opencode", "deveco", "openclaw",
	"hermes", "pi", "cursor", "kimi", "reasonix", "dsh", "kiro", "antigravity",
	"qoder", "qoderclicn", "traecli", "grok", "qwen", "qwenpaw", "mcode", "dim",
};

bool mc_protocol_family_supported(const char *family)
{
	for (size_t i = 0; i < sizeof supported_families / sizeof supported_families[0]; i++)
		if (strcmp(family, supported_families[i]) == 0)
			return true;
	return false;
}

static bool is_executable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) &&
	       access(path, X_OK) == 0;
}

/* Searches the absolute directories of path_env; relative and empty entries
 * are ignored so the daemon's working directory never decides what runs. */
static char *search_path(const char *command, const char *path_env)
{
	if (path_env == NULL)
		return NULL;
	const char *p = path_env;
	char candidate[MC_PATH_MAX];
	while (*p) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > 0 && p[0] == '/' &&
		    (size_t)snprintf(candidate, sizeof candidate, "%.*s/%s", (int)len, p,
				     command) < sizeof candidate &&
		    is_executable_file(candidate))
			return strdup(candidate);
		if (end == NULL)
			break;
		p = end + 1;
	}
	return NULL;
}

char *mc_resolve_command(const char *command, const char *override_path,
			 const char *path_env, char **override_problem)
{
	*override_problem = NULL;
	if (override_path != NULL) {
		if (is_executable_file(override_path))
			return strdup(override_path);
		char msg[MC_PATH_MAX + 64];
		snprintf(msg, sizeof msg, "Configured path override is not executable: %s",
			 override_path);
		*override_problem = strdup(msg);
	}
	if (strchr(command, '/') != NULL)
		return is_executable_file(command) ? strdup(command) : NULL;
	return search_path(command, path_env);
}

static char *with_device(const char *name, const char *device)
{
	size_t len = strlen(name) + strlen(device) + 4;
	char *s = malloc(len);
	if (s == NULL)
		return NULL;
	if (device[0])
		snprintf(s, len, "%s (%s)", name, device);
	else
		snprintf(s, len, "%s", name);
	return s;
}

static const char *override_for(const struct mc_worker_config *cfg, const char *profile_id)
{
	for (size_t i = 0; i < cfg->n_overrides; i++)
		if (strcmp(cfg->overrides[i].profile_id, profile_id) == 0)
			return cfg->overrides[i].path;
	return NULL;
}

static int cmp_builtin(const void *a, const void *b)
{
	const struct mc_builtin *x = *(const struct mc_builtin *const *)a;
	const struct mc_builtin *y = *(const struct mc_builtin *const *)b;
	return strcmp(x->provider, y->provider);
}

static int add_builtins(struct mc_payload *out, const struct mc_probes *b,
			const struct mc_worker_config *cfg)
{
	const struct mc_builtin *sorted[MC_MAX_BUILTINS];
	for (size_t i = 0; i < b->n; i++)
		sorted[i] = &b->v[i];
	qsort(sorted, b->n, sizeof sorted[0], cmp_builtin);
	for (size_t i = 0; i < b->n; i++) {
		if (mc_backend_find(sorted[i]->provider) == NULL) {
			/* Registered, its tasks would wait two hours for nobody. */
			mc_log(MC_LOG_WARN, "not registering a provider multicad cannot run tasks for",
			       "provider", sorted[i]->provider, NULL);
			continue;
		}
		struct mc_payload_rt *rt = &out->rt[out->n_rt];
		rt->name = with_device(sorted[i]->name, cfg->device_name);
		rt->type = strdup(sorted[i]->provider);
		rt->version = strdup(sorted[i]->version);
		rt->version_known = true;
		out->n_rt++;
		if (!rt->name || !rt->type || !rt->version)
			return -1;
	}
	return 0;
}

/* A failed entry, or only a count once cap_failed entries are taken. */
static int add_failed(struct mc_payload *out, size_t cap_failed, const struct mc_profile *p,
		      const char *reason)
{
	if (out->n_failed == cap_failed) {
		out->n_unlisted++;
		return 0;
	}
	struct mc_payload_failed *f = &out->failed[out->n_failed++];
	f->profile_id = strdup(p->id);
	f->command_name = strdup(p->command_name);
	f->reason = strdup(reason);
	return (f->profile_id && f->command_name && f->reason) ? 0 : -1;
}

static int add_custom(struct mc_payload *out, const struct mc_profile *p, char *path,
		      const struct mc_worker_config *cfg)
{
	struct mc_payload_rt *rt = &out->rt[out->n_rt++];
	rt->path = path;
	rt->name = with_device(p->display_name, cfg->device_name);
	rt->type = strdup(p->protocol_family);
	rt->version = strdup("");
	rt->profile_id = strdup(p->id);
	if (!rt->name || !rt->type || !rt->version || !rt->profile_id)
		return -1;
	if (p->n_fixed_args > 0) {
		rt->args = calloc(p->n_fixed_args, sizeof *rt->args);
		if (rt->args == NULL)
			return -1;
		for (; rt->n_args < p->n_fixed_args; rt->n_args++)
			if ((rt->args[rt->n_args] = strdup(p->fixed_args[rt->n_args])) == NULL)
				return -1;
	}
	return 0;
}

/* A profile that would be one runtime too many: failed, with a reason the
 * server shows on its row, so that the user sees why it is offline. */
static int add_over_limit(struct mc_payload *out, size_t cap_failed, const struct mc_profile *p)
{
	char reason[160];
	snprintf(reason, sizeof reason,
		 "not registered: multicad registers at most %d runtimes per workspace "
		 "(built-ins included)", MC_MAX_RUNTIMES);
	out->n_over_limit++;
	return add_failed(out, cap_failed, p, reason);
}

/* Under the agent identity (issue 11) a server-defined command is never
 * looked for as the daemon: a bare name is searched on the agent's PATH by
 * the agent's own child (probe and launch: agent_proc.h), a path is taken
 * only when the operator allowed it. An override of the operator's wins,
 * as before. */
static int add_profile_as_agent(struct mc_payload *out, size_t cap_failed,
				const struct mc_profile *p, const struct mc_worker_config *cfg,
				const char *path_env)
{
	const char *ovr = override_for(cfg, p->id);
	char *path = NULL;
	if (ovr != NULL && is_executable_file(ovr)) {
		path = strdup(ovr);
	} else {
		if (ovr != NULL)
			mc_log(MC_LOG_WARN, "profile path override is not executable, using command_name",
			       "profile", p->id, "override", ovr, NULL);
		bool is_path = strchr(p->command_name, '/') != NULL;
		if (is_path && !cfg->allow_profile_paths && ovr == NULL)
			return add_failed(out, cap_failed, p,
					  "command_name is a path (allow_profile_paths = true or "
					  "profile_command.<id> allows it)");
		/* Only a pre-check, so that a command this host does not have goes
		 * to failed_profiles instead of registering a runtime nothing can
		 * serve; what the agent runs is still found by its own child. */
		char *seen = is_path ? (is_executable_file(p->command_name) ? strdup(p->command_name)
									  : NULL)
				     : search_path(p->command_name, path_env);
		if (seen == NULL) {
			char reason[MC_PATH_MAX + 64];
			snprintf(reason, sizeof reason, "command not found on PATH: %s",
				 p->command_name);
			return add_failed(out, cap_failed, p, reason);
		}
		free(seen);
		path = strdup(p->command_name);
	}
	if (path == NULL)
		return -1;
	return add_custom(out, p, path, cfg);
}

/* One profile: skipped, failed, or a runtime entry. */
static int add_profile(struct mc_payload *out, size_t cap_failed, const struct mc_profile *p,
		       const struct mc_worker_config *cfg, const char *path_env)
{
	if (p->command_name[0] == '\0' || p->protocol_family[0] == '\0') {
		mc_log(MC_LOG_WARN, "skipping runtime profile without command_name or protocol_family",
		       "profile", p->id, NULL);
		out->n_skipped++;
		return 0;
	}
	if (!mc_protocol_family_supported(p->protocol_family)) {
		char reason[160];
		snprintf(reason, sizeof reason, "unsupported protocol_family: %s", p->protocol_family);
		return add_failed(out, cap_failed, p, reason);
	}
	if (mc_backend_find(p->protocol_family) == NULL) {
		char reason[200];
		snprintf(reason, sizeof reason,
			 "protocol_family %s has no task backend in multicad (it runs claude and codex)",
			 p->protocol_family);
		return add_failed(out, cap_failed, p, reason);
	}
	if (out->n_rt == MC_MAX_RUNTIMES)
		return add_over_limit(out, cap_failed, p);
	if (cfg->agent_switch)
		return add_profile_as_agent(out, cap_failed, p, cfg, path_env);
	char *problem = NULL;
	char *path = mc_resolve_command(p->command_name, override_for(cfg, p->id), path_env,
					&problem);
	if (path == NULL) {
		char reason[MC_PATH_MAX + 256];
		snprintf(reason, sizeof reason, "%s%scommand not found on PATH: %s",
			 problem ? problem : "", problem ? "; " : "", p->command_name);
		free(problem);
		return add_failed(out, cap_failed, p, reason);
	}
	if (problem != NULL) {
		mc_log(MC_LOG_WARN, "profile path override unusable, using PATH",
		       "profile", p->id, "problem", problem, "path", path, NULL);
		free(problem);
	}
	return add_custom(out, p, path, cfg);
}

int mc_payload_build(struct mc_payload *out, const struct mc_probes *builtins,
		     const struct mc_profile_list *profiles,
		     const struct mc_worker_config *cfg, const char *path_env)
{
	memset(out, 0, sizeof *out);
	size_t n_prof = profiles ? profiles->n : 0;
	size_t cap_rt = builtins->n + n_prof;
	size_t cap_failed = n_prof < MC_MAX_FAILED_PROFILES ? n_prof : MC_MAX_FAILED_PROFILES;
	if (cap_rt > MC_MAX_RUNTIMES)
		cap_rt = MC_MAX_RUNTIMES;
	if (cap_rt > 0 && (out->rt = calloc(cap_rt, sizeof *out->rt)) == NULL)
		goto nomem;
	if (cap_failed > 0 && (out->failed = calloc(cap_failed, sizeof *out->failed)) == NULL)
		goto nomem;
	if (add_builtins(out, builtins, cfg) < 0)
		goto nomem;
	for (size_t i = 0; i < n_prof; i++)
		if (add_profile(out, cap_failed, &profiles->v[i], cfg, path_env) < 0)
			goto nomem;
	return 0;
nomem:
	mc_payload_clear(out);
	errno = ENOMEM;
	return -1;
}

void mc_payload_warn_limits(const struct mc_payload *p, size_t n_profiles)
{
	if (p->n_over_limit == 0 && p->n_unlisted == 0)
		return;
	mc_log_rl(MC_LOG_REPEAT_WINDOW_MS, MC_LOG_WARN,
		  "the workspace has more runtime profiles than one registration holds",
		  "profiles", MC_LOG_NUM(n_profiles), "runtimes", MC_LOG_NUM(p->n_rt),
		  "runtimes_max", MC_LOG_NUM(MC_MAX_RUNTIMES),
		  "over_runtimes_max", MC_LOG_NUM(p->n_over_limit),
		  "failed_profiles_max", MC_LOG_NUM(MC_MAX_FAILED_PROFILES),
		  "not_sent", MC_LOG_NUM(p->n_unlisted), NULL);
}

void mc_payload_clear(struct mc_payload *p)
{
	for (size_t i = 0; i < p->n_rt; i++) {
		struct mc_payload_rt *rt = &p->rt[i];
		free(rt->name);
		free(rt->type);
		free(rt->version);
		free(rt->profile_id);
		free(rt->path);
		for (size_t j = 0; j < rt->n_args; j++)
			free(rt->args[j]);
		free(rt->args);
	}
	for (size_t i = 0; i < p->n_failed; i++) {
		free(p->failed[i].profile_id);
		free(p->failed[i].command_name);
		free(p->failed[i].reason);
	}
	free(p->rt);
	free(p->failed);
	memset(p, 0, sizeof *p);
}

int mc_payload_request(const struct mc_payload *p, const struct mc_worker_config *cfg,
		       struct mc_register_request *req, struct mc_reg_runtime **rt_buf,
		       struct mc_reg_failed **failed_buf)
{
	*rt_buf = NULL;
	*failed_buf = NULL;
	if (p->n_rt > 0 && (*rt_buf = calloc(p->n_rt, sizeof **rt_buf)) == NULL)
		return -1;
	if (p->n_failed > 0 && (*failed_buf = calloc(p->n_failed, sizeof **failed_buf)) == NULL) {
		free(*rt_buf);
		*rt_buf = NULL;
		return -1;
	}
	for (size_t i = 0; i < p->n_rt; i++)
		(*rt_buf)[i] = (struct mc_reg_runtime){ p->rt[i].name, p->rt[i].type,
							p->rt[i].version, p->rt[i].profile_id };
	for (size_t i = 0; i < p->n_failed; i++)
		(*failed_buf)[i] = (struct mc_reg_failed){ p->failed[i].profile_id,
							   p->failed[i].command_name,
							   p->failed[i].reason };
	*req = (struct mc_register_request){
		.workspace_id = cfg->workspace_id, .daemon_id = cfg->daemon_id,
		.device_name = cfg->device_name, .cli_version = cfg->cli_version,
		.n_runtimes = p->n_rt, .runtimes = *rt_buf,
		.n_failed = p->n_failed, .failed = *failed_buf,
	};
	return 0;
}

/* True when an entry of p has tr's key: its profile, or for a built-in
 * its provider. */
static bool payload_keeps(const struct mc_payload *p, const struct mc_tracked_rt *tr)
{
	for (size_t i = 0; i < p->n_rt; i++) {
		const struct mc_payload_rt *rt = &p->rt[i];
		if (tr->profile_id != NULL ? rt->profile_id != NULL &&
						     strcmp(rt->profile_id, tr->profile_id) == 0
					   : rt->profile_id == NULL && strcmp(rt->type, tr->provider) == 0)
			return true;
	}
	return false;
}

size_t mc_payload_ids_after(const struct mc_payload *p, const struct mc_tracked *t,
			    size_t n_dropped)
{
	size_t n = p->n_rt + n_dropped;
	for (size_t i = 0; i < t->n; i++)
		if (!payload_keeps(p, &t->v[i]))
			n++;
	return n;
}

static void fp_field(crypto_generichash_state *st, const char *s)
{
	const char *v = s ? s : "";
	uint32_t len = (uint32_t)strlen(v);
	unsigned char be[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
				(unsigned char)(len >> 8), (unsigned char)len };
	crypto_generichash_update(st, be, sizeof be);
	crypto_generichash_update(st, (const unsigned char *)v, len);
}

/* One entry's digest: a tag and two length-prefixed fields. */
static void fp_entry(unsigned char out[MC_PAYLOAD_FP_BYTES], const char *tag, const char *a,
		     const char *b)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, MC_PAYLOAD_FP_BYTES);
	fp_field(&st, tag);
	fp_field(&st, a);
	fp_field(&st, b);
	crypto_generichash_final(&st, out, MC_PAYLOAD_FP_BYTES);
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, MC_PAYLOAD_FP_BYTES);
}

void mc_payload_fingerprint(const struct mc_payload *p, unsigned char out[MC_PAYLOAD_FP_BYTES])
{
	/* Order-independent: the server may list the same profiles in another
	 * order, which changes nothing on this host. */
	size_t n = p->n_rt + p->n_failed;
	unsigned char (*d)[MC_PAYLOAD_FP_BYTES] = n ? calloc(n, sizeof *d) : NULL;
	memset(out, 0, MC_PAYLOAD_FP_BYTES);
	if (n > 0 && d == NULL)
		return; /* all-zero: compares unequal to any real fingerprint */
	for (size_t i = 0; i < p->n_rt; i++)
		fp_entry(d[i], "rt", p->rt[i].profile_id ? p->rt[i].profile_id : p->rt[i].type,
			 p->rt[i].path);
	for (size_t i = 0; i < p->n_failed; i++)
		fp_entry(d[p->n_rt + i], "failed", p->failed[i].profile_id, p->failed[i].reason);
	if (n > 0)
		qsort(d, n, sizeof *d, cmp_digest);
	crypto_generichash(out, MC_PAYLOAD_FP_BYTES, (const unsigned char *)d,
			   n * MC_PAYLOAD_FP_BYTES, NULL, 0);
	free(d);
}
