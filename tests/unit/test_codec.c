/* The pure codecs of the daemon API (common/api_codec.h): exact request
 * bodies, strict response decoding, error classification. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/api_codec.h"
#include "ipc/messages.h"   /* MC_MAX_RUNTIMES: macros only */

TestSuite(encode, .timeout = 30);
TestSuite(decode, .timeout = 30);
TestSuite(classify, .timeout = 30);

/* ---- helpers ---- */

static cJSON *parse_owned(char *json)
{
	cr_assert_not_null(json);
	cJSON *root = cJSON_Parse(json);
	free(json);
	cr_assert_not_null(root, "encoder output must be valid JSON");
	return root;
}

static void assert_str_member(const cJSON *o, const char *key, const char *want)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert(cJSON_IsString(it), "%s must be a string", key);
	cr_assert_str_eq(it->valuestring, want, "%s", key);
}

static void assert_null_member(const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert_not_null(it, "%s must be present", key);
	cr_assert(cJSON_IsNull(it), "%s must be null", key);
}

static int n_members(const cJSON *o)
{
	return cJSON_GetArraySize(o);
}

#define S(x) (x), strlen(x)

/* Decodes body as profiles and expects failure naming want_in_message. */
static void profiles_fail(const char *body, const char *want_in_message)
{
	struct mc_profile_list l = { 1, (struct mc_profile *)1 };
	struct mc_api_error err;
	cr_assert_eq(mc_decode_profiles(S(body), &l, &err), -1, "accepted: %s", body);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(err.message, want_in_message),
			   "message \"%s\" should contain \"%s\"", err.message, want_in_message);
	cr_assert_eq(l.n, 0);
	cr_assert_null(l.v);
}

static void register_fail(const char *body, size_t n, const char *want)
{
	struct mc_runtime_list l;
	struct mc_api_error err;
	cr_assert_eq(mc_decode_register(S(body), n, &l, &err), -1, "accepted: %s", body);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(err.message, want),
			   "message \"%s\" should contain \"%s\"", err.message, want);
	cr_assert_eq(l.n, 0);
}

static void workspaces_fail(const char *body, const char *want)
{
	struct mc_workspace_list l;
	struct mc_api_error err;
	cr_assert_eq(mc_decode_workspaces(S(body), &l, &err), -1, "accepted: %s", body);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(err.message, want),
			   "message \"%s\" should contain \"%s\"", err.message, want);
	cr_assert_eq(l.n, 0);
}

/* ---- encoders ---- */

static const struct mc_reg_runtime rts[] = {
	{ .name = "Claude (build-7)", .type = "claude", .version = "2.1.0", .profile_id = NULL },
	{ .name = "Company Codex (build-7)", .type = "codex", .version = "",
	  .profile_id = "33333333-3333-3333-3333-333333333333" },
};
static const struct mc_reg_failed failed[] = {
	{ .profile_id = "44444444-4444-4444-4444-444444444444", .command_name = "nope",
	  .reason = "command not found on PATH: nope" },
};

Test(encode, register_exact_body)
{
	struct mc_register_request req = {
		.workspace_id = "ws-uuid", .daemon_id = "daemon-uuid", .device_name = "build-7",
		.cli_version = "multicad/0.1.0", .n_runtimes = 2, .runtimes = rts,
	};
	cJSON *root = parse_owned(mc_encode_register(&req));
	cr_assert(cJSON_IsObject(root));
	cr_assert_eq(n_members(root), 8);
	assert_str_member(root, "workspace_id", "ws-uuid");
	assert_str_member(root, "daemon_id", "daemon-uuid");
	assert_null_member(root, "legacy_daemon_ids");
	assert_str_member(root, "device_name", "build-7");
	assert_str_member(root, "cli_version", "multicad/0.1.0");
	assert_str_member(root, "launched_by", "");
	assert_null_member(root, "failed_profiles");

	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "runtimes");
	cr_assert(cJSON_IsArray(arr));
	cr_assert_eq(cJSON_GetArraySize(arr), 2);
	const cJSON *b = cJSON_GetArrayItem(arr, 0);
	cr_assert_eq(n_members(b), 4, "built-in: no profile_id key");
	assert_str_member(b, "name", "Claude (build-7)");
	assert_str_member(b, "type", "claude");
	assert_str_member(b, "version", "2.1.0");
	assert_str_member(b, "status", "online");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(b, "profile_id"));
	const cJSON *c = cJSON_GetArrayItem(arr, 1);
	cr_assert_eq(n_members(c), 5);
	assert_str_member(c, "name", "Company Codex (build-7)");
	assert_str_member(c, "type", "codex");
	assert_str_member(c, "version", "");
	assert_str_member(c, "status", "online");
	assert_str_member(c, "profile_id", "33333333-3333-3333-3333-333333333333");
	cJSON_Delete(root);
}

Test(encode, register_failed_profiles_and_only_failed)
{
	struct mc_register_request req = {
		.workspace_id = "ws", .daemon_id = "d", .device_name = "h", .cli_version = "v",
		.n_runtimes = 0, .runtimes = NULL, .n_failed = 1, .failed = failed,
	};
	cJSON *root = parse_owned(mc_encode_register(&req));
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "runtimes");
	cr_assert(cJSON_IsArray(arr));
	cr_assert_eq(cJSON_GetArraySize(arr), 0);
	const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "failed_profiles");
	cr_assert(cJSON_IsArray(fl));
	cr_assert_eq(cJSON_GetArraySize(fl), 1);
	const cJSON *f = cJSON_GetArrayItem(fl, 0);
	cr_assert_eq(n_members(f), 3);
	assert_str_member(f, "profile_id", "44444444-4444-4444-4444-444444444444");
	assert_str_member(f, "command_name", "nope");
	assert_str_member(f, "reason", "command not found on PATH: nope");
	cJSON_Delete(root);
}

Test(encode, register_escapes_strings)
{
	struct mc_reg_runtime r = { .name = "quote \" back \\ nl \n", .type = "claude",
				    .version = "1" };
	struct mc_register_request req = {
		.workspace_id = "ws", .daemon_id = "d", .device_name = "dev\"ice",
		.cli_version = "v", .n_runtimes = 1, .runtimes = &r,
	};
	cJSON *root = parse_owned(mc_encode_register(&req));
	assert_str_member(root, "device_name", "dev\"ice");
	assert_str_member(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "runtimes"), 0),
			  "name", "quote \" back \\ nl \n");
	cJSON_Delete(root);
}

Test(encode, register_rejects_invalid_requests)
{
	struct mc_register_request req = {
		.workspace_id = "ws", .daemon_id = "d", .device_name = "h", .cli_version = "v",
	};
	errno = 0;
	cr_assert_null(mc_encode_register(&req), "nothing to register");
	cr_assert_eq(errno, EINVAL);
	req.n_runtimes = 1;
	req.runtimes = rts;
	req.workspace_id = "";
	cr_assert_null(mc_encode_register(&req));
	cr_assert_eq(errno, EINVAL);
	req.workspace_id = "ws";
	req.daemon_id = NULL;
	cr_assert_null(mc_encode_register(&req));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(mc_encode_register(NULL));
}

Test(encode, deregister_exact_body)
{
	const char *ids[] = { "r1", "r2", "r3" };
	cJSON *root = parse_owned(mc_encode_deregister(3, ids));
	cr_assert_eq(n_members(root), 1);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "runtime_ids");
	cr_assert(cJSON_IsArray(arr));
	cr_assert_eq(cJSON_GetArraySize(arr), 3);
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(cJSON_GetArrayItem(arr, i)->valuestring, ids[i]);
	cJSON_Delete(root);

	errno = 0;
	cr_assert_null(mc_encode_deregister(0, ids));
	cr_assert_eq(errno, EINVAL);
	const char *bad[] = { "r1", "" };
	cr_assert_null(mc_encode_deregister(2, bad));
	const char *bad2[] = { NULL };
	cr_assert_null(mc_encode_deregister(1, bad2));
}

Test(encode, heartbeat_exact_body)
{
	cJSON *root = parse_owned(mc_encode_heartbeat("rt-1"));
	cr_assert_eq(n_members(root), 2);
	assert_str_member(root, "runtime_id", "rt-1");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "supports_batch_import")));
	cJSON_Delete(root);
	cr_assert_null(mc_encode_heartbeat(""));
	cr_assert_null(mc_encode_heartbeat(NULL));
}

/* ---- decoders: workspaces ---- */

Test(decode, workspaces_reference_and_nulls)
{
	const char *body =
		"[{\"id\":\"0c6e0000-0000-0000-0000-000000000001\",\"name\":\"Acme\"},"
		" {\"id\":\"0c6e0000-0000-0000-0000-000000000002\",\"name\":null,\"extra\":[1,2]},"
		" {\"id\":\"0c6e0000-0000-0000-0000-000000000003\"}]\n";
	struct mc_workspace_list l;
	struct mc_api_error err;
	memset(&err, 0x55, sizeof err);
	cr_assert_eq(mc_decode_workspaces(S(body), &l, &err), 0, "%s", err.message);
	cr_assert_eq(err.kind, MC_API_OK, "success leaves an OK error");
	cr_assert_eq(l.n, 3);
	cr_assert_str_eq(l.v[0].id, "0c6e0000-0000-0000-0000-000000000001");
	cr_assert_str_eq(l.v[0].name, "Acme");
	cr_assert_str_eq(l.v[1].name, "");
	cr_assert_str_eq(l.v[2].name, "");
	mc_workspace_list_clear(&l);
	cr_assert_eq(l.n, 0);

	cr_assert_eq(mc_decode_workspaces(S("[]"), &l, &err), 0);
	cr_assert_eq(l.n, 0);
}

Test(decode, workspaces_rejects)
{
	workspaces_fail("{}", "expected a JSON array");
	workspaces_fail("null", "expected a JSON array, got null");
	workspaces_fail("[{\"name\":\"x\"}]", "[0].id: missing");
	workspaces_fail("[{\"id\":\"a\"},{\"id\":\"\"}]", "[1].id: must not be empty");
	workspaces_fail("[{\"id\":7}]", "[0].id: expected string, got number");
	workspaces_fail("[{\"id\":\"a\",\"name\":5}]", "[0].name: expected string");
	workspaces_fail("[\"a\"]", "[0]: expected object, got string");
	workspaces_fail("[{\"id\":\"a\"}", "invalid JSON");
	workspaces_fail("[] []", "trailing data");
	workspaces_fail("", "empty body");
	workspaces_fail("  \n", "empty body");
}

/* ---- decoders: runtime profiles ---- */

/* The shape of section 2.2, with fields the daemon does not read. */
static const char profiles_ref[] =
	"{\"workspace_id\":\"0c6e0000-0000-0000-0000-000000000001\",\"runtime_profiles\":["
	"{\"id\":\"11111111-1111-1111-1111-111111111111\","
	"\"workspace_id\":\"0c6e0000-0000-0000-0000-000000000001\","
	"\"display_name\":\"Company Codex\",\"protocol_family\":\"codex\","
	"\"command_name\":\"company-codex\",\"description\":null,"
	"\"fixed_args\":[\"--profile\",\"fast\"],\"visibility\":\"workspace\","
	"\"created_by\":null,\"enabled\":true,"
	"\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:00Z\"},"
	"{\"id\":\"22222222-2222-2222-2222-222222222222\","
	"\"workspace_id\":\"0c6e0000-0000-0000-0000-000000000001\","
	"\"display_name\":\"My Claude\",\"protocol_family\":\"claude\","
	"\"command_name\":\"my-claude\",\"description\":\"wrapper\","
	"\"fixed_args\":[],\"visibility\":\"workspace\",\"enabled\":true}]}\n";

Test(decode, profiles_reference)
{
	struct mc_profile_list l;
	struct mc_api_error err;
	cr_assert_eq(mc_decode_profiles(profiles_ref, strlen(profiles_ref), &l, &err), 0,
		     "%s", err.message);
	cr_assert_eq(err.kind, MC_API_OK);
	cr_assert_eq(l.n, 2);
	const struct mc_profile *p = &l.v[0];
	cr_assert_str_eq(p->id, "11111111-1111-1111-1111-111111111111");
	cr_assert_str_eq(p->workspace_id, "0c6e0000-0000-0000-0000-000000000001");
	cr_assert_str_eq(p->display_name, "Company Codex");
	cr_assert_str_eq(p->protocol_family, "codex");
	cr_assert_str_eq(p->command_name, "company-codex");
	cr_assert_null(p->description);
	cr_assert_str_eq(p->visibility, "workspace");
	cr_assert(p->enabled);
	cr_assert_eq(p->n_fixed_args, 2);
	cr_assert_str_eq(p->fixed_args[0], "--profile");
	cr_assert_str_eq(p->fixed_args[1], "fast");
	cr_assert_str_eq(l.v[1].description, "wrapper");
	cr_assert_eq(l.v[1].n_fixed_args, 0);

	/* A deep copy is independent of the original. */
	struct mc_profile_list copy;
	cr_assert_eq(mc_profile_list_copy(&copy, &l), 0);
	mc_profile_list_clear(&l);
	cr_assert_eq(copy.n, 2);
	cr_assert_str_eq(copy.v[0].fixed_args[1], "fast");
	cr_assert_null(copy.v[0].description);
	cr_assert_str_eq(copy.v[1].description, "wrapper");
	mc_profile_list_clear(&copy);
	cr_assert_eq(copy.n, 0);
	cr_assert_null(copy.v);
}

Test(decode, profiles_null_handling)
{
	struct mc_profile_list l;
	struct mc_api_error err;
	const char *b1 = "{\"workspace_id\":\"w\",\"runtime_profiles\":null}";
	cr_assert_eq(mc_decode_profiles(S(b1), &l, &err), 0, "%s", err.message);
	cr_assert_eq(l.n, 0);
	const char *b2 = "{\"runtime_profiles\":[]}";
	cr_assert_eq(mc_decode_profiles(S(b2), &l, &err), 0);
	cr_assert_eq(l.n, 0);

	/* Optional strings: null or missing give "" (or NULL for description);
	 * fixed_args null or missing give an empty list. */
	const char *b3 = "{\"runtime_profiles\":[{\"id\":\"p\",\"enabled\":false,"
			 "\"display_name\":\"\",\"workspace_id\":null,\"protocol_family\":null,"
			 "\"visibility\":null,\"fixed_args\":null}]}";
	cr_assert_eq(mc_decode_profiles(S(b3), &l, &err), 0, "%s", err.message);
	cr_assert_eq(l.n, 1);
	cr_assert_str_eq(l.v[0].workspace_id, "");
	cr_assert_str_eq(l.v[0].protocol_family, "");
	cr_assert_str_eq(l.v[0].command_name, "");
	cr_assert_str_eq(l.v[0].visibility, "");
	cr_assert_str_eq(l.v[0].display_name, "");
	cr_assert_null(l.v[0].description);
	cr_assert_eq(l.v[0].n_fixed_args, 0);
	cr_assert_not(l.v[0].enabled);
	mc_profile_list_clear(&l);
}

#define P_OK "\"id\":\"p\",\"enabled\":true,\"display_name\":\"n\""

Test(decode, profiles_rejects_each_bad_field)
{
	profiles_fail("[]", "expected a JSON object, got array");
	profiles_fail("{\"workspace_id\":\"w\"}", "runtime_profiles: missing");
	profiles_fail("{\"runtime_profiles\":{}}", "runtime_profiles: expected array, got object");
	profiles_fail("{\"runtime_profiles\":\"x\"}", "runtime_profiles: expected array, got string");
	profiles_fail("{\"runtime_profiles\":[{" P_OK "},5]}",
		      "runtime_profiles[1]: expected object, got number");
	profiles_fail("{\"runtime_profiles\":[{\"enabled\":true,\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].id: missing");
	profiles_fail("{\"runtime_profiles\":[{\"id\":\"\",\"enabled\":true,\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].id: must not be empty");
	profiles_fail("{\"runtime_profiles\":[{\"id\":null,\"enabled\":true,\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].id: expected string, got null");
	profiles_fail("{\"runtime_profiles\":[{\"id\":1,\"enabled\":true,\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].id: expected string, got number");
	profiles_fail("{\"runtime_profiles\":[{\"id\":\"p\",\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].enabled: missing");
	profiles_fail("{\"runtime_profiles\":[{\"id\":\"p\",\"enabled\":\"true\",\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].enabled: expected bool, got string");
	profiles_fail("{\"runtime_profiles\":[{\"id\":\"p\",\"enabled\":null,\"display_name\":\"n\"}]}",
		      "runtime_profiles[0].enabled: expected bool, got null");
	profiles_fail("{\"runtime_profiles\":[{\"id\":\"p\",\"enabled\":true}]}",
		      "runtime_profiles[0].display_name: missing");
	profiles_fail("{\"runtime_profiles\":[{\"id\":\"p\",\"enabled\":true,\"display_name\":[]}]}",
		      "runtime_profiles[0].display_name: expected string, got array");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"workspace_id\":3}]}",
		      "runtime_profiles[0].workspace_id: expected string");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"protocol_family\":true}]}",
		      "runtime_profiles[0].protocol_family: expected string, got bool");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"command_name\":{}}]}",
		      "runtime_profiles[0].command_name: expected string, got object");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"visibility\":1}]}",
		      "runtime_profiles[0].visibility: expected string");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"description\":false}]}",
		      "runtime_profiles[0].description: expected string, got bool");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"fixed_args\":\"--x\"}]}",
		      "runtime_profiles[0].fixed_args: expected array, got string");
	profiles_fail("{\"runtime_profiles\":[{" P_OK "},{" P_OK ",\"fixed_args\":[\"a\",2]}]}",
		      "runtime_profiles[1].fixed_args[1]: expected string, got number");
	profiles_fail("{\"runtime_profiles\":[{" P_OK ",\"fixed_args\":[null]}]}",
		      "runtime_profiles[0].fixed_args[0]: expected string, got null");
	profiles_fail("{\"runtime_profiles\":[", "invalid JSON");
	profiles_fail("<html>bad gateway</html>", "invalid JSON at byte 0");
}

/* ---- decoders: register ---- */

static const char register_ref[] =
	"{\"runtimes\":["
	"{\"id\":\"aaaaaaaa-0000-0000-0000-000000000001\",\"workspace_id\":\"w\","
	"\"daemon_id\":\"d\",\"name\":\"Claude (build-7)\",\"custom_name\":null,"
	"\"runtime_mode\":\"local\",\"provider\":\"claude\",\"launch_header\":\"\","
	"\"status\":\"online\",\"device_info\":\"build-7\",\"metadata\":{\"version\":\"2\"},"
	"\"owner_id\":null,\"visibility\":\"private\",\"profile_id\":null,"
	"\"last_seen_at\":null,\"created_at\":\"t\",\"updated_at\":\"t\"},"
	"{\"id\":\"aaaaaaaa-0000-0000-0000-000000000002\",\"name\":\"Company Codex (build-7)\","
	"\"provider\":\"codex\",\"status\":\"online\","
	"\"profile_id\":\"33333333-3333-3333-3333-333333333333\"},"
	"{\"id\":\"aaaaaaaa-0000-0000-0000-000000000003\",\"name\":\"x\","
	"\"provider\":\"codex\",\"status\":\"online\"}],"
	"\"repos\":[],\"repos_version\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
	"\"settings\":null}";

Test(decode, register_reference)
{
	struct mc_runtime_list l;
	struct mc_api_error err;
	cr_assert_eq(mc_decode_register(register_ref, strlen(register_ref), 3, &l, &err), 0,
		     "%s", err.message);
	cr_assert_eq(err.kind, MC_API_OK);
	cr_assert_eq(l.n, 3);
	cr_assert_str_eq(l.v[0].id, "aaaaaaaa-0000-0000-0000-000000000001");
	cr_assert_str_eq(l.v[0].name, "Claude (build-7)");
	cr_assert_str_eq(l.v[0].provider, "claude");
	cr_assert_str_eq(l.v[0].status, "online");
	cr_assert_null(l.v[0].profile_id, "null profile_id is a built-in");
	cr_assert_str_eq(l.v[1].profile_id, "33333333-3333-3333-3333-333333333333");
	cr_assert_null(l.v[2].profile_id, "missing profile_id is a built-in");
	mc_runtime_list_clear(&l);

	cr_assert_eq(mc_decode_register(S("{\"runtimes\":[]}"), 0, &l, &err), 0);
	cr_assert_eq(l.n, 0);
	cr_assert_eq(mc_decode_register(S("{\"runtimes\":null}"), 0, &l, &err), 0);
	cr_assert_eq(l.n, 0);
}

#define RID "aaaaaaaa-0000-4000-8000-000000000001"
#define R_OK "\"id\":\"" RID "\",\"name\":\"n\",\"provider\":\"p\",\"status\":\"online\""

Test(decode, register_rejects)
{
	register_fail(register_ref, 2, "runtimes: expected 2 entries");
	register_fail(register_ref, 4, "runtimes: expected 4 entries");
	register_fail("{\"runtimes\":null}", 1, "runtimes: expected 1 entries");
	register_fail("{}", 1, "runtimes: missing");
	register_fail("[]", 0, "expected a JSON object");
	register_fail("{\"runtimes\":{}}", 1, "runtimes: expected array, got object");
	register_fail("{\"runtimes\":[1]}", 1, "runtimes[0]: expected object, got number");
	register_fail("{\"runtimes\":[{\"name\":\"n\",\"provider\":\"p\",\"status\":\"s\"}]}", 1,
		      "runtimes[0].id: missing");
	register_fail("{\"runtimes\":[{\"id\":\"\",\"name\":\"n\",\"provider\":\"p\",\"status\":\"s\"}]}",
		      1, "runtimes[0].id: must not be empty");
	register_fail("{\"runtimes\":[{" R_OK "},{\"id\":\"" RID "\",\"provider\":\"p\",\"status\":\"s\"}]}",
		      2, "runtimes[1].name: missing");
	register_fail("{\"runtimes\":[{\"id\":\"" RID "\",\"name\":\"n\",\"provider\":5,\"status\":\"s\"}]}",
		      1, "runtimes[0].provider: expected string, got number");
	register_fail("{\"runtimes\":[{\"id\":\"" RID "\",\"name\":\"n\",\"provider\":\"p\",\"status\":null}]}",
		      1, "runtimes[0].status: expected string, got null");
	register_fail("{\"runtimes\":[{" R_OK ",\"profile_id\":7}]}", 1,
		      "runtimes[0].profile_id: expected string, got number");
	register_fail("{\"runtimes\":[", 1, "invalid JSON");
}

/* The supervisor kills a worker that reports a non-UUID runtime id: the
 * decoder is where such an id stops. */
#define R_REST "\"name\":\"n\",\"provider\":\"p\",\"status\":\"online\""
Test(decode, register_rejects_a_runtime_id_that_is_not_a_uuid)
{
	static const char *const bad[] = {
		"r", "aaaaaaaa-0000-4000-8000-00000000000", "aaaaaaaa-0000-4000-8000-0000000000012",
		"aaaaaaaa00000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-00000000000g",
		"{aaaaaaa-0000-4000-8000-000000000001}", " aaaaaaa-0000-4000-8000-000000000001",
		"../../../../etc/passwd", "aaaaaaaa-0000-4000-8000-000000000001\\n",
	};
	char body[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(body, sizeof body, "{\"runtimes\":[{" R_OK "},{\"id\":\"%s\"," R_REST "}]}",
			 bad[i]);
		register_fail(body, 2, "runtimes[1].id: not a UUID");
	}
	snprintf(body, sizeof body, "{\"runtimes\":[{\"id\":\"r\"," R_REST "}]}");
	register_fail(body, 1, "runtimes[0].id: not a UUID");

	/* Upper-case hex is still a UUID (the supervisor's check agrees). */
	struct mc_runtime_list l;
	struct mc_api_error err;
	const char *ok = "{\"runtimes\":[{\"id\":\"AAAAAAAA-0000-4000-8000-00000000000F\"," R_REST "}]}";
	cr_assert_eq(mc_decode_register(S(ok), 1, &l, &err), 0, "%s", err.message);
	cr_assert_str_eq(l.v[0].id, "AAAAAAAA-0000-4000-8000-00000000000F");
	mc_runtime_list_clear(&l);
}

/* ---- decoders: heartbeat and recover-orphans ---- */

Test(decode, heartbeat)
{
	struct mc_api_error err;
	cr_assert_eq(mc_decode_heartbeat(S("{\"status\":\"ok\"}\n"), &err), 0);
	cr_assert_eq(err.kind, MC_API_OK);
	cr_assert_eq(mc_decode_heartbeat(S("{\"status\":\"ok\",\"pending_update\":{\"id\":\"u\","
					   "\"target_version\":\"1\"}}"), &err), 0);
	cr_assert_eq(mc_decode_heartbeat(S("{\"runtime_gone\":false}"), &err), 0);
	cr_assert_eq(mc_decode_heartbeat(S("{\"runtime_gone\":null}"), &err), 0);

	cr_assert_eq(mc_decode_heartbeat(S("{\"status\":\"ok\",\"runtime_gone\":true}"), &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	cr_assert_not_null(strstr(err.message, "runtime_gone"));

	cr_assert_eq(mc_decode_heartbeat(S("{\"runtime_gone\":\"yes\"}"), &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_not_null(strstr(err.message, "runtime_gone: expected bool"));
	cr_assert_eq(mc_decode_heartbeat(S("[]"), &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_eq(mc_decode_heartbeat(S("ok"), &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_eq(mc_decode_heartbeat(S(""), &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
}

Test(decode, recover)
{
	struct mc_api_error err;
	long o = -1, r = -1;
	cr_assert_eq(mc_decode_recover(S("{\"orphaned\":3,\"retried\":2}"), &o, &r, &err), 0);
	cr_assert_eq(err.kind, MC_API_OK);
	cr_assert_eq(o, 3);
	cr_assert_eq(r, 2);
	cr_assert_eq(mc_decode_recover(S("{}"), &o, &r, &err), 0);
	cr_assert_eq(o, 0);
	cr_assert_eq(r, 0);
	cr_assert_eq(mc_decode_recover(S("{\"orphaned\":null}"), &o, &r, &err), 0);
	cr_assert_eq(o, 0);

	cr_assert_eq(mc_decode_recover(S("{\"orphaned\":\"3\"}"), &o, &r, &err), -1);
	cr_assert_not_null(strstr(err.message, "orphaned: expected integer, got string"));
	cr_assert_eq(mc_decode_recover(S("{\"orphaned\":1,\"retried\":1.5}"), &o, &r, &err), -1);
	cr_assert_not_null(strstr(err.message, "retried: expected integer"));
	cr_assert_eq(mc_decode_recover(S("{\"retried\":1e300}"), &o, &r, &err), -1);
	cr_assert_eq(mc_decode_recover(S("[1]"), &o, &r, &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
}

/* ---- classification ---- */

static struct mc_api_error classify(long status, const char *body)
{
	struct mc_api_error err;
	memset(&err, 0x55, sizeof err);
	mc_classify_http_error("POST /api/daemon/heartbeat", status, body,
			       body != NULL ? strlen(body) : 0, &err);
	return err;
}

Test(classify, runtime_not_found_rules)
{
	struct mc_api_error e = classify(404, "{\"error\":\"runtime not found\"}\n");
	cr_assert_eq(e.kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	cr_assert_eq(e.status, 404);
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 404 runtime not found");

	e = classify(404, "{\"error\":\"Runtime Not Found\"}");
	cr_assert_eq(e.kind, MC_API_ERR_RUNTIME_NOT_FOUND);
	e = classify(404, "RUNTIME NOT FOUND: abc");
	cr_assert_eq(e.kind, MC_API_ERR_RUNTIME_NOT_FOUND, "plain text body");

	e = classify(404, "{\"error\":\"not found\"}");
	cr_assert_eq(e.kind, MC_API_ERR_HTTP, "access denied is not runtime-gone");
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 404 not found");

	e = classify(500, "{\"error\":\"runtime not found\"}");
	cr_assert_eq(e.kind, MC_API_ERR_HTTP, "only a 404 means gone");
	cr_assert_eq(e.status, 500);
	e = classify(410, "runtime not found");
	cr_assert_eq(e.kind, MC_API_ERR_HTTP);
}

Test(classify, message_text)
{
	struct mc_api_error e = classify(409, "{\"error\":\"runtime profile is disabled: p1\"}\n");
	cr_assert_eq(e.kind, MC_API_ERR_HTTP);
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 409 runtime profile is disabled: p1");

	/* Non-JSON bodies are cut and cannot inject lines or escapes. */
	e = classify(502, "  <html>\r\nBad\tGateway\x1b[31m\nts=1 level=error msg=forged\x7f\xc3\xa9</html>\n");
	cr_assert_eq(e.kind, MC_API_ERR_HTTP);
	cr_assert_null(strchr(e.message, '\n'));
	cr_assert_null(strchr(e.message, '\r'));
	cr_assert_null(strchr(e.message, '\x1b'));
	for (const unsigned char *p = (const unsigned char *)e.message; *p; p++)
		cr_assert(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in message", *p);
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 502 <html>  Bad Gateway?[31m "
				    "ts=1 level=error msg=forged??" "?</html>");

	/* A JSON "error" with control characters is sanitized too. */
	e = classify(400, "{\"error\":\"bad\\nline\\u0007\"}");
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 400 bad line?");

	/* JSON without an error string: the body itself. */
	e = classify(500, "{\"message\":\"x\"}");
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 500 {\"message\":\"x\"}");

	e = classify(503, "");
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 503 (empty body)");
	e = classify(503, NULL);
	cr_assert_str_eq(e.message, "POST /api/daemon/heartbeat: 503 (empty body)");

	/* Long bodies are cut to an excerpt. */
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	e = classify(500, big);
	cr_assert_lt(strlen(e.message), 300);
	cr_assert_not_null(strstr(e.message, "..."));
}

Test(classify, transient_table)
{
	struct { enum mc_api_error_kind kind; long status; bool transient; } t[] = {
		{ MC_API_OK, 200, false },
		{ MC_API_ERR_TRANSPORT, 0, true },
		{ MC_API_ERR_TIMEOUT, 0, true },
		{ MC_API_ERR_DECODE, 200, true },
		{ MC_API_ERR_TOO_LARGE, 200, true },
		{ MC_API_ERR_RUNTIME_NOT_FOUND, 404, false },
		{ MC_API_ERR_HTTP, 500, true },
		{ MC_API_ERR_HTTP, 502, true },
		{ MC_API_ERR_HTTP, 503, true },
		{ MC_API_ERR_HTTP, 599, true },
		{ MC_API_ERR_HTTP, 408, true },
		{ MC_API_ERR_HTTP, 429, true },
		{ MC_API_ERR_HTTP, 400, false },
		{ MC_API_ERR_HTTP, 401, false },
		{ MC_API_ERR_HTTP, 403, false },
		{ MC_API_ERR_HTTP, 404, false },
		{ MC_API_ERR_HTTP, 409, false },
		{ MC_API_ERR_HTTP, 304, false },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct mc_api_error e = { .kind = t[i].kind, .status = t[i].status };
		cr_expect_eq(mc_api_error_is_transient(&e), t[i].transient,
			     "kind %s status %ld", mc_api_error_kind_name(t[i].kind), t[i].status);
	}
}

Test(classify, kind_names)
{
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_OK), "ok");
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_ERR_TRANSPORT), "transport");
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_ERR_TIMEOUT), "timeout");
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_ERR_HTTP), "http");
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_ERR_RUNTIME_NOT_FOUND), "runtime-not-found");
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_ERR_DECODE), "decode");
	cr_assert_str_eq(mc_api_error_kind_name(MC_API_ERR_TOO_LARGE), "too-large");
}

/* ---- limits ---- */

/* A register answer of n runtimes (heap). */
static char *register_answer(size_t n)
{
	size_t cap = 32 + n * 128, used = 0;
	char *t = malloc(cap);
	cr_assert_not_null(t);
	used += (size_t)snprintf(t, cap, "{\"runtimes\":[");
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(t + used, cap - used,
					 "%s{\"id\":\"aaaaaaaa-0000-4000-8000-%012zu\",\"name\":\"n\","
					 "\"provider\":\"claude\",\"status\":\"online\"}", i ? "," : "", i);
	snprintf(t + used, cap - used, "]}");
	return t;
}

/* A worker registers at most MC_MAX_RUNTIMES, and takes exactly as many
 * back: a server answering one more is a decode error naming the count,
 * so no id the worker did not ask for reaches its tracked set. */
Test(decode, register_answer_of_one_runtime_more_than_sent_is_refused_by_count)
{
	char *ok = register_answer(MC_MAX_RUNTIMES), *over = register_answer(MC_MAX_RUNTIMES + 1);
	struct mc_runtime_list l;
	struct mc_api_error err;
	cr_assert_eq(mc_decode_register(ok, strlen(ok), MC_MAX_RUNTIMES, &l, &err), 0, "%s",
		     err.message);
	cr_assert_eq(l.n, MC_MAX_RUNTIMES);
	mc_runtime_list_clear(&l);
	cr_assert_eq(mc_decode_register(over, strlen(over), MC_MAX_RUNTIMES, &l, &err), -1);
	cr_assert_eq(err.kind, MC_API_ERR_DECODE);
	cr_assert_str_eq(err.message, "runtimes: expected 512 entries (one per registered "
			 "runtime), got 513");
	cr_assert_eq(l.n, 0);
	free(ok);
	free(over);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The largest answer a worker takes (MC_API_DEFAULT_MAX_BODY) made of the
 * smallest profiles: some 33 000 of them decode in linear time (the
 * payload builder then looks at MC_MAX_RUNTIMES of them at most). */
Test(decode, profiles_filling_the_body_limit_decode_in_bounded_time)
{
	const size_t max = MC_API_DEFAULT_MAX_BODY;
	char *body = malloc(max + 1);
	cr_assert_not_null(body);
	size_t used = (size_t)snprintf(body, max, "{\"runtime_profiles\":["), n = 0;
	char one[160];
	for (;;) {
		int k = snprintf(one, sizeof one, "%s{\"id\":\"a0000000-0000-4000-8000-%012zu\","
				 "\"display_name\":\"p\",\"protocol_family\":\"claude\","
				 "\"command_name\":\"c\",\"enabled\":true}", n ? "," : "", n);
		if (used + (size_t)k + 2 > max)
			break;
		memcpy(body + used, one, (size_t)k);
		used += (size_t)k;
		n++;
	}
	memcpy(body + used, "]}", 2);
	used += 2;
	struct mc_profile_list l;
	struct mc_api_error err;
	double t0 = mono_s();
	cr_assert_eq(mc_decode_profiles(body, used, &l, &err), 0, "%s", err.message);
	double took = mono_s() - t0;
	cr_assert_eq(l.n, n);
	cr_log_info("%zu profiles in %zu bytes decoded in %.3f s", n, used, took);
	cr_expect_lt(took, 3.0, "decoding took %.3f s", took);
	mc_profile_list_clear(&l);
	free(body);
}
