/* task_bench helpers: see tb_util.h. */
#include "tests/bench/tb_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the emulator ---- */

int tb_emu_start(struct tb_emu *e, int n_ws, const char *const *args)
{
	memset(e, 0, sizeof *e);
	if ((e->h = curl_easy_init()) == NULL)
		return -1;
	char *seed = dp_seed(n_ws, NULL, NULL);
	int rc = seed != NULL ? fp_start(&e->fp, seed, args) : -1;
	free(seed);
	if (rc < 0) {
		fprintf(stderr, "task_bench: the emulator did not start\n");
		return -1;
	}
	e->started = true;
	return 0;
}

void tb_emu_stop(struct tb_emu *e)
{
	if (e->started)
		fp_stop(&e->fp);
	e->started = false;
	if (e->h != NULL)
		curl_easy_cleanup(e->h);
	e->h = NULL;
}

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

long tb_http(struct tb_emu *e, const char *method, const char *path, const char *body,
	     char **out)
{
	char url[512];
	struct mbuf b = { NULL, 0 };
	struct curl_slist *hdr = NULL;
	if (out != NULL)
		*out = NULL;
	snprintf(url, sizeof url, "%s%s", e->fp.url, path);
	curl_easy_reset(e->h);
	curl_easy_setopt(e->h, CURLOPT_URL, url);
	curl_easy_setopt(e->h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(e->h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, mbuf_write);
	curl_easy_setopt(e->h, CURLOPT_WRITEDATA, (void *)&b);
	if (body != NULL) {
		hdr = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, body);
	}
	long status = -1;
	if (curl_easy_perform(e->h) == CURLE_OK)
		curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	if (out != NULL && status >= 0) {
		*out = b.p != NULL ? b.p : strdup("");
		b.p = NULL;
	}
	free(b.p);
	return status;
}

cJSON *tb_get_json(struct tb_emu *e, const char *path)
{
	char *body = NULL;
	long st = tb_http(e, "GET", path, NULL, &body);
	cJSON *j = st == 200 && body != NULL ? cJSON_Parse(body) : NULL;
	if (j == NULL)
		fprintf(stderr, "task_bench: GET %s: status %ld\n", path, st);
	free(body);
	return j;
}

/* Online rows of ws (NULL: all), the first one's id into first; the
 * count, or -1. */
static int each_online(struct tb_emu *e, const char *ws, char *first, size_t n)
{
	cJSON *s = tb_get_json(e, "/_admin/state");
	if (s == NULL)
		return -1;
	int k = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "runtimes")) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		if (st == NULL || strcmp(st, "online") != 0 || id == NULL ||
		    (ws != NULL && (w == NULL || strcmp(w, ws) != 0)))
			continue;
		if (k++ == 0 && first != NULL)
			snprintf(first, n, "%s", id);
	}
	cJSON_Delete(s);
	return k;
}

int tb_runtime_of(struct tb_emu *e, int ws, char out[DP_ID_LEN + 1])
{
	char w[DP_ID_LEN + 1];
	dp_ws_id(ws, w);
	return each_online(e, w, out, DP_ID_LEN + 1) > 0 ? 0 : -1;
}

int tb_count_online(struct tb_emu *e)
{
	return each_online(e, NULL, NULL, 0);
}

int tb_queue(struct tb_emu *e, const char *rid, const char *env, char id[TB_TASK_ID_LEN])
{
	static unsigned n;
	char body[2048];
	snprintf(id, TB_TASK_ID_LEN, "c%07u-2222-4222-8222-%012u", ++n, (unsigned)getpid());
	snprintf(body, sizeof body,
		 "{\"id\":\"%s\",\"runtime_id\":\"%s\",\"issue_id\":"
		 "\"d1111111-1111-4111-8111-111111111111\",\"agent\":{\"id\":"
		 "\"b1111111-1111-4111-8111-111111111111\",\"name\":\"Bench Agent\","
		 "\"instructions\":\"Be brief.\",\"custom_env\":{%s}}}", id, rid, env);
	long st = tb_http(e, "POST", "/_admin/tasks", body, NULL);
	if (st != 200) {
		fprintf(stderr, "task_bench: queueing a task answered %ld\n", st);
		return -1;
	}
	return 0;
}

int tb_task_field(struct tb_emu *e, const char *id, const char *field, char *out, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	out[0] = '\0';
	cJSON *j = tb_get_json(e, path);
	if (j == NULL)
		return -1;
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(j, field));
	snprintf(out, n, "%s", s != NULL ? s : "");
	cJSON_Delete(j);
	return 0;
}

/* ---- time ---- */

int64_t tb_parse_time(const char *s)
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

int64_t tb_time_of(const cJSON *obj, const char *key)
{
	return tb_parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(obj, key)));
}

/* ---- the fake agents' clock ---- */

int tb_evs_load(const char *path, struct tb_evs *out)
{
	out->v = NULL;
	out->n = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	char line[256];
	int cap = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		struct tb_ev ev;
		if (sscanf(line, "%15s %lf %39s %d", ev.event, &ev.ms, ev.task, &ev.pid) != 4)
			continue;
		ev.ms *= 1000.0;
		if (out->n == cap) {
			cap = cap ? 2 * cap : 256;
			struct tb_ev *nv = realloc(out->v, (size_t)cap * sizeof *nv);
			if (nv == NULL) {
				fclose(f);
				return -1;
			}
			out->v = nv;
		}
		out->v[out->n++] = ev;
	}
	fclose(f);
	return 0;
}

void tb_evs_free(struct tb_evs *e)
{
	free(e->v);
	e->v = NULL;
	e->n = 0;
}

const struct tb_ev *tb_evs_find(const struct tb_evs *e, const char *event, const char *task,
				int *count)
{
	const struct tb_ev *first = NULL;
	int k = 0;
	for (int i = 0; i < e->n; i++) {
		if (strcmp(e->v[i].event, event) != 0 || strcmp(e->v[i].task, task) != 0)
			continue;
		if (first == NULL)
			first = &e->v[i];
		k++;
	}
	if (count != NULL)
		*count = k;
	return first;
}

int tb_evs_count(const char *path, const char *event)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	char line[256];
	size_t l = strlen(event);
	int k = 0;
	while (fgets(line, sizeof line, f) != NULL)
		k += strncmp(line, event, l) == 0 && line[l] == '\t';
	fclose(f);
	return k;
}

/* ---- the daemon's log ---- */

int64_t tb_log_ts(const char *log, const char *msg, const char *id)
{
	char m[128], t[80];
	snprintf(m, sizeof m, "msg=\"%s\"", msg);
	snprintf(t, sizeof t, "task=%s", id);
	for (const char *p = log; p != NULL && *p; ) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[2048];
		if (len >= sizeof line)
			len = sizeof line - 1;
		memcpy(line, p, len);
		line[len] = '\0';
		if (strstr(line, m) != NULL && strstr(line, t) != NULL && strncmp(line, "ts=", 3) == 0)
			return tb_parse_time(line + 3);
		p = nl ? nl + 1 : NULL;
	}
	return -1;
}

/* ---- statistics ---- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

struct tb_stats tb_stats_of(double *v, int n)
{
	struct tb_stats s = { .n = n };
	if (n <= 0)
		return s;
	qsort(v, (size_t)n, sizeof *v, cmp_dbl);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += v[i];
	s.min = v[0];
	s.max = v[n - 1];
	s.median = pct(v, n, 50);
	s.p95 = pct(v, n, 95);
	s.mean = sum / n;
	return s;
}

double tb_loadavg1(void)
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
