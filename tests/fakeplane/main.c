/* multica-fakeplane: a control-plane emulator for multicad's tests, demo and
 * benchmarks (INTERFACE.md "multica-fakeplane"; protocol section 9).
 *
 * main: flags, seed, start the server and the sweeper, print the listening
 * line, then wait for SIGTERM/SIGINT (signalfd) and take everything down.
 * With --exit-on-stdin-eof, the end of stdin stops it too, so that a test
 * harness that dies without cleaning up does not leave an emulator behind.
 * Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or seed file. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/log.h"
#include "tests/fakeplane/app.h"
#include "tests/fakeplane/faults.h"
#include "tests/fakeplane/http.h"
#include "tests/fakeplane/journal.h"
#include "tests/fakeplane/limits.h"
#include "tests/fakeplane/seed.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/sweep.h"
#include "tests/fakeplane/util.h"
#include "tests/fakeplane/ws.h"

#define EXIT_USAGE 2
#define PEM_MAX (1u << 20)

struct options {
	const char *listen;
	const char *seed;
	const char *tls_cert, *tls_key;
	int64_t sweep_interval_ms, stale_after_ms;
	int64_t redeliver_after_ms, prepare_lease_ms;
	int64_t ws_ping_ms, ws_pong_ms;
	long long journal_max;
	long max_conns;
	bool max_conns_given;    /* an explicit flag is refused, not shrunk, past the fd limit */
	enum mc_log_level log_level;
	bool exit_on_stdin_eof;
};

static const char usage_text[] =
	"usage: multica-fakeplane --listen HOST:PORT [--seed FILE]\n"
	"                         [--sweep-interval 30s] [--stale-after 150s]\n"
	"                         [--tls-cert FILE --tls-key FILE]\n"
	"                         [--journal-max 100000] [--log-level info]\n"
	"                         [--max-connections 16384]\n"
	"                         [--redeliver-after 90s] [--prepare-lease 45s]\n"
	"                         [--ws-ping-interval 54s] [--ws-pong-wait 60s]\n"
	"                         [--exit-on-stdin-eof]\n"
	"\n"
	"A control-plane emulator of the multica daemon API. With port 0 the first\n"
	"line on stdout is \"listening on HOST:PORT\". Durations take ms, s, m, h.\n"
	"The admin API lives under /_admin (no auth). SIGTERM/SIGINT stop it, and\n"
	"so does the end of stdin with --exit-on-stdin-eof (for test harnesses).\n"
	"--max-connections bounds the concurrent connections (more wait in the listen\n"
	"queue); the open-files limit is raised to fit it, up to the hard limit.\n"
	"A claimed task never started is claimed again once --redeliver-after has\n"
	"passed since its dispatch and its prepare lease (--prepare-lease) is over.\n"
	"GET /api/daemon/ws is the daemon websocket: a PING every --ws-ping-interval,\n"
	"a socket without a PONG for --ws-pong-wait is dropped; pushes on task\n"
	"enqueue and end, profile create/update/delete and workspace changes.\n"
	"/_admin/ws shows its connections; /_admin/ws/faults, /drop and /send\n"
	"inject faults (tests/fakeplane/ws_admin.c lists them).\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the problem and a hint; returns -1. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("multica-fakeplane: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(see multica-fakeplane --help)\n", stderr);
	va_end(ap);
	return -1;
}

static int parse_duration_flag(const char *flag, const char *arg, int64_t *out)
{
	if (fp_parse_duration_ms(arg, out) < 0)
		return usage_error("%s: bad duration \"%s\" (use ms, s, m, h)", flag, arg);
	return 0;
}

static int parse_max_conns(const char *arg, struct options *o)
{
	long long n;
	if (fp_parse_ll(arg, 1, FP_MAX_CONNECTIONS_MAX, &n) < 0)
		return usage_error("--max-connections: expected a count from 1 to %d, got \"%s\"",
				   FP_MAX_CONNECTIONS_MAX, arg);
	o->max_conns = (long)n;
	o->max_conns_given = true;
	return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error (already printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
	enum { O_SEED = 1, O_SWEEP, O_STALE, O_CERT, O_KEY, O_JMAX, O_LOG, O_STDIN, O_MAXCONN,
	       O_REDELIVER, O_LEASE, O_WS_PING, O_WS_PONG };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, O_SEED },
		{ "sweep-interval", required_argument, NULL, O_SWEEP },
		{ "stale-after", required_argument, NULL, O_STALE },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "journal-max", required_argument, NULL, O_JMAX },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "exit-on-stdin-eof", no_argument, NULL, O_STDIN },
		{ "max-connections", required_argument, NULL, O_MAXCONN },
		{ "redeliver-after", required_argument, NULL, O_REDELIVER },
		{ "prepare-lease", required_argument, NULL, O_LEASE },
		{ "ws-ping-interval", required_argument, NULL, O_WS_PING },
		{ "ws-pong-wait", required_argument, NULL, O_WS_PONG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .sweep_interval_ms = 30000, .stale_after_ms = 150000,
			       .journal_max = 100000, .log_level = MC_LOG_INFO,
			       .max_conns = FP_MAX_CONNECTIONS_DEFAULT,
			       .redeliver_after_ms = 90000, .prepare_lease_ms = 45000,
			       .ws_ping_ms = FP_WS_PING_INTERVAL_MS, .ws_pong_ms = FP_WS_PONG_WAIT_MS };
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case O_SEED: o->seed = optarg; break;
		case O_CERT: o->tls_cert = optarg; break;
		case O_KEY: o->tls_key = optarg; break;
		case O_SWEEP:
			if (parse_duration_flag("--sweep-interval", optarg, &o->sweep_interval_ms) < 0)
				return -1;
			if (o->sweep_interval_ms == 0)
				return usage_error("--sweep-interval: must be above zero");
			break;
		case O_STALE:
			if (parse_duration_flag("--stale-after", optarg, &o->stale_after_ms) < 0)
				return -1;
			break;
		case O_JMAX:
			if (fp_parse_ll(optarg, 0, 100000000, &o->journal_max) < 0)
				return usage_error("--journal-max: expected a count, got \"%s\"",
						   optarg);
			break;
		case O_LOG:
			if (mc_log_parse_level(optarg, &o->log_level) < 0)
				return usage_error("--log-level: expected debug|info|warn|error, "
						   "got \"%s\"", optarg);
			break;
		case O_STDIN: o->exit_on_stdin_eof = true; break;
		case O_REDELIVER:
			if (parse_duration_flag("--redeliver-after", optarg,
						&o->redeliver_after_ms) < 0)
				return -1;
			break;
		case O_LEASE:
			if (parse_duration_flag("--prepare-lease", optarg, &o->prepare_lease_ms) < 0)
				return -1;
			break;
		case O_WS_PING:
		case O_WS_PONG: {
			const char *flag = c == O_WS_PING ? "--ws-ping-interval" : "--ws-pong-wait";
			int64_t *v = c == O_WS_PING ? &o->ws_ping_ms : &o->ws_pong_ms;
			if (parse_duration_flag(flag, optarg, v) < 0)
				return -1;
			if (*v == 0)
				return usage_error("%s: must be above zero", flag);
			break;
		}
		case O_MAXCONN:
			if (parse_max_conns(optarg, o) < 0)
				return -1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		case ':':
			return usage_error("%s: missing value", argv[optind - 1]);
		default:
			return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (o->listen == NULL)
		return usage_error("--listen HOST:PORT is required");
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return usage_error("--tls-cert and --tls-key go together");
	return 0;
}

/* Splits "HOST:PORT" / "[V6]:PORT" and resolves it numerically. Allocates
 * *res (freeaddrinfo). host receives the printable host part. */
static int resolve_listen(const char *spec, char *host, size_t hostlen, struct addrinfo **res)
{
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0')
		return usage_error("--listen: expected HOST:PORT, got \"%s\"", spec);
	long long port;
	if (fp_parse_ll(colon + 1, 0, 65535, &port) < 0)
		return usage_error("--listen: bad port in \"%s\"", spec);
	size_t n = (size_t)(colon - spec);
	if (n >= hostlen)
		return usage_error("--listen: host too long in \"%s\"", spec);
	memcpy(host, spec, n);
	host[n] = '\0';
	char bare[256];
	strlcpy(bare, host, sizeof bare);
	if (bare[0] == '[' && n >= 2 && bare[n - 1] == ']') {
		bare[n - 1] = '\0';
		memmove(bare, bare + 1, n - 1);
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	int rc = getaddrinfo(bare, colon + 1, &hints, res);
	if (rc != 0) {
		fprintf(stderr, "multica-fakeplane: --listen %s: %s (give a numeric address)\n",
			spec, gai_strerror(rc));
		return -1;
	}
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* Allocates the contents of a PEM file, NUL-terminated. NULL on error
 * (printed). */
static char *read_pem(const char *flag, const char *file)
{
	FILE *f = fopen(file, "rbe");
	if (f == NULL) {
		fprintf(stderr, "multica-fakeplane: %s %s: %s\n", flag, file, strerror(errno));
		return NULL;
	}
	char *buf = fp_xmalloc(PEM_MAX + 1);
	size_t len = fread(buf, 1, PEM_MAX + 1, f);
	bool bad = ferror(f) || len > PEM_MAX || len == 0;
	fclose(f);
	if (bad) {
		fprintf(stderr, "multica-fakeplane: %s %s: unreadable, empty or too large\n",
			flag, file);
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* Everything main starts, so that one function can take it all down. */
struct fakeplane {
	struct fp_state *st;
	struct fp_journal *journal;
	struct fp_faults *faults;
	struct fp_app app;
	struct fp_server *server;
	struct fp_sweep *sweep;
	char *cert, *key;
	struct addrinfo *addr;
};

static void fakeplane_teardown(struct fakeplane *fp)
{
	fp_server_stop(fp->server);   /* delayed requests are dropped, not waited for */
	fp_sweep_stop(fp->sweep);
	if (fp->st != NULL)
		fp_ws_hub_free(fp->st->ws);   /* its sockets are closed by now */
	fp_faults_free(fp->faults);
	fp_journal_free(fp->journal);
	fp_state_free(fp->st);
	free(fp->cert);
	free(fp->key);
	if (fp->addr)
		freeaddrinfo(fp->addr);
}

/* Fits the open-files limit, loads the seed and TLS files. Returns 0 or an
 * exit code. */
static int fakeplane_prepare(struct fakeplane *fp, struct options *o, char *host,
			     size_t hostlen)
{
	char err[1024];
	if (resolve_listen(o->listen, host, hostlen, &fp->addr) < 0)
		return EXIT_USAGE;
	if (fp_limits_fit(&o->max_conns, o->max_conns_given, err, sizeof err) < 0) {
		fprintf(stderr, "multica-fakeplane: %s\n", err);
		return EXIT_USAGE;
	}
	fp->st = fp_state_new();
	fp->st->redeliver_after_ms = o->redeliver_after_ms;
	fp->st->lease_ms = o->prepare_lease_ms;
	fp->st->ws = fp_ws_hub_new(o->ws_ping_ms, o->ws_pong_ms);
	if (o->seed != NULL && fp_seed_load(fp->st, o->seed, err, sizeof err) < 0) {
		fprintf(stderr, "multica-fakeplane: %s\n", err);
		return EXIT_USAGE;
	}
	if (o->tls_cert != NULL) {
		fp->cert = read_pem("--tls-cert", o->tls_cert);
		fp->key = fp->cert ? read_pem("--tls-key", o->tls_key) : NULL;
		if (fp->key == NULL)
			return EXIT_USAGE;
	}
	fp->journal = fp_journal_new((size_t)o->journal_max);
	fp->faults = fp_faults_new();
	fp->app = (struct fp_app){ fp->st, fp->journal, fp->faults };
	return 0;
}

static int fakeplane_start(struct fakeplane *fp, const struct options *o)
{
	char err[256];
	struct fp_server_opts so = { fp->addr->ai_addr, fp->addr->ai_addrlen, fp->cert, fp->key,
				     (unsigned)o->max_conns, fp_listen_backlog(o->max_conns) };
	fp->server = fp_server_start(&so, &fp->app, err, sizeof err);
	if (fp->server == NULL) {
		fprintf(stderr, "multica-fakeplane: --listen %s: %s\n", o->listen, err);
		return -1;
	}
	fp->sweep = fp_sweep_start(fp->st, o->sweep_interval_ms, o->stale_after_ms);
	if (fp->sweep == NULL) {
		fprintf(stderr, "multica-fakeplane: cannot start the sweeper: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* True once stdin is at end of file or broken; data is discarded. */
static bool stdin_closed(void)
{
	char buf[512];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	return n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN);
}

/* Blocks until SIGTERM or SIGINT (or, when watch_stdin, the end of stdin).
 * Returns what stopped it, for the log. */
static const char *wait_for_stop(const sigset_t *set, bool watch_stdin)
{
	int sfd = signalfd(-1, set, SFD_CLOEXEC);
	if (sfd < 0) {
		/* No signalfd: sigwait still works, without the stdin watch. */
		int sig = 0;
		while (sigwait(set, &sig) != 0)
			;
		return sig == SIGTERM ? "TERM" : "INT";
	}
	struct pollfd pfd[2] = {
		{ .fd = sfd, .events = POLLIN },
		{ .fd = watch_stdin ? STDIN_FILENO : -1, .events = POLLIN },
	};
	const char *why = NULL;
	while (why == NULL) {
		if (poll(pfd, 2, -1) < 0)
			continue;   /* EINTR */
		struct signalfd_siginfo si;
		if ((pfd[0].revents & POLLIN) &&
		    read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
			why = si.ssi_signo == SIGTERM ? "TERM" : "INT";
		else if (pfd[1].revents != 0 && stdin_closed())
			why = "stdin closed";
	}
	close(sfd);
	return why;
}

int main(int argc, char **argv)
{
	struct options o;
	int rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? 0 : EXIT_USAGE;
	mc_log_set_context("fakeplane", NULL);
	mc_log_set_level(o.log_level);
	if (sodium_init() < 0) {
		fputs("multica-fakeplane: libsodium failed to initialise\n", stderr);
		return 1;
	}

	/* Block the stop signals before any thread exists, so that every
	 * thread inherits the mask and only the signalfd below sees them. */
	sigset_t stop_set;
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct fakeplane fp = { 0 };
	char host[256];
	rc = fakeplane_prepare(&fp, &o, host, sizeof host);
	if (rc == 0 && fakeplane_start(&fp, &o) < 0)
		rc = 1;
	if (rc != 0) {
		fakeplane_teardown(&fp);
		return rc;
	}
	if (!is_loopback(fp.addr->ai_addr))
		mc_log(MC_LOG_WARN, "listening beyond loopback: the admin API has no auth",
		       "addr", host, NULL);
	printf("listening on %s:%u\n", host, (unsigned)fp_server_port(fp.server));
	fflush(stdout);
	mc_log(MC_LOG_INFO, "listening", "addr", host, "port",
	       MC_LOG_NUM(fp_server_port(fp.server)), "max_connections", MC_LOG_NUM(o.max_conns),
	       "backlog", MC_LOG_NUM(fp_listen_backlog_effective(o.max_conns)),
	       "threads", MC_LOG_NUM(FP_POOL_THREADS), NULL);

	const char *why = wait_for_stop(&stop_set, o.exit_on_stdin_eof);
	mc_log(MC_LOG_INFO, "stopping", "cause", why, NULL);
	fakeplane_teardown(&fp);
	return 0;
}
