/* sv_bench: the whole daemon (build's multicad: supervisor + forked workers)
 * against multica-fakeplane on loopback, started with a generated config in a
 * temp dir (tests/support/daemon_proc.h). Three figures:
 *
 *   [1] SIGKILL of a worker -> the DEREG of its runtime ids at the server,
 *       over K kills among a few workspaces. Latency = journal `time` of the
 *       DEREG (CLOCK_REALTIME ms at which the emulator handled it) minus
 *       CLOCK_REALTIME read just before kill(2). Between kills: wait for the
 *       respawned worker's REG and its report in the ledger; DELETE the
 *       journal. The supervisor's "worker exited" log line (ms timestamps)
 *       splits each latency into kill -> exit noticed -> DEREG answered.
 *   [2] memory of N idle workers with 2 runtimes each (the claude built-in
 *       via a fake CLI in [providers] + one custom profile per workspace
 *       whose command is a fake script on PATH), over HTTP and over HTTPS
 *       (self-signed cert with subjectAltName IP:127.0.0.1, ca_file = that
 *       cert; and again with ca_file = the system CA bundle + that cert, the
 *       size of CA store a production host loads). smaps_rollup of every
 *       worker, of the supervisor and of the fork server after an idle
 *       period; per-worker mean/median/p99 and means by start order (a
 *       worker's share must not depend on when it started); how many workers
 *       the fork server made (daemon log, spawn=); per-mapping breakdown of
 *       the median worker. Also start -> all N registered.
 *   [3] reload of one workspace among N (HTTP fleet): a [workspace] section
 *       with a profile_command override is added, SIGHUP; time to the new
 *       worker's REG, and how many worker pids changed (must be 1).
 *
 * See tests/bench/README.md ("Supervisor"). About 1.5-2.5 minutes with the
 * defaults; a 270 s budget stops whatever phase is running (then clean-up:
 * the whole run stays under 5 minutes). Everything started is killed and
 * reaped, temp dirs removed. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "tests/bench/smaps.h"
#include "tests/bench/sv_extra.h"
#include "tests/support/daemon_proc.h"
#include "tests/support/fakeplane_proc.h"

#define CLI_CUSTOM   "bench-agent"       /* the custom profiles' command */
#define CLI_ALT      "bench-agent-alt"   /* the reload's path override target */
#define REG_PATH     "/api/daemon/register"
#define DEREG_PATH   "/api/daemon/deregister"
#define SYSTEM_CA    "/etc/ssl/certs/ca-certificates.crt"
#define MAX_WORKERS  1000
#define MAX_KILLS    1000
#define POLL_MS      5
#define BUDGET_MS    270000              /* then every wait gives up */

extern char **environ;

struct opts {
	int kills;          /* [1] */
	int kill_ws;
	int workers;        /* [2], [3] */
	int idle_s;
	bool skip_kill, skip_http, skip_https, skip_bundle;
	bool system_store;      /* an HTTPS fleet without ca_file, "system" store = bundle */
	bool default_intervals; /* fleets at the production intervals (15s/30s/5s/20s) */
	const char *csv_dir;    /* --csv: CSVs for docs/PERFORMANCE.md */
};

static const char *csv_dir;  /* o.csv_dir, for the phases' CSV output */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ---- time and small utilities ---- */

static double wall_ms_f(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* "2026-11-28T23:10:49.604Z" (journal `time`, log `ts=`) -> epoch ms, or -1. */
static int64_t parse_time_ms(const char *s)
{
	struct tm tm;
	int ms = 0;
	memset(&tm, 0, sizeof tm);
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, int n, double p)
{
	if (n <= 0)
		return -1;
	int k = (int)(p / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

struct stats {
	int n;
	double min, median, p99, max, mean;
};

/* Sorts v in place. */
static struct stats stats_of(double *v, int n)
{
	struct stats s = { .n = n };
	if (n <= 0)
		return s;
	qsort(v, (size_t)n, sizeof *v, cmp_dbl);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += v[i];
	s.min = v[0];
	s.max = v[n - 1];
	s.median = pct(v, n, 50);
	s.p99 = pct(v, n, 99);
	s.mean = sum / n;
	return s;
}

/* The 1-minute load average (this host is shared: say how busy it was). */
static double loadavg1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static const char *verdict(bool ok)
{
	return ok ? "OK" : "MISSED";
}

static int64_t budget_end;

/* Sleeps ms unless interrupted or out of time budget; false then. */
static bool nap(long ms)
{
	if (!interrupted && dp_now_ms() >= budget_end) {
		fprintf(stderr, "sv_bench: time budget of %d s exhausted; stopping\n",
			BUDGET_MS / 1000);
		interrupted = 1;
	}
	if (interrupted)
		return false;
	dp_sleep_ms(ms);
	return !interrupted;
}

/* ---- scenario data ---- */

static void prof_id(int i, char out[DP_ID_LEN + 1])
{
	snprintf(out, DP_ID_LEN + 1, "a1000000-0000-4000-8000-%012d", i);
}

/* One enabled custom profile per workspace 1..n, command CLI_CUSTOM. */
static char *profiles_json(int n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return NULL;
	fputc('[', f);
	for (int i = 1; i <= n; i++) {
		char ws[DP_ID_LEN + 1], pid[DP_ID_LEN + 1];
		dp_ws_id(i, ws);
		prof_id(i, pid);
		fprintf(f, "%s{\"id\":\"%s\",\"workspace_id\":\"%s\",\"display_name\":\"Agent %d\","
			"\"protocol_family\":\"claude\",\"command_name\":\"" CLI_CUSTOM "\","
			"\"fixed_args\":[],\"visibility\":\"workspace\",\"enabled\":true}",
			i > 1 ? "," : "", pid, ws, i);
	}
	fputc(']', f);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- the emulator, over HTTP or HTTPS ---- */

struct emu {
	struct fp_proc fp;
	bool started;
	char url[96];
	char ca[512];       /* "" over HTTP */
	CURL *h;            /* one handle: its connection is kept alive */
};

struct mbuf {
	char *p;
	size_t n;
};

static size_t mbuf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct mbuf *b = ud;
	size_t n = size * nmemb;
	char *np = realloc(b->p, b->n + n + 1);
	if (np == NULL)
		return 0;
	memcpy(np + b->n, ptr, n);
	b->p = np;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* One admin request; *out (if not NULL) gets the malloc'd body. Status or -1. */
static long emu_http(struct emu *e, const char *method, const char *path, char **out)
{
	char url[512];
	struct mbuf b = { NULL, 0 };
	if (out != NULL)
		*out = NULL;
	snprintf(url, sizeof url, "%s%s", e->url, path);
	curl_easy_reset(e->h);
	curl_easy_setopt(e->h, CURLOPT_URL, url);
	curl_easy_setopt(e->h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e->h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, mbuf_write);
	curl_easy_setopt(e->h, CURLOPT_WRITEDATA, (void *)&b);
	if (e->ca[0])
		curl_easy_setopt(e->h, CURLOPT_CAINFO, e->ca);
	long status = -1;
	if (curl_easy_perform(e->h) == CURLE_OK)
		curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
	if (out != NULL && status >= 0) {
		*out = b.p != NULL ? b.p : strdup("");
		b.p = NULL;
	}
	free(b.p);
	return status;
}

static cJSON *emu_get_json(struct emu *e, const char *path)
{
	char *body = NULL;
	long st = emu_http(e, "GET", path, &body);
	cJSON *j = st == 200 && body != NULL ? cJSON_Parse(body) : NULL;
	if (j == NULL)
		fprintf(stderr, "sv_bench: GET %s: status %ld\n", path, st);
	free(body);
	return j;
}

/* The journal into j (dp_journal: use dp_j_count and dp_journal_free). */
static int emu_journal(struct emu *e, struct dp_journal *j)
{
	j->v = NULL;
	j->n = 0;
	cJSON *a = emu_get_json(e, "/_admin/journal");
	if (a == NULL)
		return -1;
	int n = cJSON_GetArraySize(a);
	j->v = calloc(n > 0 ? (size_t)n : 1, sizeof *j->v);
	if (j->v == NULL) {
		cJSON_Delete(a);
		return -1;
	}
	const cJSON *x;
	cJSON_ArrayForEach(x, a) {
		struct dp_req *q = &j->v[j->n];
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(x, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(x, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(x, "body"));
		q->seq = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "seq"));
		q->status = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "status"));
		q->time_ms = parse_time_ms(cJSON_GetStringValue(cJSON_GetObjectItem(x, "time")));
		snprintf(q->method, sizeof q->method, "%s", m ? m : "");
		snprintf(q->path, sizeof q->path, "%s", p ? p : "");
		q->body = strdup(b ? b : "");
		if (q->body == NULL)
			break;
		j->n++;
	}
	cJSON_Delete(a);
	return 0;
}

static int emu_journal_clear(struct emu *e)
{
	return emu_http(e, "DELETE", "/_admin/journal", NULL) == 200 ? 0 : -1;
}

struct row {
	char id[DP_ID_LEN + 1];
	char ws[DP_ID_LEN + 1];
	char last_seen[40];
};

/* Online runtime rows of ws (NULL: all), or -1; the first max go to out. */
static int emu_online_rows(struct emu *e, const char *ws, struct row *out, int max)
{
	cJSON *s = emu_get_json(e, "/_admin/state");
	if (s == NULL)
		return -1;
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "runtimes")) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		const char *seen = cJSON_GetStringValue(cJSON_GetObjectItem(r, "last_seen_at"));
		if (st == NULL || strcmp(st, "online") != 0 ||
		    (ws != NULL && (w == NULL || strcmp(w, ws) != 0)))
			continue;
		if (out != NULL && n < max) {
			snprintf(out[n].id, sizeof out[n].id, "%s", id ? id : "");
			snprintf(out[n].ws, sizeof out[n].ws, "%s", w ? w : "");
			snprintf(out[n].last_seen, sizeof out[n].last_seen, "%s", seen ? seen : "");
		}
		n++;
	}
	cJSON_Delete(s);
	return n;
}

/* Online runtime rows of ws (NULL: all), or -1. */
static int emu_online(struct emu *e, const char *ws)
{
	cJSON *s = emu_get_json(e, "/_admin/state");
	if (s == NULL)
		return -1;
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "runtimes")) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		if (st != NULL && strcmp(st, "online") == 0 &&
		    (ws == NULL || (w != NULL && strcmp(w, ws) == 0)))
			n++;
	}
	cJSON_Delete(s);
	return n;
}

/* The first journal entry after after_seq with method+path, status (0: any),
 * whose body contains every non-NULL needle; NULL when none. */
static const struct dp_req *j_find(const struct dp_journal *j, long after_seq, const char *method,
				   const char *path, long status, const char *n1, const char *n2)
{
	for (size_t i = 0; i < j->n; i++) {
		const struct dp_req *q = &j->v[i];
		if (q->seq <= after_seq || strcmp(q->method, method) != 0 ||
		    strcmp(q->path, path) != 0 || (status != 0 && q->status != status) ||
		    (n1 != NULL && strstr(q->body, n1) == NULL) ||
		    (n2 != NULL && strstr(q->body, n2) == NULL))
			continue;
		return q;
	}
	return NULL;
}

static int emu_start(struct emu *e, const char *seed, const char *cert, const char *key)
{
	memset(e, 0, sizeof *e);
	e->h = curl_easy_init();
	if (e->h == NULL)
		return -1;
	const char *tls_args[] = { "--tls-cert", cert, "--tls-key", key, NULL };
	if (fp_start(&e->fp, seed, cert != NULL ? tls_args : NULL) < 0)
		return -1;
	e->started = true;
	snprintf(e->url, sizeof e->url, "%s://127.0.0.1:%d", cert != NULL ? "https" : "http",
		 e->fp.port);
	if (cert != NULL)
		snprintf(e->ca, sizeof e->ca, "%s", cert);
	return 0;
}

static void emu_stop(struct emu *e)
{
	if (e->started)
		fp_stop(&e->fp);
	e->started = false;
	if (e->h != NULL)
		curl_easy_cleanup(e->h);
	e->h = NULL;
}

/* ---- processes ---- */

/* pids[i] = the live worker of workspace i+1 (0: none), from the
 * supervisor's children and their titles. Returns how many were found. */
static int worker_pids(const struct dp *d, int n, pid_t *pids)
{
	static pid_t kids[4 * MAX_WORKERS];
	static const char prefix[] = "multicad: worker 5e000000-0000-4000-8000-";
	memset(pids, 0, (size_t)n * sizeof *pids);
	size_t nk = dp_children(d, kids, sizeof kids / sizeof kids[0]);
	int found = 0;
	for (size_t i = 0; i < nk && i < sizeof kids / sizeof kids[0]; i++) {
		char title[256];
		if (dp_proc_title(kids[i], title, sizeof title) < 0 ||
		    strncmp(title, prefix, sizeof prefix - 1) != 0 || !dp_pid_alive(kids[i]))
			continue;
		char *end;
		long idx = strtol(title + sizeof prefix - 1, &end, 10);
		if (*end != '\0' || idx < 1 || idx > n)
			continue;
		if (pids[idx - 1] == 0)
			found++;
		pids[idx - 1] = kids[i];
	}
	return found;
}

/* The supervisor's child titled "multicad: forkserver", or 0 (none, or
 * a multicad from before the fork server). */
static pid_t forkserver_pid(const struct dp *d)
{
	static pid_t kids[4 * MAX_WORKERS];
	size_t nk = dp_children(d, kids, sizeof kids / sizeof kids[0]);
	for (size_t i = 0; i < nk && i < sizeof kids / sizeof kids[0]; i++) {
		char title[64];
		if (dp_proc_title(kids[i], title, sizeof title) == 0 &&
		    strcmp(title, "multicad: forkserver") == 0 && dp_pid_alive(kids[i]))
			return kids[i];
	}
	return 0;
}

/* Runs argv (PATH lookup) with stdout/stderr to /dev/null; exit status or -1. */
static int run_quiet(const char *const *argv)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- memory ---- */

static int cmp_mapsum_pss(const void *a, const void *b)
{
	const struct mapsum *x = a, *y = b;
	if (x->pss != y->pss)
		return x->pss > y->pss ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void print_breakdown(pid_t pid, int top)
{
	struct mapsums *m = calloc(1, sizeof *m);
	if (m == NULL || read_smaps(pid, m) < 0) {
		free(m);
		return;
	}
	qsort(m->v, (size_t)m->n, sizeof m->v[0], cmp_mapsum_pss);
	printf("    by mapping (kB), largest Pss first:\n");
	printf("      %-40s %8s %8s %14s\n", "mapping", "Pss", "Rss", "Private_Dirty");
	long rest_pss = 0, rest_pd = 0, rest_rss = 0;
	int rest = 0;
	for (int i = 0; i < m->n; i++) {
		if (i < top) {
			printf("      %-40.40s %8ld %8ld %14ld\n", m->v[i].name, m->v[i].pss,
			       m->v[i].rss, m->v[i].private_dirty);
		} else {
			rest_pss += m->v[i].pss;
			rest_pd += m->v[i].private_dirty;
			rest_rss += m->v[i].rss;
			rest++;
		}
	}
	if (rest > 0)
		printf("      %-40s %8ld %8ld %14ld\n", "(the other mappings)", rest_pss, rest_rss,
		       rest_pd);
	free(m);
}

/* Socket fds of pid (the IPC socket to the supervisor is one of them). */
static int socket_fds(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	int n = 0, total = dp_fd_count(pid);
	for (int fd = 0; total > 0 && fd < 1024 && n < total; fd++) {
		char link[96], target[64];
		snprintf(link, sizeof link, "%s/%d", dir, fd);
		ssize_t r = readlink(link, target, sizeof target - 1);
		if (r <= 0)
			continue;
		target[r] = '\0';
		n += strncmp(target, "socket:", 7) == 0;
	}
	return n;
}

/* ---- the daemon set-up shared by the phases ---- */

struct fleet {
	struct emu emu;
	struct dp d;
	bool d_ready;
	int n;
	char *ws_list;
	char daemon_extra[700];
	const char *hb, *sync, *ping, *liveness, *bmin, *bmax;
	const char *tail;
	int left_online;     /* rows online after the graceful stop */
	int64_t stop_ms;     /* SIGTERM -> supervisor exited */
	bool stop_clean;
};

static void fleet_config(const struct fleet *f, struct dp_config *c)
{
	*c = (struct dp_config){
		.server_url = f->emu.url,
		.workspaces = f->ws_list,
		.heartbeat_interval = f->hb,
		.profile_sync_interval = f->sync,
		.worker_ping_interval = f->ping,
		.worker_liveness_timeout = f->liveness,
		.restart_backoff_min = f->bmin,
		.restart_backoff_max = f->bmax,
		.stop_timeout = "10s",
		.http_timeout = "10s",
		.daemon_extra = f->daemon_extra[0] ? f->daemon_extra : NULL,
		.providers = "claude = claude\n",
		.tail = f->tail,
	};
}

/* Emulator (seeded with n workspaces and their profiles), temp dir with
 * the fake CLIs and the config. The daemon is not started yet. */
static int fleet_init(struct fleet *f, int n, const char *cert, const char *key,
		      const char *ca_file)
{
	f->n = n;
	char *profiles = profiles_json(n);
	char *seed = profiles != NULL ? dp_seed(n, NULL, profiles) : NULL;
	free(profiles);
	if (seed == NULL)
		return -1;
	int rc = emu_start(&f->emu, seed, cert, key);
	free(seed);
	if (rc < 0)
		return -1;
	static const char *const clis[] = { "claude", CLI_CUSTOM, CLI_ALT, NULL };
	if (dp_init(&f->d, NULL, clis, "2.1.0") < 0)
		return -1;
	f->d_ready = true;
	if (ca_file != NULL)
		snprintf(f->daemon_extra, sizeof f->daemon_extra, "ca_file = %s\n", ca_file);
	if ((f->ws_list = dp_ws_list(1, n)) == NULL)
		return -1;
	struct dp_config c;
	fleet_config(f, &c);
	return dp_write_config(&f->d, &c);
}

static void fleet_free(struct fleet *f)
{
	if (f->d_ready)
		dp_free(&f->d);   /* kills and reaps what is left; removes the temp dir */
	f->d_ready = false;
	emu_stop(&f->emu);
	free(f->ws_list);
	f->ws_list = NULL;
}

/* Waits until `want` rows are online; false on timeout or interruption. */
static bool wait_online(struct fleet *f, const char *ws, int want, int timeout_ms, int every_ms)
{
	int64_t until = dp_now_ms() + timeout_ms;
	for (;;) {
		int n = emu_online(&f->emu, ws);
		if (n == want)
			return true;
		if (dp_now_ms() > until || !dp_alive(&f->d) || !nap(every_ms))
			return false;
	}
}

/* Graceful stop: SIGTERM, time to exit; rows left online after it. */
static void fleet_stop(struct fleet *f, const char *label)
{
	if (!f->d_ready || !f->d.running)
		return;
	int64_t t0 = dp_now_ms();
	bool clean = dp_stop(&f->d, 15000);
	int64_t dt = dp_now_ms() - t0;
	struct row rows[5];
	int left = emu_online_rows(&f->emu, NULL, rows, 5);
	printf("    %s: SIGTERM -> supervisor exited in %lld ms (%s, status %d); rows still "
	       "online at the server: %d\n", label, (long long)dt,
	       clean ? "by itself" : "killed after 15 s", f->d.status, left);
	f->left_online = left;
	f->stop_ms = dt;
	f->stop_clean = clean;
	if (left <= 0)
		return;
	/* Why: the journal's order (seq = the order the server handled them)
	 * of that row's last DEREG and the heartbeats after it. */
	struct dp_journal j;
	if (emu_journal(&f->emu, &j) < 0)
		return;
	for (int i = 0; i < left && i < 5; i++) {
		const struct dp_req *dereg = NULL;
		for (size_t k = 0; k < j.n; k++)
			if (strcmp(j.v[k].path, DEREG_PATH) == 0 && strstr(j.v[k].body, rows[i].id))
				dereg = &j.v[k];
		printf("      online: %s (ws %s, last_seen_at %s)\n", rows[i].id, rows[i].ws,
		       rows[i].last_seen);
		if (dereg == NULL) {
			printf("        no DEREG of it in the journal\n");
			continue;
		}
		printf("        last DEREG: seq %ld at %lld, status %ld\n", dereg->seq,
		       (long long)dereg->time_ms, dereg->status);
		for (size_t k = 0; k < j.n; k++) {
			const struct dp_req *q = &j.v[k];
			if (q->seq > dereg->seq && strstr(q->body, rows[i].id) != NULL)
				printf("        then: seq %ld at %lld (+%lld ms) %s %s status %ld\n",
				       q->seq, (long long)q->time_ms,
				       (long long)(q->time_ms - dereg->time_ms), q->method, q->path,
				       q->status);
		}
	}
	dp_journal_free(&j);
}

/* ---- [1] SIGKILL -> DEREG ---- */

struct kill_rec {
	double dereg_ms;     /* kill -> DEREG handled by the server (journal) */
	double exit_ms;      /* kill -> supervisor logged "worker exited" (-1: not found) */
	double back_ms;      /* kill -> the respawned worker's REG (journal) */
	pid_t pid;
	double t_kill;       /* wall ms */
};

/* ts= of the supervisor's "worker exited" line for pid, or -1. */
static int64_t log_exit_time(const char *log, pid_t pid)
{
	char needle[48];
	snprintf(needle, sizeof needle, "worker_pid=%d ", (int)pid);
	for (const char *line = log; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[1024];
		snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf - 1 ? len : sizeof buf - 1),
			 line);
		if (strstr(buf, "msg=\"worker exited\"") != NULL && strstr(buf, needle) != NULL &&
		    strncmp(buf, "ts=", 3) == 0)
			return parse_time_ms(buf + 3);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return -1;
}

/* Ready to be killed: a live worker, its 2 ids in the ledger and online. */
static pid_t wait_ready(struct fleet *f, int i, char ids[2][DP_ID_LEN + 1], int timeout_ms)
{
	char ws[DP_ID_LEN + 1];
	dp_ws_id(i, ws);
	int64_t until = dp_now_ms() + timeout_ms;
	for (;;) {
		pid_t pid = dp_worker_pid(&f->d, ws);
		char got[4][DP_ID_LEN + 1];
		int n = pid > 0 ? dp_ledger_ids(&f->d, ws, got, 4) : -1;
		if (n == 2 && emu_online(&f->emu, ws) == 2) {
			memcpy(ids[0], got[0], sizeof got[0]);
			memcpy(ids[1], got[1], sizeof got[1]);
			return pid;
		}
		if (dp_now_ms() > until || !nap(POLL_MS))
			return 0;
	}
}

struct killfig {
	bool done;
	struct stats s;
	int missing;
	bool ok;
};

static int phase_kill(const struct opts *o, struct killfig *kf)
{
	struct fleet f;
	memset(&f, 0, sizeof f);
	f.hb = "2s";
	f.sync = "5s";
	f.ping = "1s";
	f.liveness = "5s";
	f.bmin = "10ms";
	f.bmax = "100ms";
	int rc = -1, done = 0, missing = 0, late_beats = 0;
	memset(kf, 0, sizeof *kf);
	struct kill_rec *k = calloc((size_t)o->kills, sizeof *k);
	double *v = calloc((size_t)o->kills, sizeof *v);
	printf("\n[1] SIGKILL of a worker -> DEREG of its runtime ids at the server: %d kills "
	       "over %d workspaces\n", o->kills, o->kill_ws);
	printf("    config: restart_backoff_min 10ms, restart_backoff_max 100ms, heartbeat 2s, "
	       "profile_sync 5s, ping 1s\n");
	if (k == NULL || v == NULL || fleet_init(&f, o->kill_ws, NULL, NULL, NULL) < 0 ||
	    dp_start(&f.d) < 0) {
		fprintf(stderr, "sv_bench: [1] set-up failed\n");
		goto out;
	}
	if (!wait_online(&f, NULL, 2 * o->kill_ws, 30000 + 60 * o->kill_ws, 50)) {
		fprintf(stderr, "sv_bench: [1] the workspaces did not register\n");
		goto out;
	}
	for (int n = 0; n < o->kills && !interrupted; n++) {
		int i = n % o->kill_ws + 1;
		char ws[DP_ID_LEN + 1], ids[2][DP_ID_LEN + 1];
		dp_ws_id(i, ws);
		pid_t pid = wait_ready(&f, i, ids, 15000);
		if (pid <= 0) {
			fprintf(stderr, "sv_bench: [1] workspace %d not ready for kill %d\n", i, n);
			goto out;
		}
		/* A random phase against pings, heartbeats and syncs. */
		if (!nap(50 + (long)(random() % 100)))
			break;
		if (emu_journal_clear(&f.emu) < 0)
			goto out;
		k[n].pid = pid;
		k[n].t_kill = wall_ms_f();
		if (kill(pid, SIGKILL) < 0) {
			fprintf(stderr, "sv_bench: kill %d: %s\n", (int)pid, strerror(errno));
			goto out;
		}
		k[n].dereg_ms = k[n].back_ms = -1;
		int64_t until = dp_now_ms() + 10000;
		while (k[n].back_ms < 0 && dp_now_ms() < until && nap(POLL_MS)) {
			struct dp_journal j;
			if (emu_journal(&f.emu, &j) < 0)
				break;
			const struct dp_req *dq = j_find(&j, 0, "POST", DEREG_PATH, 0, ids[0], ids[1]);
			if (dq != NULL && k[n].dereg_ms < 0)
				k[n].dereg_ms = (double)dq->time_ms - k[n].t_kill;
			const struct dp_req *q = j_find(&j, 0, "POST", REG_PATH, 200, ws, NULL);
			if (q != NULL && dq != NULL) {
				k[n].back_ms = (double)q->time_ms - k[n].t_kill;
				/* A heartbeat of the dead worker handled after the
				 * cleanup DEREG would have put a row back online. */
				for (size_t x = 0; x < j.n; x++)
					late_beats += j.v[x].seq > dq->seq && j.v[x].seq < q->seq &&
						      strcmp(j.v[x].path, "/api/daemon/heartbeat") == 0 &&
						      (strstr(j.v[x].body, ids[0]) != NULL ||
						       strstr(j.v[x].body, ids[1]) != NULL);
			}
			dp_journal_free(&j);
		}
		if (interrupted && k[n].back_ms < 0)
			break;   /* this kill's figures are incomplete: not counted */
		if (k[n].dereg_ms < 0) {
			missing++;
			fprintf(stderr, "sv_bench: [1] no DEREG within 10 s after kill %d\n", n);
		}
		done++;
	}
	if (done == 0)
		goto out;
	/* The supervisor's view of each exit, from its log (ms timestamps). */
	char *log = dp_log_read(&f.d);
	int nv = 0, ne = 0, nb = 0, nh = 0;
	double *ve = calloc((size_t)done, sizeof *ve), *vb = calloc((size_t)done, sizeof *vb);
	double *vh = calloc((size_t)done, sizeof *vh);
	for (int n = 0; n < done && log != NULL && ve != NULL && vb != NULL && vh != NULL; n++) {
		if (k[n].dereg_ms >= 0)
			v[nv++] = k[n].dereg_ms;
		int64_t te = log_exit_time(log, k[n].pid);
		if (te >= 0) {
			k[n].exit_ms = (double)te - k[n].t_kill;
			ve[ne] = k[n].exit_ms;
			if (k[n].dereg_ms >= 0)
				vh[nh++] = k[n].dereg_ms - k[n].exit_ms;
			ne++;
		}
		if (k[n].back_ms >= 0)
			vb[nb++] = k[n].back_ms;
	}
	free(log);
	char name[64];
	snprintf(name, sizeof name, "kill_dereg_N%d.csv", o->kill_ws);
	FILE *cf = csv_open(csv_dir, name, "kill,kill_to_dereg_ms,kill_to_exit_seen_ms,"
			    "kill_to_respawned_reg_ms");
	for (int n = 0; cf != NULL && n < done; n++)
		fprintf(cf, "%d,%.1f,%.1f,%.1f\n", n + 1, k[n].dereg_ms,
			k[n].exit_ms, k[n].back_ms);
	if (cf != NULL)
		fclose(cf);
	struct stats s = stats_of(v, nv), se = stats_of(ve, ne), sb = stats_of(vb, nb);
	struct stats sh = stats_of(vh, nh);
	free(ve);
	free(vb);
	free(vh);
	printf("    method: journal `time` of the DEREG (server-side CLOCK_REALTIME, 1 ms "
	       "resolution, truncated) - CLOCK_REALTIME just before kill(2); +-1 ms\n");
	printf("    kill -> DEREG at server   ms: min %.1f  median %.1f  p99 %.1f  max %.1f  "
	       "mean %.1f  (n=%d, missing %d)\n", s.min, s.median, s.p99, s.max, s.mean, s.n,
	       missing);
	printf("    kill -> exit seen (log)   ms: min %.1f  median %.1f  p99 %.1f  max %.1f  "
	       "(supervisor's \"worker exited\" line, ms timestamps)\n", se.min, se.median,
	       se.p99, se.max);
	printf("    exit seen -> DEREG        ms: min %.1f  median %.1f  p99 %.1f  max %.1f  "
	       "(fork cleanup helper, connect, POST)\n", sh.min, sh.median, sh.p99, sh.max);
	printf("    kill -> respawned REG     ms: min %.1f  median %.1f  p99 %.1f  max %.1f  "
	       "(cleanup done, backoff, fork, handshake, version probe, REG)\n", sb.min,
	       sb.median, sb.p99, sb.max);
	printf("    heartbeats of the killed ids handled between the cleanup DEREG and the respawned "
	       "worker's REG: %d; "
	       "load average %.1f\n", late_beats, loadavg1());
	bool ok = missing == 0 && s.n > 0 && s.median < 20 && s.p99 < 100;
	printf("    goal median < 20 ms, p99 < 100 ms: %s\n", verdict(ok));
	kf->done = true;
	kf->s = s;
	kf->missing = missing;
	kf->ok = ok;
	csv_figure(csv_dir, o->kill_ws, "http", "kill_dereg_median", s.median, "ms");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_dereg_p99", s.p99, "ms");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_dereg_max", s.max, "ms");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_n", s.n, "kills");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_missing", missing, "kills");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_exit_seen_median", se.median, "ms");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_exit_to_dereg_median", sh.median, "ms");
	csv_figure(csv_dir, o->kill_ws, "http", "kill_load", loadavg1(), "");
	fleet_stop(&f, "stop");
	rc = 0;
out:
	fleet_free(&f);
	free(k);
	free(v);
	return rc;
}

/* ---- [2] memory of N idle workers, [3] reload of one ---- */

struct memfig {
	bool ok;
	int workers;
	int exits, liveness_kills, left_online;
	int over_goal;       /* workers with Pss > the goal */
	double goal_kb;      /* mean Pss per worker at most this, p99 at most 1.5 x mean */
	int via_fs, via_direct;  /* worker starts by the fork server / forked directly */
	bool have_fs;
	struct rollup fs;    /* the fork server */
	double load;
	double start_all_ms, start_first_ms;
	struct stats pss, pd, rss, sockets, conns;
	struct rollup sv;
	const char *proto;   /* CSV label: http, https */
};

/* Start -> first REG and start -> the last workspace's first REG, from the
 * journal (all first REGs must be there). */
static int start_times(struct fleet *f, double t_start, double *first, double *all)
{
	struct dp_journal j;
	if (emu_journal(&f->emu, &j) < 0)
		return -1;
	double lo = -1, hi = -1;
	int seen = 0;
	for (int i = 1; i <= f->n; i++) {
		char ws[DP_ID_LEN + 1];
		dp_ws_id(i, ws);
		const struct dp_req *q = j_find(&j, 0, "POST", REG_PATH, 200, ws, NULL);
		if (q == NULL)
			continue;
		double t = (double)q->time_ms - t_start;
		if (lo < 0 || t < lo)
			lo = t;
		if (t > hi)
			hi = t;
		seen++;
	}
	dp_journal_free(&j);
	*first = lo;
	*all = hi;
	return seen == f->n ? 0 : -1;
}

static int measure_memory(struct fleet *f, const pid_t *pids, struct memfig *m)
{
	int n = f->n, got = 0;
	double *pss = calloc((size_t)n, sizeof *pss), *pd = calloc((size_t)n, sizeof *pd);
	double *rss = calloc((size_t)n, sizeof *rss), *sk = calloc((size_t)n, sizeof *sk);
	double *pss_by = calloc((size_t)n, sizeof *pss_by);
	pid_t *by = calloc((size_t)n, sizeof *by);
	double *cn = calloc((size_t)n, sizeof *cn);
	unsigned long *ino = NULL;
	int n_ino = tcp_inodes_to_port(f->emu.fp.port, &ino);
	char name[96];
	snprintf(name, sizeof name, "pss_by_start_order_N%d_%s.csv", n, m->proto);
	FILE *cf = csv_open(csv_dir, name, "start_order,pss_kib,private_dirty_kib,rss_kib,"
			    "tcp_conns_to_server");
	int rc = -1;
	if (pss == NULL || pd == NULL || rss == NULL || sk == NULL || by == NULL || pss_by == NULL ||
	    cn == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		struct rollup r;
		if (pids[i] <= 0 || read_rollup(pids[i], &r) < 0)
			continue;
		pss[got] = pss_by[got] = (double)r.pss;
		pd[got] = (double)r.private_dirty;
		rss[got] = (double)r.rss;
		sk[got] = socket_fds(pids[i]);
		cn[got] = n_ino > 0 ? pid_sockets_in(pids[i], ino, n_ino) : 0;
		by[got] = pids[i];
		if (cf != NULL)
			fprintf(cf, "%d,%ld,%ld,%ld,%.0f\n", i + 1, r.pss, r.private_dirty, r.rss,
				cn[got]);
		got++;
	}
	if (got == 0 || read_rollup(f->d.pid, &m->sv) < 0)
		goto out;
	/* By start order (workspace i is started i-th): what a worker inherits
	 * from the supervisor grows with what the supervisor holds at its fork. */
	printf("    by start order (kB, mean):    ");
	for (int q = 0; q < 5; q++) {
		double sp = 0, sd = 0;
		int c = 0;
		for (int i = q * n / 5; i < (q + 1) * n / 5; i++) {
			struct rollup r;
			if (pids[i] > 0 && read_rollup(pids[i], &r) == 0) {
				sp += (double)r.pss;
				sd += (double)r.private_dirty;
				c++;
			}
		}
		if (c > 0)
			printf(" %d-%d: Pss %.0f PD %.0f%s", q * n / 5 + 1, (q + 1) * n / 5, sp / c,
			       sd / c, q < 4 ? ";" : "\n");
	}
	/* The worker with the median Pss, for the breakdown. */
	pid_t median_pid = by[0];
	{
		double *sorted = calloc((size_t)got, sizeof *sorted);
		if (sorted == NULL)
			goto out;
		memcpy(sorted, pss_by, (size_t)got * sizeof *sorted);
		qsort(sorted, (size_t)got, sizeof *sorted, cmp_dbl);
		double med = pct(sorted, got, 50);
		free(sorted);
		for (int i = 0; i < got; i++)
			if (pss_by[i] == med) {
				median_pid = by[i];
				break;
			}
	}
	struct rollup mr;
	bool have_mr = read_rollup(median_pid, &mr) == 0;
	m->workers = got;
	for (int i = 0; i < got; i++)
		m->over_goal += pss[i] > m->goal_kb;
	m->pss = stats_of(pss, got);
	m->pd = stats_of(pd, got);
	m->rss = stats_of(rss, got);
	m->sockets = stats_of(sk, got);
	m->conns = stats_of(cn, got);
	printf("    %d workers, kB per worker:   %8s %8s %8s %8s %8s\n", got, "mean", "median",
	       "min", "p99", "max");
	printf("      Pss                        %8.0f %8.0f %8.0f %8.0f %8.0f\n", m->pss.mean,
	       m->pss.median, m->pss.min, m->pss.p99, m->pss.max);
	printf("      Private_Dirty              %8.0f %8.0f %8.0f %8.0f %8.0f\n", m->pd.mean,
	       m->pd.median, m->pd.min, m->pd.p99, m->pd.max);
	printf("      Rss                        %8.0f %8.0f %8.0f %8.0f %8.0f\n", m->rss.mean,
	       m->rss.median, m->rss.min, m->rss.p99, m->rss.max);
	printf("      socket fds (IPC included)  %8.1f %8.0f %8.0f %8.0f %8.0f\n", m->sockets.mean,
	       m->sockets.median, m->sockets.min, m->sockets.p99, m->sockets.max);
	printf("      TCP conns to the server    %8.2f %8.0f %8.0f %8.0f %8.0f\n", m->conns.mean,
	       m->conns.median, m->conns.min, m->conns.p99, m->conns.max);
	m->via_fs = dp_log_count(&f->d, "msg=\"worker started\"", "spawn=forkserver", NULL, NULL);
	m->via_direct = dp_log_count(&f->d, "msg=\"worker started\"", "spawn=direct", NULL, NULL);
	printf("    worker starts (daemon log): %d by the fork server, %d forked directly by the "
	       "supervisor\n", m->via_fs, m->via_direct);
	pid_t fs = forkserver_pid(&f->d);
	m->have_fs = fs > 0 && read_rollup(fs, &m->fs) == 0;
	if (m->have_fs)
		printf("    fork server (pid %d): Rss %ld kB, Pss %ld kB, Private_Dirty %ld kB, "
		       "Anonymous %ld kB\n", (int)fs, m->fs.rss, m->fs.pss, m->fs.private_dirty,
		       m->fs.anon);
	else
		printf("    fork server: none\n");
	printf("    workers in total: Pss %.1f MiB\n", m->pss.mean * got / 1024.0);
	printf("    supervisor (pid %d): Rss %ld kB, Pss %ld kB, Private_Dirty %ld kB, "
	       "Anonymous %ld kB\n", (int)f->d.pid, m->sv.rss, m->sv.pss, m->sv.private_dirty,
	       m->sv.anon);
	if (have_mr) {
		printf("    the median worker (pid %d): Rss %ld, Pss %ld, Private_Dirty %ld, "
		       "Private_Clean %ld, Shared_Dirty %ld, Shared_Clean %ld, Anonymous %ld kB\n",
		       (int)median_pid, mr.rss, mr.pss, mr.private_dirty, mr.private_clean,
		       mr.shared_dirty, mr.shared_clean, mr.anon);
		print_breakdown(median_pid, 14);
	}
	rc = 0;
out:
	if (cf != NULL)
		fclose(cf);
	free(cn);
	free(ino);
	free(pss);
	free(pd);
	free(rss);
	free(sk);
	free(pss_by);
	free(by);
	return rc;
}

struct reloadfig {
	bool ok;
	double done_ms, stop_dereg_ms, new_pid_ms;
	int changed, other_regs, missing_after;
	bool log_says_one;
};

static int phase_reload(struct fleet *f, struct reloadfig *r)
{
	int n = f->n, target = n / 2 > 0 ? n / 2 : 1;
	char ws[DP_ID_LEN + 1], prof[DP_ID_LEN + 1], ids[4][DP_ID_LEN + 1];
	dp_ws_id(target, ws);
	prof_id(target, prof);
	pid_t *before = calloc((size_t)n, sizeof *before), *after = calloc((size_t)n, sizeof *after);
	char *tail = NULL;
	int rc = -1;
	memset(r, 0, sizeof *r);
	r->done_ms = r->stop_dereg_ms = r->new_pid_ms = -1;
	if (before == NULL || after == NULL)
		goto out;
	printf("\n[3] reload: workspace %d of %d gets [workspace %s] profile_command.%s = "
	       "%s/" CLI_ALT ", then SIGHUP\n", target, n, ws, prof, f->d.cli_dir);
	if (worker_pids(&f->d, n, before) != n) {
		fprintf(stderr, "sv_bench: [3] not every worker is running before the reload\n");
		goto out;
	}
	int n_ids = dp_ledger_ids(&f->d, ws, ids, 4);
	size_t tl = 200 + sizeof f->d.cli_dir;
	if ((tail = malloc(tl)) == NULL)
		goto out;
	snprintf(tail, tl, "[workspace %s]\nprofile_command.%s = %s/" CLI_ALT "\n", ws, prof,
		 f->d.cli_dir);
	f->tail = tail;
	struct dp_config c;
	fleet_config(f, &c);
	if (dp_write_config(&f->d, &c) < 0 || emu_journal_clear(&f->emu) < 0)
		goto out;
	double t0 = wall_ms_f();
	int64_t m0 = dp_now_ms();
	if (dp_signal(&f->d, SIGHUP) < 0)
		goto out;
	int64_t until = m0 + 30000;
	while (r->done_ms < 0 && dp_now_ms() < until && nap(POLL_MS)) {
		if (r->new_pid_ms < 0) {
			pid_t p = dp_worker_pid(&f->d, ws);
			if (p > 0 && p != before[target - 1])
				r->new_pid_ms = (double)(dp_now_ms() - m0);
		}
		struct dp_journal j;
		if (emu_journal(&f->emu, &j) < 0)
			break;
		const struct dp_req *q;
		if (r->stop_dereg_ms < 0 && n_ids > 0 &&
		    (q = j_find(&j, 0, "POST", DEREG_PATH, 0, ids[0], NULL)) != NULL)
			r->stop_dereg_ms = (double)q->time_ms - t0;
		if ((q = j_find(&j, 0, "POST", REG_PATH, 200, ws, NULL)) != NULL)
			r->done_ms = (double)q->time_ms - t0;
		dp_journal_free(&j);
	}
	if (r->done_ms < 0) {
		fprintf(stderr, "sv_bench: [3] no REG of the changed workspace within 30 s\n");
		goto out;
	}
	/* Anything else that would restart shows up within a few seconds. */
	nap(3000);
	r->missing_after = n - worker_pids(&f->d, n, after);
	for (int i = 0; i < n; i++)
		r->changed += before[i] != after[i];
	struct dp_journal j;
	if (emu_journal(&f->emu, &j) == 0) {
		for (size_t i = 0; i < j.n; i++)
			r->other_regs += strcmp(j.v[i].method, "POST") == 0 &&
					 strcmp(j.v[i].path, REG_PATH) == 0 &&
					 strstr(j.v[i].body, ws) == NULL;
		dp_journal_free(&j);
	}
	r->log_says_one = dp_log_has(&f->d, "configuration reloaded", "restarted=1", NULL, NULL);
	bool changed_is_target = before[target - 1] != after[target - 1] && after[target - 1] > 0;
	r->ok = r->changed == 1 && changed_is_target && r->missing_after == 0 &&
		r->other_regs == 0;
	printf("    method: journal `time` of the changed workspace's REG - CLOCK_REALTIME just "
	       "before kill(SIGHUP); pids of all %d workers compared 3 s after it\n", n);
	printf("    SIGHUP -> old worker's DEREG (its stop)  %.0f ms\n", r->stop_dereg_ms);
	printf("    SIGHUP -> new worker pid seen            %.0f ms (this bench's /proc scan "
	       "of %d children, every %d ms: coarse)\n", r->new_pid_ms, n, POLL_MS);
	printf("    SIGHUP -> new worker's REG at server     %.0f ms\n", r->done_ms);
	printf("    worker pids changed: %d (the changed workspace's: %s); workers missing "
	       "after: %d; REGs from other workspaces after SIGHUP: %d\n", r->changed,
	       changed_is_target ? "yes" : "no", r->missing_after, r->other_regs);
	printf("    daemon log has \"configuration reloaded ... restarted=1\": %s\n",
	       r->log_says_one ? "yes" : "no");
	rc = 0;
out:
	f->tail = NULL;
	free(tail);
	free(before);
	free(after);
	return rc;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Requests the emulator handled since t_start (wall ms), per 100 ms, to
 * DIR/startup_rate_N<n>_<proto>.csv; returns the most handled within any
 * 1 s, or -1. */
static int startup_burst(struct fleet *f, double t_start, const char *proto)
{
	struct dp_journal j;
	if (emu_journal(&f->emu, &j) < 0)
		return -1;
	int64_t *t = calloc(j.n > 0 ? j.n : 1, sizeof *t);
	int nt = 0;
	for (size_t i = 0; t != NULL && i < j.n; i++)
		if (j.v[i].time_ms >= (int64_t)t_start && strncmp(j.v[i].path, "/_admin", 7) != 0)
			t[nt++] = j.v[i].time_ms;
	dp_journal_free(&j);
	if (t == NULL)
		return -1;
	qsort(t, (size_t)nt, sizeof *t, cmp_i64);
	int peak = peak_in_window(t, nt, 1000);
	char name[96];
	snprintf(name, sizeof name, "startup_rate_N%d_%s.csv", f->n, proto);
	FILE *cf = csv_open(csv_dir, name, "t_ms,requests_in_100ms,rate_per_s");
	for (int i = 0, b = 0; cf != NULL && i < nt; b++) {
		int c = 0;
		while (i < nt && t[i] < (int64_t)t_start + 100 * (b + 1)) {
			i++;
			c++;
		}
		fprintf(cf, "%d,%d,%d\n", 100 * b, c, 10 * c);
	}
	if (cf != NULL)
		fclose(cf);
	free(t);
	return peak;
}

struct idlefig {
	double window_s, cpu_tree_pct, cpu_emu_pct;
	int procs, gone;
	int beats, polls, other;
};

/* The supervisor and its children (fork server, workers, helpers). */
static size_t tree_pids(const struct fleet *f, pid_t *out, size_t max)
{
	out[0] = f->d.pid;
	return 1 + dp_children(&f->d, out + 1, max - 1);
}

/* idle_s seconds of idle: CPU time (utime + stime, /proc/PID/stat) of
 * every process of the tree and of the emulator; requests the emulator
 * handled in the window (journal cleared at its start). */
static int idle_window(struct fleet *f, int idle_s, struct idlefig *x)
{
	static pid_t tp[4 * MAX_WORKERS + 8];
	static long long t0[4 * MAX_WORKERS + 8];
	memset(x, 0, sizeof *x);
	size_t np = tree_pids(f, tp, sizeof tp / sizeof tp[0]);
	if (emu_journal_clear(&f->emu) < 0)
		return -1;
	int64_t m0 = dp_now_ms();
	long long e0 = proc_cpu_ticks(f->emu.fp.pid);
	for (size_t i = 0; i < np; i++)
		t0[i] = proc_cpu_ticks(tp[i]);
	if (!nap(idle_s * 1000L))
		return -1;
	long long sum = 0, e1 = proc_cpu_ticks(f->emu.fp.pid);
	for (size_t i = 0; i < np; i++) {
		long long t1 = proc_cpu_ticks(tp[i]);
		if (t0[i] < 0 || t1 < 0) {
			x->gone++;
			continue;
		}
		sum += t1 - t0[i];
	}
	int64_t m1 = dp_now_ms();
	double hz = (double)sysconf(_SC_CLK_TCK);
	x->window_s = (double)(m1 - m0) / 1000.0;
	x->procs = (int)np;
	x->cpu_tree_pct = 100.0 * (double)sum / hz / x->window_s;
	x->cpu_emu_pct = 100.0 * (double)(e1 - e0) / hz / x->window_s;
	struct dp_journal j;
	if (emu_journal(&f->emu, &j) < 0)
		return -1;
	for (size_t i = 0; i < j.n; i++) {
		if (strcmp(j.v[i].path, "/api/daemon/heartbeat") == 0)
			x->beats++;
		else if (strstr(j.v[i].path, "runtime-profiles") != NULL)
			x->polls++;
		else
			x->other++;
	}
	dp_journal_free(&j);
	return 0;
}

/* What a fleet run measured, to figures.csv. */
static void fleet_figures(const struct fleet *f, const struct memfig *m, const struct idlefig *x,
			  int burst, const char *hb_s, const char *sync_s)
{
	int n = f->n;
	const char *p = m->proto;
	double hb = strtod(hb_s, NULL), sync = strtod(sync_s, NULL);
	csv_figure(csv_dir, n, p, "start_first_reg", m->start_first_ms, "ms");
	csv_figure(csv_dir, n, p, "start_all_registered", m->start_all_ms, "ms");
	csv_figure(csv_dir, n, p, "startup_peak_requests_1s", burst, "req/s");
	csv_figure(csv_dir, n, p, "pss_mean", m->pss.mean, "KiB");
	csv_figure(csv_dir, n, p, "pss_median", m->pss.median, "KiB");
	csv_figure(csv_dir, n, p, "pss_p99", m->pss.p99, "KiB");
	csv_figure(csv_dir, n, p, "pss_max", m->pss.max, "KiB");
	csv_figure(csv_dir, n, p, "private_dirty_mean", m->pd.mean, "KiB");
	csv_figure(csv_dir, n, p, "rss_mean", m->rss.mean, "KiB");
	csv_figure(csv_dir, n, p, "workers_total_pss", m->pss.mean * m->workers / 1024.0, "MiB");
	csv_figure(csv_dir, n, p, "supervisor_pss", (double)m->sv.pss, "KiB");
	csv_figure(csv_dir, n, p, "supervisor_rss", (double)m->sv.rss, "KiB");
	csv_figure(csv_dir, n, p, "supervisor_private_dirty", (double)m->sv.private_dirty, "KiB");
	csv_figure(csv_dir, n, p, "forkserver_pss", m->have_fs ? (double)m->fs.pss : -1, "KiB");
	csv_figure(csv_dir, n, p, "conns_per_worker_mean", m->conns.mean, "");
	csv_figure(csv_dir, n, p, "conns_per_worker_max", m->conns.max, "");
	csv_figure(csv_dir, n, p, "worker_exits", m->exits, "");
	csv_figure(csv_dir, n, p, "load_at_measure", m->load, "");
	csv_figure(csv_dir, n, p, "idle_window", x->window_s, "s");
	csv_figure(csv_dir, n, p, "idle_cpu_tree", x->cpu_tree_pct, "% of one CPU");
	csv_figure(csv_dir, n, p, "idle_cpu_emulator", x->cpu_emu_pct, "% of one CPU");
	csv_figure(csv_dir, n, p, "idle_tree_procs", x->procs, "");
	double per = x->window_s * n;
	csv_figure(csv_dir, n, p, "idle_req_per_ws_s", (x->beats + x->polls + x->other) / per,
		   "req/s");
	csv_figure(csv_dir, n, p, "idle_beats_per_ws_s", x->beats / per, "req/s");
	csv_figure(csv_dir, n, p, "idle_polls_per_ws_s", x->polls / per, "req/s");
	csv_figure(csv_dir, n, p, "idle_other_requests", x->other, "");
	csv_figure(csv_dir, n, p, "idle_expected_per_ws_s", 2.0 / hb + 1.0 / sync, "req/s");
	csv_figure(csv_dir, n, p, "idle_server_rps", (x->beats + x->polls + x->other) / x->window_s,
		   "req/s");
	csv_figure(csv_dir, n, p, "sigterm_exit", (double)f->stop_ms, "ms");
	csv_figure(csv_dir, n, p, "sigterm_clean", f->stop_clean, "");
	csv_figure(csv_dir, n, p, "sigterm_rows_left_online", f->left_online, "rows");
}

/* One fleet of n workers: start, idle, memory; [3] on the HTTP fleet. */
static int phase_fleet(const struct opts *o, const char *label, const char *proto,
		       const char *cert, const char *key, const char *ca_file, double goal_kb,
		       struct memfig *m, struct reloadfig *rl)
{
	struct fleet f;
	memset(&f, 0, sizeof f);
	memset(m, 0, sizeof *m);
	m->goal_kb = goal_kb;
	m->proto = proto;
	f.hb = o->default_intervals ? "15s" : "2s";
	f.sync = o->default_intervals ? "30s" : "5s";
	f.ping = "5s";          /* the production defaults */
	f.liveness = "20s";
	f.bmin = "100ms";
	f.bmax = "5s";
	int rc = -1, n = o->workers;
	pid_t *pids = calloc((size_t)n, sizeof *pids), *pids2 = calloc((size_t)n, sizeof *pids2);
	printf("\n[2] %s: %d workspaces x 2 runtimes (claude built-in + custom profile -> "
	       CLI_CUSTOM " on PATH), heartbeat %s, profile_sync %s, ping 5s, liveness 20s%s%s\n", label, n, f.hb, f.sync,
	       ca_file ? ", ca_file = " : "", ca_file ? ca_file : "");
	if (pids == NULL || pids2 == NULL || fleet_init(&f, n, cert, key, ca_file) < 0) {
		fprintf(stderr, "sv_bench: [2] set-up failed\n");
		goto out;
	}
	double t_start = wall_ms_f();
	int64_t m_start = dp_now_ms();
	if (dp_start(&f.d) < 0)
		goto out;
	if (!wait_online(&f, NULL, 2 * n, 120000, 100)) {
		fprintf(stderr, "sv_bench: [2] not all %d runtimes online within 120 s\n", 2 * n);
		goto out;
	}
	int64_t m_online = dp_now_ms() - m_start;
	if (start_times(&f, t_start, &m->start_first_ms, &m->start_all_ms) < 0) {
		fprintf(stderr, "sv_bench: [2] a workspace's first REG is missing from the journal\n");
		goto out;
	}
	printf("    start -> first REG %.0f ms, -> all %d workspaces registered %.0f ms "
	       "(journal; %d rows online seen at %lld ms)\n", m->start_first_ms, n,
	       m->start_all_ms, 2 * n, (long long)m_online);
	int64_t pid_until = dp_now_ms() + 30000;
	while (worker_pids(&f.d, n, pids) != n) {
		if (dp_now_ms() > pid_until || !nap(100)) {
			fprintf(stderr, "sv_bench: [2] not all %d workers are running\n", n);
			goto out;
		}
	}
	int burst = startup_burst(&f, t_start, proto);
	printf("    start-up: at most %d requests handled by the server within any 1 s\n", burst);
	printf("    idle for %d s ...\n", o->idle_s);
	struct idlefig x;
	if (idle_window(&f, o->idle_s, &x) < 0)
		goto out;
	printf("    idle %.1f s: CPU of the tree (%d processes) %.2f %% of one CPU, of the emulator "
	       "%.2f %%; the server handled %d heartbeats, %d profile polls, %d other = %.4f "
	       "req/s per workspace (expected 2/%s + 1/%s)\n", x.window_s, x.procs, x.cpu_tree_pct,
	       x.cpu_emu_pct, x.beats, x.polls, x.other,
	       (x.beats + x.polls + x.other) / (x.window_s * n), f.hb, f.sync);
	int now_running = worker_pids(&f.d, n, pids2), restarted = 0;
	for (int i = 0; i < n; i++)
		restarted += pids[i] != pids2[i];
	int online = emu_online(&f.emu, NULL);
	m->exits = dp_log_count(&f.d, "msg=\"worker exited\"", NULL, NULL, NULL);
	m->liveness_kills = dp_log_count(&f.d, "msg=\"killing worker\"", "liveness", NULL, NULL);
	m->load = loadavg1();
	printf("    after the idle period: %d workers running, %d restarted, %d rows online; since "
	       "the start: %d worker exits, %d liveness kills; load average %.1f\n", now_running,
	       restarted, online, m->exits, m->liveness_kills, m->load);
	if (measure_memory(&f, pids2, m) < 0)
		goto out;
	m->ok = restarted == 0 && online == 2 * n && m->workers == n && m->exits == 0;
	if (rl != NULL && phase_reload(&f, rl) < 0)
		goto out;
	fleet_stop(&f, "stop");
	m->left_online = f.left_online;
	fleet_figures(&f, m, &x, burst, f.hb, f.sync);
	if (rl != NULL) {
		csv_figure(csv_dir, n, proto, "reload_to_reg", rl->done_ms, "ms");
		csv_figure(csv_dir, n, proto, "reload_workers_restarted", rl->changed, "");
		csv_figure(csv_dir, n, proto, "reload_other_regs", rl->other_regs, "");
	}
	rc = 0;
out:
	fleet_free(&f);
	free(pids);
	free(pids2);
	return rc;
}

/* ---- TLS material ---- */

struct tls {
	char dir[256], cert[300], key[300], bundle[300];
};

static int copy_into(FILE *out, const char *path)
{
	FILE *in = fopen(path, "r");
	if (in == NULL)
		return -1;
	char buf[8192];
	size_t r;
	while ((r = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, r, out) != r) {
			fclose(in);
			return -1;
		}
	fclose(in);
	return 0;
}

static int tls_make(struct tls *t)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(t->dir, sizeof t->dir, "%s/sv-bench-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(t->dir) == NULL) {
		t->dir[0] = '\0';
		return -1;
	}
	snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
	snprintf(t->key, sizeof t->key, "%s/key.pem", t->dir);
	snprintf(t->bundle, sizeof t->bundle, "%s/bundle.pem", t->dir);
	const char *argv[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
			       "-keyout", t->key, "-out", t->cert, "-days", "2",
			       "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
			       NULL };
	if (run_quiet(argv) != 0) {
		fprintf(stderr, "sv_bench: openssl req failed\n");
		return -1;
	}
	/* The system CA bundle + the test cert: a production-sized CA store. */
	FILE *b = fopen(t->bundle, "w");
	if (b == NULL)
		return -1;
	int rc = copy_into(b, SYSTEM_CA) == 0 && copy_into(b, t->cert) == 0 ? 0 : -1;
	if (fclose(b) != 0)
		rc = -1;
	if (rc < 0)
		t->bundle[0] = '\0';
	return 0;
}

static void tls_free(struct tls *t)
{
	if (t->dir[0] == '\0')
		return;
	unlink(t->cert);
	unlink(t->key);
	unlink(t->bundle);
	rmdir(t->dir);
	t->dir[0] = '\0';
}

static int count_certs(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char line[256];
	int n = 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
	fclose(f);
	return n;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: sv_bench [-k KILLS] [-K KILL_WORKSPACES] [-n WORKERS] [-i IDLE_SECONDS]\n"
	      "                [--skip-kill] [--skip-http] [--skip-https] [--skip-bundle]\n"
	      "                [--system-store] [--default-intervals] [--csv DIR]\n"
	      "--system-store: one more HTTPS fleet without ca_file, its system store pointed\n"
	      "  at the system bundle + the test cert (MC_TEST_SYSTEM_CA_FILE; test-hook builds).\n"
	      "--default-intervals: fleets at heartbeat 15s, profile_sync 30s (the defaults).\n"
	      "--csv DIR: figures.csv (appended) and per-run CSVs into DIR (tests/bench/run.sh).\n"
	      "Defaults: -k 100 -K 5 -n 200 -i 15 (1.5-2.5 minutes; 270 s budget).\n"
	      "Runs " MULTICAD_BIN "\n"
	      "against its own " FAKEPLANE_BIN " on 127.0.0.1.\n"
	      "Daemon and emulator logs go to stderr: redirect it.\n", f);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_SKIP_KILL = 256, O_SKIP_HTTP, O_SKIP_HTTPS, O_SKIP_BUNDLE, O_SYSTEM, O_DEFAULTS,
	       O_CSV };
	static const struct option lo[] = {
		{ "skip-kill", no_argument, NULL, O_SKIP_KILL },
		{ "skip-http", no_argument, NULL, O_SKIP_HTTP },
		{ "skip-https", no_argument, NULL, O_SKIP_HTTPS },
		{ "skip-bundle", no_argument, NULL, O_SKIP_BUNDLE },
		{ "system-store", no_argument, NULL, O_SYSTEM },
		{ "default-intervals", no_argument, NULL, O_DEFAULTS },
		{ "csv", required_argument, NULL, O_CSV },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){ .kills = 100, .kill_ws = 5, .workers = 200, .idle_s = 15 };
	int c;
	while ((c = getopt_long(argc, argv, "k:K:n:i:h", lo, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'k': bad = parse_int(optarg, 1, MAX_KILLS, &o->kills); break;
		case 'K': bad = parse_int(optarg, 1, MAX_WORKERS, &o->kill_ws); break;
		case 'n': bad = parse_int(optarg, 1, MAX_WORKERS, &o->workers); break;
		case 'i': bad = parse_int(optarg, 1, 120, &o->idle_s); break;
		case O_SKIP_KILL: o->skip_kill = true; break;
		case O_SKIP_HTTP: o->skip_http = true; break;
		case O_SKIP_HTTPS: o->skip_https = true; break;
		case O_SKIP_BUNDLE: o->skip_bundle = true; break;
		case O_SYSTEM: o->system_store = true; break;
		case O_DEFAULTS: o->default_intervals = true; break;
		case O_CSV: o->csv_dir = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
		if (bad < 0)
			return -1;
	}
	return optind == argc ? 0 : -1;
}

static void print_mem_summary(const char *label, const struct memfig *m)
{
	double goal_kb = m->goal_kb;
	bool flat = m->pss.p99 <= 1.5 * m->pss.mean;
	printf("SUMMARY [2] %-12s %d workers: Pss/worker mean %.0f median %.0f p99 %.0f max %.0f "
	       "kB (p99/mean %.2f); Private_Dirty mean %.0f max %.0f kB; Rss mean %.0f kB; "
	       "supervisor Rss %ld Pss %ld kB; fork server Pss %ld kB; start->all registered "
	       "%.0f ms; goal mean Pss <= %.0f KiB and p99 <= 1.5 x mean: %s (%d workers "
	       "over)%s\n", label, m->workers, m->pss.mean, m->pss.median, m->pss.p99, m->pss.max,
	       m->pss.mean > 0 ? m->pss.p99 / m->pss.mean : 0, m->pd.mean, m->pd.max, m->rss.mean,
	       m->sv.rss, m->sv.pss, m->have_fs ? m->fs.pss : -1L, m->start_all_ms, goal_kb,
	       verdict(m->workers > 0 && m->pss.mean <= goal_kb && flat), m->over_goal,
	       m->ok ? "" : " (run not clean: see above)");
	printf("            %-12s worker exits %d (liveness kills %d), rows online after the "
	       "graceful stop %d, load average %.1f\n", "", m->exits, m->liveness_kills,
	       m->left_online, m->load);
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)getpid());
	curl_global_init(CURL_GLOBAL_DEFAULT);
	csv_dir = o.csv_dir;
	int64_t t0 = dp_now_ms();
	budget_end = t0 + BUDGET_MS;
	int rc = 0;
	printf("sv_bench: multicad %s, %ld CPUs, load average %.1f\n", MULTICAD_BIN,
	       sysconf(_SC_NPROCESSORS_ONLN), loadavg1());

	struct killfig kf;
	memset(&kf, 0, sizeof kf);
	if (!o.skip_kill)
		phase_kill(&o, &kf);

	struct memfig mh, ms, mb;
	struct reloadfig rl;
	bool have_h = false, have_s = false, have_b = false, have_rl = false;
	memset(&rl, 0, sizeof rl);
	if (!o.skip_http && !interrupted) {
		have_h = phase_fleet(&o, "HTTP", "http", NULL, NULL, NULL, 350, &mh, &rl) == 0;
		have_rl = have_h;
	}
	struct tls t;
	memset(&t, 0, sizeof t);
	struct memfig msys;
	bool have_sys = false;
	if ((!o.skip_https || !o.skip_bundle || o.system_store) && !interrupted && tls_make(&t) < 0) {
		fprintf(stderr, "sv_bench: cannot make the TLS material\n");
		rc = 1;
	} else {
		if (!o.skip_https && !interrupted)
			have_s = phase_fleet(&o, "HTTPS", "https-cert", t.cert, t.key, t.cert, 1024, &ms,
					     NULL) == 0;
		if (!o.skip_bundle && !interrupted && t.bundle[0]) {
			char label[64];
			snprintf(label, sizeof label, "HTTPS, ca_file = system bundle + test cert "
				 "(%d certs)", count_certs(t.bundle));
			have_b = phase_fleet(&o, label, "https-bundle", t.cert, t.key, t.bundle, 800,
					     &mb, NULL) == 0;
		}
		/* No ca_file: the daemon's shared system store, pointed at the
		 * bundle by the test hook (MC_TEST_HOOKS builds, common/api_tls.c). */
		if (o.system_store && !interrupted && t.bundle[0]) {
			char label[96];
			snprintf(label, sizeof label, "HTTPS, no ca_file, system store = "
				 "MC_TEST_SYSTEM_CA_FILE (%d certs)", count_certs(t.bundle));
			setenv("MC_TEST_SYSTEM_CA_FILE", t.bundle, 1);
			have_sys = phase_fleet(&o, label, "https", t.cert, t.key, NULL, 800, &msys,
					       NULL) == 0;
			unsetenv("MC_TEST_SYSTEM_CA_FILE");
		}
	}
	tls_free(&t);
	curl_global_cleanup();

	printf("\n==== sv_bench summary (%.0f s) ====\n", (double)(dp_now_ms() - t0) / 1000.0);
	if (kf.done)
		printf("SUMMARY [1] kill->DEREG median %.1f ms p99 %.1f ms max %.1f ms over %d "
		       "kills (%d missing); goal median < 20, p99 < 100 ms: %s\n", kf.s.median,
		       kf.s.p99, kf.s.max, kf.s.n, kf.missing, verdict(kf.ok));
	else if (!o.skip_kill)
		printf("SUMMARY [1] failed (see stderr)\n");
	if (have_h)
		print_mem_summary("HTTP", &mh);
	if (have_s)
		print_mem_summary("HTTPS", &ms);
	if (have_b)
		print_mem_summary("HTTPS+bundle", &mb);
	if (have_sys)
		print_mem_summary("HTTPS+system", &msys);
	if (have_rl)
		printf("SUMMARY [3] reload of 1 of %d: SIGHUP -> new worker's REG %.0f ms; worker "
		       "pids changed %d (must be 1): %s\n", o.workers, rl.done_ms, rl.changed,
		       verdict(rl.ok));
	if ((!o.skip_kill && !kf.done) || (!o.skip_http && (!have_h || !have_rl)) || (!o.skip_https && !have_s) ||
	    (!o.skip_bundle && !have_b) || (o.system_store && !have_sys) || interrupted)
		rc = 1;
	return rc;
}
