/* HTTPS against multica-fakeplane with a test CA made at test time
 * (tests/support/testca.h): a valid certificate works and keeps one
 * connection; an untrusted CA, a wrong host name and an expired
 * certificate are refused with an error naming the reason, by the API
 * client and by a worker, which backs off instead of spinning and has
 * nothing online; all of it again with the test CA as the system store
 * (loaded once, before forking: test builds point it elsewhere); a worker
 * sends everything, one request after the other, on one connection, and
 * the beats queued behind a held request do not fail; `tls_verify` is no
 * configuration key (a private CA goes in ca_file). The worker's connections are counted by a relay in front of
 * the emulator (tests/support/tcp_relay.h): a failed handshake never
 * reaches the emulator's journal. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/api.h"
#include "common/clock.h"
#include "tests/support/daemon_proc.h"
#include "tests/support/fakeplane_proc.h"
#include "tests/support/tcp_relay.h"
#include "tests/support/testca.h"
#include "tests/support/worker_fixture.h"
#include "tests/support/worker_harness.h"

#define MISSING "99999999-9999-4999-8999-999999999999"

extern char **environ;

static struct tca ca;
static struct fp_proc fp;
static bool fp_running;
static char https_url[64];
static char sys_dir[TCA_PATH_MAX + 16]; /* the "system" CAs, under ca.dir; removed by teardown */

struct tls_worker {
	struct relay relay;
	struct wh h;
	char log_path[300];
	char *cli_dir;
	char path_env[400];
	bool up;
};

/* File-scope: teardown stops it even after a failed assertion (a worker
 * left behind would hold the test's output open). */
static struct tls_worker tw;
static void stop_worker(struct tls_worker *x);

static void setup(void)
{
	cr_assert_eq(mc_api_global_init(), 0);
	cr_assert_eq(tca_make(&ca), 0, "cannot make the test CA");
}

static void teardown(void)
{
	stop_worker(&tw);
	if (sys_dir[0] != '\0')
		wh_rmtree(sys_dir);
	if (fp_running)
		fp_stop(&fp);
	fp_running = false;
	tca_free(&ca);
	mc_api_global_cleanup();
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

/* The emulator on HTTPS with cert (and the shared server key), seeded
 * with profiles (a JSON array). */
static void start_emulator_with(const char *cert, const char *profiles)
{
	const char *args[] = { "--tls-cert", cert, "--tls-key", ca.key, NULL };
	cr_assert_eq(fp_start(&fp, fx_seed_with(profiles), args), 0, "cannot start the emulator");
	fp_running = true;
	snprintf(https_url, sizeof https_url, "https://127.0.0.1:%d", fp.port);
}

static void start_emulator(const char *cert)
{
	start_emulator_with(cert, "[]");
}

static struct mc_api *new_api(const char *url, const char *ca_file)
{
	struct mc_secret *s = mc_secret_new(TOKEN, strlen(TOKEN));
	cr_assert_not_null(s);
	struct mc_api_config cfg = {
		.server_url = url, .token = s, .client_version = "multicad/test",
		.timeout_ms = 5000, .connect_timeout_ms = 3000, .ca_file = ca_file,
	};
	struct mc_api *a = mc_api_new(&cfg);
	mc_secret_free(s);
	cr_assert_not_null(a, "mc_api_new: %s", strerror(errno));
	return a;
}

/* ---- the emulator's admin API over HTTPS (fp_http speaks plain HTTP) ---- */

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
	FILE *f = ud;
	return fwrite(data, size, n, f);
}

/* One admin request to the emulator (body: NULL for none); verify: with
 * the test CA, else unverified (the admin side of a test that serves a bad
 * certificate on purpose). Returns the HTTP status (-1: no answer) and, when
 * out is not NULL, the body (malloc'd, the caller frees it). */
static long admin_request(const char *method, const char *path, const char *body, bool verify,
			  char **out)
{
	char *resp = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&resp, &len);
	cr_assert_not_null(f);
	char url[160];
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
	if (verify) {
		curl_easy_setopt(h, CURLOPT_CAINFO, ca.ca);
	} else {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
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

/* GET path from the emulator (verify: as admin_request). Returns the
 * parsed body (caller cJSON_Delete()s it) or NULL. */
static cJSON *admin_get(const char *path, bool verify)
{
	char *body = NULL;
	long st = admin_request("GET", path, NULL, verify, &body);
	cJSON *j = st == 200 && body != NULL ? cJSON_Parse(body) : NULL;
	free(body);
	return j;
}

/* Journal entries of method + path prefix with answer status (0: any). */
static int journal_count(bool verify, const char *method, const char *prefix, int status)
{
	cJSON *j = admin_get("/_admin/journal", verify);
	cr_assert_not_null(j, "cannot read the emulator's journal");
	int n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		int st = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status"));
		if (m != NULL && p != NULL && strcmp(m, method) == 0 &&
		    strncmp(p, prefix, strlen(prefix)) == 0 && (status == 0 || st == status))
			n++;
	}
	cJSON_Delete(j);
	return n;
}

/* Runtime rows online at the emulator. */
static int online_rows(bool verify)
{
	cJSON *st = admin_get("/_admin/state", verify);
	cr_assert_not_null(st, "cannot read the emulator's state");
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "runtimes")) {
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		n += s != NULL && strcmp(s, "online") == 0;
	}
	cJSON_Delete(st);
	return n;
}

/* ---- the API client ---- */

Test(tls, valid_certificate_works_and_keeps_one_connection)
{
	start_emulator(ca.good);
	struct mc_api *a = new_api(https_url, ca.ca);
	long connects = 0;
	CURLM *multi = curl_multi_init();
	for (int i = 0; i < 10; i++) {
		struct mc_call *c = i % 2 == 0 ? mc_call_list_workspaces(a)
				  : mc_call_heartbeat(a, MISSING);
		cr_assert_not_null(c);
		if (i % 3 == 2) {
			/* The event-loop path the worker uses, on the same pool. */
			cr_assert_eq(mc_call_start(c, multi), 0);
			for (int k = 0; k < 1000 && mc_multi_dispatch(multi) == 0; k++) {
				int running;
				curl_multi_perform(multi, &running);
				curl_multi_poll(multi, NULL, 0, 10, NULL);
			}
		} else {
			mc_call_perform(c);
		}
		const struct mc_api_error *e = mc_call_error(c);
		if (i % 2 == 0)
			cr_assert_eq(e->kind, MC_API_OK, "call %d: %s", i, e->message);
		else
			cr_assert_eq(e->kind, MC_API_ERR_RUNTIME_NOT_FOUND, "call %d: %s", i,
				     e->message); /* an answer over TLS: the 404 of an unknown id */
		cr_assert_geq(mc_call_num_connects(c), 0);
		connects += mc_call_num_connects(c);
		mc_call_free(c);
	}
	curl_multi_cleanup(multi);
	mc_api_free(a);
	cr_assert_eq(connects, 1, "10 calls over HTTPS opened %ld connections, want 1", connects);
	cr_assert_eq(journal_count(true, "GET", "/api/daemon/workspaces", 0), 5); /* 200, then 304s */
}

/* Completion order of calls, from their done callbacks. */
struct order {
	struct mc_call *v[8];
	int n;
};

static void note_done(struct mc_call *call, void *arg)
{
	struct order *o = arg;
	if (o->n < 8)
		o->v[o->n++] = call;
}

Test(tls, enqueued_calls_go_one_at_a_time_with_their_own_timeout)
{
	start_emulator(ca.good);
	struct mc_api *a = new_api(https_url, ca.ca);
	cr_assert_eq(admin_request("POST", "/_admin/faults", "{\"path_prefix\":"
				   "\"/api/daemon/workspaces\",\"delay_ms\":1500}", true, NULL), 200);
	CURLM *multi = curl_multi_init();
	struct order o = { .n = 0 };
	struct mc_call *c[4] = { mc_call_list_workspaces(a), mc_call_heartbeat(a, MISSING),
				 mc_call_heartbeat(a, MISSING), mc_call_heartbeat(a, MISSING) };
	for (int i = 0; i < 4; i++) {
		cr_assert_not_null(c[i]);
		mc_call_set_done(c[i], note_done, &o);
		mc_call_set_timeout(c[i], 1000); /* the first one times out while held */
		cr_assert_eq(mc_call_enqueue(c[i], multi), 0);
	}
	cr_assert_eq(mc_call_enqueue(c[1], multi), -1, "enqueued twice");
	cr_assert_eq(errno, EBUSY);
	cr_assert_eq(mc_call_perform(c[1]), -1, "performed while waiting");
	mc_call_free(c[2]); /* waiting: dropped unsent */
	c[2] = NULL;
	mc_ms_t until = mc_now_ms() + 10000;
	while (o.n < 3 && mc_now_ms() < until) {
		int running;
		curl_multi_perform(multi, &running);
		mc_multi_dispatch(multi);
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
	cr_assert_eq(o.n, 3, "%d calls finished", o.n);
	cr_assert(o.v[0] == c[0] && o.v[1] == c[1] && o.v[2] == c[3], "not in the order enqueued");
	cr_assert_eq(mc_call_error(c[0])->kind, MC_API_ERR_TIMEOUT, "%s",
		     mc_call_error(c[0])->message);
	for (int i = 1; i < 4; i += 2) /* answered: their 1 s began when they were sent */
		cr_assert_eq(mc_call_error(c[i])->kind, MC_API_ERR_RUNTIME_NOT_FOUND, "call %d: %s",
			     i, mc_call_error(c[i])->message);
	/* The held call's connection is closed by its timeout; the next opens
	 * one, which the last reuses. */
	cr_assert_eq(mc_call_num_connects(c[1]) + mc_call_num_connects(c[3]), 1);
	cr_assert_eq(journal_count(true, "POST", HB_PATH, 0), 2, "the dropped call was sent");
	for (int i = 0; i < 4; i++)
		mc_call_free(c[i]);
	curl_multi_cleanup(multi);
	mc_api_free(a);
}

/* One call against the emulator serving cert: refused, as a transport
 * error whose message carries curl's reason. */
static void refused(const char *cert, const char *ca_file, const char *reason)
{
	start_emulator(cert);
	struct mc_api *a = new_api(https_url, ca_file);
	struct mc_call *c = mc_call_list_workspaces(a);
	cr_assert_not_null(c);
	cr_assert_neq(mc_call_perform(c), 0, "the call succeeded against a bad certificate");
	const struct mc_api_error *e = mc_call_error(c);
	cr_assert_eq(e->kind, MC_API_ERR_TRANSPORT, "kind %s: %s", mc_api_error_kind_name(e->kind),
		     e->message);
	cr_assert_eq(e->status, 0);
	cr_assert(mc_api_error_is_transient(e), "a TLS failure is retried later");
	cr_assert_not_null(strstr(e->message, "GET /api/daemon/workspaces: "), "%s", e->message);
	cr_assert_not_null(strstr(e->message, reason), "the error does not say \"%s\": %s", reason,
			   e->message);
	mc_call_free(c);
	mc_api_free(a);
	cr_assert_eq(journal_count(false, "GET", "/api/daemon/workspaces", 0), 0,
		     "a request got through the failed handshake");
}

Test(tls, untrusted_ca_is_refused_naming_the_reason)
{
	refused(ca.untrusted, ca.ca, "unable to get local issuer certificate");
}

Test(tls, wrong_host_name_is_refused_naming_the_reason)
{
	refused(ca.wronghost, ca.ca, "target host name");
}

Test(tls, expired_certificate_is_refused_naming_the_reason)
{
	refused(ca.expired, ca.ca, "certificate has expired");
}

Test(tls, private_ca_without_ca_file_is_refused)
{
	/* The system store does not know the test CA: ca_file is the way in. */
	refused(ca.good, NULL, "unable to get local issuer certificate");
}

/* ---- the system store: built once, before forking, without ca_file ----
 * The test CA stands in for the system's CAs through the test builds'
 * MC_TEST_SYSTEM_CA_FILE / MC_TEST_SYSTEM_CA_PATH, read by
 * mc_api_global_init; calls are made without a ca_file. */

static const char *sys_path(const char *name)
{
	static char p[2][TCA_PATH_MAX + 64];
	static int k;
	k ^= 1;
	snprintf(p[k], sizeof p[k], "%s/%s", sys_dir, name);
	return p[k];
}

static void make_sys_dir(void)
{
	snprintf(sys_dir, sizeof sys_dir, "%s/sys", ca.dir);
	cr_assert(mkdir(sys_dir, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", sys_dir,
		  strerror(errno));
}

/* Copies the test CA to sys/name: a "system bundle" of one certificate. */
static const char *sys_bundle(const char *name)
{
	make_sys_dir();
	const char *dst = sys_path(name);
	FILE *in = fopen(ca.ca, "r"), *out = fopen(dst, "w");
	cr_assert(in != NULL && out != NULL);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	cr_assert_eq(fclose(out), 0);
	return dst;
}

/* A hashed directory (as `openssl rehash` makes) holding the test CA. */
static const char *sys_hashed_dir(void)
{
	make_sys_dir();
	static char dir[TCA_PATH_MAX + 64];
	snprintf(dir, sizeof dir, "%s/certs", sys_dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	FILE *f = fopen(ca.ca, "r");
	cr_assert_not_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(x);
	char link[TCA_PATH_MAX + 96];
	snprintf(link, sizeof link, "%s/%08lx.0", dir, X509_subject_name_hash(x));
	X509_free(x);
	cr_assert_eq(symlink(ca.ca, link), 0, "symlink %s: %s", link, strerror(errno));
	return dir;
}

/* Makes file and/or path this process's system store (NULL: none), as a
 * daemon would load it at start: before any connection or fork. */
static void use_system_store(const char *file, const char *path)
{
	mc_api_global_cleanup();
	cr_assert_eq(setenv("MC_TEST_SYSTEM_CA_FILE", file != NULL ? file : "", 1), 0);
	cr_assert_eq(setenv("MC_TEST_SYSTEM_CA_PATH", path != NULL ? path : "", 1), 0);
	cr_assert_eq(mc_api_global_init(), 0);
}

#ifdef MC_TEST_HOOKS
Test(tls, system_store_valid_certificate_works_and_keeps_one_connection)
{
	use_system_store(sys_bundle("bundle.pem"), NULL);
	start_emulator(ca.good);
	struct mc_api *a = new_api(https_url, NULL);
	long connects = 0;
	for (int i = 0; i < 4; i++) {
		struct mc_call *c = mc_call_list_workspaces(a);
		cr_assert_not_null(c);
		cr_assert_eq(mc_call_perform(c), 0, "call %d: %s", i, mc_call_error(c)->message);
		connects += mc_call_num_connects(c);
		mc_call_free(c);
	}
	mc_api_free(a);
	cr_assert_eq(connects, 1, "4 calls opened %ld connections", connects);
}

Test(tls, system_store_untrusted_ca_is_refused_naming_the_reason)
{
	use_system_store(sys_bundle("bundle.pem"), NULL);
	refused(ca.untrusted, NULL, "unable to get local issuer certificate");
}

Test(tls, system_store_wrong_host_name_is_refused_naming_the_reason)
{
	use_system_store(sys_bundle("bundle.pem"), NULL);
	refused(ca.wronghost, NULL, "target host name");
}

Test(tls, system_store_expired_certificate_is_refused_naming_the_reason)
{
	use_system_store(sys_bundle("bundle.pem"), NULL);
	refused(ca.expired, NULL, "certificate has expired");
}

Test(tls, system_store_hashed_directory_is_searched)
{
	/* libcurl's default trusts its CA directory too (--with-ca-path). */
	use_system_store(NULL, sys_hashed_dir());
	start_emulator(ca.good);
	struct mc_api *a = new_api(https_url, NULL);
	struct mc_call *c = mc_call_list_workspaces(a);
	cr_assert_not_null(c);
	cr_assert_eq(mc_call_perform(c), 0, "%s", mc_call_error(c)->message);
	mc_call_free(c);
	mc_api_free(a);
	refused(ca.untrusted, NULL, "unable to get local issuer certificate");
}

Test(tls, system_store_is_loaded_once_before_forking)
{
	/* Loaded at initialisation, not for each connection: a child forked
	 * afterwards verifies with it even once the file is gone. */
	const char *bundle = sys_bundle("once.pem");
	use_system_store(bundle, NULL);
	cr_assert_eq(unlink(bundle), 0);
	start_emulator(ca.good);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct mc_secret *s = mc_secret_new(TOKEN, strlen(TOKEN));
		struct mc_api_config cfg = { .server_url = https_url, .token = s,
					     .timeout_ms = 5000, .connect_timeout_ms = 3000 };
		struct mc_api *a = s != NULL ? mc_api_new(&cfg) : NULL;
		struct mc_call *c = a != NULL ? mc_call_list_workspaces(a) : NULL;
		int ok = c != NULL && mc_call_perform(c) == 0;
		if (c != NULL && !ok)
			fprintf(stderr, "child: %s\n", mc_call_error(c)->message);
		_exit(ok ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "the forked child could not verify with the store loaded before the fork");
}
#endif

/* ---- a worker ---- */

/* How start_worker_with sets a worker up. */
struct tw_cfg {
	const char *cert;          /* the emulator's certificate */
	const char *ca_file;       /* NULL: the system store */
	long profile_sync_ms;
	long http_timeout_ms;      /* 0: the harness's 2 s */
	bool two_profiles;         /* PROF1 and PROF2 besides the built-in */
};

/* A worker with the claude built-in (and, with two_profiles, 2 custom
 * profiles whose commands are fake CLIs on its PATH) against the emulator
 * through the counting relay, its stderr (the log) into a file. */
static void start_worker_with(struct tls_worker *t, const struct tw_cfg *c)
{
	char profiles[1200] = "[]";
	if (c->two_profiles)
		snprintf(profiles, sizeof profiles, "[%s,%s]",
			 fx_profile_json(PROF1, "P1", "my-claude", true),
			 fx_profile_json(PROF2, "P2", "other-claude", true));
	start_emulator_with(c->cert, profiles);
	cr_assert_eq(relay_start(&t->relay, fp.port), 0);
	t->up = true;
	char url[64];
	snprintf(url, sizeof url, "https://127.0.0.1:%d", t->relay.port);
	snprintf(t->log_path, sizeof t->log_path, "%s/worker.log", ca.dir);
	const char *clis[] = { "claude", NULL };
	t->cli_dir = wh_fake_cli_dir(clis, "2.1.0");
	cr_assert_not_null(t->cli_dir);
	cr_assert_eq(wh_add_fake_cli(t->cli_dir, "my-claude", "9.9.9"), 0);
	cr_assert_eq(wh_add_fake_cli(t->cli_dir, "other-claude", "9.9.9"), 0);
	snprintf(t->path_env, sizeof t->path_env, "%s:/usr/bin:/bin", t->cli_dir);
	struct wh_opts o = {
		.server_url = url, .token = TOKEN, .workspace_id = WS, .ca_file = c->ca_file,
		.builtins = &FX_CLAUDE, .n_builtins = 1, .heartbeat_ms = 100,
		.profile_sync_ms = c->profile_sync_ms, .http_timeout_ms = c->http_timeout_ms,
		.path_env = t->path_env,
	};
	fflush(stderr);
	int saved = dup(2);
	int fd = open(t->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	cr_assert(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	int rc = wh_start(&t->h, &o);
	dup2(saved, 2);
	close(saved);
	close(fd);
	cr_assert_eq(rc, 0, "the worker did not start");
}

/* The common case: the built-in only, verified with the test CA. */
static void start_worker(struct tls_worker *t, const char *cert, long profile_sync_ms)
{
	struct tw_cfg c = { .cert = cert, .ca_file = ca.ca, .profile_sync_ms = profile_sync_ms };
	start_worker_with(t, &c);
}

static void stop_worker(struct tls_worker *x)
{
	if (!x->up)
		return;
	x->up = false;
	wh_free(&x->h);
	relay_stop(&x->relay);
	unlink(x->log_path);
	wh_rmtree(x->cli_dir);
	free(x->cli_dir);
}

/* The first line of the worker's log holding a (and b, unless NULL), into
 * line; false when there is none. */
static bool log_find(const struct tls_worker *t, const char *a, const char *b, char *line,
		     size_t size)
{
	FILE *f = fopen(t->log_path, "r");
	if (f == NULL)
		return false;
	bool found = false;
	while (!found && fgets(line, (int)size, f) != NULL)
		found = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
	fclose(f);
	return found;
}

static bool log_has(const struct tls_worker *t, const char *a, const char *b)
{
	char line[4096];
	return log_find(t, a, b, line, sizeof line);
}

Test(tls, worker_with_a_valid_certificate_beats_over_kept_connections)
{
	start_worker(&tw, ca.good, 150);
	cr_assert(wh_wait_report_n(&tw.h, 1, 8000), "the worker did not register over HTTPS");
	mc_ms_t until = mc_now_ms() + 15000;
	int beats = 0;
	while ((beats = journal_count(true, "POST", HB_PATH, 200)) < 20 && mc_now_ms() < until)
		wh_pump(&tw.h, 100);
	cr_assert_geq(beats, 20, "only %d heartbeats answered", beats);
	/* Fetch, REG, recover-orphans and 20 beats: on the worker's one
	 * keep-alive connection, not one handshake per request. */
	int conns = relay_accepts(&tw.relay);
	cr_assert_eq(conns, 1, "%d connections for %d heartbeats", conns, beats);
	cr_assert_eq(online_rows(true), 1);
	cr_assert_eq(wh_stop(&tw.h, 8000), 0);
	cr_assert(tw.h.stopped_deregistered);
	cr_assert_eq(online_rows(true), 0);
	stop_worker(&tw);
}

/* Pumps the worker until the journal has want entries of method + prefix
 * answered with status (0: any), or timeout_ms pass. */
static bool wait_journal(const char *method, const char *prefix, int status, int want,
			 int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (journal_count(true, method, prefix, status) < want && mc_now_ms() < until)
		wh_pump(&tw.h, 50);
	return journal_count(true, method, prefix, status) >= want;
}

Test(tls, worker_keeps_one_connection_for_everything)
{
	/* 3 runtimes: beats every 100 ms each, a drift check every 150 ms, the
	 * first REG and its 3 recover-orphans, a profile edit's REG, the
	 * final DEREG: all of it one after the other on one connection. */
	struct tw_cfg c = { .cert = ca.good, .ca_file = ca.ca, .profile_sync_ms = 150,
			    .two_profiles = true };
	start_worker_with(&tw, &c);
	cr_assert(wh_wait_report_n(&tw.h, 3, 10000), "the worker did not register 3 runtimes");
	cr_assert(wait_journal("POST", RO_PREFIX, 200, 3, 5000), "no recover-orphans");
	cr_assert_eq(admin_request("PATCH", "/_admin/profiles/" PROF1,
				   "{\"display_name\":\"P1 renamed\"}", true, NULL), 200);
	mc_ms_t until = mc_now_ms() + 5000;
	while (mc_now_ms() < until)
		wh_pump(&tw.h, 100);
	int beats = journal_count(true, "POST", HB_PATH, 200);
	int drift = journal_count(true, "GET", PROF_PATH, 200);
	int regs = journal_count(true, "POST", REG_PATH, 200);
	cr_assert_geq(beats, 30, "only %d heartbeats answered in 5 s", beats);
	cr_assert_geq(drift, 10, "only %d drift checks answered in 5 s", drift);
	cr_assert_geq(regs, 2, "the profile edit was not registered");
	cr_assert_eq(online_rows(true), 3);
	cr_assert_eq(relay_accepts(&tw.relay), 1,
		     "%d connections for %d heartbeats, %d drift checks and %d REGs",
		     relay_accepts(&tw.relay), beats, drift, regs);
	cr_assert_eq(wh_stop(&tw.h, 8000), 0);
	cr_assert(tw.h.stopped_deregistered);
	cr_assert_eq(online_rows(true), 0);
	cr_assert_eq(relay_accepts(&tw.relay), 1, "the final DEREG opened a connection");
	stop_worker(&tw);
}

/* "2026-11-28T23:10:49.604Z" (the journal's time) -> epoch ms, or -1. */
static long long journal_ms(const char *s)
{
	struct tm tm;
	int ms = 0;
	memset(&tm, 0, sizeof tm);
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

/* The longest time between two answered heartbeats of one runtime, over
 * every runtime in the journal (ms). */
static long long longest_beat_gap(void)
{
	cJSON *j = admin_get("/_admin/journal", true);
	cr_assert_not_null(j);
	struct { char id[64]; long long last; } rt[8];
	int n = 0;
	long long worst = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		int st = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status"));
		long long t = journal_ms(cJSON_GetStringValue(cJSON_GetObjectItem(e, "time")));
		cJSON *body = p != NULL && strcmp(p, HB_PATH) == 0 && st == 200 && b != NULL
			      ? cJSON_Parse(b) : NULL;
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(body, "runtime_id"));
		int k = 0;
		while (id != NULL && k < n && strcmp(rt[k].id, id) != 0)
			k++;
		if (id != NULL && k == n && n < 8) {
			snprintf(rt[n].id, sizeof rt[n].id, "%s", id);
			rt[n++].last = t;
		} else if (id != NULL && k < n) {
			if (t - rt[k].last > worst)
				worst = t - rt[k].last;
			rt[k].last = t;
		}
		cJSON_Delete(body);
	}
	cJSON_Delete(j);
	return worst;
}

Test(tls, heartbeats_behind_a_held_request_land_late_and_none_fails)
{
	/* One connection: the beats due while a drift check is held at the
	 * server wait behind it. Held 3 s, it times out after http_timeout
	 * (2 s); the beats then go out with a timeout of their own, not what
	 * was left of one that ran while they waited. */
	struct tw_cfg c = { .cert = ca.good, .ca_file = ca.ca, .profile_sync_ms = 400,
			    .http_timeout_ms = 2000, .two_profiles = true };
	start_worker_with(&tw, &c);
	cr_assert(wh_wait_report_n(&tw.h, 3, 10000), "the worker did not register 3 runtimes");
	cr_assert(wait_journal("POST", RO_PREFIX, 200, 3, 5000), "no recover-orphans");
	cr_assert_eq(admin_request("POST", "/_admin/faults",
				   "{\"method\":\"GET\",\"path_prefix\":\"" PROF_PATH "\","
				   "\"delay_ms\":3000}", true, NULL), 200);
	mc_ms_t until = mc_now_ms() + 10000;
	while (!log_has(&tw, "fetching runtime profiles failed", "timed out") &&
	       mc_now_ms() < until)
		wh_pump(&tw.h, 50);
	cr_assert(log_has(&tw, "fetching runtime profiles failed", "timed out"),
		  "the held drift check did not time out");
	int before = journal_count(true, "POST", HB_PATH, 200);
	cr_assert(wait_journal("POST", HB_PATH, 200, before + 9, 5000),
		  "the heartbeats did not resume after the held request");
	char line[4096];
	cr_assert_not(log_find(&tw, "heartbeat failed", NULL, line, sizeof line),
		      "a heartbeat queued behind the held request failed: %s", line);
	long long gap = longest_beat_gap();
	cr_log_info("longest time without an answered heartbeat: %lld ms", gap);
	cr_assert_leq(gap, 4000, "a runtime went %lld ms without an answered heartbeat", gap);
	cr_assert_eq(online_rows(true), 3);
	cr_assert_eq(wh_stop(&tw.h, 8000), 0);
	cr_assert(tw.h.stopped_deregistered);
	cr_assert_eq(online_rows(true), 0);
	stop_worker(&tw);
}

#ifdef MC_TEST_HOOKS
Test(tls, worker_verifies_with_the_system_store_loaded_before_its_fork)
{
	/* The store is read once, before the fork: gone from disk by the time
	 * the worker connects, it still verifies the server. */
	const char *bundle = sys_bundle("worker.pem");
	use_system_store(bundle, NULL);
	cr_assert_eq(unlink(bundle), 0);
	struct tw_cfg c = { .cert = ca.good, .ca_file = NULL, .profile_sync_ms = 150 };
	start_worker_with(&tw, &c);
	cr_assert(wh_wait_report_n(&tw.h, 1, 8000), "the worker did not register over HTTPS: %s",
		  log_has(&tw, "unable to get local issuer", NULL) ? "untrusted" : "?");
	cr_assert(wait_journal("POST", HB_PATH, 200, 10, 8000), "no heartbeats answered");
	cr_assert_eq(online_rows(true), 1);
	cr_assert_eq(wh_stop(&tw.h, 8000), 0);
	cr_assert(tw.h.stopped_deregistered);
	cr_assert_eq(online_rows(true), 0);
	stop_worker(&tw);
}
#endif

/* A worker against a bad certificate: it keeps retrying, with backoff
 * (profile_sync 1 s: steps 1 s, 2 s, 4 s apart, a fetch and a REG of the
 * built-in each), reports nothing, stays responsive, and logs the reason. */
static void worker_refused(const char *cert, const char *reason)
{
	start_worker(&tw, cert, 1000);
	mc_ms_t start = mc_now_ms();
	mc_ms_t until = start + 10000;
	while (relay_accepts(&tw.relay) < 3 && mc_now_ms() < until)
		wh_pump(&tw.h, 50);
	cr_assert_geq(relay_accepts(&tw.relay), 3, "the worker did not retry");
	while (mc_now_ms() < start + 5000)
		wh_pump(&tw.h, 50);
	int conns = relay_accepts(&tw.relay);
	cr_assert_leq(conns, 10, "%d connection attempts in 5 s: the worker spins", conns);
	cr_assert_geq(wh_ping(&tw.h, 7, 2000), 0, "the worker does not answer pings");
	cr_assert_not(tw.h.exited, "the worker exited");
	cr_assert(tw.h.n_reports == 0 || tw.h.report.n == 0, "the worker reported %zu runtimes",
		  tw.h.report.n);
	cr_assert_eq(online_rows(false), 0);
	cr_assert_eq(journal_count(false, "POST", REG_PATH, 0), 0);
	cr_assert(log_has(&tw, "fetching runtime profiles failed", reason),
		  "the worker's log does not name \"%s\"", reason);
	cr_assert_eq(wh_stop(&tw.h, 8000), 0);
	stop_worker(&tw);
}

Test(tls, worker_against_an_untrusted_ca_backs_off)
{
	worker_refused(ca.untrusted, "unable to get local issuer certificate");
}

Test(tls, worker_against_a_wrong_host_name_backs_off)
{
	worker_refused(ca.wronghost, "target host name");
}

Test(tls, worker_against_an_expired_certificate_backs_off)
{
	worker_refused(ca.expired, "certificate has expired");
}

/* ---- configuration ---- */

/* multicad -t -c <conf with extra [daemon] lines>: its exit code and output. */
static int check_config(const char *extra, char **out)
{
	struct dp d;
	cr_assert_eq(dp_init(&d, NULL, NULL, "1.0.0"), 0);
	struct dp_config c = { .server_url = "https://multica.example.com", .workspaces = WS,
			       .daemon_extra = extra };
	cr_assert_eq(dp_write_config(&d, &c), 0);
	char path[320];
	snprintf(path, sizeof path, "%s/check.out", d.dir);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *argv[] = { MULTICAD_BIN, "-t", "-c", d.conf_path, NULL };
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, MULTICAD_BIN, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	*out = strdup(buf);
	unlink(path);
	dp_free(&d);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(tls, tls_verify_is_no_key_and_ca_file_is)
{
	char *out = NULL;
	int rc = check_config("tls_verify = off\n", &out);
	cr_assert_neq(rc, 0, "multicad -t accepted tls_verify: %s", out);
	cr_assert_not_null(strstr(out, "unknown key \"tls_verify\""), "%s", out);
	free(out);
	char line[400];
	snprintf(line, sizeof line, "ca_file = %s\n", ca.ca);
	rc = check_config(line, &out);
	cr_assert_eq(rc, 0, "multicad -t refused ca_file: %s", out);
	free(out);
}
