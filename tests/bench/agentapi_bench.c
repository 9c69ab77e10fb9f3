/* agentapi_bench: issue 15's figures against the agent-api process as the
 * supervisor runs it (tests/support/agentapi_harness.h: mc_agentapi_main
 * forked on a socketpair and a listening socket on 127.0.0.1:0, the real
 * repo cache), with multica-fakeplane serving GET /api/daemon/workspaces/
 * {id}/repos, and a client that sends what the multica CLI sends
 * (reference multica-local-api.md 4.1: retry_busy, and on 503 +
 * X-Multica-Retryable the wait of Retry-After, then again).
 *
 *   [1] GET /health while 20 checkouts of one repository run
 *   [2] a warm checkout (cache fresh, linked worktree) of a 10k-file
 *       repository, beside `git worktree add` alone on the same disk
 *   [3] 20 tasks checking out one repository at once: cold cache, then a
 *       cache gone stale (> 5 s since its fetch); all must succeed, and
 *       the git processes are counted from GIT_TRACE (one fetch wanted)
 *
 * The repository is made here: --files small files (10000) in 100 dirs,
 * one commit, repacked, served as file:// from a bare repository. Lines
 * starting with SUMMARY repeat the figures; --csv DIR appends rows of
 * proto "agentapi" to DIR/figures.csv. Exit 0 when every phase ran (the
 * goals are targets, not asserts). Everything it starts is stopped and
 * its temp dir removed. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tests/support/agentapi_harness.h"
#include "tests/support/fakeplane_proc.h"

#define WS1 "0198c3a2-7b4e-7c1d-9f3a-0000000000a1"
#define WS2 "0198c3a2-7b4e-7c1d-9f3a-0000000000a2"
#define AGENT "Bench Agent"
#define MAX_TASKS 64
#define HEALTH_MAX 200000
#define CLI_BUDGET_S 300.0

extern char **environ;

struct opts {
	const char *csv, *tmp;
	int files, tasks, warm;
	bool skip[4];
};

struct rig {
	char root[256], ws_root[512], trace[512], url[600];
	struct fp_proc fp;
	struct ah h;
	bool fp_up, ah_up;
	int next_task;
	FILE *csv;
};

/* One task's checkout as the CLI runs it. */
struct job {
	const struct ah *h;
	char task_id[64], token[64], workdir[1024], ws[64];
	const char *url;
	long status;
	int busy;            /* 503 repo-busy answers retried */
	double secs;         /* all attempts */
	char body[512];      /* the last answer's body (head) */
	atomic_int *done;
};

/* ---- small helpers ---- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static int run(const char *const *argv)
{
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int mkdir_p(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile of v[0..n) (sorted here), 0 when n == 0. */
static double pct(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_d);
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void figure(struct rig *r, int n, const char *name, double v, const char *unit)
{
	if (r->csv != NULL)
		fprintf(r->csv, "%d,agentapi,%s,%.3f,%s\n", n, name, v, unit);
}

/* Lines of the git trace from byte offset `from` that contain what. */
static int trace_count(const struct rig *r, long from, const char *what)
{
	FILE *f = fopen(r->trace, "re");
	if (f == NULL)
		return 0;
	char line[4096];
	int n = 0;
	if (fseek(f, from, SEEK_SET) == 0)
		while (fgets(line, sizeof line, f) != NULL)
			n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

static long trace_size(const struct rig *r)
{
	struct stat st;
	return stat(r->trace, &st) == 0 ? (long)st.st_size : 0;
}

/* ---- the repository ---- */

static int write_files(const char *seed, int files)
{
	char p[PATH_MAX], text[64];
	for (int i = 0; i < files; i++) {
		if (i % 100 == 0) {
			snprintf(p, sizeof p, "%s/d%03d", seed, i / 100);
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -1;
		}
		snprintf(p, sizeof p, "%s/d%03d/f%05d.txt", seed, i / 100, i);
		FILE *f = fopen(p, "we");
		if (f == NULL)
			return -1;
		int n = snprintf(text, sizeof text, "file %d of the bench repository\n", i);
		size_t w = fwrite(text, 1, (size_t)n, f);
		if (fclose(f) != 0 || w != (size_t)n)
			return -1;
	}
	return 0;
}

static int make_repo(struct rig *r, int files)
{
	char seed[512], bare[512];
	snprintf(seed, sizeof seed, "%s/seed", r->root);
	snprintf(bare, sizeof bare, "%s/origin/bench-repo.git", r->root);
	const char *init[] = { "git", "init", "-q", "-b", "main", seed, NULL };
	const char *add[] = { "git", "-C", seed, "add", "-A", NULL };
	const char *commit[] = { "git", "-C", seed, "-c", "user.name=bench", "-c",
				 "user.email=bench@localhost", "commit", "-q", "-m", "one", NULL };
	const char *clone[] = { "git", "clone", "-q", "--bare", "--no-local", seed, bare, NULL };
	const char *repack[] = { "git", "-C", bare, "repack", "-adq", NULL };
	double t0 = now_s();
	if (run(init) != 0 || write_files(seed, files) < 0 || run(add) != 0 || run(commit) != 0 ||
	    run(clone) != 0 || run(repack) != 0)
		return -1;
	snprintf(r->url, sizeof r->url, "file://%s", bare);
	fprintf(stderr, "bench: repository of %d files made in %.1f s (%s)\n", files,
		now_s() - t0, r->url);
	return 0;
}

/* ---- the rig ---- */

static int repos_fault(struct rig *r, const char *ws)
{
	char fault[4096];
	snprintf(fault, sizeof fault,
		 "{\"method\":\"GET\",\"path_prefix\":\"/api/daemon/workspaces/%s/repos\","
		 "\"status\":200,\"count\":-1,\"body\":\"{\\\"workspace_id\\\":\\\"%s\\\","
		 "\\\"repos\\\":[{\\\"url\\\":\\\"%s\\\"}],\\\"repos_version\\\":\\\"v1\\\"}\"}",
		 ws, ws, r->url);
	return fp_fault(&r->fp, fault) == 200 ? 0 : -1;
}

static int rig_start(struct rig *r, const struct opts *o)
{
	snprintf(r->root, sizeof r->root, "%s/mc-agentapi-bench-XXXXXX", o->tmp);
	if (mkdtemp(r->root) == NULL)
		return -1;
	char home[512];
	snprintf(home, sizeof home, "%s/home", r->root);
	snprintf(r->ws_root, sizeof r->ws_root, "%s/ws", r->root);
	snprintf(r->trace, sizeof r->trace, "%s/git-trace.log", r->root);
	if (mkdir_p(home) < 0 || mkdir_p(r->ws_root) < 0)
		return -1;
	setenv("HOME", home, 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	if (make_repo(r, o->files) < 0)
		return -1;
	setenv("GIT_TRACE", r->trace, 1); /* inherited by the agent-api process and its git */
	if (fp_start(&r->fp, NULL, NULL) < 0)
		return -1;
	r->fp_up = true;
	if (repos_fault(r, WS1) < 0 || repos_fault(r, WS2) < 0)
		return -1;
	struct ah_opts ao = { .server_url = r->fp.url, .token = "mul_bench_daemon",
			      .workspaces_root = r->ws_root };
	if (ah_start(&r->h, &ao) < 0)
		return -1;
	r->ah_up = true;
	ah_pump(&r->h, 200);
	return 0;
}

static void rig_stop(struct rig *r)
{
	if (r->ah_up) {
		int code = ah_stop(&r->h, 30000);
		fprintf(stderr, "bench: agent-api exited %d\n", code);
		ah_free(&r->h);
	}
	if (r->fp_up)
		fp_stop(&r->fp);
	unsetenv("GIT_TRACE");
	if (r->root[0] != '\0') {
		const char *rm[] = { "rm", "-rf", r->root, NULL };
		run(rm);
	}
}

/* A new running task of ws with its work dir, into j. */
static int new_task(struct rig *r, const char *ws, struct job *j)
{
	int i = ++r->next_task;
	memset(j, 0, sizeof *j);
	snprintf(j->task_id, sizeof j->task_id, "0198c3a2-7b4e-7c1d-9f3a-%012d", i);
	snprintf(j->token, sizeof j->token, "mat_bench_task_%d", i);
	snprintf(j->workdir, sizeof j->workdir, "%s/%s/%012d/workdir", r->ws_root, ws, i);
	snprintf(j->ws, sizeof j->ws, "%s", ws);
	j->h = &r->h;
	j->url = r->url;
	if (mkdir_p(j->workdir) < 0)
		return -1;
	return ah_task_running(&r->h, j->task_id, ws, AGENT, j->workdir, j->token, 0, NULL);
}

/* ---- the CLI's checkout ---- */

static long retry_after_ms(const char *v)
{
	char *end = NULL;
	errno = 0;
	long s = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || s < 0)
		return 1000;
	return (s > 30 ? 30 : s) * 1000;
}

static void checkout(struct job *j)
{
	struct ah_checkout c = { .agent_name = AGENT, .retry_busy = true, .task_id = j->task_id,
				 .url = j->url, .workdir = j->workdir, .workspace_id = j->ws };
	char *body = ah_checkout_body(&c);
	double t0 = now_s();
	j->status = -1;
	while (body != NULL) {
		struct ah_resp resp;
		ah_http(j->h, "POST", "/repo/checkout", j->token, body, &resp);
		j->status = resp.status;
		snprintf(j->body, sizeof j->body, "%s", resp.body);
		bool again = resp.status == 503 && strcmp(resp.retryable, "repo-busy") == 0 &&
			     now_s() - t0 < CLI_BUDGET_S;
		long wait = again ? retry_after_ms(resp.retry_after) : 0;
		ah_resp_free(&resp);
		if (!again)
			break;
		j->busy++;
		nap_ms(wait);
	}
	j->secs = now_s() - t0;
	free(body);
}

static void *checkout_thread(void *arg)
{
	struct job *j = arg;
	checkout(j);
	atomic_fetch_add(j->done, 1);
	return NULL;
}

/* n tasks of ws at once (threads); health samples /health meanwhile
 * into hv (NULL: none). Returns the number that ended 200. */
static int at_once(struct rig *r, const char *ws, int n, struct job *jobs, double *hv,
		   size_t *hn, int *bad_health)
{
	atomic_int done = 0;
	pthread_t th[MAX_TASKS];
	for (int i = 0; i < n; i++)
		if (new_task(r, ws, &jobs[i]) < 0)
			return -1;
	int started = 0;
	for (int i = 0; i < n; i++) {
		jobs[i].done = &done;
		if (pthread_create(&th[i], NULL, checkout_thread, &jobs[i]) != 0)
			break;
		started++;
	}
	while (hv != NULL && atomic_load(&done) < started && *hn < HEALTH_MAX) {
		struct ah_resp resp;
		ah_http(&r->h, "GET", "/health", NULL, NULL, &resp);
		if (resp.status == 200)
			hv[(*hn)++] = resp.seconds * 1000;
		else
			(*bad_health)++;
		ah_resp_free(&resp);
		nap_ms(5);
	}
	int ok = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		ok += jobs[i].status == 200;
		if (jobs[i].status != 200)
			fprintf(stderr, "bench: task %s: %ld %s\n", jobs[i].task_id, jobs[i].status,
				jobs[i].body);
	}
	return started == n ? ok : -1;
}

/* ---- [1] /health while checkouts run ---- */

static double health_idle_ms(struct rig *r, int n)
{
	double *v = calloc((size_t)n, sizeof *v);
	size_t k = 0;
	for (int i = 0; v != NULL && i < n; i++) {
		struct ah_resp resp;
		ah_http(&r->h, "GET", "/health", NULL, NULL, &resp);
		if (resp.status == 200)
			v[k++] = resp.seconds * 1000;
		ah_resp_free(&resp);
	}
	double p = pct(v, k, 0.5);
	free(v);
	return p;
}

static int phase_health(struct rig *r, const struct opts *o)
{
	double idle = health_idle_ms(r, 200);
	double *hv = calloc(HEALTH_MAX, sizeof *hv);
	struct job *jobs = calloc(MAX_TASKS, sizeof *jobs);
	size_t hn = 0;
	int bad = 0, busy = 0;
	if (hv == NULL || jobs == NULL)
		return -1;
	double t0 = now_s();
	int ok = at_once(r, WS1, o->tasks, jobs, hv, &hn, &bad);
	double wall = now_s() - t0;
	for (int i = 0; i < o->tasks; i++)
		busy += jobs[i].busy;
	double p50 = pct(hv, hn, 0.5), p99 = pct(hv, hn, 0.99), mx = pct(hv, hn, 1.0);
	printf("SUMMARY [1] /health while %d checkouts run: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
	       "over %zu answers (%d not 200; idle p50 %.2f ms); the checkouts %d/%d ok in %.1f s, "
	       "%d busy retries (goal < 5 ms): %s\n",
	       o->tasks, p50, p99, mx, hn, bad, idle, ok, o->tasks, wall, busy,
	       mx < 5 ? "OK" : p99 < 5 ? "OK (p99; max over)" : "MISSED");
	figure(r, o->tasks, "health_busy_p50", p50, "ms");
	figure(r, o->tasks, "health_busy_p99", p99, "ms");
	figure(r, o->tasks, "health_busy_max", mx, "ms");
	figure(r, o->tasks, "health_busy_n", (double)hn, "");
	figure(r, o->tasks, "health_busy_bad", (double)bad, "");
	figure(r, o->tasks, "health_idle_p50", idle, "ms");
	figure(r, o->tasks, "health_checkouts_ok", ok, "");
	figure(r, o->tasks, "health_checkouts_wall", wall, "s");
	free(hv);
	free(jobs);
	return ok < 0 ? -1 : 0;
}

/* ---- [2] warm checkout ---- */

/* The one bare cache of ws: <ws_root>/.repos/<ws>/<name>. */
static int bare_of(const struct rig *r, const char *ws, char *out, size_t size)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/.repos/%s", r->ws_root, ws);
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = -1;
	while (d != NULL && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && strstr(de->d_name, ".tmp-") == NULL) {
			snprintf(out, size, "%s/%s", dir, de->d_name);
			rc = 0;
			break;
		}
	if (d != NULL)
		closedir(d);
	return rc;
}

/* `git worktree add` alone from the same cache to the same disk: the floor. */
static double git_floor_ms(struct rig *r, int n)
{
	char bare[2048], dir[1024], branch[64];
	double v[16];
	int k = 0;
	if (bare_of(r, WS1, bare, sizeof bare) < 0)
		return -1;
	for (int i = 0; i < n && i < 16; i++) {
		snprintf(dir, sizeof dir, "%s/floor/%d/bench-repo", r->root, i);
		snprintf(branch, sizeof branch, "bench/floor/%d", i);
		const char *argv[] = { "git", "-C", bare, "worktree", "add", "-q", "-b", branch,
				       dir, "refs/remotes/origin/main", NULL };
		double t0 = now_s();
		if (run(argv) == 0)
			v[k++] = (now_s() - t0) * 1000;
	}
	return pct(v, (size_t)k, 0.5);
}

static int phase_warm(struct rig *r, const struct opts *o)
{
	struct job j;
	/* Prime: the cache exists (from [1] or here) and was just fetched. */
	if (new_task(r, WS1, &j) < 0)
		return -1;
	checkout(&j);
	if (j.status != 200)
		return -1;
	double *v = calloc((size_t)o->warm, sizeof *v);
	int k = 0, with_fetch = 0;
	for (int i = 0; v != NULL && i < o->warm; i++) {
		if (new_task(r, WS1, &j) < 0)
			break;
		long at = trace_size(r);
		checkout(&j);
		if (j.status != 200) {
			fprintf(stderr, "bench: warm: %ld %s\n", j.status, j.body);
			continue;
		}
		if (trace_count(r, at, "built-in: git fetch origin") > 0)
			with_fetch++; /* past the fresh window: not a warm figure */
		else
			v[k++] = j.secs * 1000;
	}
	double floor = git_floor_ms(r, 5);
	double p50 = pct(v, (size_t)k, 0.5), mx = pct(v, (size_t)k, 1.0);
	double mn = k > 0 ? v[0] : 0;
	printf("SUMMARY [2] warm linked checkout of %d files: median %.0f ms, min %.0f, max %.0f "
	       "over %d (%d left out: they fetched); `git worktree add` alone %.0f ms; the "
	       "daemon's share %.0f ms (goal < 200 ms): %s\n",
	       o->files, p50, mn, mx, k, with_fetch, floor, p50 - floor,
	       p50 < 200 ? "OK" : "MISSED");
	figure(r, o->files, "warm_checkout_median", p50, "ms");
	figure(r, o->files, "warm_checkout_min", mn, "ms");
	figure(r, o->files, "warm_checkout_max", mx, "ms");
	figure(r, o->files, "warm_checkout_n", k, "");
	figure(r, o->files, "warm_git_worktree_add_median", floor, "ms");
	figure(r, o->files, "warm_daemon_share", p50 - floor, "ms");
	free(v);
	return k > 0 ? 0 : -1;
}

/* ---- [3] 20 at once ---- */

static int burst(struct rig *r, const struct opts *o, const char *what, const char *tag)
{
	struct job *jobs = calloc(MAX_TASKS, sizeof *jobs);
	if (jobs == NULL)
		return -1;
	long at = trace_size(r);
	double t0 = now_s();
	int ok = at_once(r, WS2, o->tasks, jobs, NULL, NULL, NULL);
	double wall = now_s() - t0, v[MAX_TASKS];
	int busy = 0;
	for (int i = 0; i < o->tasks; i++) {
		busy += jobs[i].busy;
		v[i] = jobs[i].secs;
	}
	int clones = trace_count(r, at, "built-in: git clone --bare");
	int fetches = trace_count(r, at, "built-in: git fetch origin");
	int uploads = trace_count(r, at, "built-in: git upload-pack");
	double slowest = pct(v, (size_t)o->tasks, 1.0), med = pct(v, (size_t)o->tasks, 0.5);
	bool one = strcmp(tag, "cold") == 0 ? clones == 1 && fetches <= 1 : clones == 0 && fetches == 1;
	printf("SUMMARY [3] %d tasks at once, %s: %d/%d ok in %.1f s (median %.1f s, slowest %.1f s, "
	       "%d busy retries); git clone --bare %d, git fetch origin %d, upload-pack at the "
	       "origin %d (goal: all succeed, one fetch): %s\n",
	       o->tasks, what, ok, o->tasks, wall, med, slowest, busy, clones, fetches, uploads,
	       ok == o->tasks && one ? "OK" : "MISSED");
	char name[64];
	snprintf(name, sizeof name, "burst_%s_ok", tag);
	figure(r, o->tasks, name, ok, "");
	snprintf(name, sizeof name, "burst_%s_wall", tag);
	figure(r, o->tasks, name, wall, "s");
	snprintf(name, sizeof name, "burst_%s_slowest", tag);
	figure(r, o->tasks, name, slowest, "s");
	snprintf(name, sizeof name, "burst_%s_busy", tag);
	figure(r, o->tasks, name, busy, "");
	snprintf(name, sizeof name, "burst_%s_clones", tag);
	figure(r, o->tasks, name, clones, "");
	snprintf(name, sizeof name, "burst_%s_fetches", tag);
	figure(r, o->tasks, name, fetches, "");
	snprintf(name, sizeof name, "burst_%s_uploads", tag);
	figure(r, o->tasks, name, uploads, "");
	free(jobs);
	return ok == o->tasks ? 0 : -1;
}

static int phase_burst(struct rig *r, const struct opts *o)
{
	int rc = burst(r, o, "cold cache (never cloned)", "cold");
	nap_ms(6000); /* past the cache's 5 s fresh window */
	if (burst(r, o, "stale cache (fetched > 5 s ago)", "stale") < 0)
		rc = -1;
	return rc;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr, "usage: agentapi_bench [--csv DIR] [--tmp DIR] [--files N] [--tasks N] "
			"[--warm N] [--skip 1|2|3]...\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "csv", required_argument, NULL, 'c' }, { "tmp", required_argument, NULL, 'T' },
		{ "files", required_argument, NULL, 'f' }, { "tasks", required_argument, NULL, 't' },
		{ "warm", required_argument, NULL, 'w' }, { "skip", required_argument, NULL, 's' },
		{ 0, 0, 0, 0 },
	};
	*o = (struct opts){ .tmp = "/tmp", .files = 10000, .tasks = 20, .warm = 10 };
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end = NULL;
		long v = optarg != NULL ? strtol(optarg, &end, 10) : 0;
		bool num = optarg != NULL && end != optarg && *end == '\0' && v > 0 && v < 1000000;
		if (c == 'c')
			o->csv = optarg;
		else if (c == 'T')
			o->tmp = optarg;
		else if (c == 'f' && num)
			o->files = (int)v;
		else if (c == 't' && num && v <= MAX_TASKS)
			o->tasks = (int)v;
		else if (c == 'w' && num)
			o->warm = (int)v;
		else if (c == 's' && num && v <= 3)
			o->skip[v] = true;
		else
			return -1;
	}
	return optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	static struct rig r;
	if (o.csv != NULL) {
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/figures.csv", o.csv);
		r.csv = fopen(p, "ae");
	}
	int rc = rig_start(&r, &o);
	if (rc < 0)
		fprintf(stderr, "bench: set-up failed: %s\n", strerror(errno));
	if (rc == 0 && !o.skip[1] && phase_health(&r, &o) < 0)
		rc = -1;
	if (rc == 0 && !o.skip[2] && phase_warm(&r, &o) < 0)
		rc = -1;
	if (rc == 0 && !o.skip[3] && phase_burst(&r, &o) < 0)
		rc = -1;
	rig_stop(&r);
	if (r.csv != NULL)
		fclose(r.csv);
	curl_global_cleanup();
	return rc == 0 ? 0 : 1;
}
