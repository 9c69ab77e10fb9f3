/* Built-in runtime probes: once per round, in the supervisor, for every
 * configured provider CLI (`<cli> --version`, in parallel, bounded by the
 * number of providers and a timeout), never N workspaces x M CLIs. The
 * result goes to every worker; a changed result is pushed again and makes
 * the workers re-register. Rounds repeat periodically and on reload. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <bsd/string.h>

#include "common/log.h"
#include "supervisor/sv.h"
#include "worker/payload.h"

#define PROBE_TIMEOUT_MS   10000
#define PROBE_INTERVAL_MS  (10 * 60 * 1000)

struct probe_slot {
	const struct mc_provider *provider;
	char *path;                 /* resolved, or NULL: not installed */
};

static struct probe_slot slots[MC_MAX_BUILTINS];
static size_t n_slots;
static struct mc_src probe_src = { SRC_PROBE_PIPE, NULL };

static void clear_slots(void)
{
	for (size_t i = 0; i < n_slots; i++)
		free(slots[i].path);
	n_slots = 0;
}

/* "claude" -> "Claude"; multica's display names for the odd ones. */
static void display_name(const char *provider, char *out, size_t n)
{
	static const struct { const char *key, *name; } names[] = {
		{ "qwen", "Qwen Code" }, { "qoderclicn", "Qoder CN" }, { "opencode", "OpenCode" },
		{ "codebuddy", "CodeBuddy" }, { "deveco", "DevEco" }, { "openclaw", "OpenClaw" },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(provider, names[i].key) == 0) {
			strlcpy(out, names[i].name, n);
			return;
		}
	}
	strlcpy(out, provider, n);
	out[0] = (char)toupper((unsigned char)out[0]);
}

static void watch_pipes(struct mc_sv *sv)
{
	struct curl_waitfd fds[MC_MAX_BUILTINS];
	unsigned k = mc_vprobe_waitfds(sv->probe_round, fds, MC_MAX_BUILTINS);
	for (unsigned i = 0; i < k; i++)
		mc_sv_epoll_add(sv, fds[i].fd, EPOLLIN, &probe_src);
}

/* Collects what is known; returns true when every probe has answered. */
static bool collect(struct mc_sv *sv, struct mc_probes *out)
{
	memset(out, 0, sizeof *out);
	bool all = true;
	for (size_t i = 0; i < n_slots; i++) {
		if (slots[i].path == NULL)
			continue;
		const char *v = NULL;
		int rc = mc_vprobe_get(sv->probe_round, slots[i].path, NULL, 0, &v);
		if (rc == 0) {
			all = false;
			continue;
		}
		if (v == NULL || v[0] == '\0')
			continue; /* unreadable version: unavailable, as in multica */
		struct mc_builtin *b = &out->v[out->n++];
		strlcpy(b->provider, slots[i].provider->key, sizeof b->provider);
		display_name(b->provider, b->name, sizeof b->name);
		strlcpy(b->version, v, sizeof b->version);
	}
	return all;
}

static bool same(const struct mc_probes *a, const struct mc_probes *b)
{
	return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof a->v[0]) == 0;
}

static void finish_round(struct mc_sv *sv)
{
	struct mc_probes p;
	collect(sv, &p);
	mc_vprobe_cache_free(sv->probe_round); /* kills what still runs */
	sv->probe_round = NULL;
	clear_slots();
	bool first = !sv->probes_done;
	bool changed = first || !same(&p, &sv->probes);
	sv->probes = p;
	sv->probes_done = true;
	mc_timerq_arm(&sv->timers, &sv->probe_timer, mc_now_ms() + PROBE_INTERVAL_MS);
	if (changed)
		mc_log(MC_LOG_INFO, "built-in runtimes probed", "found", MC_LOG_NUM(p.n), NULL);
	if (first) {
		mc_wk_schedule_queued(sv);
		return;
	}
	if (changed) {
		struct mc_wk *wk;
		RB_FOREACH(wk, mc_wk_tree, &sv->workers)
			mc_wk_push_probes(sv, wk);
	}
}

void mc_probes_start_round(struct mc_sv *sv)
{
	if (sv->probe_round != NULL)
		return; /* one round at a time; the running one will do */
	sv->probe_round = mc_vprobe_cache_new(PROBE_TIMEOUT_MS);
	if (sv->probe_round == NULL) {
		mc_timerq_arm(&sv->timers, &sv->probe_timer, mc_now_ms() + 1000);
		return;
	}
	clear_slots();
	const char *path_env = getenv("PATH");
	for (size_t i = 0; i < sv->cfg.n_providers; i++) {
		char *problem = NULL;
		slots[n_slots].provider = &sv->cfg.providers[i];
		slots[n_slots].path = mc_resolve_command(sv->cfg.providers[i].command, NULL, path_env,
							 &problem);
		free(problem);
		n_slots++;
	}
	struct mc_probes unused;
	if (collect(sv, &unused)) { /* nothing to wait for */
		finish_round(sv);
		return;
	}
	watch_pipes(sv);
	mc_timerq_arm(&sv->timers, &sv->probe_timer, mc_now_ms() + PROBE_TIMEOUT_MS + 100);
}

void mc_probes_on_pipe(struct mc_sv *sv)
{
	if (sv->probe_round == NULL)
		return;
	mc_vprobe_service(sv->probe_round, mc_now_ms());
	struct mc_probes unused;
	if (!mc_vprobe_busy(sv->probe_round) && collect(sv, &unused))
		finish_round(sv);
}

void mc_probes_on_timer(struct mc_sv *sv)
{
	if (sv->probe_round == NULL) {
		mc_probes_start_round(sv);
		return;
	}
	mc_vprobe_service(sv->probe_round, mc_now_ms()); /* kills overdue probes */
	finish_round(sv);
}

void mc_probes_free(struct mc_sv *sv)
{
	mc_vprobe_cache_free(sv->probe_round);
	sv->probe_round = NULL;
	clear_slots();
}
