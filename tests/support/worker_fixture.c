#include "tests/support/worker_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/clock.h"

const struct mc_builtin FX_CLAUDE = { "claude", "Claude", "2.1.0", "" };

const char *fx_seed_with(const char *profiles_json)
{
	static char seed[4096];
	snprintf(seed, sizeof seed,
		 "{\"tokens\":{\"" TOKEN "\":\"u1\"},"
		 "\"workspaces\":[{\"id\":\"" WS "\",\"name\":\"ws\",\"members\":[\"u1\"]}],"
		 "\"profiles\":%s,\"tasks\":[]}", profiles_json);
	return seed;
}

const char *fx_profile_json(const char *id, const char *name, const char *cmd, bool enabled)
{
	static char buf[2][512];
	static int k;
	k ^= 1;
	snprintf(buf[k], sizeof buf[k],
		 "{\"id\":\"%s\",\"workspace_id\":\"" WS "\",\"display_name\":\"%s\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"%s\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":%s}",
		 id, name, cmd, enabled ? "true" : "false");
	return buf[k];
}

void fx_start_plane_args(struct fixture *fx, const char *profiles_json, const char *const *extra)
{
	memset(fx, 0, sizeof *fx);
	const char *clis[] = { "my-claude", "other-claude", NULL };
	fx->cli_dir = wh_fake_cli_dir(clis, "9.9.9");
	cr_assert_not_null(fx->cli_dir);
	snprintf(fx->path_env, sizeof fx->path_env, "%s:/usr/bin:/bin", fx->cli_dir);
	cr_assert_eq(fp_start(&fx->fp, fx_seed_with(profiles_json), extra), 0);
}

void fx_start_plane(struct fixture *fx, const char *profiles_json)
{
	fx_start_plane_args(fx, profiles_json, NULL);
}

void fx_start_worker_opts(struct fixture *fx, struct wh_opts o)
{
	o.server_url = o.server_url ? o.server_url : fx->fp.url;
	o.token = o.token ? o.token : TOKEN;
	o.workspace_id = WS;
	o.path_env = o.path_env ? o.path_env : fx->path_env;
	cr_assert_eq(wh_start(&fx->h, &o), 0);
}

void fx_start_worker(struct fixture *fx, bool with_claude)
{
	struct wh_opts o = { 0 };
	if (with_claude) {
		o.builtins = &FX_CLAUDE;
		o.n_builtins = 1;
	}
	fx_start_worker_opts(fx, o);
}

void fx_start_builtin_and_profile(struct fixture *fx)
{
	char profiles[1024];
	snprintf(profiles, sizeof profiles, "[%s]", fx_profile_json(PROF1, "P1", "my-claude", true));
	fx_start_plane(fx, profiles);
	fx_start_worker(fx, true);
	cr_assert(wh_wait_report_n(&fx->h, 2, 5000), "the worker did not report its 2 runtimes");
}

void fx_stop(struct fixture *fx)
{
	wh_free(&fx->h);
	fp_stop(&fx->fp);
	wh_rmtree(fx->cli_dir);
	free(fx->cli_dir);
}

int fx_count(struct fixture *fx, const char *method, const char *prefix)
{
	return fp_journal_count(&fx->fp, method, prefix);
}

bool fx_wait_count(struct fixture *fx, const char *method, const char *prefix, int want,
		   int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (mc_now_ms() < until) {
		if (fx_count(fx, method, prefix) >= want)
			return true;
		wh_pump(&fx->h, 20);
	}
	return fx_count(fx, method, prefix) >= want;
}

void fx_assert_status(struct fixture *fx, const char *id, const char *want)
{
	char *s = fp_runtime_status(&fx->fp, id);
	cr_assert_not_null(s, "runtime %s has no row", id);
	cr_assert_str_eq(s, want, "runtime %s is %s, want %s", id, s, want);
	free(s);
}

long fx_admin(struct fixture *fx, const char *method, const char *path, const char *body)
{
	char *out = NULL;
	long st = fp_http(&fx->fp, method, path, body, NULL, &out);
	free(out);
	return st;
}

char *fx_runtime_of(struct fixture *fx, const char *pid)
{
	cJSON *st = fp_state(&fx->fp);
	cr_assert_not_null(st);
	char *id = NULL;
	cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(r, "profile_id"));
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		if ((pid == NULL ? p == NULL : (p && strcmp(p, pid) == 0)) && s &&
		    strcmp(s, "online") == 0) {
			id = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")));
			break;
		}
	}
	cJSON_Delete(st);
	return id;
}

int fx_jcount(struct fixture *fx, const char *method, const char *prefix, int status,
	      double after_seq, const char *body_has)
{
	cJSON *j = fp_journal(&fx->fp);
	cr_assert_not_null(j);
	int n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "seq"));
		double st = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status"));
		if (m == NULL || p == NULL)
			continue;
		if ((method == NULL || strcmp(m, method) == 0) &&
		    (prefix == NULL || strncmp(p, prefix, strlen(prefix)) == 0) &&
		    (status == FX_ANY_STATUS || (int)st == status) && seq > after_seq &&
		    (body_has == NULL || (b != NULL && strstr(b, body_has) != NULL)))
			n++;
	}
	cJSON_Delete(j);
	return n;
}

bool fx_wait_jcount(struct fixture *fx, const char *method, const char *prefix, int status,
		    double after_seq, const char *body_has, int want, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (mc_now_ms() < until) {
		if (fx_jcount(fx, method, prefix, status, after_seq, body_has) >= want)
			return true;
		wh_pump(&fx->h, 20);
	}
	return fx_jcount(fx, method, prefix, status, after_seq, body_has) >= want;
}

double fx_last_seq(struct fixture *fx)
{
	cJSON *j = fp_journal(&fx->fp);
	cr_assert_not_null(j);
	int n = cJSON_GetArraySize(j);
	double s = n > 0 ? cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, n - 1),
								     "seq")) : -1;
	cJSON_Delete(j);
	return s;
}

bool fx_wait_status(struct fixture *fx, const char *id, const char *want, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	for (;;) {
		char *s = fp_runtime_status(&fx->fp, id);
		bool ok = s != NULL && strcmp(s, want) == 0;
		free(s);
		if (ok)
			return true;
		if (mc_now_ms() >= until)
			return false;
		wh_pump(&fx->h, 50);
	}
}
