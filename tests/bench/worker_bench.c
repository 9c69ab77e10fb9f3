/* worker_bench: one worker against multica-fakeplane on loopback, measured
 * the way the supervisor will run it: this process initializes libcurl and
 * libsodium first (mc_api_global_init), then forks the worker (wh_start).
 *
 *   a) steady-state requests per profile_sync_interval with 2 runtimes
 *      (the claude built-in + 1 custom profile whose command is a fake CLI
 *      script on PATH), counted from the emulator's journal;
 *   b) profile change -> REG latency: PATCH a profile's display_name (or
 *      fixed_args) K times at a random phase of the sync interval; latency =
 *      journal `time` of the REG (when the server answered it, CLOCK_REALTIME
 *      ms) minus CLOCK_REALTIME read just before the PATCH was sent;
 *   c) memory of the idle worker (smaps_rollup), against a control child
 *      forked from the same parent at the same moment that only sleeps, so
 *      pages the parent un-shares by writing after the fork are not charged
 *      to the worker; per-mapping Private_Dirty breakdown of both.
 *
 * See tests/bench/README.md. Bounded: about 50 s with the defaults. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/api.h"
#include "common/clock.h"
#include "tests/bench/smaps.h"
#include "tests/support/fakeplane_proc.h"
#include "tests/support/worker_harness.h"

#define WS    "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define PROF1 "a1111111-1111-4111-8111-111111111111"
#define TOKEN "mul_bench_token"
#define CLI   "bench-claude"

#define REG_PATH   "/api/daemon/register"
#define PROF_PATH  "/api/daemon/workspaces/" WS "/runtime-profiles"
#define HB_PATH    "/api/daemon/heartbeat"

#define MAX_CHANGES 200
#define MAX_PORTS 64

static const char SEED[] =
	"{\"tokens\":{\"" TOKEN "\":\"u1\"},"
	"\"workspaces\":[{\"id\":\"" WS "\",\"name\":\"bench\",\"members\":[\"u1\"]}],"
	"\"profiles\":[{\"id\":\"" PROF1 "\",\"workspace_id\":\"" WS "\","
	"\"display_name\":\"Bench A\",\"protocol_family\":\"claude\","
	"\"command_name\":\"" CLI "\",\"fixed_args\":[],\"visibility\":\"workspace\","
	"\"enabled\":true}],\"tasks\":[]}";

static const struct mc_builtin CLAUDE = { "claude", "Claude", "2.1.0", "" };

struct opts {
	double steady_s;
	int changes;
	long hb_ms;
	long sync_ms;
	bool change_args;  /* toggle fixed_args instead of display_name */
};

/* ---- small utilities ---- */

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-11-28T23:10:49.604Z" (the emulator's journal time) -> epoch ms. */
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

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static int64_t pct(const int64_t *v, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static long admin(const struct fp_proc *fp, const char *method, const char *path,
		  const char *body)
{
	char *out = NULL;
	long st = fp_http(fp, method, path, body, NULL, &out);
	free(out);
	return st;
}

static double journal_last_seq(const struct fp_proc *fp)
{
	cJSON *j = fp_journal(fp);
	int n = cJSON_GetArraySize(j);
	double s = n > 0 ? cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, n - 1),
								     "seq")) : -1;
	cJSON_Delete(j);
	return s;
}

/* ---- the worker's TCP connections to the emulator (keep-alive evidence) ---- */

/* Local ports of the worker's ESTABLISHED connections to 127.0.0.1:port,
 * from /proc/PID/fd (socket inodes) and /proc/PID/net/tcp. */
static int worker_conns(pid_t pid, int port, unsigned *ports, int max)
{
	char path[64];
	unsigned long inodes[256];
	int ni = 0;
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && ni < 256) {
		char link[400], target[128];
		snprintf(link, sizeof link, "%s/%s", path, de->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		unsigned long ino;
		if (sscanf(target, "socket:[%lu]", &ino) == 1)
			inodes[ni++] = ino;
	}
	closedir(d);
	snprintf(path, sizeof path, "/proc/%d/net/tcp", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	char line[512];
	int found = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned lport, rport, st;
		unsigned long ino;
		if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport,
			   &rport, &st, &ino) != 4)
			continue;
		if (st != 1 || rport != (unsigned)port)
			continue;
		for (int i = 0; i < ni; i++)
			if (inodes[i] == ino && found < max)
				ports[found++] = lport;
	}
	fclose(f);
	return found;
}

struct portset {
	unsigned v[MAX_PORTS];
	int n;
	int max_at_once;
};

static void portset_sample(struct portset *s, pid_t pid, int port)
{
	unsigned now[MAX_PORTS];
	int n = worker_conns(pid, port, now, MAX_PORTS);
	if (n > s->max_at_once)
		s->max_at_once = n;
	for (int i = 0; i < n; i++) {
		int j = 0;
		while (j < s->n && s->v[j] != now[i])
			j++;
		if (j == s->n && s->n < MAX_PORTS)
			s->v[s->n++] = now[i];
	}
}

/* ---- memory ---- */

static const struct mapsums *sort_ctx;

static int cmp_mapsum(const void *a, const void *b)
{
	const struct mapsum *x = a, *y = b;
	long dx = x->private_dirty - mapsum_pd(sort_ctx, x->name);
	long dy = y->private_dirty - mapsum_pd(sort_ctx, y->name);
	if (dx != dy)
		return dx > dy ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void print_breakdown(struct mapsums *w, const struct mapsums *ctl)
{
	sort_ctx = ctl;
	qsort(w->v, (size_t)w->n, sizeof w->v[0], cmp_mapsum);
	printf("    Private_Dirty by mapping (kB), worker vs sleeping control, by difference:\n");
	printf("      %-44s %8s %8s %8s\n", "mapping", "worker", "control", "diff");
	long shown = 0;
	for (int i = 0; i < w->n; i++) {
		long c = mapsum_pd(ctl, w->v[i].name);
		if (w->v[i].private_dirty == 0 && c == 0)
			continue;
		printf("      %-44.44s %8ld %8ld %+8ld\n", w->v[i].name, w->v[i].private_dirty, c,
		       w->v[i].private_dirty - c);
		shown += w->v[i].private_dirty;
	}
	/* Mappings the control has and the worker does not. */
	for (int i = 0; i < ctl->n; i++) {
		bool in_w = false;
		for (int k = 0; k < w->n && !in_w; k++)
			in_w = strcmp(w->v[k].name, ctl->v[i].name) == 0;
		if (!in_w && ctl->v[i].private_dirty > 0)
			printf("      %-44.44s %8d %8ld %+8ld\n", ctl->v[i].name, 0,
			       ctl->v[i].private_dirty, -ctl->v[i].private_dirty);
	}
}

struct memshot {
	struct rollup w, c;
};

static int mem_measure(pid_t worker, pid_t control, struct memshot *s, bool breakdown)
{
	if (read_rollup(worker, &s->w) < 0 || read_rollup(control, &s->c) < 0)
		return -1;
	printf("    %-10s %8s %8s %14s %14s %13s %10s\n", "kB", "Rss", "Pss", "Private_Dirty",
	       "Private_Clean", "Shared_Dirty", "Anonymous");
	printf("    %-10s %8ld %8ld %14ld %14ld %13ld %10ld\n", "worker", s->w.rss, s->w.pss,
	       s->w.private_dirty, s->w.private_clean, s->w.shared_dirty, s->w.anon);
	printf("    %-10s %8ld %8ld %14ld %14ld %13ld %10ld\n", "control", s->c.rss, s->c.pss,
	       s->c.private_dirty, s->c.private_clean, s->c.shared_dirty, s->c.anon);
	printf("    %-10s %8ld %8ld %14ld\n", "difference", s->w.rss - s->c.rss,
	       s->w.pss - s->c.pss, s->w.private_dirty - s->c.private_dirty);
	if (breakdown) {
		struct mapsums *mw = calloc(1, sizeof *mw), *mc = calloc(1, sizeof *mc);
		if (mw != NULL && mc != NULL && read_smaps(worker, mw) == 0 &&
		    read_smaps(control, mc) == 0)
			print_breakdown(mw, mc);
		free(mw);
		free(mc);
	}
	return 0;
}

/* ---- the control child ---- */

static pid_t fork_sleeper(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static void kill_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* ---- phases ---- */

struct steady {
	double seconds, intervals_sync, intervals_hb;
	int gets, beats, others;
	int other_kinds;
	char other_desc[512];
	struct portset ports;
};

static void phase_a(struct fp_proc *fp, struct wh *h, const struct opts *o, struct steady *r)
{
	memset(r, 0, sizeof *r);
	double s0 = journal_last_seq(fp);
	mc_ms_t t0 = mc_now_ms(), until = t0 + (mc_ms_t)(o->steady_s * 1000);
	while (mc_now_ms() < until) {
		wh_pump(h, 250);
		portset_sample(&r->ports, h->pid, fp->port);
	}
	double s1 = journal_last_seq(fp);
	r->seconds = (double)(mc_now_ms() - t0) / 1000.0;
	r->intervals_sync = r->seconds * 1000.0 / (double)o->sync_ms;
	r->intervals_hb = r->seconds * 1000.0 / (double)o->hb_ms;
	cJSON *j = fp_journal(fp), *e;
	cJSON_ArrayForEach(e, j) {
		double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "seq"));
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		if (seq <= s0 || seq > s1 || m == NULL || p == NULL)
			continue;
		if (strcmp(m, "GET") == 0 && strcmp(p, PROF_PATH) == 0) {
			r->gets++;
		} else if (strcmp(m, "POST") == 0 && strcmp(p, HB_PATH) == 0) {
			r->beats++;
		} else {
			r->others++;
			size_t len = strlen(r->other_desc);
			if (r->other_kinds++ < 6)
				snprintf(r->other_desc + len, sizeof r->other_desc - len, "%s%s %s",
					 len ? ", " : "", m, p);
		}
	}
	cJSON_Delete(j);
}

struct change {
	int64_t reg_ms;      /* PATCH sent -> REG answered (journal) */
	int64_t detect_ms;   /* PATCH sent -> the GET profiles that saw it answered */
	int64_t patch_rtt;   /* PATCH round trip seen by us */
};

/* Finds, after seq s0, the first REG and the GET profiles right before it
 * (the register step is serialized, so that fetch is the one that saw the
 * change); returns true when a REG is there. */
static bool find_after(const struct fp_proc *fp, double s0, int64_t *reg_t, int64_t *get_t)
{
	cJSON *j = fp_journal(fp), *e;
	bool got = false;
	*get_t = -1;
	cJSON_ArrayForEach(e, j) {
		double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "seq"));
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "time"));
		if (seq <= s0 || m == NULL || p == NULL)
			continue;
		if (strcmp(m, "GET") == 0 && strcmp(p, PROF_PATH) == 0)
			*get_t = parse_time_ms(t);
		if (strcmp(m, "POST") == 0 && strcmp(p, REG_PATH) == 0) {
			*reg_t = parse_time_ms(t);
			got = true;
			break;
		}
	}
	cJSON_Delete(j);
	return got;
}

static int phase_b(struct fp_proc *fp, struct wh *h, const struct opts *o, struct change *c)
{
	static const char *const bodies_name[2] = { "{\"display_name\":\"Bench B\"}",
						    "{\"display_name\":\"Bench A\"}" };
	static const char *const bodies_args[2] = { "{\"fixed_args\":[\"--bench\"]}",
						    "{\"fixed_args\":[]}" };
	int done = 0;
	for (int k = 0; k < o->changes; k++) {
		/* A uniformly random phase relative to the worker's sync tick. */
		wh_pump(h, (int)mc_rand_below(o->sync_ms) + 1);
		double s0 = journal_last_seq(fp);
		const char *body = o->change_args ? bodies_args[k & 1] : bodies_name[k & 1];
		int64_t t_sent = wall_ms();
		mc_ms_t m0 = mc_now_ms();
		if (admin(fp, "PATCH", "/_admin/profiles/" PROF1, body) != 200) {
			fprintf(stderr, "worker_bench: PATCH failed\n");
			return -1;
		}
		c[k].patch_rtt = mc_now_ms() - m0;
		int64_t reg_t = -1, get_t = -1;
		mc_ms_t until = mc_now_ms() + 10 * o->sync_ms + 5000;
		while (!find_after(fp, s0, &reg_t, &get_t)) {
			if (mc_now_ms() > until) {
				fprintf(stderr, "worker_bench: no REG after change %d\n", k);
				return -1;
			}
			wh_pump(h, 20);
		}
		c[k].reg_ms = reg_t - t_sent;
		c[k].detect_ms = get_t >= 0 ? get_t - t_sent : -1;
		done++;
	}
	return done;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fputs("usage: worker_bench [-d STEADY_SECONDS] [-k CHANGES] [--hb-ms MS] [--sync-ms MS]\n"
	      "                    [--change name|args]\n"
	      "Defaults: -d 20 -k 20 --hb-ms 1000 --sync-ms 1000 --change name.\n"
	      "Starts its own fakeplane (" FAKEPLANE_BIN ") on 127.0.0.1.\n"
	      "Worker and emulator logs go to stderr: redirect it.\n", f);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "hb-ms", required_argument, NULL, 'b' },
		{ "sync-ms", required_argument, NULL, 's' },
		{ "change", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){ .steady_s = 20, .changes = 20, .hb_ms = 1000, .sync_ms = 1000 };
	int c;
	while ((c = getopt_long(argc, argv, "d:k:h", lo, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'd': o->steady_s = strtod(optarg, &end); break;
		case 'k': o->changes = (int)strtol(optarg, &end, 10); break;
		case 'b': o->hb_ms = strtol(optarg, &end, 10); break;
		case 's': o->sync_ms = strtol(optarg, &end, 10); break;
		case 'c':
			if (strcmp(optarg, "name") != 0 && strcmp(optarg, "args") != 0)
				return -1;
			o->change_args = strcmp(optarg, "args") == 0;
			break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
		if (end != NULL && *end != '\0')
			return -1;
	}
	if (optind != argc || o->steady_s < 1 || o->steady_s > 60 || o->changes < 1 ||
	    o->changes > MAX_CHANGES || o->hb_ms < 100 || o->hb_ms > 10000 ||
	    o->sync_ms < 100 || o->sync_ms > 5000)
		return -1;
	return 0;
}

static const char *verdict(bool ok)
{
	return ok ? "OK" : "MISSED";
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* As the supervisor: libraries initialized before any worker is forked. */
	if (mc_api_global_init() < 0) {
		fprintf(stderr, "worker_bench: mc_api_global_init: %s\n", strerror(errno));
		return 1;
	}
	const char *clis[] = { CLI, NULL };
	char *cli_dir = wh_fake_cli_dir(clis, "9.9.9");
	if (cli_dir == NULL) {
		fprintf(stderr, "worker_bench: cannot make the fake CLI\n");
		return 1;
	}
	char path_env[600];
	snprintf(path_env, sizeof path_env, "%s:/usr/bin:/bin", cli_dir);
	struct fp_proc fp;
	if (fp_start(&fp, SEED, NULL) < 0) {
		fprintf(stderr, "worker_bench: cannot start the fakeplane\n");
		wh_rmtree(cli_dir);
		free(cli_dir);
		return 1;
	}

	int rc = 1;
	struct wh h;
	memset(&h, 0, sizeof h);
	h.fd = -1;
	/* The control child and the worker are forked back to back from the
	 * same parent state. */
	pid_t control = fork_sleeper();
	struct wh_opts wo = {
		.server_url = fp.url, .token = TOKEN, .workspace_id = WS,
		.heartbeat_ms = o.hb_ms, .profile_sync_ms = o.sync_ms,
		.builtins = &CLAUDE, .n_builtins = 1, .path_env = path_env,
	};
	if (control < 0 || wh_start(&h, &wo) < 0) {
		fprintf(stderr, "worker_bench: cannot start the worker\n");
		goto out;
	}
	printf("worker_bench: worker pid %d, control pid %d, fakeplane %s\n", (int)h.pid,
	       (int)control, fp.url);
	printf("  heartbeat_interval %ld ms, profile_sync_interval %ld ms, 2 runtimes "
	       "(claude built-in + custom profile -> %s on PATH)\n", o.hb_ms, o.sync_ms, CLI);
	if (!wh_wait_report_n(&h, 2, 10000)) {
		fprintf(stderr, "worker_bench: the worker did not register 2 runtimes\n");
		goto out;
	}
	/* Let the first heartbeats (jittered over one interval) settle. */
	wh_pump(&h, (int)(o.hb_ms > o.sync_ms ? o.hb_ms : o.sync_ms) + 500);

	/* a) */
	struct steady st;
	phase_a(&fp, &h, &o, &st);
	printf("\n[a] steady state: %.1f s = %.1f sync intervals, %.1f heartbeat intervals\n",
	       st.seconds, st.intervals_sync, st.intervals_hb);
	printf("    GET runtime-profiles %4d  = %.2f per sync interval (expected 1)\n", st.gets,
	       st.gets / st.intervals_sync);
	printf("    POST heartbeat       %4d  = %.2f per heartbeat interval (expected 2)\n",
	       st.beats, st.beats / st.intervals_hb);
	printf("    anything else        %4d  %s\n", st.others, st.other_desc);
	printf("    TCP connections to the emulator: %d distinct over the run, at most %d "
	       "at once (sampled every 250 ms)\n", st.ports.n, st.ports.max_at_once);

	/* c) measured on the idle worker, before the profile changes of b) */
	printf("\n[c] memory of the idle worker after %.0f s of steady state:\n", st.seconds);
	struct memshot m1, m2;
	if (mem_measure(h.pid, control, &m1, true) < 0)
		goto out;

	/* b) */
	struct change *ch = calloc((size_t)o.changes, sizeof *ch);
	if (ch == NULL)
		goto out;
	int n = phase_b(&fp, &h, &o, ch);
	if (n <= 0) {
		free(ch);
		goto out;
	}
	int64_t *reg = calloc((size_t)n, sizeof *reg), *det = calloc((size_t)n, sizeof *det);
	int64_t rtt_max = 0, gap_max = 0, gap_sum = 0;
	int nd = 0;
	for (int i = 0; i < n && reg != NULL && det != NULL; i++) {
		reg[i] = ch[i].reg_ms;
		if (ch[i].detect_ms >= 0) {
			det[nd++] = ch[i].detect_ms;
			int64_t gap = ch[i].reg_ms - ch[i].detect_ms;
			gap_sum += gap;
			if (gap > gap_max)
				gap_max = gap;
		}
		if (ch[i].patch_rtt > rtt_max)
			rtt_max = ch[i].patch_rtt;
	}
	free(ch);
	if (reg == NULL || det == NULL) {
		free(reg);
		free(det);
		goto out;
	}
	qsort(reg, (size_t)n, sizeof *reg, cmp_i64);
	qsort(det, (size_t)nd, sizeof *det, cmp_i64);
	int64_t target = o.sync_ms + 100;
	int over = 0;
	for (int i = 0; i < n; i++)
		over += reg[i] > target;
	printf("\n[b] profile change -> REG at the server, %d changes of %s at a random phase:\n",
	       n, o.change_args ? "fixed_args" : "display_name");
	printf("    measured: journal time of the REG (server answered it) - wall clock "
	       "just before the PATCH was sent (PATCH round trip max %lld ms)\n",
	       (long long)rtt_max);
	printf("    PATCH -> REG     ms: min %lld  median %lld  p95 %lld  max %lld\n",
	       (long long)reg[0], (long long)pct(reg, n, 50), (long long)pct(reg, n, 95),
	       (long long)reg[n - 1]);
	if (nd > 0)
		printf("    PATCH -> GET     ms: min %lld  median %lld  p95 %lld  max %lld "
		       "(the fetch that saw the change)\n", (long long)det[0],
		       (long long)pct(det, nd, 50), (long long)pct(det, nd, 95),
		       (long long)det[nd - 1]);
	if (nd > 0)
		printf("    GET -> REG       ms: mean %.1f  max %lld (worker + server work between "
		       "the fetch and the REG answer; journal times have 1 ms resolution)\n",
		       (double)gap_sum / nd, (long long)gap_max);
	printf("    target <= sync interval + 100 ms = %lld ms: %s (%d of %d over)\n",
	       (long long)target, verdict(over == 0), over, n);

	printf("\n[c'] memory again after the %d profile changes (growth check):\n", n);
	if (mem_measure(h.pid, control, &m2, false) < 0) {
		free(reg);
		free(det);
		goto out;
	}

	long own1 = m1.w.private_dirty - m1.c.private_dirty;
	double gets_pi = st.gets / st.intervals_sync, beats_pi = st.beats / st.intervals_hb;
	printf("\n==== worker_bench summary (hb %ld ms, sync %ld ms, 2 runtimes) ====\n", o.hb_ms,
	       o.sync_ms);
	printf("a) per interval: %.2f GET runtime-profiles, %.2f POST heartbeat, %d other "
	       "requests in %.0f s; %d TCP connection(s)\n", gets_pi, beats_pi, st.others,
	       st.seconds, st.ports.n);
	printf("b) PATCH->REG ms: min %lld median %lld p95 %lld max %lld; target %lld: %s\n",
	       (long long)reg[0], (long long)pct(reg, n, 50), (long long)pct(reg, n, 95),
	       (long long)reg[n - 1], (long long)target, verdict(over == 0));
	printf("c) idle worker: Private_Dirty %ld kB (control %ld kB, worker's own %ld kB), "
	       "Pss %ld kB, Rss %ld kB; target Private_Dirty < 300 KiB: %s (raw), %s (own)\n",
	       m1.w.private_dirty, m1.c.private_dirty, own1, m1.w.pss, m1.w.rss,
	       verdict(m1.w.private_dirty < 300), verdict(own1 < 300));
	printf("   after b): Private_Dirty %ld kB (own %ld kB)\n", m2.w.private_dirty,
	       m2.w.private_dirty - m2.c.private_dirty);
	free(reg);
	free(det);

	int code = wh_stop(&h, 7000);
	printf("worker stopped: exit %d, deregistered %s\n", code,
	       h.stopped_deregistered ? "true" : "false");
	rc = code == 0 ? 0 : 1;
out:
	wh_free(&h);
	kill_reap(control);
	fp_stop(&fp);
	wh_rmtree(cli_dir);
	free(cli_dir);
	return rc;
}
