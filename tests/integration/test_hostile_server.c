/* A hostile server (tests/support/hostile_server.h): slow drips, endless
 * chunked bodies, redirects and redirect loops, invalid UTF-8, deeply
 * nested JSON, huge numbers, duplicate keys, wrong content types, a 200
 * with an HTML body, a connection closed mid-body. Three levels:
 *   api     one call each, the exact outcome (kind, message, bounded time);
 *   worker  a worker whose requests meet each misbehaviour in turn: it stays
 *           alive, every request is bounded, nothing follows a redirect,
 *           nothing is online that its reports do not hold, and it
 *           recovers when the server behaves again;
 *   daemon  the whole daemon, one workspace's requests misbehaving: the
 *           other workspace's worker keeps its pid and its heartbeats.
 * Everything not misbehaving is forwarded to a real emulator. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "common/api.h"
#include "common/clock.h"
#include "tests/support/daemon_proc.h"
#include "tests/support/hostile_server.h"
#include "tests/support/worker_fixture.h"
#include "tests/support/worker_harness.h"

#define RT1 "7e000000-0000-4000-8000-000000000001"
#define NEST 100000
#define HTML "<!DOCTYPE html><html><head><title>Sign in</title></head><body>portal</body></html>"
#define HTTP_TIMEOUT_MS 2000
/* A rule's answer may take the whole http_timeout; this much more is a busy host. */
#define SLACK_MS 2500

static struct hs *srv;
static struct hs *target; /* a redirect target: nothing may ever reach it */
static char target_url[128];

/* ---- bodies ---- */

/* n copies of c, NUL-terminated; a static buffer per call site's slot. */
static const char *repeat(int slot, const char *prefix, char c, size_t n)
{
	static char buf[3][NEST + 64];
	size_t p = strlen(prefix);
	memcpy(buf[slot], prefix, p);
	memset(buf[slot] + p, c, n);
	buf[slot][p + n] = '\0';
	return buf[slot];
}

static const char *nested_arrays(void) { return repeat(0, "", '[', NEST); }
static const char *nested_in_field(void) { return repeat(1, "{\"runtime_profiles\":", '[', NEST); }

/* Every byte sequence is well-formed UTF-8 (RFC 3629). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
			 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (k == 0 || i + k > n || (k == 2 && c < 0xc2) || (k == 4 && c > 0xf4))
			return false;
		for (size_t j = 1; j < k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
		if ((k == 3 && c == 0xe0 && s[i + 1] < 0xa0) || (k == 3 && c == 0xed && s[i + 1] > 0x9f) ||
		    (k == 4 && c == 0xf0 && s[i + 1] < 0x90) || (k == 4 && c == 0xf4 && s[i + 1] > 0x8f))
			return false;
		i += k;
	}
	return true;
}

/* ================= api: one call against one misbehaviour ================= */

static struct mc_api *api;

static void api_setup(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
	srv = hs_start(0);
	target = hs_start(0);
	cr_assert(srv != NULL && target != NULL);
	snprintf(target_url, sizeof target_url, "%s/elsewhere", hs_url(target));
}

static void api_teardown(void)
{
	mc_api_free(api);
	api = NULL;
	hs_stop(srv);
	hs_stop(target);
	mc_api_global_cleanup();
}

/* Every suite of this binary has the same timeout: with --jobs 2, tests of
 * different timeouts running side by side leave a 48-byte block of
 * Criterion's runner unfreed (LeakSanitizer reports it). */
TestSuite(api, .init = api_setup, .fini = api_teardown, .timeout = 150);

static struct mc_call *make_call(struct mc_api *a, enum mc_api_endpoint ep)
{
	static const struct mc_reg_runtime rt = { "Claude (host)", "claude", "2.1.0", NULL };
	static const struct mc_register_request req = { WS, "host-1", "host", "multicad/test",
							 1, &rt, 0, NULL };
	static const char *const ids[] = { RT1 };
	switch (ep) {
	case MC_EP_RUNTIME_PROFILES: return mc_call_runtime_profiles(a, WS);
	case MC_EP_REGISTER: return mc_call_register(a, &req);
	case MC_EP_HEARTBEAT: return mc_call_heartbeat(a, RT1);
	case MC_EP_DEREGISTER: return mc_call_deregister(a, 1, ids);
	case MC_EP_RECOVER_ORPHANS: return mc_call_recover_orphans(a, RT1);
	default: return mc_call_list_workspaces(a);
	}
}

/* Runs one call of ep against rule r (max_body 0: the default). The call
 * is the caller's; *ms gets its wall time. */
static struct mc_call *run_rule(const struct hs_rule *r, enum mc_api_endpoint ep,
				long timeout_ms, size_t max_body, long *ms)
{
	hs_set_rules(srv, r, 1);
	mc_api_free(api);
	struct mc_secret *s = mc_secret_new(TOKEN, strlen(TOKEN));
	struct mc_api_config cfg = { .server_url = hs_url(srv), .token = s,
				     .timeout_ms = timeout_ms, .max_body = max_body };
	api = mc_api_new(&cfg);
	mc_secret_free(s);
	cr_assert_not_null(api);
	struct mc_call *c = make_call(api, ep);
	cr_assert_not_null(c);
	mc_ms_t t0 = mc_now_ms();
	mc_call_perform(c);
	*ms = (long)(mc_now_ms() - t0);
	return c;
}

/* The call failed with kind and a message holding want (NULL: any). */
static void expect_error(const struct hs_rule *r, enum mc_api_endpoint ep,
			 enum mc_api_error_kind kind, const char *want)
{
	long ms;
	struct mc_call *c = run_rule(r, ep, HTTP_TIMEOUT_MS, 0, &ms);
	const struct mc_api_error *e = mc_call_error(c);
	cr_expect_eq(e->kind, kind, "kind %s, want %s: %s", mc_api_error_kind_name(e->kind),
		     mc_api_error_kind_name(kind), e->message);
	if (want != NULL)
		cr_expect_not_null(strstr(e->message, want), "\"%s\" not in: %s", want, e->message);
	cr_expect(utf8_valid((const unsigned char *)e->message, strlen(e->message)), "%s",
		  e->message);
	cr_expect_leq(ms, HTTP_TIMEOUT_MS + SLACK_MS, "the call took %ld ms", ms);
	mc_call_free(c);
}

Test(api, drip_is_cut_by_the_request_timeout)
{
	struct hs_rule r = { .act = HS_DRIP, .body = "{\"runtime_profiles\":[]}", .drip_ms = 1000 };
	expect_error(&r, MC_EP_RUNTIME_PROFILES, MC_API_ERR_TIMEOUT, "timed out");
	struct hs_req q = { 0 };
	mc_ms_t until = mc_now_ms() + 5000; /* the server notices the hang-up */
	while (hs_requests(srv, &q, 1) == 1 && q.end_ms == 0 && mc_now_ms() < until)
		usleep(10000);
	cr_assert_neq(q.end_ms, 0, "the drip is still going");
	cr_assert(q.client_left, "the client did not hang up on the drip");
	cr_assert_leq(q.end_ms - q.start_ms, HTTP_TIMEOUT_MS + SLACK_MS);
}

Test(api, endless_chunked_body_is_cut_at_the_cap_or_the_timeout)
{
	struct hs_rule flat = { .act = HS_CHUNKED_ENDLESS, .body = "[" };
	long ms;
	struct mc_call *c = run_rule(&flat, MC_EP_RUNTIME_PROFILES, HTTP_TIMEOUT_MS, 65536, &ms);
	cr_assert_eq(mc_call_error(c)->kind, MC_API_ERR_TOO_LARGE, "%s", mc_call_error(c)->message);
	cr_assert_str_eq(mc_call_error(c)->message,
			 "GET /api/daemon/workspaces/" WS "/runtime-profiles: "
			 "response body larger than the 65536-byte limit");
	mc_call_free(c);
	expect_error(&flat, MC_EP_HEARTBEAT, MC_API_ERR_TOO_LARGE, "4194304-byte limit");
	struct hs_rule slow = { .act = HS_CHUNKED_ENDLESS, .body = " ", .drip_ms = 50 };
	expect_error(&slow, MC_EP_REGISTER, MC_API_ERR_TIMEOUT, "timed out");
}

Test(api, redirects_are_never_followed)
{
	struct hs_rule to_target = { .act = HS_REDIRECT, .location = target_url };
	expect_error(&to_target, MC_EP_RUNTIME_PROFILES, MC_API_ERR_TRANSPORT, "unexpected redirect");
	to_target.status = 307; /* would repeat the POST with its body */
	expect_error(&to_target, MC_EP_REGISTER, MC_API_ERR_TRANSPORT, "(status 307)");
	to_target.status = 308;
	expect_error(&to_target, MC_EP_DEREGISTER, MC_API_ERR_TRANSPORT, "(status 308)");
	cr_assert_eq(hs_connections(target), 0, "a redirect was followed");
	struct hs_rule loop = { .act = HS_REDIRECT, .status = 301 }; /* to itself */
	int before = hs_count(srv, NULL, NULL, HS_ANY_RULE);
	expect_error(&loop, MC_EP_HEARTBEAT, MC_API_ERR_TRANSPORT, "(status 301)");
	cr_assert_eq(hs_count(srv, NULL, NULL, HS_ANY_RULE), before + 1, "the loop was followed");
}

Test(api, invalid_utf8_is_replaced_as_multica_decodes_it)
{
	struct hs_rule r = { .act = HS_ANSWER, .body =
		"{\"runtime_profiles\":[{\"id\":\"" PROF1 "\",\"workspace_id\":\"" WS "\","
		"\"display_name\":\"My \xff\xfe Claude\",\"protocol_family\":\"claude\","
		"\"command_name\":\"c\xc0\xaf" "d\",\"fixed_args\":[\"\xed\xa0\x80\"],"
		"\"visibility\":\"workspace\",\"enabled\":true}]}" };
	long ms;
	struct mc_call *c = run_rule(&r, MC_EP_RUNTIME_PROFILES, HTTP_TIMEOUT_MS, 0, &ms);
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	struct mc_profile_list l;
	cr_assert_eq(mc_call_take_profiles(c, &l), 0);
	cr_assert_eq(l.n, 1);
	/* One U+FFFD per invalid byte, like Go's encoding/json. */
	cr_expect_str_eq(l.v[0].display_name, "My \xef\xbf\xbd\xef\xbf\xbd Claude");
	cr_expect_str_eq(l.v[0].command_name, "c\xef\xbf\xbd\xef\xbf\xbd" "d");
	cr_expect_str_eq(l.v[0].fixed_args[0], "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	mc_profile_list_clear(&l);
	mc_call_free(c);
	/* An error body's excerpt is plain ASCII whatever the server sent. */
	struct hs_rule e500 = { .act = HS_ANSWER, .status = 500, .content_type = "text/plain",
				.body = "broken \xff\xfe\xc0 body" };
	expect_error(&e500, MC_EP_HEARTBEAT, MC_API_ERR_HTTP, "500 broken ??? body");
}

Test(api, deeply_nested_json_is_a_decode_error)
{
	struct hs_rule r = { .act = HS_ANSWER, .body = nested_arrays() };
	expect_error(&r, MC_EP_RUNTIME_PROFILES, MC_API_ERR_DECODE, "invalid JSON at byte");
	r.body = nested_in_field();
	expect_error(&r, MC_EP_RUNTIME_PROFILES, MC_API_ERR_DECODE, "invalid JSON at byte");
	r.body = repeat(2, "{\"runtime_gone\":", '[', NEST);
	expect_error(&r, MC_EP_HEARTBEAT, MC_API_ERR_DECODE, "invalid JSON at byte");
	r.status = 500; /* the error body is only excerpted */
	expect_error(&r, MC_EP_HEARTBEAT, MC_API_ERR_HTTP, "500 {\"runtime_gone\":[[[");
	/* Just under cJSON's limit (1000) in an ignored field: decoded, and
	 * the duplicate-key walk goes all the way down without trouble. */
	static char deep[2100];
	int n = snprintf(deep, sizeof deep, "{\"runtime_gone\":false,\"x\":");
	memset(deep + n, '[', 998);
	memset(deep + n + 998, ']', 998);
	strlcpy(deep + n + 1996, "}", sizeof deep - (size_t)n - 1996);
	struct hs_rule ok = { .act = HS_ANSWER, .body = deep };
	long ms;
	struct mc_call *c = run_rule(&ok, MC_EP_HEARTBEAT, HTTP_TIMEOUT_MS, 0, &ms);
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	mc_call_free(c);
}

Test(api, huge_numbers_are_rejected)
{
	struct hs_rule r = { .act = HS_ANSWER, .body = "{\"orphaned\":1e999999,\"retried\":0}" };
	expect_error(&r, MC_EP_RECOVER_ORPHANS, MC_API_ERR_DECODE, "orphaned: expected integer, got inf");
	r.body = "{\"orphaned\":0,\"retried\":-1e400}";
	expect_error(&r, MC_EP_RECOVER_ORPHANS, MC_API_ERR_DECODE, "retried: expected integer, got -inf");
	r.body = "{\"orphaned\":123456789012345678901234567890,\"retried\":0}";
	expect_error(&r, MC_EP_RECOVER_ORPHANS, MC_API_ERR_DECODE, "orphaned: expected integer");
	r.body = "{\"orphaned\":9223372036854775807,\"retried\":0}"; /* 2^63 as a double */
	expect_error(&r, MC_EP_RECOVER_ORPHANS, MC_API_ERR_DECODE, "orphaned: expected integer");
	r.body = "{\"runtime_gone\":1e999}";
	expect_error(&r, MC_EP_HEARTBEAT, MC_API_ERR_DECODE, "runtime_gone: expected bool, got number");
	r.body = "{\"runtime_profiles\":[{\"id\":\"" PROF1 "\",\"enabled\":1e999,\"display_name\":\"x\"}]}";
	expect_error(&r, MC_EP_RUNTIME_PROFILES, MC_API_ERR_DECODE,
		     "runtime_profiles[0].enabled: expected bool, got number");
	/* The smallest long is exact: accepted. */
	r.body = "{\"orphaned\":-9223372036854775808,\"retried\":3}";
	long ms;
	struct mc_call *c = run_rule(&r, MC_EP_RECOVER_ORPHANS, HTTP_TIMEOUT_MS, 0, &ms);
	cr_assert(mc_call_ok(c), "%s", mc_call_error(c)->message);
	cr_assert_eq(mc_call_orphaned(c), -9223372036854775807L - 1);
	cr_assert_eq(mc_call_retried(c), 3);
	mc_call_free(c);
}

Test(api, duplicate_keys_are_a_decode_error)
{
	/* cJSON would read the first, Go (the server) means the last. */
	struct hs_rule r = { .act = HS_ANSWER,
			     .body = "{\"runtime_gone\":false,\"runtime_gone\":true}" };
	expect_error(&r, MC_EP_HEARTBEAT, MC_API_ERR_DECODE, "duplicate key \"runtime_gone\"");
	r.body = "{\"runtimes\":[{\"id\":\"" RT1 "\",\"name\":\"Claude (host)\",\"provider\":"
		 "\"claude\",\"status\":\"online\"}],\"runtimes\":[]}";
	expect_error(&r, MC_EP_REGISTER, MC_API_ERR_DECODE, "duplicate key \"runtimes\"");
	r.body = "{\"runtime_profiles\":[{\"id\":\"" PROF1 "\",\"enabled\":false,\"display_name\":"
		 "\"x\",\"enabled\":true}]}";
	expect_error(&r, MC_EP_RUNTIME_PROFILES, MC_API_ERR_DECODE,
		     "runtime_profiles[0]: duplicate key \"enabled\"");
}

Test(api, wrong_content_type_json_is_accepted_html_never)
{
	struct hs_rule r = { .act = HS_ANSWER, .content_type = "text/plain; charset=utf-8",
			     .body = "{\"runtime_profiles\":[]}" };
	long ms;
	struct mc_call *c = run_rule(&r, MC_EP_RUNTIME_PROFILES, HTTP_TIMEOUT_MS, 0, &ms);
	cr_assert(mc_call_ok(c), "JSON under another type is still JSON: %s",
		  mc_call_error(c)->message);
	mc_call_free(c);
	/* A login page or a web front-end's index: never the API's answer,
	 * not even where the body does not matter. */
	struct hs_rule html = { .act = HS_ANSWER, .content_type = "text/html; charset=utf-8",
				.body = HTML };
	expect_error(&html, MC_EP_RUNTIME_PROFILES, MC_API_ERR_DECODE, "text/html");
	expect_error(&html, MC_EP_REGISTER, MC_API_ERR_DECODE, "text/html");
	expect_error(&html, MC_EP_HEARTBEAT, MC_API_ERR_DECODE, "text/html");
	expect_error(&html, MC_EP_DEREGISTER, MC_API_ERR_DECODE,
		     "POST /api/daemon/deregister: expected a JSON answer, got text/html");
	html.body = "{}"; /* even when the HTML page happens to parse */
	expect_error(&html, MC_EP_DEREGISTER, MC_API_ERR_DECODE, "text/html");
}

Test(api, connection_closed_mid_body_is_a_transient_transport_error)
{
	struct hs_rule r = { .act = HS_CLOSE_MID_BODY,
			     .body = "{\"runtime_profiles\":[],\"padding\":\"0123456789\"}" };
	long ms;
	struct mc_call *c = run_rule(&r, MC_EP_RUNTIME_PROFILES, HTTP_TIMEOUT_MS, 0, &ms);
	const struct mc_api_error *e = mc_call_error(c);
	cr_assert_eq(e->kind, MC_API_ERR_TRANSPORT, "%s", e->message);
	cr_assert_not_null(strstr(e->message, "transfer closed"), "%s", e->message);
	cr_assert(mc_api_error_is_transient(e));
	mc_call_free(c);
}

/* ============ worker: each misbehaviour in turn, one worker ============ */

/* Ten rules, one per misbehaviour, for requests of method + path prefix
 * whose path or body holds has (NULL: any), each taking times requests.
 * The canned bodies name every endpoint's field, so each is wrong in the
 * intended way whichever endpoint meets it. */
static size_t hostile_rules(struct hs_rule *r, const char *method, const char *path,
			    const char *has, int times)
{
	const struct hs_rule kinds[] = {
		{ .act = HS_DRIP, .body = "{}" },
		{ .act = HS_CHUNKED_ENDLESS, .body = "[" },
		{ .act = HS_CHUNKED_ENDLESS, .body = " ", .drip_ms = 100 },
		{ .act = HS_REDIRECT, .status = 307, .location = target_url },
		{ .act = HS_REDIRECT, .status = 301 },
		{ .act = HS_ANSWER, .body = nested_arrays() },
		{ .act = HS_ANSWER, .body = "{\"runtime_profiles\":1e999,\"runtimes\":-1e999,"
					    "\"runtime_gone\":1e999}" },
		{ .act = HS_ANSWER, .body = "{\"runtime_profiles\":[],\"runtimes\":[],\"runtime_gone\":"
					    "false,\"runtime_profiles\":null,\"runtime_gone\":true}" },
		{ .act = HS_ANSWER, .content_type = "text/html", .body = HTML },
		{ .act = HS_CLOSE_MID_BODY, .body = "{\"runtime_profiles\":[],\"runtimes\":[]}" },
	};
	size_t n = sizeof kinds / sizeof kinds[0];
	for (size_t i = 0; i < n; i++) {
		r[i] = kinds[i];
		r[i].method = method;
		r[i].path_prefix = path;
		r[i].has = has;
		r[i].times = times;
	}
	return n;
}

struct hw {
	struct fixture fx;
	char log_path[600];
	bool up;                /* started and not yet stopped */
};

/* File-scope: the suite's .fini stops it even after a failed assertion
 * (a worker left behind would hold the test's output open). */
static struct hw hw;

static void hw_stop(struct hw *x)
{
	if (x->up)
		fx_stop(&x->fx);
	x->up = false;
}

static void hw_setup(void)
{
	srv = NULL;
	target = hs_start(0);
	cr_assert_not_null(target);
	snprintf(target_url, sizeof target_url, "%s/elsewhere", hs_url(target));
}

static void hw_teardown(void)
{
	hw_stop(&hw);
	hs_stop(srv);
	hs_stop(target);
	srv = target = NULL;
}

TestSuite(worker, .init = hw_setup, .fini = hw_teardown, .timeout = 150);

/* Emulator (with PROF1 when with_profile), the hostile server in front of
 * it playing rules, and a worker with the claude built-in whose log (its
 * stderr) goes to a file. */
static void hw_start(struct hw *w, bool with_profile, const struct hs_rule *rules, size_t n)
{
	char profiles[1024] = "[]";
	if (with_profile)
		snprintf(profiles, sizeof profiles, "[%s]",
			 fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(&w->fx, profiles);
	w->up = true;
	srv = hs_start(w->fx.fp.port);
	cr_assert_not_null(srv);
	hs_set_rules(srv, rules, n);
	snprintf(w->log_path, sizeof w->log_path, "%s/worker.log", w->fx.cli_dir);
	struct wh_opts o = { .server_url = hs_url(srv), .builtins = &FX_CLAUDE, .n_builtins = 1,
			     .http_timeout_ms = HTTP_TIMEOUT_MS };
	fflush(stderr);
	int saved = dup(2);
	int fd = open(w->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	fx_start_worker_opts(&w->fx, o);
	dup2(saved, 2);
	close(saved);
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	char *buf = NULL;
	size_t cap = 0;
	FILE *m = open_memstream(&buf, &cap);
	char chunk[8192];
	size_t r;
	while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
		fwrite(chunk, 1, r, m);
	fclose(f);
	fclose(m);
	*len = cap;
	return buf;
}

/* Pumps the worker until every rule was played times each. */
static bool hw_wait_rules(struct hw *w, size_t n, int times, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	for (;;) {
		size_t done = 0;
		for (size_t i = 0; i < n; i++)
			done += hs_count(srv, NULL, NULL, (int)i) >= times;
		if (done == n)
			return true;
		if (mc_now_ms() >= until || w->fx.h.exited)
			return false;
		wh_pump(&w->fx.h, 50);
	}
}

/* What must hold whatever the server did: the worker is alive and
 * answers, every misbehaving answer ended within the request timeout,
 * no redirect was followed, the log is valid UTF-8 and nothing is online
 * at the server that the worker's last report does not hold. */
static void hw_check(struct hw *w)
{
	cr_assert_not(w->fx.h.exited, "the worker exited (status %d)", w->fx.h.status);
	cr_assert_geq(wh_ping(&w->fx.h, 42, 2000), 0, "the worker does not answer pings");
	cr_assert_not(w->fx.h.violation, "the worker broke the IPC protocol");
	static struct hs_req reqs[4096];
	size_t n = hs_requests(srv, reqs, 4096);
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].rule < 0 || reqs[i].end_ms == 0)
			continue;
		cr_assert_leq(reqs[i].end_ms - reqs[i].start_ms, HTTP_TIMEOUT_MS + SLACK_MS,
			      "%s %s (rule %d) stayed open %lld ms", reqs[i].method, reqs[i].path,
			      reqs[i].rule, (long long)(reqs[i].end_ms - reqs[i].start_ms));
	}
	cr_assert_eq(hs_connections(target), 0, "a redirect was followed");
	size_t len;
	char *log = read_file(w->log_path, &len);
	cr_assert(utf8_valid((unsigned char *)log, len), "the worker's log is not valid UTF-8");
	free(log);
	cJSON *st = fp_state(&w->fx.fp);
	cr_assert_not_null(st);
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		if (s != NULL && strcmp(s, "online") == 0)
			cr_assert(wh_report_has(&w->fx.h, id), "%s is online, the worker holds "
				  "no such runtime", id);
	}
	cJSON_Delete(st);
}

/* A line of the worker's log holds a and b (NULL: anything). */
static bool hw_log_has(struct hw *w, const char *a, const char *b)
{
	size_t len;
	char *log = read_file(w->log_path, &len);
	bool found = false;
	for (char *line = log; line != NULL && *line != '\0' && !found;) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		found = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
		line = nl != NULL ? nl + 1 : NULL;
	}
	free(log);
	return found;
}

Test(worker, failed_profile_fetches_are_bounded_and_never_tear_down)
{
	struct hs_rule rules[16];
	size_t n = hostile_rules(rules, "GET", PROF_PATH, NULL, 1);
	hw_start(&hw, true, rules, n);
	/* The first fetch fails: the built-in registers alone, then the drift
	 * loop meets every other misbehaviour, then the real list. */
	cr_assert(wh_wait_report_n(&hw.fx.h, 1, 15000), "the built-in was not registered");
	cr_assert(hw_wait_rules(&hw, n, 1, 60000), "the worker stopped fetching");
	cr_assert(wh_wait_report_n(&hw.fx.h, 2, 15000), "the profile never registered");
	hw_check(&hw);
	cr_assert_eq(fx_count(&hw.fx, "POST", REG_PATH), 2, "failed fetches caused registers");
	cr_assert_eq(fx_count(&hw.fx, "POST", DEREG_PATH), 0, "a failed fetch deregistered");
	/* The first of a streak is logged (the rest are summarised later;
	 * each kind's message: the api suite). */
	cr_assert(hw_log_has(&hw, "fetching runtime profiles failed", "kind=timeout"));
	cr_assert_eq(wh_stop(&hw.fx.h, 8000), 0);
	hw_stop(&hw);
}

Test(worker, failed_registers_are_retried_with_backoff_and_leave_nothing_online)
{
	struct hs_rule rules[16];
	size_t n = hostile_rules(rules, "POST", REG_PATH, NULL, 1);
	hw_start(&hw, true, rules, n);
	cr_assert(hw_wait_rules(&hw, n, 1, 60000), "the worker stopped registering");
	cr_assert(wh_wait_report_n(&hw.fx.h, 2, 15000), "the worker never registered");
	hw_check(&hw);
	/* Only the one that worked reached the server; one attempt per
	 * misbehaviour, not a storm. */
	cr_assert_eq(fx_count(&hw.fx, "POST", REG_PATH), 1);
	cr_assert_eq(hs_count(srv, "POST", REG_PATH, HS_ANY_RULE), (int)n + 1);
	cr_assert(hw_log_has(&hw, "register failed", "kind=timeout"));
	cr_assert_eq(wh_stop(&hw.fx.h, 8000), 0);
	cr_assert(hw.fx.h.stopped_deregistered);
	hw_stop(&hw);
}

Test(worker, failed_heartbeats_keep_the_runtimes_and_resume)
{
	hw_start(&hw, true, NULL, 0);
	cr_assert(wh_wait_report_n(&hw.fx.h, 2, 15000));
	cr_assert(fx_wait_count(&hw.fx, "POST", RO_PREFIX, 2, 5000));
	char *ids[2] = { strdup(hw.fx.h.report.ids[0]), strdup(hw.fx.h.report.ids[1]) };
	struct hs_rule rules[16];
	size_t n = hostile_rules(rules, "POST", HB_PATH, NULL, 2);
	hs_set_rules(srv, rules, n);
	cr_assert(hw_wait_rules(&hw, n, 2, 90000), "the worker stopped beating");
	double seq = fx_last_seq(&hw.fx);
	hs_set_rules(srv, NULL, 0);
	for (int i = 0; i < 2; i++)
		cr_assert(fx_wait_jcount(&hw.fx, "POST", HB_PATH, 200, seq, ids[i], 3, 10000),
			  "the heartbeats of %s did not resume", ids[i]);
	hw_check(&hw);
	cr_assert_eq(hw.fx.h.report.n, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert(wh_report_has(&hw.fx.h, ids[i]));
		fx_assert_status(&hw.fx, ids[i], "online");
		free(ids[i]);
	}
	cr_assert_eq(fx_count(&hw.fx, "POST", REG_PATH), 1, "a failed heartbeat re-registered");
	cr_assert_eq(fx_count(&hw.fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(wh_stop(&hw.fx.h, 8000), 0);
	hw_stop(&hw);
}

/* The final DEREG meets rule r: the worker still exits in time, says it
 * did not deregister and reports the ids it still holds, so the
 * supervisor's ledger keeps them for its own cleanup. */
static void dereg_at_stop(struct hs_rule r)
{
	hw_start(&hw, true, NULL, 0);
	cr_assert(wh_wait_report_n(&hw.fx.h, 2, 15000));
	cr_assert(fx_wait_count(&hw.fx, "POST", RO_PREFIX, 2, 5000));
	r.method = "POST";
	r.path_prefix = DEREG_PATH;
	hs_set_rules(srv, &r, 1);
	mc_ms_t t0 = mc_now_ms();
	cr_assert_eq(wh_stop(&hw.fx.h, 10000), 0, "the worker did not exit 0");
	cr_assert_lt(mc_now_ms() - t0, 5000 + SLACK_MS, "the stop was not bounded");
	cr_assert(hw.fx.h.stopped);
	cr_assert_not(hw.fx.h.stopped_deregistered, "STOPPED says deregistered; the server "
		      "never took the runtimes offline");
	cr_assert_eq(hw.fx.h.report.n, 2, "the last report dropped ids that are still online");
	cr_assert_eq(fx_count(&hw.fx, "POST", DEREG_PATH), 0);
	cr_assert_eq(hs_connections(target), 0, "a redirect was followed");
	hw_stop(&hw);
}

Test(worker, html_200_to_the_final_deregister_is_not_a_success)
{
	dereg_at_stop((struct hs_rule){ .act = HS_ANSWER, .content_type = "text/html; charset=UTF-8",
					.body = HTML });
}

Test(worker, final_deregister_closed_mid_body_is_not_a_success)
{
	dereg_at_stop((struct hs_rule){ .act = HS_CLOSE_MID_BODY,
					.body = "{\"status\":\"ok\",\"deregistered\":2}" });
}

Test(worker, final_deregister_dripping_is_bounded_by_the_stop_budget)
{
	dereg_at_stop((struct hs_rule){ .act = HS_DRIP, .body = "{\"status\":\"ok\"}" });
}

Test(worker, final_deregister_redirected_is_not_followed)
{
	dereg_at_stop((struct hs_rule){ .act = HS_REDIRECT, .status = 308, .location = target_url });
}

Test(worker, final_deregister_with_an_endless_body_is_cut)
{
	dereg_at_stop((struct hs_rule){ .act = HS_CHUNKED_ENDLESS, .body = "[" });
}

Test(worker, invalid_utf8_reaches_neither_the_log_nor_the_server)
{
	/* PROF1 with a display name that is no UTF-8, and a profile without a
	 * command whose id is logged when it is skipped. */
	static const char body[] =
		"{\"runtime_profiles\":[{\"id\":\"" PROF1 "\",\"workspace_id\":\"" WS "\","
		"\"display_name\":\"P\xff\xfe" "1\",\"protocol_family\":\"claude\","
		"\"command_name\":\"my-claude\",\"fixed_args\":[],\"visibility\":\"workspace\","
		"\"enabled\":true},{\"id\":\"a2222222-2222-4222-8222-22222222\xc0\xaf\xff\","
		"\"display_name\":\"x\",\"protocol_family\":\"claude\",\"command_name\":\"\","
		"\"enabled\":true}]}";
	struct hs_rule r = { .method = "GET", .path_prefix = PROF_PATH, .act = HS_ANSWER,
			     .body = body };
	hw_start(&hw, true, &r, 1);
	cr_assert(wh_wait_report_n(&hw.fx.h, 2, 15000), "the worker did not register");
	cr_assert(hw_log_has(&hw, "skipping runtime profile", NULL));
	hw_check(&hw); /* the log is valid UTF-8 */
	cJSON *j = fp_journal(&hw.fx.fp);
	cr_assert_not_null(j);
	const cJSON *e;
	int regs = 0;
	cJSON_ArrayForEach(e, j) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		if (p == NULL || b == NULL || strcmp(p, REG_PATH) != 0)
			continue;
		regs++;
		cr_assert(utf8_valid((const unsigned char *)b, strlen(b)),
			  "the REG body the server got is not UTF-8");
		cr_assert_not_null(strstr(b, "P\xef\xbf\xbd\xef\xbf\xbd" "1"), "%s", b);
	}
	cJSON_Delete(j);
	cr_assert_geq(regs, 1);
	cr_assert_eq(wh_stop(&hw.fx.h, 8000), 0);
	hw_stop(&hw);
}

/* ============ daemon: one workspace's server misbehaves ============ */

static struct fp_proc dfp;
static bool dfp_up;
static struct dp dd;

static void dm_fini(void)
{
	dp_free(&dd);
	if (dfp_up)
		fp_stop(&dfp);
	dfp_up = false;
	hw_teardown();
}

TestSuite(daemon, .init = hw_setup, .fini = dm_fini, .timeout = 150);

/* Every online row of ws at the server is in the supervisor's ledger of
 * ws: some worker holds it, or the supervisor's cleanup will take it. */
static bool rows_held(const char *ws)
{
	struct dp_rt rows[8];
	char ledger[8][DP_ID_LEN + 1];
	int n = dp_runtimes(&dfp, ws, true, rows, 8);
	int m = dp_ledger_ids(&dd, ws, ledger, 8);
	for (int i = 0; i < n; i++) {
		bool held = false;
		for (int k = 0; k < m && !held; k++)
			held = strcmp(rows[i].id, ledger[k]) == 0;
		if (!held)
			return false;
	}
	return n >= 0;
}

Test(daemon, one_workspace_misbehaving_leaves_the_other_untouched)
{
	char a[DP_ID_LEN + 1], b[DP_ID_LEN + 1], list[2 * DP_ID_LEN + 2];
	dp_ws_id(1, a);
	dp_ws_id(2, b);
	snprintf(list, sizeof list, "%s %s", a, b);
	char *seed = dp_seed(2, NULL, NULL);
	cr_assert_eq(fp_start(&dfp, seed, NULL), 0);
	free(seed);
	dfp_up = true;
	srv = hs_start(dfp.port);
	cr_assert_not_null(srv);
	cr_assert_eq(dp_init(&dd, NULL, NULL, NULL), 0);
	struct dp_config c = { .server_url = hs_url(srv), .workspaces = list };
	cr_assert_eq(dp_write_config(&dd, &c), 0);
	cr_assert_eq(dp_start(&dd), 0);
	cr_assert(DP_WAIT(dp_count_online(&dfp, a) == 1 && dp_count_online(&dfp, b) == 1 &&
			  dp_worker_pid(&dd, a) != 0 && dp_worker_pid(&dd, b) != 0, 20000),
		  "the two workspaces did not come up");
	pid_t pid_b = dp_worker_pid(&dd, b);
	char id_a[DP_ID_LEN + 1], id_b[DP_ID_LEN + 1];
	cr_assert(dp_runtime_id(&dfp, a, "claude", NULL, id_a));
	cr_assert(dp_runtime_id(&dfp, b, "claude", NULL, id_b));

	/* Workspace a's heartbeats (by its runtime id, twice each) and profile
	 * fetches (by its id in the path; on the step backoff) meet every
	 * misbehaviour. */
	char prof_a[128];
	snprintf(prof_a, sizeof prof_a, "/api/daemon/workspaces/%s/", a);
	struct hs_rule rules[32];
	size_t n = hostile_rules(rules, "POST", HB_PATH, id_a, 2);
	size_t n_hb = n;
	n += hostile_rules(rules + n, "GET", prof_a, NULL, 1);
	int64_t from = dp_wall_ms();
	hs_set_rules(srv, rules, n);
	int64_t until = dp_now_ms() + 120000;
	bool all = false;
	while (!all && dp_now_ms() < until) {
		cr_assert_eq(dp_worker_pid(&dd, b), pid_b, "b's worker was restarted");
		cr_assert(dp_runtime_is(&dfp, id_b, "online"), "b's runtime went offline");
		/* The ledger file follows the supervisor's memory a batch later
		 * (ms): a row held by nobody stays so, a fresh report does not. */
		cr_assert(DP_WAIT(rows_held(a), 2000), "a row of a is online that no worker holds");
		cr_assert(dp_alive(&dd), "the supervisor died");
		all = true;
		for (size_t i = 0; i < n; i++)
			all &= hs_count(srv, NULL, NULL, (int)i) >= (i < n_hb ? 2 : 1);
		dp_sleep_ms(200);
	}
	cr_assert(all, "a's worker stopped meeting the misbehaviours");
	int64_t to = dp_wall_ms();
	long seq = dp_journal_last_seq(&dfp);
	hs_set_rules(srv, NULL, 0);

	/* b beat on time throughout; a recovers (same worker or a clean restart). */
	struct dp_journal j;
	cr_assert_eq(dp_journal_load(&dfp, &j), 0);
	int beats = 0;
	int64_t gap = dp_j_heartbeat_gap(&j, id_b, from, to, &beats);
	dp_journal_free(&j);
	cr_assert_leq(gap, 2000, "b's heartbeats stalled %lld ms", (long long)gap);
	cr_assert_geq(beats, (int)((to - from) / 1000), "b beat %d times", beats);
	cr_assert(DP_WAIT(dp_journal_match(&dfp, seq, "POST", HB_PATH, id_a, 200) >= 2, 15000),
		  "a's heartbeats did not resume");
	cr_assert_neq(dp_worker_pid(&dd, a), 0);
	cr_assert(dp_runtime_is(&dfp, id_a, "online"));
	cr_assert_eq(hs_connections(target), 0, "a redirect was followed");
	cr_assert(dp_stop(&dd, 15000), "the daemon did not stop in time");
	cr_assert(WIFEXITED(dd.status) && WEXITSTATUS(dd.status) == 0);
	cr_assert_eq(dp_count_online(&dfp, NULL), 0, "runtimes left online after the stop");
}
