/* What the websocket suites share (test_ws.h). */
#include "tests/integration/test_ws.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>
#include <curl/curl.h>

/* Set by wsx_use_https: the admin API then goes there, verified with ca. */
static char https_url[96];
static char https_ca[400];
char wsx_daemon_url[96];

const char *wsx_profile(int i, const char *prof, const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	dfx_ws_ids();
	snprintf(buf[k], sizeof buf[k],
		 "{\"id\":\"%s\",\"workspace_id\":\"%s\",\"display_name\":\"%s\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"my-claude\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true}",
		 prof, WS[i], name);
	return buf[k];
}

void wsx_profile_id(int k, char out[DP_ID_LEN + 1])
{
	snprintf(out, DP_ID_LEN + 1, "a0000000-0000-4000-8000-%012d", k);
}

/* The online rows' ids at the emulator, of workspace ws (NULL: all; at
 * most max stored, ids may be NULL), or -1. Over wsx_http (HTTPS too). */
static int online_ids_of(const char *ws, char (*ids)[DP_ID_LEN + 1], int max)
{
	cJSON *st = wsx_get("/_admin/state");
	if (st == NULL)
		return -1;
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		if (s == NULL || id == NULL || strcmp(s, "online") != 0 ||
		    (ws != NULL && (w == NULL || strcmp(w, ws) != 0)))
			continue;
		if (ids != NULL && n < max)
			strlcpy(ids[n], id, DP_ID_LEN + 1);
		n++;
	}
	cJSON_Delete(st);
	return n;
}

static int online_ids(char (*ids)[DP_ID_LEN + 1], int max)
{
	return online_ids_of(NULL, ids, max);
}

void wsx_start(const struct wsx_opts *o)
{
	int n = o->n_ws > 0 ? o->n_ws : 2;
	dfx_start_plane(n, NULL, o->profiles, o->fp_args);
	if (o->https_ca != NULL) {
		char url[96];
		snprintf(url, sizeof url, "https://127.0.0.1:%d", FP.port);
		wsx_use_https(url, o->https_ca);
	}
	if (o->before_daemon != NULL)
		o->before_daemon();
	if (o->ws_fault != NULL)
		wsx_admin_ok("POST", "/_admin/ws/faults", o->ws_fault);
	static char extra[1024], providers[600];
	snprintf(extra, sizeof extra, "task_poll_interval = %s\ntask_stop_grace = 1s\n%s",
		 o->task_poll ? o->task_poll : "1h", o->daemon_extra ? o->daemon_extra : "");
	snprintf(providers, sizeof providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	struct dp_config c = {
		.workspaces = dfx_ws_list(1, n),
		.profile_sync_interval = o->profile_sync ? o->profile_sync : "1h",
		.daemon_extra = extra, .providers = providers, .stop_timeout = "8s",
	};
	const char *clis[] = { "claude", "my-claude", NULL };
	cr_assert_eq(dp_init(&D, NULL, clis, NULL), 0);
	c.server_url = wsx_daemon_url[0] ? wsx_daemon_url : https_url[0] ? https_url : FP.url;
	cr_assert_eq(dp_write_config(&D, &c), 0);
	D.extra_env = o->env;
	cr_assert_eq(dp_start(&D), 0);
	for (int i = 1; i <= n; i++)
		DFX_WAIT_UP(dp_worker_pid(&D, WS[i]) != 0 && online_ids_of(WS[i], NULL, 0) >= 1,
			    WSX_READY_MS, "workspace %d did not come up", i);
	if (!o->no_wait)
		wsx_wait_socket_ready(WSX_READY_MS);
}

/* ---- the emulator ---- */

void wsx_use_https(const char *url, const char *ca_file)
{
	strlcpy(https_url, url, sizeof https_url);
	strlcpy(https_ca, ca_file, sizeof https_ca);
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
	return fwrite(data, size, n, (FILE *)ud);
}

long wsx_http(const char *method, const char *path, const char *body, char **out)
{
	if (https_url[0] == '\0')
		return fp_http_timeout(&FP, method, path, body, NULL, out, 10000);
	char *resp = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&resp, &len);
	cr_assert_not_null(f);
	char url[400];
	snprintf(url, sizeof url, "%s%s", https_url, path);
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_CAINFO, https_ca);
	long status = -1;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	fclose(f);
	if (out != NULL)
		*out = resp;
	else
		free(resp);
	return status;
}

void wsx_admin_ok(const char *method, const char *path, const char *body)
{
	char *out = NULL;
	long st = wsx_http(method, path, body, &out);
	cr_assert_eq(st, 200, "%s %s %s: %ld %s", method, path, body ? body : "", st,
		     out ? out : "");
	free(out);
}

cJSON *wsx_get(const char *path)
{
	char *body = NULL;
	long st = wsx_http("GET", path, NULL, &body);
	cJSON *j = st == 200 && body != NULL ? cJSON_Parse(body) : NULL;
	free(body);
	return j;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

int wsx_conns(struct wsx_conn *out, int max)
{
	cJSON *j = wsx_get("/_admin/ws");
	if (j == NULL)
		return -1;
	int n = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "connections")) {
		if (out != NULL && n < max) {
			struct wsx_conn *w = &out[n];
			memset(w, 0, sizeof *w);
			const cJSON *id = cJSON_GetObjectItem(c, "id");
			if (cJSON_IsString(id))
				strlcpy(w->id, id->valuestring, sizeof w->id);
			else
				snprintf(w->id, sizeof w->id, "%.0f", num(c, "id"));
			const cJSON *r;
			cJSON_ArrayForEach(r, cJSON_GetObjectItem(c, "runtime_ids")) {
				if (cJSON_IsString(r) && w->n_rt < 128)
					strlcpy(w->rt[w->n_rt++], r->valuestring, DP_ID_LEN + 1);
			}
			w->pings_sent = num(c, "pings_sent");
			w->pongs_received = num(c, "pongs_received");
			w->frames_received = num(c, "frames_received");
			w->frames_sent = num(c, "frames_sent");
		}
		n++;
	}
	cJSON_Delete(j);
	return n;
}

long wsx_upgrades(const char *status)
{
	cJSON *j = wsx_get("/_admin/ws");
	if (j == NULL)
		return -1;
	long n = 0;
	const cJSON *u;
	cJSON_ArrayForEach(u, cJSON_GetObjectItem(j, "upgrades")) {
		if (cJSON_IsNumber(u) && (status == NULL || strcmp(u->string, status) == 0))
			n += (long)u->valuedouble;
	}
	cJSON_Delete(j);
	return n;
}

long wsx_closed(void)
{
	cJSON *j = wsx_get("/_admin/ws");
	long n = j != NULL ? (long)num(j, "closed") : -1;
	cJSON_Delete(j);
	return n;
}

/* Journal entries after seq: method, path prefix, body containing has
 * (NULL: any), status (0: any). Over wsx_http, so HTTPS works too. */
static int j_count(long after_seq, const char *method, const char *prefix, const char *has,
		   long status)
{
	cJSON *j = wsx_get("/_admin/journal");
	cr_assert_not_null(j, "cannot read the emulator's journal");
	int n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		if ((long)num(e, "seq") > after_seq && m != NULL && p != NULL &&
		    strcmp(m, method) == 0 && strncmp(p, prefix, strlen(prefix)) == 0 &&
		    (has == NULL || (b != NULL && strstr(b, has) != NULL)) &&
		    (status == 0 || (long)num(e, "status") == status))
			n++;
	}
	cJSON_Delete(j);
	return n;
}

int wsx_j_upgrades(long after_seq, long status)
{
	return j_count(after_seq, "GET", WSX_UPGRADE, NULL, status);
}

bool wsx_one_conn(char out[64])
{
	struct wsx_conn c[2];
	if (wsx_conns(c, 2) != 1)
		return false;
	strlcpy(out, c[0].id, 64);
	return true;
}

/* ---- the daemon ---- */

static cJSON *ws_status(void)
{
	char *reply = NULL;
	if (dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000) != 0)
		return NULL;
	cJSON *j = cJSON_Parse(reply);
	free(reply);
	if (cJSON_GetObjectItem(cJSON_GetObjectItem(j, "link"), "websocket") == NULL) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

void wsx_state(char *out, size_t n)
{
	out[0] = '\0';
	cJSON *j = ws_status();
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(j, "link"), "websocket"), "state"));
	if (s != NULL)
		strlcpy(out, s, n);
	cJSON_Delete(j);
}

bool wsx_state_is(const char *want)
{
	char s[32];
	wsx_state(s, sizeof s);
	return strcmp(s, want) == 0;
}

long wsx_connects(void)
{
	cJSON *j = ws_status();
	long n = (long)num(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "link"), "websocket"),
			   "connects");
	cJSON_Delete(j);
	return n;
}

bool wsx_socket_ready(void)
{
	static struct wsx_conn c[2];
	static char ids[128][DP_ID_LEN + 1];
	if (wsx_conns(c, 2) != 1)
		return false;
	int n = online_ids(ids, 128);
	if (n <= 0 || n != c[0].n_rt)
		return false;
	for (int i = 0; i < n; i++) {
		bool found = false;
		for (int k = 0; k < c[0].n_rt && !found; k++)
			found = strcmp(ids[i], c[0].rt[k]) == 0;
		if (!found)
			return false;
	}
	return wsx_state_is("up");
}

void wsx_wait_socket_ready(int timeout_ms)
{
	if (DP_WAIT(wsx_socket_ready() || !dp_alive(&D), timeout_ms) && dp_alive(&D))
		return;
	static struct wsx_conn c[4];
	static char ids[128][DP_ID_LEN + 1];
	char st[32];
	int n = wsx_conns(c, 4);
	wsx_state(st, sizeof st);
	cr_assert_fail("the socket did not come up with every runtime: %d connections (first "
		       "with %d runtimes), %d rows online, state \"%s\", daemon %s", n,
		       n > 0 ? c[0].n_rt : 0, online_ids(ids, 128), st,
		       dp_alive(&D) ? "alive" : "dead");
}

int wsx_regs_of(long after_seq, int i)
{
	return j_count(after_seq, "POST", WSX_REG, WS[i], 0);
}

int wsx_fetches_of(long after_seq, int i)
{
	char p[128];
	snprintf(p, sizeof p, "/api/daemon/workspaces/%s/runtime-profiles", WS[i]);
	return j_count(after_seq, "GET", p, NULL, 0);
}

/* "2026-11-28T23:11:41.692Z" (the journal's clock) -> wall clock ms; 0
 * when it does not parse. */
static int64_t parse_ms(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = s != NULL ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (p == NULL)
		return 0;
	int64_t ms = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; isdigit((unsigned char)*p); p++)
			if (digits < 3) {
				ms = ms * 10 + (*p - '0');
				digits++;
			}
		for (; digits < 3; digits++)
			ms *= 10;
	}
	return (int64_t)timegm(&tm) * 1000 + ms;
}

long wsx_j_first(long after_seq, const char *method, const char *prefix, const char *has,
		 long status, int64_t *time_ms)
{
	cJSON *j = wsx_get("/_admin/journal");
	cr_assert_not_null(j, "cannot read the emulator's journal");
	long seq = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		long s = (long)num(e, "seq");
		if (s > after_seq && m != NULL && p != NULL && strcmp(m, method) == 0 &&
		    strncmp(p, prefix, strlen(prefix)) == 0 &&
		    (has == NULL || (b != NULL && strstr(b, has) != NULL)) &&
		    (status == 0 || (long)num(e, "status") == status) && (seq == 0 || s < seq)) {
			seq = s;
			if (time_ms != NULL)
				*time_ms = parse_ms(
					cJSON_GetStringValue(cJSON_GetObjectItem(e, "time")));
		}
	}
	cJSON_Delete(j);
	return seq;
}

long wsx_last_seq(void)
{
	cJSON *j = wsx_get("/_admin/journal");
	cr_assert_not_null(j, "cannot read the emulator's journal");
	long last = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		if ((long)num(e, "seq") > last)
			last = (long)num(e, "seq");
	}
	cJSON_Delete(j);
	return last;
}

void wsx_settle(void)
{
	int64_t until = dp_now_ms() + 8000;
	int last = -1;
	while (dp_now_ms() < until) {
		int n = j_count(0, "GET", "/api/daemon/workspaces/", NULL, 0) +
			j_count(0, "GET", WSX_UPGRADE, NULL, 0) + j_count(0, "POST", WSX_REG, NULL, 0);
		if (n == last)
			return;
		last = n;
		dp_sleep_ms(700);
	}
}
