/* Pure JSON codecs of the daemon API (api_codec.h). Encoders build cJSON
 * trees (never strings by hand); decoders go through the strict getters of
 * json.h so every error names its field. */
#include "common/api_codec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/json.h"

#define ELEM_PATH_MAX 96
/* How much of a non-JSON error body goes into a message. */
#define ERROR_BODY_EXCERPT 200

/* ---- small shared pieces ---- */

const char *mc_api_error_kind_name(enum mc_api_error_kind kind)
{
	switch (kind) {
	case MC_API_OK: return "ok";
	case MC_API_ERR_TRANSPORT: return "transport";
	case MC_API_ERR_TIMEOUT: return "timeout";
	case MC_API_ERR_HTTP: return "http";
	case MC_API_ERR_RUNTIME_NOT_FOUND: return "runtime-not-found";
	case MC_API_ERR_DECODE: return "decode";
	case MC_API_ERR_TOO_LARGE: return "too-large";
	}
	return "unknown";
}

bool mc_api_error_is_transient(const struct mc_api_error *err)
{
	switch (err->kind) {
	case MC_API_ERR_TRANSPORT:
	case MC_API_ERR_TIMEOUT:
	case MC_API_ERR_DECODE:
	case MC_API_ERR_TOO_LARGE:
		return true;
	case MC_API_ERR_HTTP:
		return err->status >= 500 || err->status == 408 || err->status == 429;
	case MC_API_OK:
	case MC_API_ERR_RUNTIME_NOT_FOUND:
		return false;
	}
	return false;
}

void mc_runtime_list_clear(struct mc_runtime_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].name);
		free(l->v[i].provider);
		free(l->v[i].status);
		free(l->v[i].profile_id);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void mc_workspace_list_clear(struct mc_workspace_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].name);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Every decoder starts from a clean DECODE error so callers can report
 * err->message without caring which step failed ... */
static void decode_err_init(struct mc_api_error *err)
{
	err->kind = MC_API_ERR_DECODE;
	err->status = 0;
	err->message[0] = '\0';
}

/* ... and leaves an OK one on success, so a stale DECODE never leaks out. */
static int decode_ok(struct mc_api_error *err)
{
	err->kind = MC_API_OK;
	err->message[0] = '\0';
	return 0;
}

/* ---- encoders ---- */

static bool add_str(cJSON *obj, const char *key, const char *value)
{
	return cJSON_AddStringToObject(obj, key, value != NULL ? value : "") != NULL;
}

/* Takes ownership of root: prints it and deletes it. */
static char *print_and_free(cJSON *root)
{
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (s == NULL)
		errno = ENOMEM;
	return s;
}

static bool nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* One runtimes[] entry: a string map; profile_id only on custom entries. */
static cJSON *encode_reg_runtime(const struct mc_reg_runtime *rt)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	bool ok = add_str(o, "name", rt->name) && add_str(o, "type", rt->type) &&
		  add_str(o, "version", rt->version) && add_str(o, "status", "online");
	if (ok && nonempty(rt->profile_id))
		ok = add_str(o, "profile_id", rt->profile_id);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *encode_reg_failed(const struct mc_reg_failed *f)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	if (!add_str(o, "profile_id", f->profile_id) ||
	    !add_str(o, "command_name", f->command_name) || !add_str(o, "reason", f->reason)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static bool register_request_valid(const struct mc_register_request *req)
{
	if (!nonempty(req->workspace_id) || !nonempty(req->daemon_id))
		return false;
	if (req->n_runtimes == 0 && req->n_failed == 0)
		return false; /* the server answers 400; the worker must not ask */
	if ((req->n_runtimes > 0 && req->runtimes == NULL) ||
	    (req->n_failed > 0 && req->failed == NULL))
		return false;
	for (size_t i = 0; i < req->n_runtimes; i++)
		if (!nonempty(req->runtimes[i].name) || !nonempty(req->runtimes[i].type))
			return false;
	for (size_t i = 0; i < req->n_failed; i++)
		if (!nonempty(req->failed[i].profile_id))
			return false;
	return true;
}

char *mc_encode_register(const struct mc_register_request *req)
{
	if (req == NULL || !register_request_valid(req)) {
		errno = EINVAL;
		return NULL;
	}
	cJSON *root = cJSON_CreateObject();
	if (root == NULL)
		goto nomem;
	if (!add_str(root, "workspace_id", req->workspace_id) ||
	    !add_str(root, "daemon_id", req->daemon_id) ||
	    cJSON_AddNullToObject(root, "legacy_daemon_ids") == NULL ||
	    !add_str(root, "device_name", req->device_name) ||
	    !add_str(root, "cli_version", req->cli_version) ||
	    !add_str(root, "launched_by", ""))
		goto nomem;
	cJSON *rts = cJSON_AddArrayToObject(root, "runtimes");
	if (rts == NULL)
		goto nomem;
	for (size_t i = 0; i < req->n_runtimes; i++) {
		cJSON *o = encode_reg_runtime(&req->runtimes[i]);
		if (o == NULL || !cJSON_AddItemToArray(rts, o)) {
			cJSON_Delete(o);
			goto nomem;
		}
	}
	/* multica sends a nil slice (JSON null) when nothing failed; keep that. */
	if (req->n_failed == 0) {
		if (cJSON_AddNullToObject(root, "failed_profiles") == NULL)
			goto nomem;
	} else {
		cJSON *fl = cJSON_AddArrayToObject(root, "failed_profiles");
		if (fl == NULL)
			goto nomem;
		for (size_t i = 0; i < req->n_failed; i++) {
			cJSON *o = encode_reg_failed(&req->failed[i]);
			if (o == NULL || !cJSON_AddItemToArray(fl, o)) {
				cJSON_Delete(o);
				goto nomem;
			}
		}
	}
	return print_and_free(root);
nomem:
	cJSON_Delete(root);
	errno = ENOMEM;
	return NULL;
}

char *mc_encode_deregister(size_t n, const char *const *runtime_ids)
{
	if (n == 0 || runtime_ids == NULL) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!nonempty(runtime_ids[i])) {
			errno = EINVAL;
			return NULL;
		}
	}
	cJSON *root = cJSON_CreateObject();
	cJSON *ids = root != NULL ? cJSON_AddArrayToObject(root, "runtime_ids") : NULL;
	if (ids == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		cJSON *s = cJSON_CreateString(runtime_ids[i]);
		if (s == NULL || !cJSON_AddItemToArray(ids, s)) {
			cJSON_Delete(s);
			goto nomem;
		}
	}
	return print_and_free(root);
nomem:
	cJSON_Delete(root);
	errno = ENOMEM;
	return NULL;
}

char *mc_encode_heartbeat(const char *runtime_id)
{
	if (!nonempty(runtime_id)) {
		errno = EINVAL;
		return NULL;
	}
	cJSON *root = cJSON_CreateObject();
	if (root == NULL || !add_str(root, "runtime_id", runtime_id) ||
	    cJSON_AddTrueToObject(root, "supports_batch_import") == NULL) {
		cJSON_Delete(root);
		errno = ENOMEM;
		return NULL;
	}
	return print_and_free(root);
}

/* ---- decoders ---- */

/* Parses the body and requires a top-level object. */
static cJSON *parse_object(const char *body, size_t len, struct mc_api_error *err)
{
	cJSON *root = mc_json_parse(body, len, err->message, sizeof err->message);
	if (root == NULL)
		return NULL;
	if (!cJSON_IsObject(root)) {
		mc_json_fail(err->message, sizeof err->message, "",
			     "expected a JSON object, got %s", mc_json_type_name(root));
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* Checks that every element of arr is an object before anything is
 * allocated, so the element loops below only deal with fields. */
static int require_object_elems(const cJSON *arr, const char *path, struct mc_api_error *err)
{
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsObject(it)) {
			char p[ELEM_PATH_MAX];
			mc_json_path_index(p, sizeof p, path, i);
			return mc_json_fail(err->message, sizeof err->message, p,
					    "expected object, got %s", mc_json_type_name(it));
		}
		i++;
	}
	return 0;
}

static size_t array_len(const cJSON *arr)
{
	int n = arr != NULL ? cJSON_GetArraySize(arr) : 0;
	return n > 0 ? (size_t)n : 0;
}

static int decode_workspace(const cJSON *o, const char *path, struct mc_workspace *w,
			    struct mc_api_error *err)
{
	char *e = err->message;
	size_t es = sizeof err->message;
	if (mc_json_get_string(o, path, "id", MC_JSON_STR_NONEMPTY, &w->id, e, es) < 0)
		return -1;
	return mc_json_get_string(o, path, "name", MC_JSON_STR_OR_EMPTY, &w->name, e, es);
}

int mc_decode_workspaces(const char *body, size_t len, struct mc_workspace_list *out,
			 struct mc_api_error *err)
{
	decode_err_init(err);
	out->n = 0;
	out->v = NULL;
	cJSON *root = mc_json_parse(body, len, err->message, sizeof err->message);
	if (root == NULL)
		return -1;
	int rc = -1;
	struct mc_workspace_list l = { 0, NULL };
	if (!cJSON_IsArray(root)) {
		mc_json_fail(err->message, sizeof err->message, "",
			     "expected a JSON array, got %s", mc_json_type_name(root));
		goto done;
	}
	if (require_object_elems(root, "", err) < 0)
		goto done;
	size_t n = array_len(root);
	if (n > 0 && (l.v = calloc(n, sizeof *l.v)) == NULL) {
		mc_json_fail(err->message, sizeof err->message, "", "out of memory");
		goto done;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, root) {
		char p[ELEM_PATH_MAX];
		mc_json_path_index(p, sizeof p, "", l.n);
		l.n++; /* count first: clear() frees a partially filled entry */
		if (decode_workspace(it, p, &l.v[l.n - 1], err) < 0)
			goto done;
	}
	*out = l;
	l.n = 0;
	l.v = NULL;
	rc = decode_ok(err);
done:
	mc_workspace_list_clear(&l);
	cJSON_Delete(root);
	return rc;
}

static int decode_fixed_args(const cJSON *o, const char *path, struct mc_profile *p,
			     struct mc_api_error *err)
{
	char *e = err->message;
	size_t es = sizeof err->message;
	const cJSON *arr;
	if (mc_json_get_array(o, path, "fixed_args", true, &arr, e, es) < 0)
		return -1;
	size_t n = array_len(arr);
	if (n == 0)
		return 0;
	p->fixed_args = calloc(n, sizeof *p->fixed_args);
	if (p->fixed_args == NULL)
		return mc_json_fail(e, es, path, "out of memory");
	char apath[ELEM_PATH_MAX];
	mc_json_path_key(apath, sizeof apath, path, "fixed_args");
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		char ep[ELEM_PATH_MAX + 24];
		mc_json_path_index(ep, sizeof ep, apath, p->n_fixed_args);
		p->n_fixed_args++;
		if (mc_json_elem_string(it, ep, &p->fixed_args[p->n_fixed_args - 1], e, es) < 0)
			return -1;
	}
	return 0;
}

static int decode_profile(const cJSON *o, const char *path, struct mc_profile *p,
			  struct mc_api_error *err)
{
	char *e = err->message;
	size_t es = sizeof err->message;
	if (mc_json_get_string(o, path, "id", MC_JSON_STR_NONEMPTY, &p->id, e, es) < 0 ||
	    mc_json_get_bool(o, path, "enabled", true, false, &p->enabled, e, es) < 0 ||
	    mc_json_get_string(o, path, "display_name", MC_JSON_STR_REQUIRED, &p->display_name, e, es) < 0 ||
	    mc_json_get_string(o, path, "workspace_id", MC_JSON_STR_OR_EMPTY, &p->workspace_id, e, es) < 0 ||
	    /* Empty family or command: the worker skips the profile with a
	     * warning, as multica does; only a wrong type is a decode error. */
	    mc_json_get_string(o, path, "protocol_family", MC_JSON_STR_OR_EMPTY, &p->protocol_family, e, es) < 0 ||
	    mc_json_get_string(o, path, "command_name", MC_JSON_STR_OR_EMPTY, &p->command_name, e, es) < 0 ||
	    mc_json_get_string(o, path, "visibility", MC_JSON_STR_OR_EMPTY, &p->visibility, e, es) < 0 ||
	    mc_json_get_string(o, path, "description", MC_JSON_STR_OR_NULL, &p->description, e, es) < 0)
		return -1;
	return decode_fixed_args(o, path, p, err);
}

int mc_decode_profiles(const char *body, size_t len, struct mc_profile_list *out,
		       struct mc_api_error *err)
{
	decode_err_init(err);
	out->n = 0;
	out->v = NULL;
	cJSON *root = parse_object(body, len, err);
	if (root == NULL)
		return -1;
	int rc = -1;
	struct mc_profile_list l = { 0, NULL };
	const cJSON *arr = NULL;
	/* A missing key is an error (an answer we do not understand must not
	 * look like "all profiles deleted"); null is multica's empty list. */
	if (cJSON_GetObjectItemCaseSensitive(root, "runtime_profiles") == NULL) {
		mc_json_fail(err->message, sizeof err->message, "runtime_profiles", "missing");
		goto done;
	}
	if (mc_json_get_array(root, "", "runtime_profiles", true, &arr, err->message,
			      sizeof err->message) < 0 ||
	    require_object_elems(arr, "runtime_profiles", err) < 0)
		goto done;
	size_t n = array_len(arr);
	if (n > 0 && (l.v = calloc(n, sizeof *l.v)) == NULL) {
		mc_json_fail(err->message, sizeof err->message, "", "out of memory");
		goto done;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		char p[ELEM_PATH_MAX];
		mc_json_path_index(p, sizeof p, "runtime_profiles", l.n);
		l.n++;
		if (decode_profile(it, p, &l.v[l.n - 1], err) < 0)
			goto done;
	}
	*out = l;
	l.n = 0;
	l.v = NULL;
	rc = decode_ok(err);
done:
	mc_profile_list_clear(&l);
	cJSON_Delete(root);
	return rc;
}

/* A canonical 8-4-4-4-12 hex UUID, either case: the check the supervisor
 * applies to every reported id (ipc's mc_is_uuid, which common cannot
 * link). */
static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* A runtime id goes into REPORTs, DEREGs and the supervisor's ledger: one
 * that is no UUID would get the worker killed for a protocol violation
 * (and restarted into the same answer), so it fails the decode here. */
static int require_uuid_id(const char *path, const char *id, struct mc_api_error *err)
{
	if (is_uuid(id))
		return 0;
	char p[ELEM_PATH_MAX + 8];
	mc_json_path_key(p, sizeof p, path, "id");
	return mc_json_fail(err->message, sizeof err->message, p, "not a UUID");
}

static int decode_runtime(const cJSON *o, const char *path, struct mc_runtime *r,
			  struct mc_api_error *err)
{
	char *e = err->message;
	size_t es = sizeof err->message;
	if (mc_json_get_string(o, path, "id", MC_JSON_STR_NONEMPTY, &r->id, e, es) < 0 ||
	    require_uuid_id(path, r->id, err) < 0 ||
	    mc_json_get_string(o, path, "name", MC_JSON_STR_REQUIRED, &r->name, e, es) < 0 ||
	    mc_json_get_string(o, path, "provider", MC_JSON_STR_REQUIRED, &r->provider, e, es) < 0 ||
	    mc_json_get_string(o, path, "status", MC_JSON_STR_REQUIRED, &r->status, e, es) < 0 ||
	    mc_json_get_string(o, path, "profile_id", MC_JSON_STR_OR_NULL, &r->profile_id, e, es) < 0)
		return -1;
	/* multica decodes null as ""; both mean "built-in" here. */
	if (r->profile_id != NULL && r->profile_id[0] == '\0') {
		free(r->profile_id);
		r->profile_id = NULL;
	}
	return 0;
}

int mc_decode_register(const char *body, size_t len, size_t expected_n,
		       struct mc_runtime_list *out, struct mc_api_error *err)
{
	decode_err_init(err);
	out->n = 0;
	out->v = NULL;
	cJSON *root = parse_object(body, len, err);
	if (root == NULL)
		return -1;
	int rc = -1;
	struct mc_runtime_list l = { 0, NULL };
	const cJSON *arr = NULL;
	if (cJSON_GetObjectItemCaseSensitive(root, "runtimes") == NULL) {
		mc_json_fail(err->message, sizeof err->message, "runtimes", "missing");
		goto done;
	}
	if (mc_json_get_array(root, "", "runtimes", true, &arr, err->message,
			      sizeof err->message) < 0)
		goto done;
	size_t n = array_len(arr);
	if (n != expected_n) {
		mc_json_fail(err->message, sizeof err->message, "runtimes",
			     "expected %zu entries (one per registered runtime), got %zu",
			     expected_n, n);
		goto done;
	}
	if (require_object_elems(arr, "runtimes", err) < 0)
		goto done;
	if (n > 0 && (l.v = calloc(n, sizeof *l.v)) == NULL) {
		mc_json_fail(err->message, sizeof err->message, "", "out of memory");
		goto done;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		char p[ELEM_PATH_MAX];
		mc_json_path_index(p, sizeof p, "runtimes", l.n);
		l.n++;
		if (decode_runtime(it, p, &l.v[l.n - 1], err) < 0)
			goto done;
	}
	*out = l;
	l.n = 0;
	l.v = NULL;
	rc = decode_ok(err);
done:
	mc_runtime_list_clear(&l);
	cJSON_Delete(root);
	return rc;
}

int mc_decode_heartbeat(const char *body, size_t len, struct mc_api_error *err)
{
	decode_err_init(err);
	cJSON *root = parse_object(body, len, err);
	if (root == NULL)
		return -1;
	bool gone = false;
	int rc = mc_json_get_bool(root, "", "runtime_gone", false, false, &gone,
				  err->message, sizeof err->message);
	cJSON_Delete(root);
	if (rc < 0)
		return -1;
	if (gone) {
		err->kind = MC_API_ERR_RUNTIME_NOT_FOUND;
		snprintf(err->message, sizeof err->message, "runtime_gone: true");
		return -1;
	}
	return decode_ok(err);
}

int mc_decode_recover(const char *body, size_t len, long *orphaned, long *retried,
		      struct mc_api_error *err)
{
	decode_err_init(err);
	*orphaned = 0;
	*retried = 0;
	cJSON *root = parse_object(body, len, err);
	if (root == NULL)
		return -1;
	int rc = 0;
	if (mc_json_get_long(root, "", "orphaned", 0, orphaned, err->message,
			     sizeof err->message) < 0 ||
	    mc_json_get_long(root, "", "retried", 0, retried, err->message,
			     sizeof err->message) < 0)
		rc = -1;
	cJSON_Delete(root);
	return rc == 0 ? decode_ok(err) : -1;
}

void mc_workspace_repos_clear(struct mc_workspace_repos *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->urls[i]);
	free(r->urls);
	free(r->repos_version);
	free(r->settings);
	memset(r, 0, sizeof *r);
}

static int decode_repo_urls(const cJSON *arr, struct mc_workspace_repos *r,
			    struct mc_api_error *err)
{
	if (require_object_elems(arr, "repos", err) < 0)
		return -1;
	size_t n = array_len(arr);
	if (n > 0 && (r->urls = calloc(n, sizeof *r->urls)) == NULL)
		return mc_json_fail(err->message, sizeof err->message, "", "out of memory");
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		char p[ELEM_PATH_MAX];
		mc_json_path_index(p, sizeof p, "repos", r->n);
		if (mc_json_get_string(it, p, "url", MC_JSON_STR_NONEMPTY, &r->urls[r->n],
				       err->message, sizeof err->message) < 0)
			return -1;
		r->n++;
	}
	return 0;
}

int mc_decode_workspace_repos(const char *body, size_t len, struct mc_workspace_repos *out,
			      struct mc_api_error *err)
{
	decode_err_init(err);
	memset(out, 0, sizeof *out);
	cJSON *root = parse_object(body, len, err);
	if (root == NULL)
		return -1;
	struct mc_workspace_repos r = { 0 };
	const cJSON *arr = NULL;
	int rc = -1;
	if (mc_json_get_array(root, "", "repos", true, &arr, err->message,
			      sizeof err->message) < 0 ||
	    (arr != NULL && decode_repo_urls(arr, &r, err) < 0) ||
	    mc_json_get_string(root, "", "repos_version", MC_JSON_STR_OR_EMPTY,
			       &r.repos_version, err->message, sizeof err->message) < 0)
		goto done;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "settings");
	if (st != NULL && !cJSON_IsNull(st) && (r.settings = cJSON_PrintUnformatted(st)) == NULL) {
		mc_json_fail(err->message, sizeof err->message, "", "out of memory");
		goto done;
	}
	*out = r;
	memset(&r, 0, sizeof r);
	rc = decode_ok(err);
done:
	mc_workspace_repos_clear(&r);
	cJSON_Delete(root);
	return rc;
}

/* ---- error classification ---- */

/* Case-insensitive search in a body that is not NUL-terminated and may hold
 * NUL bytes. needle is lowercase ASCII. */
static bool contains_ci(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	if (hay == NULL || nl > len)
		return false;
	for (size_t i = 0; i + nl <= len; i++) {
		size_t j = 0;
		while (j < nl && tolower((unsigned char)hay[i + j]) == needle[j])
			j++;
		if (j == nl)
			return true;
	}
	return false;
}

/* Copies at most max bytes of src into dst with control and non-ASCII bytes
 * replaced, so a server's text cannot smuggle a newline or an escape
 * sequence into a log line; leading and trailing whitespace dropped, "..."
 * marks a cut. */
static void sanitize_text(char *dst, size_t dst_size, const char *src, size_t len, size_t max)
{
	while (len > 0 && isspace((unsigned char)*src)) {
		src++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)src[len - 1]))
		len--;
	bool cut = len > max;
	if (cut)
		len = max;
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < dst_size; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		else if (c < 0x20 || c >= 0x7f)
			c = '?';
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	if (cut)
		strlcat(dst, "...", dst_size);
}

/* The server's {"error": "..."} text when the body has that shape. */
static bool json_error_text(const char *body, size_t len, char *dst, size_t dst_size)
{
	if (body == NULL || len == 0)
		return false;
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (root == NULL)
		return false;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	bool ok = cJSON_IsString(e) && e->valuestring != NULL;
	if (ok)
		sanitize_text(dst, dst_size, e->valuestring, strlen(e->valuestring),
			      ERROR_BODY_EXCERPT);
	cJSON_Delete(root);
	return ok;
}

void mc_classify_http_error(const char *what, long status, const char *body, size_t len,
			    struct mc_api_error *err)
{
	err->status = status;
	err->kind = status == 404 && contains_ci(body, len, "runtime not found")
		? MC_API_ERR_RUNTIME_NOT_FOUND : MC_API_ERR_HTTP;
	char text[ERROR_BODY_EXCERPT + 8];
	if (!json_error_text(body, len, text, sizeof text)) {
		sanitize_text(text, sizeof text, body != NULL ? body : "", body != NULL ? len : 0,
			      ERROR_BODY_EXCERPT);
		if (text[0] == '\0')
			strlcpy(text, "(empty body)", sizeof text);
	}
	snprintf(err->message, sizeof err->message, "%s: %ld %s", what, status, text);
}
