/* multica-fakeplane: the emulator's semantics, through raw HTTP.
 * Each test starts its own fakeplane on an ephemeral port (fixture), so
 * the tests run in parallel safely. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <sodium.h>

#include "tests/support/fakeplane_proc.h"

#define WS_A "11111111-1111-4111-8111-111111111111"
#define WS_B "22222222-2222-4222-8222-222222222222"
#define WS_X "33333333-3333-4333-8333-333333333333"   /* u1 is no member */
#define P_ON "aaaaaaaa-0000-4000-8000-000000000001"
#define P_OFF "aaaaaaaa-0000-4000-8000-000000000002"
#define P_ON2 "aaaaaaaa-0000-4000-8000-000000000003"
#define P_X "aaaaaaaa-0000-4000-8000-000000000004"    /* in WS_X */
#define NOPE "99999999-9999-4999-8999-999999999999"

static const char SEED[] =
	"{ \"tokens\": { \"tok-u1\": \"u1\", \"tok-u2\": \"u2\" },"
	"  \"workspaces\": ["
	"    { \"id\": \"" WS_B "\", \"name\": \"Beta\", \"members\": [\"u1\"] },"
	"    { \"id\": \"" WS_A "\", \"name\": \"Alpha\", \"members\": [\"u1\", \"u2\"] },"
	"    { \"id\": \"" WS_X "\", \"name\": \"Other\", \"members\": [\"u2\"] } ],"
	"  \"profiles\": ["
	"    { \"id\": \"" P_ON "\", \"workspace_id\": \"" WS_A "\", \"display_name\": \"CCMS\","
	"      \"protocol_family\": \"claude\", \"command_name\": \"ccms\","
	"      \"fixed_args\": [\"--fast\"], \"visibility\": \"workspace\", \"enabled\": true },"
	"    { \"id\": \"" P_OFF "\", \"workspace_id\": \"" WS_A "\", \"display_name\": \"Off\","
	"      \"protocol_family\": \"codex\", \"command_name\": \"cx\", \"enabled\": false },"
	"    { \"id\": \"" P_ON2 "\", \"workspace_id\": \"" WS_A "\", \"display_name\": \"Second\","
	"      \"protocol_family\": \"codex\", \"command_name\": \"cx2\", \"description\": \"d\" },"
	"    { \"id\": \"" P_X "\", \"workspace_id\": \"" WS_X "\", \"display_name\": \"X\","
	"      \"protocol_family\": \"claude\", \"command_name\": \"x\" } ] }";

static const char *const AUTH[] = { "Authorization: Bearer tok-u1", NULL };
static const char *const AUTH_U2[] = { "Authorization: Bearer tok-u2", NULL };

extern char **environ;

static struct fp_proc fp;

static void setup(void)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0, "fakeplane did not start");
}

static void teardown(void)
{
	if (fp.pid > 0)
		fp_stop(&fp);
}

TestSuite(fakeplane, .init = setup, .fini = teardown, .timeout = 20.0);
TestSuite(fakeplane_proc, .fini = teardown, .timeout = 20.0);

/* ---- helpers ---- */

/* Sends a request, asserts the status, returns the parsed body (NULL if it
 * is not JSON); the caller cJSON_Delete()s. */
static cJSON *call(const char *method, const char *path, const char *body,
		   const char *const *hdrs, long want)
{
	char *text = NULL;
	long st = fp_http(&fp, method, path, body, hdrs, &text);
	cr_assert_eq(st, want, "%s %s: status %ld, want %ld, body %s", method, path, st, want,
		     text ? text : "(none)");
	cJSON *j = text ? cJSON_Parse(text) : NULL;
	free(text);
	return j;
}

/* Asserts the status and that the body is exactly {"error":msg}. */
static void call_error(const char *method, const char *path, const char *body,
		       const char *const *hdrs, long want, const char *msg)
{
	cJSON *j = call(method, path, body, hdrs, want);
	cr_assert_not_null(j, "%s %s: error body is not JSON", method, path);
	cr_assert_eq(cJSON_GetArraySize(j), 1);
	const char *got = cJSON_GetStringValue(cJSON_GetObjectItem(j, "error"));
	cr_assert_not_null(got);
	cr_assert_str_eq(got, msg);
	cJSON_Delete(j);
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);
	if (cJSON_IsNull(v))
		return "(null)";
	return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

/* POSTs a register body for u1 and returns the parsed 200 reply. */
static cJSON *reg(const char *body)
{
	return call("POST", "/api/daemon/register", body, AUTH, 200);
}

/* A register body: workspace, daemon, then the "runtimes" and
 * "failed_profiles" JSON texts. Returns a static buffer. */
static const char *reg_body(const char *ws, const char *daemon, const char *runtimes,
			    const char *failed)
{
	static char buf[4096];
	snprintf(buf, sizeof buf,
		 "{\"workspace_id\":\"%s\",\"daemon_id\":\"%s\",\"legacy_daemon_ids\":null,"
		 "\"device_name\":\"box\",\"cli_version\":\"0.1\",\"launched_by\":\"\","
		 "\"runtimes\":%s,\"failed_profiles\":%s}", ws, daemon, runtimes, failed);
	return buf;
}

#define RT_CLAUDE "{\"name\":\"\",\"type\":\"claude\",\"version\":\"1.2\",\"status\":\"online\"}"
#define RT_CODEX "{\"name\":\"Codex (box)\",\"type\":\"codex\",\"version\":\"\"," \
	"\"status\":\"online\"}"
#define RT_CUSTOM(pid) "{\"name\":\"CCMS (box)\",\"type\":\"claude\",\"version\":\"\"," \
	"\"status\":\"online\",\"profile_id\":\"" pid "\"}"

/* The id of runtimes[i] of a register reply, copied into out. */
static void rt_id(const cJSON *reply, int i, char out[64])
{
	const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(reply, "runtimes"), i);
	cr_assert_not_null(r, "no runtimes[%d]", i);
	snprintf(out, 64, "%s", str(r, "id"));
}

/* Registers the built-in claude runtime for daemon d1 in WS_A. */
static void register_claude(char id[64])
{
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CLAUDE "]", "null"));
	rt_id(r, 0, id);
	cJSON_Delete(r);
}

static cJSON *state_runtime(cJSON *state, const char *id)
{
	cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(state, "runtimes"))
		if (strcmp(str(r, "id"), id) == 0)
			return r;
	return NULL;
}

static void assert_status(const char *id, const char *want)
{
	char *st = fp_runtime_status(&fp, id);
	cr_assert_not_null(st, "runtime %s is gone", id);
	cr_assert_str_eq(st, want, "runtime %s is %s, want %s", id, st, want);
	free(st);
}

static char *heartbeat_body(const char *id)
{
	static char buf[256];
	snprintf(buf, sizeof buf, "{\"runtime_id\":\"%s\",\"supports_batch_import\":true}", id);
	return buf;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- auth ---- */

Test(fakeplane, auth_errors)
{
	static const char *const bad_format[] = { "Authorization: Token abc", NULL };
	static const char *const bad_token[] = { "Authorization: Bearer nope", NULL };
	call_error("GET", "/api/daemon/workspaces", NULL, NULL, 401,
		   "missing authorization header");
	call_error("GET", "/api/daemon/workspaces", NULL, bad_format, 401,
		   "invalid authorization format");
	call_error("GET", "/api/daemon/workspaces", NULL, bad_token, 401, "invalid token");
	call_error("POST", "/api/daemon/heartbeat", heartbeat_body(NOPE), bad_token, 401,
		   "invalid token");
}

Test(fakeplane, token_admin)
{
	cJSON_Delete(call("POST", "/_admin/tokens", "{\"token\":\"t3\",\"user\":\"u1\"}", NULL, 200));
	static const char *const t3[] = { "Authorization: Bearer t3", NULL };
	cJSON_Delete(call("GET", "/api/daemon/workspaces", NULL, t3, 200));
	cJSON_Delete(call("DELETE", "/_admin/tokens/t3", NULL, NULL, 200));
	call_error("GET", "/api/daemon/workspaces", NULL, t3, 401, "invalid token");
}

/* ---- workspaces ---- */

struct hdrs {
	char etag[256];
	char cache[256];
};

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
	struct hdrs *h = ud;
	size_t len = size * n;
	char buf[256];
	snprintf(buf, sizeof buf, "%.*s", (int)(len < 255 ? len : 255), line);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strncasecmp(buf, "ETag: ", 6) == 0)
		snprintf(h->etag, sizeof h->etag, "%s", buf + 6);
	if (strncasecmp(buf, "Cache-Control: ", 15) == 0)
		snprintf(h->cache, sizeof h->cache, "%s", buf + 15);
	return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	char *buf = ud;
	size_t len = strlen(buf), add = size * n;
	if (len + add < 4096) {
		memcpy(buf + len, p, add);
		buf[len + add] = '\0';
	}
	return add;
}

/* GET /api/daemon/workspaces with optional If-None-Match, keeping headers. */
static long list_workspaces(const char *if_none_match, struct hdrs *h, char body[4096])
{
	CURL *c = curl_easy_init();
	char url[128], inm[256];
	snprintf(url, sizeof url, "%s/api/daemon/workspaces", fp.url);
	struct curl_slist *sl = curl_slist_append(NULL, AUTH[0]);
	if (if_none_match) {
		snprintf(inm, sizeof inm, "If-None-Match: %s", if_none_match);
		sl = curl_slist_append(sl, inm);
	}
	memset(h, 0, sizeof *h);
	body[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	long st = -1;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(sl);
	curl_easy_cleanup(c);
	return st;
}

Test(fakeplane, workspaces_list_etag_304)
{
	struct hdrs h;
	char body[4096];
	cr_assert_eq(list_workspaces(NULL, &h, body), 200);
	cJSON *a = cJSON_Parse(body);
	cr_assert_eq(cJSON_GetArraySize(a), 2, "u1 is a member of two workspaces");
	cr_assert_str_eq(str(cJSON_GetArrayItem(a, 0), "id"), WS_A, "ordered by id");
	cr_assert_str_eq(str(cJSON_GetArrayItem(a, 0), "name"), "Alpha");
	cr_assert_str_eq(str(cJSON_GetArrayItem(a, 1), "id"), WS_B);
	cJSON_Delete(a);

	/* ETag: W/"<hex sha256 of the JSON array>" (the body without its newline). */
	unsigned char md[32];
	char hex[65], want[80];
	size_t len = strcspn(body, "\n");
	crypto_hash_sha256(md, (const unsigned char *)body, len);
	sodium_bin2hex(hex, sizeof hex, md, sizeof md);
	snprintf(want, sizeof want, "W/\"%s\"", hex);
	cr_assert_str_eq(h.etag, want);
	cr_assert_str_eq(h.cache, "private, no-cache");

	char etag[256];
	snprintf(etag, sizeof etag, "%s", h.etag);
	cr_assert_eq(list_workspaces(etag, &h, body), 304);
	cr_assert_str_eq(body, "", "304 has no body");
	cr_assert_eq(list_workspaces("W/\"other\"", &h, body), 200);

	/* A membership change gives a new list, a new ETag and 200. */
	cJSON_Delete(call("POST", "/_admin/workspaces",
			  "{\"id\":\"" WS_X "\",\"name\":\"Other\",\"members\":[\"u2\",\"u1\"]}",
			  NULL, 200));
	cr_assert_eq(list_workspaces(etag, &h, body), 200);
	cr_assert_str_neq(h.etag, etag);
	a = cJSON_Parse(body);
	cr_assert_eq(cJSON_GetArraySize(a), 3);
	cJSON_Delete(a);
}

Test(fakeplane, legacy_workspaces_and_empty_membership)
{
	cJSON *a = call("GET", "/api/workspaces", NULL, AUTH, 200);
	cr_assert_eq(cJSON_GetArraySize(a), 2);
	cJSON_Delete(a);
	cJSON_Delete(call("POST", "/_admin/tokens", "{\"token\":\"lonely\",\"user\":\"u9\"}",
			  NULL, 200));
	static const char *const lonely[] = { "Authorization: Bearer lonely", NULL };
	a = call("GET", "/api/daemon/workspaces", NULL, lonely, 200);
	cr_assert(cJSON_IsArray(a));
	cr_assert_eq(cJSON_GetArraySize(a), 0, "no memberships: []");
	cJSON_Delete(a);
}

/* ---- runtime profiles ---- */

Test(fakeplane, profiles_enabled_only_in_creation_order)
{
	cJSON_Delete(call("POST", "/_admin/profiles",
			  "{\"workspace_id\":\"" WS_A "\",\"display_name\":\"Aaa late\","
			  "\"protocol_family\":\"claude\",\"command_name\":\"late\"}", NULL, 200));
	cJSON *o = call("GET", "/api/daemon/workspaces/" WS_A "/runtime-profiles", NULL, AUTH, 200);
	cr_assert_str_eq(str(o, "workspace_id"), WS_A);
	cJSON *list = cJSON_GetObjectItem(o, "runtime_profiles");
	cr_assert_eq(cJSON_GetArraySize(list), 3, "the disabled one is left out");
	cJSON *p0 = cJSON_GetArrayItem(list, 0);
	cr_assert_str_eq(str(p0, "id"), P_ON);
	cr_assert_str_eq(str(cJSON_GetArrayItem(list, 1), "id"), P_ON2);
	cr_assert_str_eq(str(cJSON_GetArrayItem(list, 2), "display_name"), "Aaa late");
	cr_assert_str_eq(str(p0, "protocol_family"), "claude");
	cr_assert_str_eq(str(p0, "command_name"), "ccms");
	cr_assert_str_eq(str(p0, "description"), "(null)");
	cr_assert_str_eq(str(p0, "created_by"), "(null)");
	cr_assert_str_eq(str(p0, "visibility"), "workspace");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(p0, "enabled")));
	cJSON *args = cJSON_GetObjectItem(p0, "fixed_args");
	cr_assert_eq(cJSON_GetArraySize(args), 1);
	cr_assert_str_eq(cJSON_GetArrayItem(args, 0)->valuestring, "--fast");
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "fixed_args")),
		  "fixed_args is always an array");
	cr_assert_str_eq(str(cJSON_GetArrayItem(list, 1), "description"), "d");
	cr_assert_str_neq(str(p0, "created_at"), "(null)");
	cJSON_Delete(o);
}

Test(fakeplane, profiles_echo_path_and_404s)
{
	/* The reply echoes the path parameter exactly as received. */
	cJSON_Delete(call("POST", "/_admin/workspaces",
			  "{\"id\":\"abcdef00-0000-4000-8000-000000000000\",\"members\":[\"u1\"]}",
			  NULL, 200));
	cJSON *o = call("GET", "/api/daemon/workspaces/ABCDEF00-0000-4000-8000-000000000000"
			"/runtime-profiles", NULL, AUTH, 200);
	cr_assert_str_eq(str(o, "workspace_id"), "ABCDEF00-0000-4000-8000-000000000000");
	cJSON_Delete(o);
	call_error("GET", "/api/daemon/workspaces/" WS_A "/runtime-profiles", NULL, NULL, 401,
		   "missing authorization header");
	call_error("GET", "/api/daemon/workspaces/" WS_X "/runtime-profiles", NULL, AUTH, 404,
		   "not found");
	call_error("GET", "/api/daemon/workspaces/" NOPE "/runtime-profiles", NULL, AUTH, 404,
		   "not found");
	call_error("GET", "/api/daemon/workspaces/not-a-uuid/runtime-profiles", NULL, AUTH, 404,
		   "not found");
	/* An empty list is [] not null. */
	o = call("GET", "/api/daemon/workspaces/" WS_B "/runtime-profiles", NULL, AUTH, 200);
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(o, "runtime_profiles")));
	cJSON_Delete(o);
}

Test(fakeplane, profile_admin_patch_and_delete)
{
	cJSON *p = call("PATCH", "/_admin/profiles/" P_ON,
			"{\"enabled\":false,\"command_name\":\"ccms2\",\"fixed_args\":[]}", NULL,
			200);
	cr_assert_str_eq(str(p, "command_name"), "ccms2");
	cJSON_Delete(p);
	cJSON *o = call("GET", "/api/daemon/workspaces/" WS_A "/runtime-profiles", NULL, AUTH, 200);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "runtime_profiles")), 1);
	cJSON_Delete(o);
	call_error("PATCH", "/_admin/profiles/" P_ON, "{\"protocol_family\":\"codex\"}", NULL, 400,
		   "protocol_family: cannot be changed");
	call_error("PATCH", "/_admin/profiles/" P_ON, "{\"display_name\":\"Second\"}", NULL, 409,
		   "display_name already used in this workspace");
	call_error("PATCH", "/_admin/profiles/" NOPE, "{\"enabled\":true}", NULL, 404, "not found");
	call_error("POST", "/_admin/profiles", "{\"workspace_id\":\"" WS_A "\"}", NULL, 400,
		   "protocol_family: required");

	/* Deleting a profile deletes its runtime rows: heartbeats then get 404. */
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CUSTOM(P_ON2) "]", "null"));
	char id[64];
	rt_id(r, 0, id);
	cJSON_Delete(r);
	o = call("DELETE", "/_admin/profiles/" P_ON2, NULL, NULL, 200);
	cr_assert_eq(cJSON_GetObjectItem(o, "deleted_runtimes")->valueint, 1);
	cJSON_Delete(o);
	call_error("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 404,
		   "runtime not found");
}

/* ---- register ---- */

Test(fakeplane, register_reply_shape_and_name_rules)
{
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CLAUDE "," RT_CODEX ","
				"{\"name\":\"  \",\"type\":\"  GEMINI \",\"version\":\"\"},"
				"{\"type\":\"\"}]", "null"));
	cr_assert_str_eq(str(r, "repos_version"),
			 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(r, "repos")));
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "repos")), 0);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "settings")));
	cJSON *rts = cJSON_GetObjectItem(r, "runtimes");
	cr_assert_eq(cJSON_GetArraySize(rts), 4, "one per entry, same order");
	cJSON *c = cJSON_GetArrayItem(rts, 0);
	cr_assert_str_eq(str(c, "name"), "claude (box)", "empty name: provider (device)");
	cr_assert_str_eq(str(c, "provider"), "claude");
	cr_assert_str_eq(str(c, "status"), "online");
	cr_assert_str_eq(str(c, "device_info"), "box · 1.2");
	cr_assert_str_eq(str(c, "workspace_id"), WS_A);
	cr_assert_str_eq(str(c, "daemon_id"), "d1");
	cr_assert_str_eq(str(c, "runtime_mode"), "local");
	cr_assert_str_eq(str(c, "launch_header"), "");
	cr_assert_str_eq(str(c, "visibility"), "private");
	cr_assert_str_eq(str(c, "custom_name"), "(null)");
	cr_assert_str_eq(str(c, "profile_id"), "(null)");
	cr_assert_str_eq(str(c, "owner_id"), "u1");
	cr_assert(cJSON_IsObject(cJSON_GetObjectItem(c, "metadata")));
	cr_assert_str_neq(str(c, "last_seen_at"), "(null)");
	cr_assert_str_neq(str(c, "created_at"), "(null)");
	cr_assert_str_neq(str(c, "updated_at"), "(null)");
	cr_assert_str_eq(str(cJSON_GetArrayItem(rts, 1), "name"), "Codex (box)");
	cr_assert_str_eq(str(cJSON_GetArrayItem(rts, 1), "device_info"), "box");
	cr_assert_str_eq(str(cJSON_GetArrayItem(rts, 2), "provider"), "gemini",
			 "type is trimmed and lower-cased");
	cr_assert_str_eq(str(cJSON_GetArrayItem(rts, 2), "name"), "gemini (box)");
	cr_assert_str_eq(str(cJSON_GetArrayItem(rts, 3), "provider"), "unknown");
	char ids[4][64];
	for (int i = 0; i < 4; i++)
		rt_id(r, i, ids[i]);
	for (int i = 0; i < 4; i++)
		for (int k = i + 1; k < 4; k++)
			cr_assert_str_neq(ids[i], ids[k]);
	cJSON_Delete(r);
}

Test(fakeplane, register_upsert_identities)
{
	const char *rts = "[" RT_CLAUDE "," RT_CUSTOM(P_ON) "]";
	cJSON *r1 = reg(reg_body(WS_A, "d1", rts, "null"));
	char b1[64], c1[64], b2[64], c2[64];
	rt_id(r1, 0, b1);
	rt_id(r1, 1, c1);
	/* A built-in and a custom row with the same provider coexist. */
	cr_assert_str_neq(b1, c1);
	cJSON *custom = cJSON_GetArrayItem(cJSON_GetObjectItem(r1, "runtimes"), 1);
	cr_assert_str_eq(str(custom, "provider"), "claude");
	cr_assert_str_eq(str(custom, "profile_id"), P_ON);
	cJSON_Delete(r1);

	/* Same identities: same ids. Name is overwritten. */
	cJSON *r2 = reg(reg_body(WS_A, "d1", "[" RT_CUSTOM(P_ON) ","
				 "{\"name\":\"renamed\",\"type\":\"Claude\"}]", "null"));
	rt_id(r2, 0, c2);
	rt_id(r2, 1, b2);
	cr_assert_str_eq(b1, b2, "built-in keyed on (ws, daemon, provider)");
	cr_assert_str_eq(c1, c2, "custom keyed on (ws, daemon, profile)");
	cr_assert_str_eq(str(cJSON_GetArrayItem(cJSON_GetObjectItem(r2, "runtimes"), 1), "name"),
			 "renamed");
	cJSON_Delete(r2);

	/* Another daemon, or another workspace: other rows. */
	cJSON *r3 = reg(reg_body(WS_A, "d2", "[" RT_CLAUDE "]", "null"));
	rt_id(r3, 0, b2);
	cr_assert_str_neq(b1, b2);
	cJSON_Delete(r3);
	cJSON *r4 = reg(reg_body(WS_B, "d1", "[" RT_CLAUDE "]", "null"));
	rt_id(r4, 0, b2);
	cr_assert_str_neq(b1, b2);
	cJSON_Delete(r4);

	cJSON *s = fp_state(&fp);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "runtimes")), 4);
	cJSON_Delete(s);
}

Test(fakeplane, register_never_prunes_and_recreates_after_delete)
{
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CLAUDE "," RT_CODEX "]", "null"));
	char claude[64], codex[64], again[64];
	rt_id(r, 0, claude);
	rt_id(r, 1, codex);
	cJSON_Delete(r);
	cJSON_Delete(call("POST", "/api/daemon/deregister",
			  "{\"runtime_ids\":[\"" NOPE "\"]}", AUTH, 200));
	/* Registering only claude leaves codex as it was. */
	r = reg(reg_body(WS_A, "d1", "[" RT_CLAUDE "]", "null"));
	cJSON_Delete(r);
	assert_status(codex, "online");

	cJSON_Delete(call("DELETE", "/_admin/runtimes/", NULL, NULL, 404));
	char path[128];
	snprintf(path, sizeof path, "/_admin/runtimes/%s", claude);
	cJSON_Delete(call("DELETE", path, NULL, NULL, 200));
	cJSON_Delete(call("DELETE", path, NULL, NULL, 404));
	char *st = fp_runtime_status(&fp, claude);
	cr_assert_null(st);
	r = reg(reg_body(WS_A, "d1", "[" RT_CLAUDE "]", "null"));
	rt_id(r, 0, again);
	cJSON_Delete(r);
	cr_assert_str_neq(again, claude, "a deleted row comes back with a new id");

	/* Every row at once: codex and the re-created claude. */
	cJSON *all = call("DELETE", "/_admin/runtimes", NULL, NULL, 200);
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(all, "deleted_runtimes")), 2);
	cJSON_Delete(all);
	char *gone = fp_runtime_status(&fp, codex);
	cr_assert_null(gone);
	gone = fp_runtime_status(&fp, again);
	cr_assert_null(gone);
}

Test(fakeplane, register_custom_provider_from_profile)
{
	cJSON *r = reg(reg_body(WS_A, "d1",
				"[{\"name\":\"\",\"type\":\"whatever\",\"profile_id\":\"" P_ON2 "\"}]",
				"[]"));
	cJSON *rt = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "runtimes"), 0);
	cr_assert_str_eq(str(rt, "provider"), "codex", "the profile's protocol_family");
	cr_assert_str_eq(str(rt, "profile_id"), P_ON2);
	cJSON_Delete(r);
}

Test(fakeplane, register_profile_errors_not_atomic)
{
	call_error("POST", "/api/daemon/register",
		   reg_body(WS_A, "d1", "[" RT_CODEX "," RT_CUSTOM(NOPE) "]", "null"), AUTH, 400,
		   "unknown runtime profile: " NOPE);
	/* The entry before the failing one stays upserted. */
	cJSON *s = fp_state(&fp);
	cJSON *rts = cJSON_GetObjectItem(s, "runtimes");
	cr_assert_eq(cJSON_GetArraySize(rts), 1);
	cr_assert_str_eq(str(cJSON_GetArrayItem(rts, 0), "provider"), "codex");
	cJSON_Delete(s);

	call_error("POST", "/api/daemon/register",
		   reg_body(WS_A, "d1", "[" RT_CUSTOM(P_OFF) "]", "null"), AUTH, 409,
		   "runtime profile is disabled: " P_OFF);
	call_error("POST", "/api/daemon/register",
		   reg_body(WS_A, "d1", "[" RT_CUSTOM(P_X) "]", "null"), AUTH, 400,
		   "unknown runtime profile: " P_X);
	call_error("POST", "/api/daemon/register",
		   reg_body(WS_A, "d1", "[" RT_CUSTOM("nope") "]", "null"), AUTH, 400,
		   "invalid profile_id");
}

Test(fakeplane, register_failed_profiles)
{
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CLAUDE "]",
				"[{\"profile_id\":\"" P_ON2 "\",\"command_name\":\"cx2\","
				"\"reason\":\"command not found on PATH: cx2\"},"
				"{\"profile_id\":\"" NOPE "\",\"command_name\":\"a\",\"reason\":\"b\"},"
				"{\"profile_id\":\"" P_OFF "\",\"command_name\":\"a\",\"reason\":\"b\"},"
				"{\"profile_id\":\"\",\"command_name\":\"a\",\"reason\":\"b\"}]"));
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "runtimes")), 1,
		     "failed profiles are not returned");
	cJSON_Delete(r);
	cJSON *s = fp_state(&fp);
	cJSON *rts = cJSON_GetObjectItem(s, "runtimes");
	cr_assert_eq(cJSON_GetArraySize(rts), 2, "unknown/disabled/blank ones are skipped");
	cJSON *failed = cJSON_GetArrayItem(rts, 1);
	cr_assert_str_eq(str(failed, "profile_id"), P_ON2);
	cr_assert_str_eq(str(failed, "status"), "offline");
	cr_assert_str_eq(str(failed, "provider"), "codex");
	cr_assert_str_eq(str(failed, "name"), "Second (box)");
	cJSON *meta = cJSON_GetObjectItem(failed, "metadata");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(meta, "runtime_profile_registration_error")));
	cr_assert_str_eq(str(meta, "runtime_profile_failure_reason"),
			 "command not found on PATH: cx2");
	cJSON_Delete(s);

	/* Only failed profiles is enough; a bad UUID there is a 400. */
	r = reg(reg_body(WS_A, "d9", "[]",
			 "[{\"profile_id\":\"" P_ON "\",\"command_name\":\"c\",\"reason\":\"r\"}]"));
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "runtimes")), 0);
	cJSON_Delete(r);
	call_error("POST", "/api/daemon/register",
		   reg_body(WS_A, "d1", "[" RT_CLAUDE "]",
			    "[{\"profile_id\":\"bad\",\"command_name\":\"c\",\"reason\":\"r\"}]"),
		   AUTH, 400, "invalid profile_id");
}

Test(fakeplane, register_validation)
{
	const char *p = "/api/daemon/register";
	call_error("POST", p, "not json", AUTH, 400, "invalid request body");
	call_error("POST", p, "[1]", AUTH, 400, "invalid request body");
	call_error("POST", p, "{\"workspace_id\":5}", AUTH, 400, "invalid request body");
	call_error("POST", p, "{\"runtimes\":[{\"type\":1}]}", AUTH, 400, "invalid request body");
	call_error("POST", p, "{\"workspace_id\":\"" WS_A "\"}", AUTH, 400,
		   "daemon_id is required");
	call_error("POST", p, "{\"daemon_id\":\"  d1 \"}", AUTH, 400, "workspace_id is required");
	call_error("POST", p, reg_body(WS_A, "d1", "[]", "[]"), AUTH, 400,
		   "at least one runtime or failed profile is required");
	call_error("POST", p, reg_body(WS_A, "d1", "null", "null"), AUTH, 400,
		   "at least one runtime or failed profile is required");
	call_error("POST", p, reg_body("ws-1", "d1", "[" RT_CLAUDE "]", "null"), AUTH, 400,
		   "invalid workspace_id");
	call_error("POST", p, reg_body(WS_X, "d1", "[" RT_CLAUDE "]", "null"), AUTH, 404,
		   "workspace not found");
	call_error("POST", p, reg_body(NOPE, "d1", "[" RT_CLAUDE "]", "null"), AUTH, 404,
		   "workspace not found");
	/* null lists and a missing legacy_daemon_ids are accepted. */
	cJSON_Delete(reg("{\"workspace_id\":\"" WS_A "\",\"daemon_id\":\"d1\","
			 "\"runtimes\":[" RT_CLAUDE "],\"failed_profiles\":null}"));
	cJSON *s = fp_state(&fp);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "runtimes")), 1,
		     "failed validations wrote nothing");
	cJSON_Delete(s);
}

/* ---- deregister ---- */

Test(fakeplane, deregister)
{
	char id[64];
	register_claude(id);
	cJSON *s = fp_state(&fp);
	char seen[64];
	snprintf(seen, sizeof seen, "%s", str(state_runtime(s, id), "last_seen_at"));
	cJSON_Delete(s);

	char body[256];
	snprintf(body, sizeof body, "{\"runtime_ids\":[\"%s\",\"bogus\"]}", id);
	call_error("POST", "/api/daemon/deregister", body, AUTH, 400, "invalid runtime_ids");
	assert_status(id, "online");
	call_error("POST", "/api/daemon/deregister", "{\"runtime_ids\":[]}", AUTH, 400,
		   "runtime_ids is required");
	call_error("POST", "/api/daemon/deregister", "{}", AUTH, 400, "runtime_ids is required");
	call_error("POST", "/api/daemon/deregister", "{", AUTH, 400, "invalid request body");

	/* u2 may not touch WS_B rows: skipped, still 200. */
	cJSON *r = reg(reg_body(WS_B, "d1", "[" RT_CLAUDE "]", "null"));
	char other[64];
	rt_id(r, 0, other);
	cJSON_Delete(r);
	snprintf(body, sizeof body, "{\"runtime_ids\":[\"%s\"]}", other);
	cJSON *ok = call("POST", "/api/daemon/deregister", body, AUTH_U2, 200);
	cr_assert_str_eq(str(ok, "status"), "ok");
	cJSON_Delete(ok);
	assert_status(other, "online");

	snprintf(body, sizeof body, "{\"runtime_ids\":[\"" NOPE "\",\"%s\"]}", id);
	cJSON_Delete(call("POST", "/api/daemon/deregister", body, AUTH, 200));
	assert_status(id, "offline");
	s = fp_state(&fp);
	cr_assert_str_eq(str(state_runtime(s, id), "last_seen_at"), seen,
			 "deregister leaves last_seen_at alone");
	cJSON_Delete(s);
}

/* ---- heartbeat ---- */

Test(fakeplane, heartbeat_revives_and_404s)
{
	char id[64], body[128];
	register_claude(id);
	snprintf(body, sizeof body, "{\"runtime_ids\":[\"%s\"]}", id);
	cJSON_Delete(call("POST", "/api/daemon/deregister", body, AUTH, 200));
	assert_status(id, "offline");
	cJSON *ok = call("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 200);
	cr_assert_str_eq(str(ok, "status"), "ok");
	cJSON_Delete(ok);
	assert_status(id, "online");

	call_error("POST", "/api/daemon/heartbeat", "{", AUTH, 400, "invalid request body");
	call_error("POST", "/api/daemon/heartbeat", "{\"runtime_id\":\"\"}", AUTH, 400,
		   "runtime_id is required");
	call_error("POST", "/api/daemon/heartbeat", "{\"runtime_id\":\"x\"}", AUTH, 400,
		   "invalid runtime_id");
	/* Access denied is "not found", which must not read as "runtime not found". */
	cJSON *r = reg(reg_body(WS_B, "d1", "[" RT_CLAUDE "]", "null"));
	char other[64];
	rt_id(r, 0, other);
	cJSON_Delete(r);
	call_error("POST", "/api/daemon/heartbeat", heartbeat_body(other), AUTH_U2, 404,
		   "not found");

	char path[128];
	snprintf(path, sizeof path, "/_admin/runtimes/%s", id);
	cJSON_Delete(call("DELETE", path, NULL, NULL, 200));
	call_error("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 404,
		   "runtime not found");
	/* A deleted workspace takes its rows along. */
	cJSON_Delete(call("DELETE", "/_admin/workspaces/" WS_B, NULL, NULL, 200));
	call_error("POST", "/api/daemon/heartbeat", heartbeat_body(other), AUTH, 404,
		   "runtime not found");
}

/* ---- recover orphans ---- */

Test(fakeplane, recover_orphans)
{
	static const char *const statuses[] = {
		"queued", "dispatched", "running", "completed", "failed", "cancelled",
		"waiting_local_directory", "deferred",
	};
	char id[64], other[64], body[256], path[128];
	register_claude(id);
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CODEX "]", "null"));
	rt_id(r, 0, other);
	cJSON_Delete(r);
	for (int i = 0; i < 8; i++) {
		snprintf(body, sizeof body,
			 "{\"id\":\"bbbbbbbb-0000-4000-8000-00000000000%d\",\"runtime_id\":\"%s\","
			 "\"status\":\"%s\"}", i, id, statuses[i]);
		cJSON_Delete(call("POST", "/_admin/tasks", body, NULL, 200));
	}
	snprintf(body, sizeof body, "{\"runtime_id\":\"%s\",\"status\":\"running\"}", other);
	cJSON_Delete(call("POST", "/_admin/tasks", body, NULL, 200));

	snprintf(path, sizeof path, "/api/daemon/runtimes/%s/recover-orphans", id);
	cJSON *o = call("POST", path, "{}", AUTH, 200);
	cr_assert_eq(cJSON_GetObjectItem(o, "orphaned")->valueint, 3);
	cr_assert_eq(cJSON_GetObjectItem(o, "retried")->valueint, 0);
	cJSON_Delete(o);

	cJSON *s = fp_state(&fp);
	cJSON *t;
	int i = 0;
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(s, "tasks")) {
		if (i < 8) {
			bool hit = i == 1 || i == 2 || i == 6;
			cr_assert_str_eq(str(t, "status"), hit ? "failed" : statuses[i]);
			cr_assert_str_eq(str(t, "failure_reason"), hit ? "runtime_recovery" : "(null)");
			if (hit)
				cr_assert_str_eq(str(t, "error"),
						 "daemon restarted while task was in flight");
		} else {
			cr_assert_str_eq(str(t, "status"), "running", "other runtimes untouched");
		}
		i++;
	}
	cr_assert_eq(i, 9);
	cJSON_Delete(s);

	o = call("POST", path, "{}", AUTH, 200);
	cr_assert_eq(cJSON_GetObjectItem(o, "orphaned")->valueint, 0);
	cJSON_Delete(o);
	call_error("POST", "/api/daemon/runtimes/" NOPE "/recover-orphans", "{}", AUTH, 404,
		   "runtime not found");
	call_error("POST", "/api/daemon/runtimes/nope/recover-orphans", "{}", AUTH, 400,
		   "invalid runtime_id");
	cJSON *rb = reg(reg_body(WS_B, "d1", "[" RT_CLAUDE "]", "null"));
	rt_id(rb, 0, other);
	cJSON_Delete(rb);
	snprintf(path, sizeof path, "/api/daemon/runtimes/%s/recover-orphans", other);
	call_error("POST", path, "{}", AUTH_U2, 404, "not found");
}

/* ---- the rest of the surface ---- */

Test(fakeplane, other_endpoints)
{
	cJSON *o = call("POST", "/api/tokens/current/renew", "{}", AUTH, 200);
	cr_assert_str_eq(str(o, "expires_at"), "");
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "renewed")));
	cJSON_Delete(o);
	o = call("POST", "/api/daemon/tasks/claim",
		 "{\"daemon_id\":\"d1\",\"runtime_ids\":[],\"max_tasks\":4}", AUTH, 200);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "tasks")), 0);
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(o, "tasks")));
	cJSON_Delete(o);
	call_error("POST", "/api/daemon/tasks/claim", "{\"daemon_id\":\"\"}", AUTH, 400,
		   "daemon_id is required");
	/* The websocket route exists now (test_fakeplane_ws.c): no ids, a 400. */
	call_error("GET", "/api/daemon/ws", NULL, AUTH, 400,
		   "runtime_ids or user identity required");
	call_error("GET", "/api/daemon/nothing", NULL, AUTH, 404, "not found");
	call_error("GET", "/api/daemon/heartbeat", NULL, AUTH, 404, "not found");
	call_error("GET", "/_admin/nothing", NULL, NULL, 404, "not found");
}

Test(fakeplane, request_body_cap)
{
	size_t n = (1u << 20) + 100;
	char *big = malloc(n + 1);
	cr_assert_not_null(big);
	memset(big, ' ', n);
	big[n] = '\0';
	long st = fp_http(&fp, "POST", "/api/daemon/heartbeat", big, AUTH, NULL);
	free(big);
	cr_assert_eq(st, 413);
	cJSON_Delete(call("GET", "/api/daemon/workspaces", NULL, AUTH, 200));
}

/* ---- journal ---- */

Test(fakeplane, journal_records_daemon_requests)
{
	char id[64];
	register_claude(id);
	cJSON_Delete(call("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 200));
	call_error("GET", "/api/daemon/workspaces", NULL, NULL, 401, "missing authorization header");
	cJSON_Delete(fp_state(&fp));   /* admin requests are not journaled */

	cJSON *j = fp_journal(&fp);
	cr_assert_eq(cJSON_GetArraySize(j), 3);
	cJSON *e0 = cJSON_GetArrayItem(j, 0), *e1 = cJSON_GetArrayItem(j, 1);
	cJSON *e2 = cJSON_GetArrayItem(j, 2);
	cr_assert_str_eq(str(e0, "method"), "POST");
	cr_assert_str_eq(str(e0, "path"), "/api/daemon/register");
	cr_assert_eq(cJSON_GetObjectItem(e0, "status")->valueint, 200);
	cr_assert(strstr(str(e0, "body"), "\"daemon_id\":\"d1\"") != NULL);
	cr_assert_str_eq(str(e1, "body"), heartbeat_body(id));
	cr_assert_str_eq(str(e2, "method"), "GET");
	cr_assert_str_eq(str(e2, "body"), "");
	cr_assert_eq(cJSON_GetObjectItem(e2, "status")->valueint, 401);
	cr_assert_lt(cJSON_GetObjectItem(e0, "seq")->valuedouble,
		     cJSON_GetObjectItem(e1, "seq")->valuedouble);
	cr_assert_str_neq(str(e0, "time"), "(null)");
	cJSON_Delete(j);
	cr_assert_eq(fp_journal_count(&fp, "POST", "/api/daemon/heartbeat"), 1);

	cJSON_Delete(call("DELETE", "/_admin/journal", NULL, NULL, 200));
	cr_assert_eq(fp_journal_count(&fp, NULL, NULL), 0);
}

/* ---- faults ---- */

Test(fakeplane, fault_status_body_count)
{
	char id[64];
	register_claude(id);
	cr_assert_eq(fp_fault(&fp, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/heart\","
			      "\"status\":503,\"body\":\"{oops\",\"count\":2}"), 200);
	for (int i = 0; i < 2; i++) {
		char *body = NULL;
		long st = fp_http(&fp, "POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH,
				  &body);
		cr_assert_eq(st, 503);
		cr_assert_str_eq(body, "{oops", "the body is sent raw");
		free(body);
	}
	cJSON_Delete(call("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 200));
	/* Other paths and methods were never affected. */
	cJSON *j = fp_journal(&fp);
	cJSON *e1 = cJSON_GetArrayItem(j, 1);
	cr_assert_eq(cJSON_GetObjectItem(e1, "status")->valueint, 503);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(e1, "fault")));
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 3), "fault")));
	cJSON_Delete(j);

	cr_assert_eq(fp_fault(&fp, "{\"method\":\"GET\",\"status\":500}"), 200);
	cJSON_Delete(call("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 200));
	call_error("GET", "/api/daemon/workspaces", NULL, AUTH, 500, "injected fault");
	cJSON_Delete(call("GET", "/api/daemon/workspaces", NULL, AUTH, 200));
	cr_assert_eq(fp_fault(&fp, "{\"status\":99}"), 400);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/x\"}"), 400);
	cr_assert_eq(fp_fault(&fp, "{\"statuss\":500}"), 400);
}

Test(fakeplane, fault_until_cleared)
{
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/workspaces\",\"status\":502,"
			      "\"count\":-1}"), 200);
	for (int i = 0; i < 5; i++)
		cJSON_Delete(call("GET", "/api/daemon/workspaces", NULL, AUTH, 502));
	cJSON *f = call("GET", "/_admin/faults", NULL, NULL, 200);
	cr_assert_eq(cJSON_GetArraySize(f), 1);
	cJSON_Delete(f);
	cJSON_Delete(call("DELETE", "/_admin/faults", NULL, NULL, 200));
	cJSON_Delete(call("GET", "/api/daemon/workspaces", NULL, AUTH, 200));
}

struct slow_call {
	long status;
	int64_t elapsed_ms;
};

static void *slow_heartbeat(void *arg)
{
	struct slow_call *sc = arg;
	int64_t t0 = now_ms();
	sc->status = fp_http(&fp, "POST", "/api/daemon/heartbeat", heartbeat_body(NOPE), AUTH,
			     NULL);
	sc->elapsed_ms = now_ms() - t0;
	return NULL;
}

Test(fakeplane, fault_delay_does_not_block_others)
{
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/heartbeat\","
			      "\"delay_ms\":1200}"), 200);
	struct slow_call sc = { 0 };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, slow_heartbeat, &sc), 0);
	sleep_ms(100);   /* let the slow request reach the server */
	int64_t t0 = now_ms();
	cJSON_Delete(call("GET", "/api/daemon/workspaces", NULL, AUTH, 200));
	int64_t fast = now_ms() - t0;
	pthread_join(th, NULL);
	cr_assert_lt(fast, 600, "a delayed request held up another one (%lld ms)",
		     (long long)fast);
	/* After the delay the request is processed normally. */
	cr_assert_eq(sc.status, 404);
	cr_assert_geq(sc.elapsed_ms, 1100);
	cJSON *j = fp_journal(&fp);
	cJSON *last = cJSON_GetArrayItem(j, cJSON_GetArraySize(j) - 1);
	cr_assert_str_eq(str(last, "path"), "/api/daemon/heartbeat", "journaled when answered");
	cr_assert_eq(cJSON_GetObjectItem(last, "status")->valueint, 404);
	cJSON_Delete(j);
}

Test(fakeplane, fault_reset_and_delay_with_status)
{
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/register\",\"reset\":true}"),
		     200);
	long st = fp_http(&fp, "POST", "/api/daemon/register",
			  reg_body(WS_A, "d1", "[" RT_CLAUDE "]", "null"), AUTH, NULL);
	cr_assert_eq(st, -1, "the connection is closed unanswered");
	cJSON *s = fp_state(&fp);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "runtimes")), 0,
		     "a reset request is not processed");
	cJSON_Delete(s);
	cJSON *j = fp_journal(&fp);
	cr_assert_eq(cJSON_GetArraySize(j), 1);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "status")->valueint, 0);
	cJSON_Delete(j);

	cr_assert_eq(fp_fault(&fp, "{\"status\":504,\"delay_ms\":300}"), 200);
	int64_t t0 = now_ms();
	call_error("GET", "/api/daemon/workspaces", NULL, AUTH, 504, "injected fault");
	cr_assert_geq(now_ms() - t0, 280);
	/* A delay longer than the client waits looks like a timeout. */
	cr_assert_eq(fp_fault(&fp, "{\"delay_ms\":2000}"), 200);
	cr_assert_eq(fp_http_timeout(&fp, "GET", "/api/daemon/workspaces", NULL, AUTH, NULL, 300),
		     -1);
}

Test(fakeplane, fault_huge_body)
{
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/workspaces\",\"status\":200,"
			      "\"body_size\":3000000}"), 200);
	char *body = NULL;
	long st = fp_http(&fp, "GET", "/api/daemon/workspaces", NULL, AUTH, &body);
	cr_assert_eq(st, 200);
	cr_assert_eq(strlen(body), 3000000u);
	free(body);
}

/* Reads everything fd sends until EOF (heap, NUL-terminated). */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 1 << 16, used = 0;
	char *buf = malloc(cap + 1);
	cr_assert_not_null(buf);
	for (;;) {
		if (used == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			cr_assert_not_null(buf);
		}
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	*len = used;
	return buf;
}

/* header_size: a filler header far larger than libmicrohttpd's pool (and
 * than libcurl takes), so read with a raw socket; the answer's status and
 * body are the fault's, and it is journaled. */
Test(fakeplane, fault_huge_header)
{
	cr_assert_eq(fp_fault(&fp, "{\"header_size\":10}"), 400, "header_size needs a status");
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/workspaces\",\"status\":201,"
			      "\"body\":\"[]\",\"header_size\":300000}"), 200);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)fp.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	static const char rq[] = "GET /api/daemon/workspaces HTTP/1.1\r\nHost: x\r\n"
				 "Authorization: Bearer tok-u1\r\n\r\n";
	cr_assert_eq(write(fd, rq, sizeof rq - 1), (ssize_t)(sizeof rq - 1));
	size_t len;
	char *resp = read_all(fd, &len);
	close(fd);
	cr_assert_eq(strncmp(resp, "HTTP/1.1 201 ", 13), 0, "got: %.80s", resp);
	char *h = strstr(resp, "\r\nX-Fakeplane-Filler: ");
	cr_assert_not_null(h);
	h += strlen("\r\nX-Fakeplane-Filler: ");
	size_t n = strspn(h, "h");
	cr_assert_eq(n, 300000u);
	cr_assert_eq(strncmp(h + n, "\r\n\r\n[]", 6), 0);
	cr_assert_eq(resp + len, h + n + 6, "the body is the fault's, nothing after it");
	cr_assert_not_null(strstr(resp, "\r\nContent-Length: 2\r\n"));
	free(resp);
	cJSON *j = fp_journal(&fp);
	cr_assert_eq(cJSON_GetArraySize(j), 1);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "status")->valueint, 201);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "fault")));
	cJSON_Delete(j);
	/* Once only (count 1): the next answer is the API's. */
	cr_assert_eq(fp_http(&fp, "GET", "/api/daemon/workspaces", NULL, AUTH, NULL), 200);
}

/* ---- sweep ---- */

/* Polls the runtime's status until it is want or timeout_ms passes. */
static bool wait_status(const char *id, const char *want, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	do {
		char *st = fp_runtime_status(&fp, id);
		bool ok = st && strcmp(st, want) == 0;
		free(st);
		if (ok)
			return true;
		sleep_ms(20);
	} while (now_ms() < deadline);
	return false;
}

Test(fakeplane_proc, stale_sweep)
{
	static const char *const args[] = { "--sweep-interval", "50ms", "--stale-after", "500ms",
					    NULL };
	cr_assert_eq(fp_start(&fp, SEED, args), 0);
	char id[64], idle[64];
	register_claude(id);
	cJSON *r = reg(reg_body(WS_A, "d1", "[" RT_CODEX "]", "null"));
	rt_id(r, 0, idle);
	cJSON_Delete(r);
	/* Heartbeats keep one row online while the other goes stale. */
	int64_t until = now_ms() + 1200;
	while (now_ms() < until) {
		cJSON_Delete(call("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 200));
		sleep_ms(50);
	}
	assert_status(id, "online");
	assert_status(idle, "offline");
	cr_assert(wait_status(id, "offline", 3000), "the stale sweep never ran");
	/* A heartbeat revives it. */
	cJSON_Delete(call("POST", "/api/daemon/heartbeat", heartbeat_body(id), AUTH, 200));
	assert_status(id, "online");
}

/* ---- process: start-up errors and stopping ---- */

Test(fakeplane_proc, sigterm_exits_zero)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	char id[64];
	register_claude(id);
	/* A delayed request in flight must not hold up the stop. */
	cr_assert_eq(fp_fault(&fp, "{\"delay_ms\":60000}"), 200);
	pthread_t th;
	struct slow_call sc = { 0 };
	cr_assert_eq(pthread_create(&th, NULL, slow_heartbeat, &sc), 0);
	sleep_ms(100);
	int64_t t0 = now_ms();
	int status = fp_stop(&fp);
	pthread_join(th, NULL);
	cr_assert(WIFEXITED(status), "fakeplane died of signal %d",
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert_eq(WEXITSTATUS(status), 0);
	cr_assert_lt(now_ms() - t0, 4000);
	cr_assert_eq(sc.status, -1);
}

Test(fakeplane_proc, sigint_exits_zero)
{
	cr_assert_eq(fp_start(&fp, NULL, NULL), 0);
	kill(fp.pid, SIGINT);
	int status = 0;
	cr_assert_eq(waitpid(fp.pid, &status, 0), fp.pid);
	fp.pid = -1;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fp_stop(&fp);
}

/* True when pid is gone or a zombie (not ours to reap). */
static bool process_gone(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return true;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

Test(fakeplane_proc, exits_when_its_test_process_dies)
{
	/* A child process starts a fakeplane and dies without fp_stop, as a
	 * test does on a failed assertion: the fakeplane must not outlive it. */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct fp_proc mine;
		close(p[0]);
		int ok = fp_start(&mine, SEED, NULL) == 0;
		struct fp_proc msg = mine;
		if (!ok)
			msg.pid = -1;
		ssize_t w = write(p[1], &msg, sizeof msg);
		_exit(w == (ssize_t)sizeof msg ? 0 : 1);
	}
	close(p[1]);
	struct fp_proc orphan;
	ssize_t n = read(p[0], &orphan, sizeof orphan);
	close(p[0]);
	int status;
	waitpid(child, &status, 0);
	cr_assert_eq(n, (ssize_t)sizeof orphan);
	cr_assert_gt(orphan.pid, 0, "the child could not start a fakeplane");
	int64_t deadline = now_ms() + 5000;
	while (!process_gone(orphan.pid) && now_ms() < deadline)
		sleep_ms(20);
	bool gone = process_gone(orphan.pid);
	if (!gone)
		kill(orphan.pid, SIGKILL);
	char seed[300];
	snprintf(seed, sizeof seed, "%s/seed.json", orphan.dir);
	unlink(seed);
	rmdir(orphan.dir);
	cr_assert(gone, "the fakeplane outlived the process that started it");
}

/* Runs with a seed and asserts exit code 2 and a stderr that contains msg. */
static void assert_start_fails(const char *seed, const char *const *args, const char *msg)
{
	int status = 0;
	char *err = NULL;
	cr_assert_eq(fp_run(seed, args, 10000, &status, &err), 0);
	cr_assert(WIFEXITED(status), "killed by a signal");
	cr_assert_eq(WEXITSTATUS(status), 2, "exit %d, stderr: %s", WEXITSTATUS(status), err);
	cr_assert(strstr(err, msg) != NULL, "stderr \"%s\" lacks \"%s\"", err, msg);
	free(err);
}

Test(fakeplane_proc, bad_seed_files)
{
	static const char *const listen[] = { "--listen", "127.0.0.1:0", NULL };
	assert_start_fails("{\"profiles\":[{\"id\":\"" P_ON "\",\"workspace_id\":5}]}", listen,
			   "seed.json: profiles[0].workspace_id: expected string");
	assert_start_fails("{\"profiles\":[{\"id\":\"" P_ON "\",\"workspace_id\":\"" WS_A "\","
			   "\"display_name\":\"a\",\"protocol_family\":\"claude\","
			   "\"command_name\":\"c\",\"fixed_args\":[\"x\",3]}]}", listen,
			   "seed.json: profiles[0].fixed_args[1]: expected string");
	assert_start_fails("{\"workspaces\":[{\"id\":\"w\"}]}", listen,
			   "seed.json: workspaces[0].id: expected a UUID");
	assert_start_fails("{\"tokens\":{\"t\":1}}", listen, "seed.json: tokens.t: expected string");
	assert_start_fails("{\"tasks\":[{\"runtime_id\":\"" NOPE "\",\"status\":\"zzz\"}]}",
			   listen, "seed.json: tasks[0].status: expected one of");
	assert_start_fails("{\"workspace\":[]}", listen, "seed.json: workspace: unknown key");
	assert_start_fails("{\n  \"tokens\": {\n    \"a\" \"b\"", listen,
			   "seed.json: invalid JSON at line 3");
}

Test(fakeplane_proc, bad_flags)
{
	static const char *const no_listen[] = { NULL };
	static const char *const bad_dur[] = { "--listen", "127.0.0.1:0", "--stale-after", "5x",
					       NULL };
	static const char *const bad_addr[] = { "--listen", "localhost", NULL };
	static const char *const unknown[] = { "--listen", "127.0.0.1:0", "--bogus", NULL };
	static const char *const missing_seed[] = { "--listen", "127.0.0.1:0", "--seed",
						    "/nonexistent/seed.json", NULL };
	assert_start_fails(NULL, no_listen, "--listen HOST:PORT is required");
	assert_start_fails(NULL, bad_dur, "--stale-after: bad duration \"5x\"");
	assert_start_fails(NULL, bad_addr, "--listen: expected HOST:PORT");
	assert_start_fails(NULL, unknown, "unknown option \"--bogus\"");
	assert_start_fails(NULL, missing_seed, "/nonexistent/seed.json: No such file");

	static const char *const help[] = { "--help", NULL };
	int status = 0;
	char *err = NULL;
	cr_assert_eq(fp_run(NULL, help, 10000, &status, &err), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(err);
}

/* ---- scale: thousands of keep-alive connections, delays that hold no thread ---- */

#define MANY 3000          /* well past the old thread-per-connection limit (~1020) */
#define FD_SPARE 64        /* this process's own files besides the connections */
#define WS_PATH "/api/daemon/workspaces"

static struct fp_conn *conns;
static size_t nconns;

static void scale_teardown(void)
{
	for (size_t i = 0; i < nconns; i++)
		fp_conn_close(&conns[i]);
	free(conns);
	conns = NULL;
	nconns = 0;
	teardown();
}

TestSuite(fakeplane_scale, .fini = scale_teardown, .timeout = 90.0);

/* Opens n keep-alive connections to the running fakeplane; skips the test
 * when this process cannot have that many files. */
static void open_conns(size_t n)
{
	long lim = fp_raise_nofile((long)(n + FD_SPARE));
	if (lim < (long)(n + FD_SPARE))
		cr_skip_test("needs %zu file descriptors, RLIMIT_NOFILE allows %ld "
			     "(raise the hard limit, ulimit -Hn)", n + FD_SPARE, lim);
	conns = calloc(n, sizeof *conns);
	cr_assert_not_null(conns);
	for (nconns = 0; nconns < n; nconns++)
		cr_assert_eq(fp_conn_open(&conns[nconns], fp.port), 0, "connect #%zu: %s", nconns,
			     strerror(errno));
}

/* One GET of the workspaces on every connection at once: each must answer
 * 200 and none may be closed by the emulator. */
static void round_trip_all(const char *what)
{
	size_t unsent = 0, left, closed = 0, bad = 0, first = SIZE_MAX;
	for (size_t i = 0; i < nconns; i++)
		if (fp_conn_send(&conns[i], "GET", WS_PATH, NULL, AUTH) < 0)
			unsent++;
	left = fp_conn_wait(conns, nconns, 30000);
	for (size_t i = 0; i < nconns; i++) {
		bool gone = conns[i].peer_closed || conns[i].fd < 0;
		bool wrong = !gone && !conns[i].waiting && conns[i].status != 200;
		closed += gone;
		bad += wrong;
		if ((gone || wrong || conns[i].waiting) && first == SIZE_MAX)
			first = i;
	}
	cr_assert(unsent == 0 && left == 0 && closed == 0 && bad == 0,
		  "%s: of %zu connections %zu could not send, %zu got no answer, %zu were "
		  "closed by the emulator, %zu answered other than 200 (first: #%zu)",
		  what, nconns, unsent, left, closed, bad, first);
}

Test(fakeplane_scale, thousands_of_keepalive_connections)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	open_conns(MANY);
	round_trip_all("first request");
	round_trip_all("second request on the same connections");
	for (size_t i = 0; i < nconns; i++)
		cr_assert(!fp_conn_peer_gone(&conns[i]), "connection #%zu was closed", i);
	cr_assert_eq(fp_journal_count(&fp, "GET", WS_PATH), 2 * MANY, "every request journaled");
}

/* Waits until only n faults are pending: the requests that took the
 * others have reached the emulator. */
static void wait_faults_left(int n)
{
	int64_t deadline = now_ms() + 10000;
	for (;;) {
		cJSON *f = call("GET", "/_admin/faults", NULL, NULL, 200);
		int left = cJSON_GetArraySize(f);
		cJSON_Delete(f);
		if (left <= n)
			return;
		cr_assert_lt(now_ms(), deadline, "the delayed request never reached the emulator");
		sleep_ms(5);
	}
}

static void wait_faults_taken(void)
{
	wait_faults_left(0);
}

/* Request and answer on one connection; returns the milliseconds taken. */
static int64_t timed_get(struct fp_conn *c)
{
	cr_assert_eq(fp_conn_send(c, "GET", WS_PATH, NULL, AUTH), 0);
	cr_assert_eq(fp_conn_wait(c, 1, 10000), 0u, "no answer");
	cr_assert_eq(c->status, 200);
	return c->done_ms - c->sent_ms;
}

Test(fakeplane_scale, delayed_request_holds_up_no_other)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	char id[64];
	register_claude(id);
	open_conns(MANY);
	round_trip_all("warm-up");
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/heartbeat\",\"delay_ms\":2000}"),
		     200);
	struct fp_conn *slow = &conns[0];
	cr_assert_eq(fp_conn_send(slow, "POST", "/api/daemon/heartbeat", heartbeat_body(id),
				  AUTH), 0);
	wait_faults_taken();
	/* Every 10th connection, one request at a time: they are spread over
	 * all of the emulator's threads, so a thread held by the delay shows. */
	int64_t worst = 0;
	size_t worst_i = 0;
	for (size_t i = 1; i < nconns; i += 10) {
		int64_t ms = timed_get(&conns[i]);
		if (ms > worst) {
			worst = ms;
			worst_i = i;
		}
	}
	cr_assert_eq(fp_conn_wait(slow, 1, 0), 1u, "the delayed request was answered early");
	cr_assert_lt(worst, 1000, "connection #%zu waited %lld ms behind the delayed request",
		     worst_i, (long long)worst);
	cr_log_info("slowest of %zu requests during the delay: %lld ms", (nconns + 8) / 10,
		    (long long)worst);
	/* The delayed one is answered as usual, and its connection stays. */
	cr_assert_eq(fp_conn_wait(slow, 1, 10000), 0u);
	cr_assert_eq(slow->status, 200, "body %s", fp_conn_body(slow));
	cr_assert_geq(slow->done_ms - slow->sent_ms, 1950);
	cr_assert_eq(fp_conn_send(slow, "POST", "/api/daemon/heartbeat", heartbeat_body(id),
				  AUTH), 0);
	cr_assert_eq(fp_conn_wait(slow, 1, 10000), 0u);
	cr_assert_eq(slow->status, 200);
	cr_assert_eq(fp_journal_count(&fp, "POST", "/api/daemon/heartbeat"), 2);
}

Test(fakeplane_scale, delay_then_reset_or_status)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	open_conns(3);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"" WS_PATH "\",\"delay_ms\":1000,"
			      "\"reset\":true}"), 200);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"" WS_PATH "\",\"delay_ms\":500,"
			      "\"status\":503,\"body\":\"{slow\"}"), 200);
	cr_assert_eq(fp_conn_send(&conns[0], "GET", WS_PATH, NULL, AUTH), 0);
	wait_faults_left(1);   /* conns[0] took the reset fault, the 503 one is left */
	cr_assert_eq(fp_conn_send(&conns[1], "GET", WS_PATH, NULL, AUTH), 0);
	wait_faults_taken();
	cr_assert_lt(timed_get(&conns[2]), 1000, "an undelayed request waited");

	cr_assert_eq(fp_conn_wait(conns, 2, 10000), 0u);
	cr_assert_eq(conns[1].status, 503);
	cr_assert_str_eq(fp_conn_body(&conns[1]), "{slow", "the body is sent raw");
	cr_assert_geq(conns[1].done_ms - conns[1].sent_ms, 480);
	cr_assert(conns[0].peer_closed, "the reset request got an answer: %s", conns[0].buf);
	cr_assert_geq(conns[0].done_ms - conns[0].sent_ms, 980, "reset before its delay");
	cr_assert_lt(conns[1].done_ms, conns[0].done_ms, "the shorter delay ends first");
	/* Journaled as answered: the plain one, the 503, then the reset (0). */
	cJSON *j = fp_journal(&fp);
	cr_assert_eq(cJSON_GetArraySize(j), 3);
	static const int want[] = { 200, 503, 0 };
	for (int i = 0; i < 3; i++) {
		const cJSON *e = cJSON_GetArrayItem(j, i);
		cr_assert_eq(cJSON_GetObjectItem(e, "status")->valueint, want[i], "entry %d", i);
		cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(e, "fault")), i > 0, "entry %d", i);
	}
	cJSON_Delete(j);
}

/* Polls until the journal has n entries or 5 s pass; returns it. */
static cJSON *journal_of(int n)
{
	int64_t deadline = now_ms() + 5000;
	for (;;) {
		cJSON *j = fp_journal(&fp);
		if (cJSON_GetArraySize(j) >= n || now_ms() >= deadline)
			return j;
		cJSON_Delete(j);
		sleep_ms(10);
	}
}

#define LEFT_EACH 20

Test(fakeplane_scale, delayed_request_counts_after_its_client_left)
{
	/* As clients that time out: they hang up during the delay. Each
	 * request is still carried out and journaled when its delay ends. */
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	char id[64];
	register_claude(id);
	cJSON_Delete(call("DELETE", "/_admin/journal", NULL, NULL, 200));
	open_conns(3 * LEFT_EACH);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/heartbeat\",\"delay_ms\":600,"
			      "\"count\":20}"), 200);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/heartbeat\",\"delay_ms\":700,"
			      "\"status\":500,\"count\":20}"), 200);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"/api/daemon/heartbeat\",\"delay_ms\":800,"
			      "\"reset\":true,\"count\":20}"), 200);
	int64_t t0 = now_ms();
	for (size_t i = 0; i < nconns; i++)
		cr_assert_eq(fp_conn_send(&conns[i], "POST", "/api/daemon/heartbeat",
					  heartbeat_body(id), AUTH), 0);
	wait_faults_taken();
	for (size_t i = 0; i < nconns; i++)
		fp_conn_close(&conns[i]);
	cJSON *j = journal_of(3 * LEFT_EACH);
	int64_t elapsed = now_ms() - t0;
	int n = cJSON_GetArraySize(j);
	cr_assert_eq(n, 3 * LEFT_EACH, "journaled: %d of %d", n, 3 * LEFT_EACH);
	static const int want[] = { 200, 500, 0 };   /* in the order the delays end */
	for (int i = 0; i < n; i++) {
		const cJSON *e = cJSON_GetArrayItem(j, i);
		cr_assert_eq(cJSON_GetObjectItem(e, "status")->valueint, want[i / LEFT_EACH],
			     "entry %d", i);
		cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "fault")), "entry %d", i);
	}
	cJSON_Delete(j);
	cr_assert_geq(elapsed, 780, "journaled before the delays ended");
}

Test(fakeplane_scale, many_delays_at_once_end_together)
{
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	open_conns(200);
	cr_assert_eq(fp_fault(&fp, "{\"path_prefix\":\"" WS_PATH "\",\"delay_ms\":1000,"
			      "\"count\":200}"), 200);
	int64_t t0 = now_ms();
	for (size_t i = 0; i < nconns; i++)
		cr_assert_eq(fp_conn_send(&conns[i], "GET", WS_PATH, NULL, AUTH), 0);
	cr_assert_eq(fp_conn_wait(conns, nconns, 30000), 0u);
	int64_t last = 0;
	for (size_t i = 0; i < nconns; i++) {
		cr_assert_eq(conns[i].status, 200, "connection #%zu", i);
		cr_assert_geq(conns[i].done_ms - conns[i].sent_ms, 980, "connection #%zu", i);
		last = conns[i].done_ms > last ? conns[i].done_ms : last;
	}
	/* Served one after another by a few threads they would take 50 s. */
	cr_assert_lt(last - t0, 8000, "200 delays of 1 s took %lld ms", (long long)(last - t0));
}

Test(fakeplane_scale, connection_limit_is_explicit)
{
	static const char *const args[] = { "--max-connections", "40", NULL };
	cr_assert_eq(fp_start(&fp, SEED, args), 0);
	open_conns(41);
	nconns = 40;
	round_trip_all("within the limit");
	nconns = 41;
	/* The 41st waits in the listen queue: neither answered nor refused. */
	struct fp_conn *extra = &conns[40];
	cr_assert_eq(fp_conn_send(extra, "GET", WS_PATH, NULL, AUTH), 0);
	cr_assert_eq(fp_conn_wait(extra, 1, 500), 1u, "served beyond --max-connections 40");
	fp_conn_close(&conns[0]);
	cr_assert_eq(fp_conn_wait(extra, 1, 10000), 0u, "not served when a place came free");
	cr_assert_eq(extra->status, 200);
}

/* Lowers this process's hard RLIMIT_NOFILE (for good: each test runs in its
 * own process) so that the emulator, its child, inherits it. */
static void cap_nofile(rlim_t n)
{
	struct rlimit rl = { n, n };
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
}

Test(fakeplane_proc, max_connections_within_the_fd_limit)
{
	static const char *const zero[] = { "--listen", "127.0.0.1:0", "--max-connections", "0",
					    NULL };
	static const char *const over[] = { "--listen", "127.0.0.1:0", "--max-connections",
					    "5000", NULL };
	assert_start_fails(NULL, zero, "--max-connections: expected a count from 1 to");
	cap_nofile(1024);
	assert_start_fails(NULL, over, "--max-connections 5000 needs 50");
	assert_start_fails(NULL, over, "hard limit of open files is 1024");
	/* The default shrinks to fit instead, and the emulator serves. */
	cr_assert_eq(fp_start(&fp, SEED, NULL), 0);
	cJSON_Delete(call("GET", WS_PATH, NULL, AUTH, 200));
}

/* Runs argv (a NULL-terminated list) quietly; true when it exits 0. */
static bool run_quiet(char *const *argv)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	int status = 0;
	if (rc == 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct tls_call {
	CURL *h;              /* keeps its connection between calls */
	const char *method;
	const char *path;
	const char *body;
	long status;
	int64_t elapsed_ms;
	int array_size;       /* of a JSON array reply, else -1 */
};

static char tls_base[64];   /* "https://127.0.0.1:PORT" */

static CURL *tls_handle(void)
{
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);   /* delays are under test, */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);   /* not the certificate */
	return h;
}

/* One HTTPS request on tc->h (pthread start routine too). */
static void *tls_request(void *arg)
{
	struct tls_call *tc = arg;
	char url[256], *reply = NULL;
	size_t len = 0;
	snprintf(url, sizeof url, "%s%s", tls_base, tc->path);
	struct curl_slist *hdrs = curl_slist_append(NULL, AUTH[0]);
	FILE *sink = open_memstream(&reply, &len);
	curl_easy_setopt(tc->h, CURLOPT_URL, url);
	if (tc->body != NULL)
		curl_easy_setopt(tc->h, CURLOPT_POSTFIELDS, tc->body);
	else
		curl_easy_setopt(tc->h, CURLOPT_HTTPGET, 1L);   /* the handle may have POSTed */
	curl_easy_setopt(tc->h, CURLOPT_CUSTOMREQUEST, tc->method);
	curl_easy_setopt(tc->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(tc->h, CURLOPT_WRITEDATA, sink);
	int64_t t0 = now_ms();
	tc->status = -1;
	if (curl_easy_perform(tc->h) == CURLE_OK)
		curl_easy_getinfo(tc->h, CURLINFO_RESPONSE_CODE, &tc->status);
	tc->elapsed_ms = now_ms() - t0;
	fclose(sink);
	cJSON *j = cJSON_Parse(reply ? reply : "");
	tc->array_size = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
	cJSON_Delete(j);
	free(reply);
	curl_slist_free_all(hdrs);
	return NULL;
}

/* Makes a self-signed certificate and key in a temp dir and starts the
 * emulator on HTTPS with them; skips without openssl. */
static void start_tls_emulator(void)
{
	char dir[] = "/tmp/fp-tls-XXXXXX", cert[64], key[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	char *const gen[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
			      "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
			      "/CN=127.0.0.1", "-keyout", key, "-out", cert, NULL };
	bool made = run_quiet(gen);
	const char *args[] = { "--tls-cert", cert, "--tls-key", key, NULL };
	int started = made ? fp_start(&fp, SEED, args) : -1;
	unlink(cert);
	unlink(key);
	rmdir(dir);
	if (!made)
		cr_skip_test("openssl cannot make a test certificate");
	cr_assert_eq(started, 0);
	snprintf(tls_base, sizeof tls_base, "https://127.0.0.1:%d", fp.port);
}

#define TLS_CONNS 16

Test(fakeplane_proc, tls_delay_holds_up_no_other)
{
	start_tls_emulator();
	/* Keep-alive connections first, so that some share the emulator
	 * thread that will receive the delayed request. */
	struct tls_call c[TLS_CONNS + 1];
	for (int i = 0; i <= TLS_CONNS; i++) {
		c[i] = (struct tls_call){ tls_handle(), "GET", WS_PATH, NULL, 0, 0, 0 };
		tls_request(&c[i]);
		cr_assert_eq(c[i].status, 200, "warm-up on connection %d", i);
	}
	struct tls_call slow = { tls_handle(), "POST", "/api/daemon/heartbeat",
				 heartbeat_body(NOPE), 0, 0, 0 };
	struct tls_call poll = { c[TLS_CONNS].h, "GET", "/_admin/faults", NULL, 0, 0, 0 };
	tls_request(&(struct tls_call){ slow.h, "POST", "/_admin/faults",
					"{\"path_prefix\":\"/api/daemon/heartbeat\",\"delay_ms\":1500}",
					0, 0, 0 });
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, tls_request, &slow), 0);
	int64_t deadline = now_ms() + 10000;
	do {   /* until the delayed request has taken its fault */
		sleep_ms(5);
		tls_request(&poll);
	} while (poll.array_size != 0 && now_ms() < deadline);
	int64_t worst = 0;
	for (int i = 0; i < TLS_CONNS; i++) {
		tls_request(&c[i]);
		cr_assert_eq(c[i].status, 200);
		worst = c[i].elapsed_ms > worst ? c[i].elapsed_ms : worst;
	}
	pthread_join(th, NULL);
	for (int i = 0; i <= TLS_CONNS; i++)
		curl_easy_cleanup(c[i].h);
	curl_easy_cleanup(slow.h);
	cr_assert_eq(poll.array_size, 0, "the delayed request never arrived");
	cr_assert_lt(worst, 1000, "a request waited %lld ms behind a delayed one",
		     (long long)worst);
	cr_assert_eq(slow.status, 404);
	cr_assert_geq(slow.elapsed_ms, 1450);
}
