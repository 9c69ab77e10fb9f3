/* The daemon token stays out of everything another local user, a crash or
 * a library could expose (SECURITY.md, "The daemon token"):
 *
 *  - a whole daemon (two workspaces, a custom profile) goes through a
 *    reload, a worker crash whose cleanup helper is held alive by a slow
 *    DEREG, and a token rotation (the token file rewritten in place, picked
 *    up without a reload); meanwhile every process of its tree (supervisor,
 *    workers, the helper) is searched for the old and the new token in
 *    /proc/PID/cmdline, environ, comm (and its threads' comm); afterwards
 *    the whole daemon log and every file of state_dir are searched too;
 *  - every one of those processes is non-dumpable (no core dump, no
 *    same-uid ptrace or /proc/PID/mem). Seen from outside: the kernel makes
 *    a non-dumpable process's /proc/PID files root's, so with the daemon
 *    running as an unprivileged uid (nobody, when the test runs as root)
 *    /proc/PID/environ owned by root while the process's euid is not 0
 *    means non-dumpable. (PR_GET_DUMPABLE only answers for the caller,
 *    /proc/PID/status does not show the flag, and a root test could read
 *    environ either way: ownership is the one outside view.)
 *  - the HTTP client never offers HTTP/2: nghttp2 keeps private copies of
 *    every header, the Authorization line included, in memory it frees
 *    without wiping. The ClientHello's ALPN list is read from a listener
 *    that never answers. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grp.h>
#include <sys/wait.h>
#include <criterion/criterion.h>

#include "common/api.h"
#include "common/secret.h"
#include "tests/support/daemon_fixture.h"

#define OLD_TOKEN "mul_h7old_5f3c9a2e7b1d40868c"
#define NEW_TOKEN "mul_h7new_c41e8b07d2a95f3611"
#define PROF1 "a1111111-1111-4111-8111-111111111111"
#define READY_MS 15000
#define MAX_PROCS 64

static char *LIST;   /* workspaces 1..2 (the fixture's) */

TestSuite(secrets, .timeout = 120, .fini = dfx_fini);

/* ---- looking for the tokens ---- */

/* What one look at the process tree found. */
struct scan {
	int procs, workers, helpers;
	int environ_unreadable;    /* EACCES: what another same-uid user gets */
	int n_dumpable;            /* processes found dumpable */
	int dumpable_unknown;      /* euid 0: ownership tells nothing */
	char leak[512];            /* the first token found, "" when none */
	char dumpable[256];        /* the first dumpable process, "" when none */
};

/* Whole file (binary), malloc'd, into *len; NULL with errno. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (n == cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return buf;
}

/* Which token the bytes hold, or NULL. */
static const char *token_in(const char *buf, size_t len)
{
	if (memmem(buf, len, OLD_TOKEN, strlen(OLD_TOKEN)) != NULL)
		return "the old token";
	if (memmem(buf, len, NEW_TOKEN, strlen(NEW_TOKEN)) != NULL)
		return "the new token";
	return NULL;
}

static void look_file(struct scan *s, const char *path, const char *title)
{
	size_t len = 0;
	char *buf = slurp(path, &len);
	if (buf == NULL) {
		if (errno == EACCES && strstr(path, "/environ") != NULL)
			s->environ_unreadable++;
		return; /* gone meanwhile, or not ours to read */
	}
	const char *which = token_in(buf, len);
	if (which != NULL && s->leak[0] == '\0')
		snprintf(s->leak, sizeof s->leak, "%s in %s (%s)", which, path, title);
	free(buf);
}

/* The effective uid in /proc/PID/status, or -1. */
static long proc_euid(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	size_t len = 0;
	char *buf = slurp(path, &len);
	if (buf == NULL)
		return -1;
	char *text = realloc(buf, len + 1);
	if (text == NULL) {
		free(buf);
		return -1;
	}
	text[len] = '\0';
	long euid = -1;
	const char *u = strstr(text, "\nUid:");
	if (u != NULL) {
		char *end;
		strtol(u + 5, &end, 10);          /* real */
		euid = strtol(end, &end, 10);     /* effective */
	}
	free(text);
	return euid;
}

static void look_dumpable(struct scan *s, pid_t pid, const char *title)
{
	long euid = proc_euid(pid);
	/* environ, not /proc/PID itself: the kernel leaves the 0555
	 * directories to the task's euid either way. */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	struct stat st;
	if (euid < 0 || stat(path, &st) < 0)
		return;
	if (euid == 0) {
		s->dumpable_unknown++;
		return;
	}
	s->n_dumpable += st.st_uid != 0;
	if (st.st_uid != 0 && s->dumpable[0] == '\0')
		snprintf(s->dumpable, sizeof s->dumpable,
			 "pid %d (%s): /proc/%d/environ owned by uid %ld, its own", (int)pid, title,
			 (int)pid, (long)st.st_uid);
}

static void look_threads(struct scan *s, pid_t pid, const char *title)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char comm[400];
		snprintf(comm, sizeof comm, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		look_file(s, comm, title);
	}
	closedir(dir);
}

static void look_process(struct scan *s, pid_t pid)
{
	char title[256] = "";
	if (dp_proc_title(pid, title, sizeof title) < 0)
		return; /* gone */
	static const char *const files[] = { "cmdline", "environ", "comm" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, files[i]);
		look_file(s, path, title);
	}
	look_threads(s, pid, title);
	look_dumpable(s, pid, title);
	s->procs++;
	s->workers += strncmp(title, "multicad: worker ", 17) == 0;
	s->helpers += strncmp(title, "multicad: cleanup ", 18) == 0;
}

/* Every live process of the daemon's group: the supervisor, its workers
 * and helpers (probes run in groups of their own, and briefly). */
static struct scan scan_tree(void)
{
	struct scan s;
	memset(&s, 0, sizeof s);
	pid_t pids[MAX_PROCS];
	size_t n = dp_group_pids(&D, pids, MAX_PROCS);
	for (size_t i = 0; i < n && i < MAX_PROCS; i++)
		look_process(&s, pids[i]);
	return s;
}

static void expect_clean(const struct scan *s, const char *when)
{
	cr_expect_str_empty(s->leak, "%s: %s", when, s->leak);
	cr_expect_str_empty(s->dumpable, "%s: %d of %d processes dumpable, first %s", when,
			    s->n_dumpable, s->procs, s->dumpable);
	cr_expect_eq(s->dumpable_unknown, 0, "%s: %d processes run as root", when,
		     s->dumpable_unknown);
	cr_log_info("%s: %d processes (%d workers, %d helpers), environ unreadable for %d",
		    when, s->procs, s->workers, s->helpers, s->environ_unreadable);
}

/* The first log line holding a token, "" when none. */
static void scan_log(char *out, size_t n)
{
	out[0] = '\0';
	char *text = dp_log_read(&D);
	cr_assert_not_null(text);
	int lineno = 1;
	for (char *line = text; *line && out[0] == '\0'; lineno++) {
		char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		const char *which = token_in(line, len);
		if (which != NULL)
			snprintf(out, n, "%s in log line %d: %.*s", which, lineno,
				 (int)(len < 300 ? len : 300), line);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	free(text);
}

static char state_leak[512];
static int state_files;

static int look_state_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag != FTW_F)
		return 0;
	state_files++;
	size_t len = 0;
	char *buf = slurp(path, &len);
	const char *which = buf != NULL ? token_in(buf, len) : NULL;
	if (which != NULL && state_leak[0] == '\0')
		snprintf(state_leak, sizeof state_leak, "%s in %s", which, path);
	free(buf);
	return 0;
}

/* ---- the scenario ---- */

static void write_config(void)
{
	struct dp_config c = { .server_url = FP.url, .workspaces = LIST,
			       /* the held DEREG (4 s) must not time out */
			       .http_timeout = "10s" };
	char *text = dp_config_text(&D, &c);
	cr_assert_not_null(text);
	int rc = dp_write_owned(&D, D.conf_path, text, 0600);
	free(text);
	cr_assert_eq(rc, 0);
}

/* Whether uid:gid can execute path (every directory above it traversable). */
static bool can_exec_as(uid_t uid, gid_t gid, const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(2);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The emulator (both tokens valid for the test user) and a daemon holding
 * OLD_TOKEN, as nobody when we are root. */
static void start_all(void)
{
	dfx_ws_ids(); /* the profile names workspace 1 */
	char profiles[512];
	snprintf(profiles, sizeof profiles,
		 "[{\"id\":\"" PROF1 "\",\"workspace_id\":\"%s\",\"display_name\":\"Team\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"my-claude\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true}]",
		 WS[1]);
	dfx_start_plane(2, NULL, profiles, NULL);
	cr_assert_eq(dfx_admin("POST", "/_admin/tokens",
			   "{\"token\":\"" OLD_TOKEN "\",\"user\":\"" DP_USER "\"}"), 200);
	cr_assert_eq(dfx_admin("POST", "/_admin/tokens",
			   "{\"token\":\"" NEW_TOKEN "\",\"user\":\"" DP_USER "\"}"), 200);

	const char *clis[] = { "claude", "my-claude", NULL };
	cr_assert_eq(dp_init(&D, OLD_TOKEN, clis, NULL), 0);
	D.nondumpable = true; /* as shipped, whoever runs the test */
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("nobody");
		if (pw == NULL)
			cr_skip_test("running as root and there is no user nobody to run the daemon as");
		if (!can_exec_as(pw->pw_uid, pw->pw_gid, MULTICAD_BIN))
			cr_skip_test("nobody cannot reach %s (a checkout under a 0700 directory, "
				     "such as mktemp -d): the daemon cannot run unprivileged", MULTICAD_BIN);
		cr_assert_eq(dp_run_as(&D, pw->pw_uid, pw->pw_gid), 0);
	}
	LIST = dfx_ws_list(1, 2);
	write_config();
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 2, READY_MS);
	dfx_wait_ws_ready(2, 1, READY_MS);
}

/* A reload; waits for its result in the log. */
static void reload(void)
{
	int before = dp_log_count(&D, "configuration reloaded", NULL, NULL, NULL);
	write_config();
	cr_assert_eq(dp_signal(&D, SIGHUP), 0);
	cr_assert(DP_WAIT(dp_log_count(&D, "configuration reloaded", NULL, NULL, NULL) > before,
			  10000), "the reload did not finish");
}

/* Kills workspace 2's worker with its DEREG held for 4 s by the emulator,
 * and looks at the tree while the cleanup helper is alive. */
static struct scan crash_with_helper_alive(void)
{
	cr_assert_eq(fp_fault(&FP, "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/deregister\","
				   "\"delay_ms\":4000,\"count\":1}"), 200);
	pid_t w2 = dp_worker_pid(&D, WS[2]);
	cr_assert_neq(w2, 0);
	cr_assert_eq(kill(w2, SIGKILL), 0);
	cr_assert(DP_WAIT(dp_count_children_titled(&D, "multicad: cleanup ") >= 1, 5000),
		  "no cleanup helper for the killed worker");
	struct scan s = scan_tree();
	cr_expect_geq(s.helpers, 1, "the helper was gone before it was looked at");
	dfx_wait_ws_ready(2, 1, READY_MS);
	return s;
}

/* Rewrites the token file with the new token; the old one is then revoked
 * at the emulator, and beats must go on being accepted (the workers use the
 * new one). */
static void rotate(void)
{
	int before = dp_log_count(&D, "token file changed; new token in use", NULL, NULL, NULL);
	cr_assert_eq(dp_write_owned(&D, D.token_path, NEW_TOKEN "\n", 0600), 0);
	cr_assert(DP_WAIT(dp_log_count(&D, "token file changed; new token in use", NULL, NULL,
				       NULL) > before, 5000),
		  "the supervisor did not pick up the rewritten token file");
	cr_assert(DP_WAIT(dp_log_count(&D, "token updated", NULL, NULL, NULL) >= 2, 5000),
		  "the workers did not get the new token");
	cr_assert_eq(dfx_admin("DELETE", "/_admin/tokens/" OLD_TOKEN, NULL), 200);
	long seq = dp_journal_last_seq(&FP);
	for (int i = 1; i <= 2; i++) {
		char rt[DP_ID_LEN + 1];
		cr_assert(dp_runtime_id(&FP, WS[i], "claude", NULL, rt));
		cr_assert(DP_WAIT(dp_journal_match(&FP, seq, "POST", "/api/daemon/heartbeat", rt,
						   200) >= 2, 8000),
			  "workspace %d does not beat with the new token", i);
	}
}

Test(secrets, token_is_in_no_log_argv_environ_or_title_and_no_process_is_dumpable)
{
	start_all();
	struct scan s = scan_tree();
	cr_expect_geq(s.workers, 2);
	expect_clean(&s, "running");

	reload();
	s = scan_tree();
	expect_clean(&s, "after a reload");

	s = crash_with_helper_alive();
	expect_clean(&s, "worker crash, cleanup helper running");

	rotate();
	s = scan_tree();
	cr_expect_geq(s.workers, 2);
	expect_clean(&s, "after the token rotation");

	cr_expect(dp_stop(&D, 10000), "the daemon did not stop cleanly");
	char found[512];
	scan_log(found, sizeof found);
	cr_expect_str_empty(found, "%s", found);
	cr_expect_gt(dp_log_count(&D, "token updated", NULL, NULL, NULL), 0);
	state_leak[0] = '\0';
	state_files = 0;
	cr_assert_eq(nftw(D.state_dir, look_state_entry, 16, FTW_PHYS), 0);
	cr_expect_gt(state_files, 0, "state_dir is empty");
	cr_expect_str_empty(state_leak, "%s", state_leak);
}

/* ---- the HTTP client offers HTTP/1.1 only ---- */

/* A listener that takes one connection, reads the TLS ClientHello record
 * and never answers. */
struct hello_srv {
	int lfd;
	int port;
	pthread_t thread;
	unsigned char buf[16384];
	size_t len;
};

static void *hello_main(void *arg)
{
	struct hello_srv *h = arg;
	struct pollfd p = { .fd = h->lfd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		return NULL;
	int fd = accept(h->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	/* The record header says how long the ClientHello is. */
	while (h->len < sizeof h->buf) {
		size_t want = h->len >= 5 ? 5 + ((size_t)h->buf[3] << 8 | h->buf[4]) : 5;
		if (h->len >= want)
			break;
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			break;
		ssize_t r = read(fd, h->buf + h->len, sizeof h->buf - h->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		h->len += (size_t)r;
	}
	close(fd);
	return NULL;
}

/* The protocols of the ALPN extension of a ClientHello record, comma-
 * separated, into out; -1 when it is not a ClientHello or has none. */
static int alpn_offer(const unsigned char *b, size_t n, char *out, size_t out_size)
{
	size_t i = 5 + 4 + 2 + 32; /* record header, handshake header, version, random */
	if (n < i + 1 || b[0] != 0x16 || b[5] != 0x01)
		return -1;
	i += 1 + b[i];                                   /* session id */
	if (i + 2 > n)
		return -1;
	i += 2 + ((size_t)b[i] << 8 | b[i + 1]);         /* cipher suites */
	if (i + 1 > n)
		return -1;
	i += 1 + b[i];                                   /* compression methods */
	if (i + 2 > n)
		return -1;
	size_t end = i + 2 + ((size_t)b[i] << 8 | b[i + 1]);
	i += 2;
	if (end > n)
		return -1;
	while (i + 4 <= end) {
		unsigned type = (unsigned)b[i] << 8 | b[i + 1];
		size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
		i += 4;
		if (i + len > end)
			return -1;
		if (type == 16) { /* application_layer_protocol_negotiation */
			out[0] = '\0';
			size_t k = i + 2, used = 0;
			while (k < i + len) {
				size_t plen = b[k++];
				if (k + plen > i + len)
					return -1;
				if (used + plen + 2 > out_size)
					return -1;
				used += (size_t)snprintf(out + used, out_size - used, "%s%.*s",
							 used ? "," : "", (int)plen, (const char *)b + k);
				k += plen;
			}
			return 0;
		}
		i += len;
	}
	return -1;
}

Test(secrets, https_client_offers_only_http1_so_no_http2_library_copies_the_token)
{
	static struct hello_srv h;
	memset(&h, 0, sizeof h);
	h.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h.lfd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	cr_assert_eq(bind(h.lfd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(h.lfd, 4), 0);
	cr_assert_eq(getsockname(h.lfd, (struct sockaddr *)&a, &alen), 0);
	h.port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&h.thread, NULL, hello_main, &h), 0);

	/* The worker's client, as a worker builds it; no proxy in the way. */
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	cr_assert_eq(mc_api_global_init(), 0);
	struct mc_secret *tok = mc_secret_new(OLD_TOKEN, strlen(OLD_TOKEN));
	cr_assert_not_null(tok);
	char url[64];
	snprintf(url, sizeof url, "https://127.0.0.1:%d", h.port);
	struct mc_api_config ac = { .server_url = url, .token = tok,
				    .client_version = "multicad/test", .timeout_ms = 2000 };
	struct mc_api *api = mc_api_new(&ac);
	mc_secret_free(tok);
	cr_assert_not_null(api);
	struct mc_call *call = mc_call_list_workspaces(api);
	cr_assert_not_null(call);
	cr_expect_neq(mc_call_perform(call), 0, "a listener that never answers answered");
	mc_call_free(call);
	mc_api_free(api);
	mc_api_global_cleanup();
	pthread_join(h.thread, NULL);
	close(h.lfd);

	char offer[256];
	cr_assert_eq(alpn_offer(h.buf, h.len, offer, sizeof offer), 0,
		     "no ClientHello with ALPN arrived (%zu bytes)", h.len);
	cr_expect_str_eq(offer, "http/1.1", "the client offers %s", offer);
}
