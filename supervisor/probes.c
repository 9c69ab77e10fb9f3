/* Built-in runtime probes: once per round, in the supervisor, for every
 * configured provider CLI (`<cli> --version`, in parallel, bounded by the
 * number of providers and a timeout), never N workspaces x M CLIs. The
 * result goes to every worker; a changed result is pushed again and makes
 * the workers re-register. Rounds repeat periodically and on reload.
 *
 * A round works on copies: each slot holds its provider's key, command and
 * display name, so a reload that replaces the configuration cannot pair
 * one provider's path with another's version. A reload that changes
 * [providers] aborts the running round and starts a new one.
 *
 * One slow or failing `--version` must not take a healthy CLI offline in
 * every workspace: a failed probe is retried within the round; a provider
 * whose command still resolves but whose probe fails keeps its last known
 * version until it has failed PROBE_KEEP_ROUNDS rounds in a row; a round
 * with a failure is followed by the next one sooner. A command no longer
 * found on PATH is dropped at once. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <bsd/string.h>

#include "common/log.h"
#include "supervisor/sv.h"
#include "worker/payload.h"

#define PROBE_TIMEOUT_MS         10000
#define PROBE_INTERVAL_MS        (10 * 60 * 1000)
#define PROBE_FAILED_INTERVAL_MS (60 * 1000)   /* after a round with a failure */
#define PROBE_ATTEMPTS           3             /* per provider and round */
#define PROBE_RETRY_DELAY_MS     500
#define PROBE_MIN_ATTEMPT_MS     1000          /* no retry with less of the round left */
#define PROBE_KEEP_ROUNDS        3             /* failed rounds before a version is dropped */

/* One provider in the running round: state x what its probe says now. */
enum slot_state {
	SLOT_RUNNING,       /* an attempt runs */
	SLOT_WAIT_RETRY,    /* the last attempt failed; the next starts at retry_at */
	SLOT_DONE,          /* version found, or no attempt left (version "") */
};

struct probe_slot {
	char key[MC_PROVIDER_MAX];
	char command[MC_PATH_MAX];
	char name[MC_NAME_MAX];
	char *path;                 /* resolved (heap), or NULL: not on PATH */
	enum slot_state state;
	unsigned attempts;
	mc_ms_t retry_at;
	char version[MC_VERSION_MAX];
};

/* What earlier rounds found, per provider (and resolved path). */
struct known {
	char key[MC_PROVIDER_MAX];
	char path[MC_PATH_MAX];
	char version[MC_VERSION_MAX]; /* last known; "" for none */
	unsigned failed_rounds;       /* consecutive */
};

struct timing {
	mc_ms_t timeout, interval, failed_interval;
};

static struct probe_slot slots[MC_MAX_BUILTINS];
static size_t n_slots;
static struct known known[MC_MAX_BUILTINS], known_next[MC_MAX_BUILTINS];
static size_t n_known;
static mc_ms_t round_deadline;
static struct timing round_timing;
static struct mc_src probe_src = { SRC_PROBE_PIPE, NULL };

static mc_ms_t min_ms(mc_ms_t a, mc_ms_t b)
{
	return a < b ? a : b;
}

/* Test builds only: MC_TEST_PROBE_TIMING="TIMEOUT_MS,FAILED_INTERVAL_MS"
 * shortens the probe timeout and the interval after a failed round, so
 * tests need not wait minutes. Production has no such knob. */
static struct timing get_timing(void)
{
	struct timing t = { PROBE_TIMEOUT_MS, PROBE_INTERVAL_MS, PROBE_FAILED_INTERVAL_MS };
#ifdef MC_TEST_HOOKS
	const char *s = getenv("MC_TEST_PROBE_TIMING");
	if (s != NULL) {
		char *end;
		errno = 0;
		long a = strtol(s, &end, 10);
		long b = *end == ',' ? strtol(end + 1, &end, 10) : -1;
		if (errno == 0 && *end == '\0' && a >= 100 && a <= PROBE_TIMEOUT_MS && b >= 100 &&
		    b <= PROBE_FAILED_INTERVAL_MS) {
			t.timeout = a;
			t.failed_interval = b;
		}
	}
#endif
	return t;
}

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
		mc_sv_epoll_add(sv, fds[i].fd, EPOLLIN, &probe_src); /* EEXIST: already watched */
}

/* Kills what still runs and forgets the round's slots. */
static void end_round(struct mc_sv *sv)
{
	mc_vprobe_cache_free(sv->probe_round);
	sv->probe_round = NULL;
	clear_slots();
}

/* True when the running round probes exactly the configured providers. */
static bool round_matches_config(const struct mc_sv *sv)
{
	if (n_slots != sv->cfg.n_providers)
		return false;
	for (size_t i = 0; i < n_slots; i++)
		if (strcmp(slots[i].key, sv->cfg.providers[i].key) != 0 ||
		    strcmp(slots[i].command, sv->cfg.providers[i].command) != 0)
			return false;
	return true;
}

static const struct known *find_known(const char *key, const char *path)
{
	for (size_t i = 0; i < n_known; i++)
		if (strcmp(known[i].key, key) == 0 && strcmp(known[i].path, path) == 0)
			return &known[i];
	return NULL;
}

/* The version to publish for a resolved slot, and what to remember of it
 * (nk). NULL: none (never seen working, or failed too many rounds). */
static const char *settle_slot(const struct probe_slot *s, struct known *nk)
{
	const struct known *k = find_known(s->key, s->path);
	strlcpy(nk->key, s->key, sizeof nk->key);
	strlcpy(nk->path, s->path, sizeof nk->path);
	if (s->state == SLOT_DONE && s->version[0] != '\0') {
		strlcpy(nk->version, s->version, sizeof nk->version);
		nk->failed_rounds = 0;
		return nk->version;
	}
	nk->failed_rounds = (k != NULL ? k->failed_rounds : 0) + 1;
	nk->version[0] = '\0';
	if (k == NULL || k->version[0] == '\0')
		return NULL; /* unavailable, as in multica: never seen working */
	if (nk->failed_rounds < PROBE_KEEP_ROUNDS) {
		strlcpy(nk->version, k->version, sizeof nk->version);
		mc_log(MC_LOG_WARN, "version probe failed; keeping the last known version",
		       "provider", s->key, "version", nk->version,
		       "failed_rounds", MC_LOG_NUM(nk->failed_rounds), NULL);
		return nk->version;
	}
	mc_log(MC_LOG_WARN, "version probe failed too many rounds in a row; dropping it",
	       "provider", s->key, "failed_rounds", MC_LOG_NUM(nk->failed_rounds), NULL);
	return NULL;
}

/* Builds the round's result into out and the new memory of providers;
 * returns true if any resolved provider failed its probe. */
static bool collect(struct mc_probes *out)
{
	bool failed = false;
	size_t n_next = 0;
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n_slots; i++) {
		const struct probe_slot *s = &slots[i];
		if (s->path == NULL)
			continue; /* no longer on PATH: dropped at once */
		struct known *nk = &known_next[n_next++];
		const char *v = settle_slot(s, nk);
		failed = failed || nk->failed_rounds > 0;
		if (v == NULL)
			continue;
		struct mc_builtin *b = &out->v[out->n++];
		strlcpy(b->provider, s->key, sizeof b->provider);
		strlcpy(b->name, s->name, sizeof b->name);
		strlcpy(b->version, v, sizeof b->version);
		/* The executable the worker launches (PROBES carries it when it can). */
		if (mc_ipc_builtin_path_ok(s->path))
			strlcpy(b->path, s->path, sizeof b->path);
	}
	memcpy(known, known_next, n_next * sizeof known[0]);
	n_known = n_next;
	return failed;
}

static bool same(const struct mc_probes *a, const struct mc_probes *b)
{
	return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof a->v[0]) == 0;
}

static void finish_round(struct mc_sv *sv)
{
	struct mc_probes p;
	bool failed = collect(&p);
	end_round(sv);
	char err[256];
	if (mc_ipc_probes_check(&p, err, sizeof err) < 0) {
		/* Never sent: the workers would take it for a protocol violation. */
		mc_log(MC_LOG_ERROR, "built-in probe result is invalid; keeping the last one",
		       "error", err, NULL);
		p = sv->probes;
	}
	bool first = !sv->probes_done;
	bool changed = first || !same(&p, &sv->probes);
	sv->probes = p;
	sv->probes_done = true;
	mc_timerq_arm(&sv->timers, &sv->probe_timer,
		      mc_now_ms() + (failed ? round_timing.failed_interval : round_timing.interval));
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

/* Starts the next attempt of s; a probe that cannot start reads as a
 * failed one at the next step. */
static void start_attempt(struct mc_sv *sv, struct probe_slot *s)
{
	const char *v = NULL;
	mc_vprobe_forget(sv->probe_round, s->path, NULL, 0);
	s->attempts++;
	s->state = SLOT_RUNNING;
	mc_vprobe_get(sv->probe_round, s->path, NULL, 0, &v);
}

/* Moves s on at now; returns true while it is not done, lowering *wake to
 * its next deadline. */
static bool step_slot(struct mc_sv *sv, struct probe_slot *s, mc_ms_t now, mc_ms_t *wake)
{
	if (s->state == SLOT_DONE)
		return false;
	if (s->state == SLOT_WAIT_RETRY) {
		if (now < s->retry_at) {
			*wake = min_ms(*wake, s->retry_at);
			return true;
		}
		start_attempt(sv, s);
	}
	const char *v = NULL;
	if (mc_vprobe_get(sv->probe_round, s->path, NULL, 0, &v) == 0)
		return true; /* running */
	if (v != NULL && v[0] != '\0') {
		strlcpy(s->version, v, sizeof s->version);
		s->state = SLOT_DONE;
		return false;
	}
	if (s->attempts < PROBE_ATTEMPTS &&
	    now + PROBE_RETRY_DELAY_MS + PROBE_MIN_ATTEMPT_MS <= round_deadline) {
		s->state = SLOT_WAIT_RETRY;
		s->retry_at = now + PROBE_RETRY_DELAY_MS;
		*wake = min_ms(*wake, s->retry_at);
		mc_log(MC_LOG_INFO, "version probe failed; retrying", "provider", s->key,
		       "attempt", MC_LOG_NUM(s->attempts), NULL);
		return true;
	}
	s->version[0] = '\0';
	s->state = SLOT_DONE;
	return false;
}

/* Reads, reaps and retries; ends the round once every slot is done or its
 * deadline has passed (what still runs then is killed). */
static void advance(struct mc_sv *sv)
{
	mc_ms_t now = mc_now_ms();
	mc_vprobe_service(sv->probe_round, now); /* also kills overdue probes */
	mc_ms_t wake = round_deadline;
	bool pending = false;
	for (size_t i = 0; i < n_slots; i++)
		if (step_slot(sv, &slots[i], now, &wake))
			pending = true;
	if (!pending || now >= round_deadline) {
		finish_round(sv);
		return;
	}
	watch_pipes(sv);
	mc_timerq_arm(&sv->timers, &sv->probe_timer, wake);
}

void mc_probes_start_round(struct mc_sv *sv)
{
	if (sv->probe_round != NULL) {
		if (round_matches_config(sv))
			return; /* one round at a time; the running one will do */
		mc_log(MC_LOG_INFO, "providers changed during a probe round; probing again", NULL);
		end_round(sv);
	}
	round_timing = get_timing();
	sv->probe_round = mc_vprobe_cache_new(round_timing.timeout);
	if (sv->probe_round == NULL) {
		mc_timerq_arm(&sv->timers, &sv->probe_timer, mc_now_ms() + 1000);
		return;
	}
	round_deadline = mc_now_ms() + round_timing.timeout + 100;
	const char *path_env = getenv("PATH");
	for (size_t i = 0; i < sv->cfg.n_providers && i < MC_MAX_BUILTINS; i++) {
		const struct mc_provider *pr = &sv->cfg.providers[i];
		struct probe_slot *s = &slots[n_slots++];
		char *problem = NULL;
		memset(s, 0, sizeof *s);
		strlcpy(s->key, pr->key, sizeof s->key);
		strlcpy(s->command, pr->command, sizeof s->command);
		display_name(s->key, s->name, sizeof s->name);
		s->path = mc_resolve_command(pr->command, NULL, path_env, &problem);
		free(problem);
		s->state = SLOT_DONE;
		if (s->path != NULL)
			start_attempt(sv, s);
	}
	advance(sv);
}

void mc_probes_on_pipe(struct mc_sv *sv)
{
	if (sv->probe_round != NULL)
		advance(sv);
}

void mc_probes_on_timer(struct mc_sv *sv)
{
	if (sv->probe_round == NULL)
		mc_probes_start_round(sv);
	else
		advance(sv);
}

void mc_probes_free(struct mc_sv *sv)
{
	end_round(sv);
	n_known = 0;
}
