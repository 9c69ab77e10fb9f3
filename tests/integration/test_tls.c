/* HTTPS against multica-fakeplane with a test CA made at test time
 * (tests/support/testca.h): a valid certificate works and keeps one
 * connection; an untrusted CA, a wrong host name and an expired
 * certificate are refused with an error naming the reason, by the API
 * client and by a worker, which backs off instead of spinning and has
 * nothing online; `tls_verify` is no configuration key (a private CA goes
 * in ca_file). The worker's connections are counted by a relay in front of
 * the emulator (tests/support/tcp_relay.h): a failed handshake never
 * reaches the emulator's journal. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>

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

struct tls_worker {
	struct relay relay;
	struct wh h;
	char log_path[300];
	char *cli_dir;
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
	if (fp_running)
		fp_stop(&fp);
	fp_running = false;
	tca_free(&ca);
	mc_api_global_cleanup();
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

/* The emulator on HTTPS with cert (and the shared server key). */
static void start_emulator(const char *cert)
{
	const char *args[] = { "--tls-cert", cert, "--tls-key", ca.key, NULL };
	cr_assert_eq(fp_start(&fp, fx_seed_with("[]"), args), 0, "cannot start the emulator");
	fp_running = true;
	snprintf(https_url, sizeof https_url, "https://127.0.0.1:%d", fp.port);
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

/* GET path from the emulator; verify: with the test CA, else unverified
 * (the admin side of a test that serves a bad certificate on purpose).
 * Returns the parsed body (caller cJSON_Delete()s it) or NULL. */
static cJSON *admin_get(const char *path, bool verify)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	cr_assert_not_null(f);
	char url[128];
	snprintf(url, sizeof url, "%s%s", https_url, path);
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
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
	CURLcode rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	fclose(f);
	cJSON *j = rc == CURLE_OK ? cJSON_Parse(body) : NULL;
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

/* ---- a worker ---- */

/* A worker with the claude built-in against the emulator (serving cert)
 * through the counting relay, its stderr (the log) into a file. */
static void start_worker(struct tls_worker *t, const char *cert, long profile_sync_ms)
{
	start_emulator(cert);
	cr_assert_eq(relay_start(&t->relay, fp.port), 0);
	t->up = true;
	char url[64];
	snprintf(url, sizeof url, "https://127.0.0.1:%d", t->relay.port);
	snprintf(t->log_path, sizeof t->log_path, "%s/worker.log", ca.dir);
	const char *clis[] = { "claude", NULL };
	t->cli_dir = wh_fake_cli_dir(clis, "2.1.0");
	cr_assert_not_null(t->cli_dir);
	struct wh_opts o = {
		.server_url = url, .token = TOKEN, .workspace_id = WS, .ca_file = ca.ca,
		.builtins = &FX_CLAUDE, .n_builtins = 1, .heartbeat_ms = 100,
		.profile_sync_ms = profile_sync_ms,
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

static bool log_has(const struct tls_worker *t, const char *a, const char *b)
{
	FILE *f = fopen(t->log_path, "r");
	if (f == NULL)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
	fclose(f);
	return found;
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
	/* Fetch, REG, recover-orphans and 20 beats: on the worker's two
	 * keep-alive connections at most, not one handshake per request. */
	int conns = relay_accepts(&tw.relay);
	cr_assert_leq(conns, 2, "%d connections for %d heartbeats", conns, beats);
	cr_assert_eq(online_rows(true), 1);
	cr_assert_eq(wh_stop(&tw.h, 8000), 0);
	cr_assert(tw.h.stopped_deregistered);
	cr_assert_eq(online_rows(true), 0);
	stop_worker(&tw);
}

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
