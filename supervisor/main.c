/* multicad: the supervisor. Parses the command line, loads and checks the
 * configuration, takes the state_dir lock, initialises the libraries the
 * forked workers will share, and runs the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/libutil.h>
#include <bsd/string.h>

#include "supervisor/agentapi_proc.h"
#include "common/api.h"
#include "common/log.h"
#include "common/proctitle.h"
#include "supervisor/agent_ids.h"
#include "supervisor/forkserver.h"
#include "worker/backend.h"
#include "supervisor/notify.h"
#include "supervisor/sv.h"

#define EXIT_RUNTIME 1
#define EXIT_CONFIG  78

struct options {
	const char *config;
	bool check;
	bool debug;
	bool version;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: multicad [-c FILE] [-d]      run in the foreground\n"
		"       multicad -t [-c FILE] [-d]   check the configuration (-d: print it)\n"
		"       multicad -V, --version       print the version\n"
		"       multicad -h, --help          print this help\n"
		"Default FILE: %s. Signals: HUP reloads, TERM/INT stop.\n",
		MC_CONFIG_DEFAULT_PATH);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){ .config = MC_CONFIG_DEFAULT_PATH };
	int c;
	while ((c = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 't': o->check = true; break;
		case 'd': o->debug = true; break;
		case 'V': o->version = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "multicad: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* [providers] entries of a family without a task backend are valid but
 * never registered (worker/payload.c): say which. */
static void warn_unrunnable_providers(const struct mc_config *c, const char *file)
{
	for (size_t i = 0; i < c->n_providers; i++)
		if (mc_backend_find(c->providers[i].key) == NULL)
			fprintf(stderr, "multicad: %s: [providers] %s: multicad has no task backend for "
				"this family (it runs claude and codex): it will never register\n",
				file, c->providers[i].key);
}

/* -t: the agents' identity as the daemon would decide it when started by
 * this user (systemd gives it CAP_SETUID/CAP_SETGID; a shell may not):
 * an error, or the fallback said as a warning (still valid). */
static int check_agents(const struct mc_config *c, const char *file)
{
	char err[512];
	struct mc_agent_ids *a = mc_agent_ids_new(NULL, err, sizeof err);
	int rc = a == NULL ? -1 : mc_agent_ids_configure(a, c, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", file, err);
	else if (mc_agent_ids_fallback_reason(a) != NULL)
		fprintf(stderr, "multicad: warning: %s (%s)\n", MC_IDENTITY_FALLBACK_WARNING,
			mc_agent_ids_fallback_reason(a));
	mc_agent_ids_free(a);
	return rc;
}

/* -t: the whole configuration checked, as a reload would, and every
 * problem reported on its own line ("FILE:LINE: KEY: problem"). */
static int check_config(const struct options *o)
{
	struct mc_config c;
	struct mc_config_problems pr;
	int rc = 0;
	if (mc_config_check(o->config, &c, &pr) < 0) {
		mc_config_problems_print(&pr, o->config, stderr);
		size_t n = pr.n + pr.dropped;
		fprintf(stderr, "multicad: configuration %s is not valid (%zu problem%s)\n", o->config,
			n, n == 1 ? "" : "s");
		rc = 1;
	} else if (check_agents(&c, o->config) < 0) {
		fprintf(stderr, "multicad: configuration %s is not valid (1 problem)\n", o->config);
		rc = 1;
	} else {
		if (o->debug)
			mc_config_print(&c, stdout);
		warn_unrunnable_providers(&c, o->config);
		fprintf(stderr, "multicad: configuration %s is valid\n", o->config);
	}
	mc_config_problems_free(&pr);
	mc_config_free(&c);
	return rc;
}

static int setup_signals(struct mc_sv *sv)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	sv->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sv->sigfd < 0)
		return -1;
	sv->sig_src = (struct mc_src){ SRC_SIGNAL, sv };
	return mc_sv_epoll_add(sv, sv->sigfd, EPOLLIN, &sv->sig_src);
}

static int sv_init(struct mc_sv *sv, const struct options *o, char *err, size_t n)
{
	memset(sv, 0, sizeof *sv);
	sv->epfd = sv->sigfd = sv->ctl_fd = sv->gen_fd = -1;
	sv->pid = getpid();
	sv->started_at = mc_now_ms();
	sv->last_reload_ok = true;
	/* Absolute, so status and reloads name the file whatever the cwd. */
	char *abs = realpath(o->config, NULL);
	strlcpy(sv->config_path, abs ? abs : o->config, sizeof sv->config_path);
	free(abs);
	mc_timerq_init(&sv->timers);
	RB_INIT(&sv->workers);
	mc_timer_init(&sv->probe_timer, TIMER_PROBES, sv);
	mc_timer_init(&sv->membership_timer, TIMER_MEMBERSHIP, sv);
	mc_timer_init(&sv->shutdown_timer, TIMER_SHUTDOWN, sv);
	mc_timer_init(&sv->drain_timer, TIMER_DRAIN, sv);
	mc_push_init(sv);
	mc_reaper_init(sv); /* logged when it fails; not fatal */
	if (mc_config_load(sv->config_path, &sv->cfg, err, n) < 0)
		return -1;
	if (mc_sv_tasks_init(&sv->tasks, sv->cfg.max_concurrent_tasks) < 0) {
		snprintf(err, n, "task table: %s", strerror(errno));
		return -1;
	}
	if (o->debug)
		sv->cfg.log_level = MC_LOG_DEBUG;
	mc_log_set_level(sv->cfg.log_level);
	mc_backoff_init(&sv->membership_backoff, 1000, sv->cfg.workspace_sync_interval_ms);
	return 0;
}

/* The daemon id (possibly creating its file) and the token: after the
 * state_dir lock, so a second instance creates nothing. */
static int sv_load_identity(struct mc_sv *sv, char *err, size_t n)
{
	if (mc_config_resolve_daemon_id(&sv->cfg, err, n) < 0)
		return -1;
	sv->token = mc_secret_from_file(sv->cfg.token_file, err, n);
	return sv->token == NULL ? -1 : 0;
}

/* The state_dir lock (<state_dir>/multicad.pid, flock'ed and holding our
 * pid): taken before anything in state_dir is read or written, so that a
 * second multicad started by mistake touches nothing of the running one's
 * (its ledger load would remove the in-flight *.tmp files). */
static struct pidfh *take_lock(const struct mc_sv *sv)
{
	char path[MC_PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/multicad.pid", sv->cfg.state_dir);
	if (mkdir(sv->cfg.state_dir, 0700) < 0 && errno != EEXIST) {
		mc_log(MC_LOG_ERROR, "cannot create the state_dir", "state_dir", sv->cfg.state_dir,
		       "error", strerror(errno), NULL);
		return NULL;
	}
	pid_t other = 0;
	struct pidfh *pf = pidfile_open(path, 0600, &other);
	if (pf == NULL) {
		if (errno == EEXIST)
			mc_log(MC_LOG_ERROR, "another multicad holds the state_dir lock; exiting",
			       "lock", path, "pid", MC_LOG_NUM(other), NULL);
		else
			mc_log(MC_LOG_ERROR, "cannot take the state_dir lock", "lock", path,
			       "error", strerror(errno), NULL);
		return NULL;
	}
	pidfile_write(pf);
	return pf;
}

#define GENERATION_WAIT_MS 8000  /* a worker's stop budget is 5 s */

/* Workers hold state_dir/workers.lock shared until they exit. A new
 * supervisor (the old one was killed) waits for the exclusive lock, so the
 * old workers' final DEREG cannot land after its workers registered the
 * same ids (the server upserts). Then it holds the lock shared itself. */
static int take_generation_lock(const struct mc_sv *sv)
{
	char path[MC_PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/workers.lock", sv->cfg.state_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		mc_log(MC_LOG_ERROR, "cannot open the workers lock", "path", path,
		       "error", strerror(errno), NULL);
		return -1;
	}
	mc_ms_t until = mc_now_ms() + GENERATION_WAIT_MS;
	bool logged = false;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (!logged)
			mc_log(MC_LOG_INFO, "waiting for the previous run's workers to exit", NULL);
		logged = true;
		if (mc_now_ms() >= until) {
			mc_log(MC_LOG_WARN, "previous workers still running; starting anyway", NULL);
			break;
		}
		usleep(20000);
	}
	flock(fd, LOCK_SH);
	return fd;
}

static void sv_free(struct mc_sv *sv)
{
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp)
		mc_wk_free(sv, wk);
	mc_wk_reap_graveyard(sv);
	mc_helper_kill_all(sv);
	mc_link_proc_free(sv);
	mc_aapi_free(sv);
	mc_fs_stop(sv);
	mc_reaper_free(sv);
	mc_sv_tasks_free(&sv->tasks);
	mc_control_close(sv);
	mc_probes_free(sv);
	mc_timerq_free(&sv->timers);
	mc_ledger_free(sv->ledger);
	mc_sv_agents_free(sv);
	mc_secret_free(sv->token);
	mc_config_free(&sv->cfg);
	free(sv->members);
	if (sv->sigfd >= 0)
		close(sv->sigfd);
	if (sv->epfd >= 0)
		close(sv->epfd);
	if (sv->gen_fd >= 0)
		close(sv->gen_fd);
}

/* One fd per worker socket and pidfd, plus helpers: lift the soft limit to
 * the hard one so a thousand workspaces fit outside systemd too. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			mc_log(MC_LOG_WARN, "cannot raise the open-file limit", "error",
			       strerror(errno), NULL);
	}
}

static int run(const struct options *o)
{
	static struct mc_sv sv; /* large (the configuration); one per process */
	char err[512];
	mc_log_set_context("supervisor", NULL);
	raise_fd_limit();
	/* The libraries, then the fork server, before anything per-workspace
	 * exists here (configuration, ledger, token): what a worker inherits
	 * from it is the same whatever the fleet and the start order. */
	if (mc_api_global_init() < 0) {
		mc_log(MC_LOG_ERROR, "initialisation failed", "error", strerror(errno), NULL);
		return EXIT_RUNTIME;
	}
	mc_fs_start();
	if (sv_init(&sv, o, err, sizeof err) < 0) {
		mc_log(MC_LOG_ERROR, "cannot start", "error", err, NULL);
		sv_free(&sv);
		mc_api_global_cleanup();
		return EXIT_CONFIG;
	}
	int rc = EXIT_RUNTIME;
	struct pidfh *lock = take_lock(&sv);
	if (lock == NULL)
		goto out;
	if (sv_load_identity(&sv, err, sizeof err) < 0 ||
	    mc_sv_agents_start(&sv, err, sizeof err) < 0) {
		mc_log(MC_LOG_ERROR, "cannot start", "error", err, NULL);
		rc = EXIT_CONFIG;
		goto out;
	}
	if ((sv.ledger = mc_ledger_open(sv.cfg.state_dir, err, sizeof err)) == NULL) {
		mc_log(MC_LOG_ERROR, "cannot open the ledger", "error", err, NULL);
		goto out;
	}
	if ((sv.gen_fd = take_generation_lock(&sv)) < 0)
		goto out;
	if ((sv.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || setup_signals(&sv) < 0) {
		mc_log(MC_LOG_ERROR, "initialisation failed", "error", strerror(errno), NULL);
		goto out;
	}
	mc_fs_watch(&sv);
	if (mc_control_open(&sv, err, sizeof err) < 0) {
		mc_log(MC_LOG_ERROR, "cannot open the control socket", "error", err, NULL);
		goto out;
	}
	if (mc_aapi_listen(&sv, err, sizeof err) < 0) { /* before any workspace starts */
		mc_log(MC_LOG_ERROR, err, NULL);
		goto out;
	}
	mc_notify_init(&sv);
	mc_proctitle_set("multicad", "multicad: supervisor");
	mc_log(MC_LOG_INFO, "starting", "version", MC_VERSION, "config", sv.config_path,
	       "daemon_id", sv.cfg.daemon_id, NULL);
	mc_probes_start_round(&sv);
	if (sv.cfg.all_workspaces)
		mc_membership_on_timer(&sv);
	mc_sv_apply_wanted(&sv);
	rc = mc_sv_run(&sv) == 0 ? 0 : EXIT_RUNTIME;
out:
	sv_free(&sv);
	if (lock != NULL)
		pidfile_remove(lock);
	mc_api_global_cleanup();
	return rc;
}

int main(int argc, char *argv[], char *envp[])
{
	/* No core dump, no same-uid ptrace or /proc/PID/mem: before the token
	 * is read (-t reads it too); every worker and helper inherits it. */
	mc_secret_forbid_dumps();
	mc_proctitle_init(argc, argv, envp); /* before any use of argv or environ: they move */
	if (argc == 2 && strcmp(argv[1], MC_FS_EXEC_ARG) == 0)
		mc_fs_exec_main(); /* a restarted fork server (supervisor/forkserver.c) */
	struct options o;
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (o.version) {
		printf("multicad %s\n", MC_VERSION);
		return 0;
	}
	if (o.check)
		return check_config(&o);
	return run(&o);
}
