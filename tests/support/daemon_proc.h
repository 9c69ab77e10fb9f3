/* Test support: the whole daemon (build's multicad) as a child process of a
 * Criterion test, against multica-fakeplane (fakeplane_proc.h).
 *
 * dp_init makes a mkdtemp dir holding the config, a token file (mode 0600),
 * a fake-CLI dir (scripts printing a version, put first on the daemon's
 * PATH), the state_dir and the daemon's log (its stderr, appended across
 * restarts, so tests can grep it). dp_start runs MULTICAD_BIN -c CONF in its
 * own process group (pgid = the supervisor's pid) with PDEATHSIG SIGKILL, so
 * the daemon cannot outlive a crashed test; the test process becomes a
 * child subreaper, so workers orphaned by a killed supervisor come back to
 * it and dp_stop/dp_free can kill and reap them by pid.
 *
 * Parent side only: never call any of this from a forked child.
 * Error convention: -1 (or NULL, or false) on failure with a line on stderr. */
#ifndef MC_TEST_DAEMON_PROC_H
#define MC_TEST_DAEMON_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/support/fakeplane_proc.h"

#define DP_ID_LEN 36
#define DP_TOKEN "mul_sv_test_token"
#define DP_USER "u1"

/* What goes into the config file. NULL strings take the defaults below. */
struct dp_config {
	const char *server_url;               /* required */
	const char *workspaces;               /* the value of workspaces = (required) */
	const char *heartbeat_interval;       /* 500ms */
	const char *profile_sync_interval;    /* 1s */
	const char *worker_ping_interval;     /* 200ms */
	const char *worker_liveness_timeout;  /* 1s */
	const char *restart_backoff_min;      /* 100ms */
	const char *restart_backoff_max;      /* 2s */
	const char *stop_timeout;             /* 3s */
	const char *http_timeout;             /* 2s */
	const char *daemon_extra;             /* more [daemon] lines (with '\n'), or NULL */
	const char *providers;                /* [providers] body; NULL: "claude = claude\n" */
	const char *tail;                     /* appended last ([workspace ...] sections) */
	const char *daemon_id;                /* host-1 */
	const char *agent_api_listen;         /* 127.0.0.1:0 (suites run daemons in parallel) */
};

struct dp {
	pid_t pid;                  /* the supervisor of the last dp_start; 0: none yet */
	pid_t pgid;                 /* its process group (== pid) */
	bool running;               /* started and not reaped */
	int status;                 /* waitpid status once reaped */
	char dir[256];
	char conf_path[300];
	char log_path[300];
	char token_path[300];
	char state_dir[300];
	char cli_dir[300];
	char sock_path[300];
	char path_env[400];
	/* How dp_start runs the daemon; NULL: the default. Set after dp_init
	 * (test_titles: long paths, short argv, a large environment). */
	const char *exec_path;          /* the file executed (MULTICAD_BIN) */
	const char *argv0;              /* argv[0] (exec_path) */
	const char *conf_arg;           /* the -c argument (conf_path) */
	const char *const *extra_env;   /* more "NAME=value" (NULL-terminated) */
	/* The uid and gid dp_start runs the daemon as (set by dp_run_as);
	 * 0: the test's own. */
	uid_t run_uid;
	gid_t run_gid;
	/* A test that is not root cannot read a non-dumpable daemon's
	 * /proc/PID/fd: dp_start then keeps it dumpable (MC_TEST_DUMPABLE=1,
	 * test builds only) unless this is set (test_secrets). */
	bool nondumpable;
};

/* ---- time ---- */
int64_t dp_now_ms(void);            /* CLOCK_MONOTONIC */
int64_t dp_wall_ms(void);           /* CLOCK_REALTIME (the emulator's journal clock) */
void dp_sleep_ms(long ms);

/* Polls cond (an expression) every 25 ms until it holds or timeout_ms pass;
 * evaluates to its last value. gnu11 statement expression. */
#define DP_WAIT(cond, timeout_ms)                                              \
	({                                                                     \
		int64_t dp_until_ = dp_now_ms() + (timeout_ms);                \
		bool dp_ok_;                                                   \
		while (!(dp_ok_ = (cond)) && dp_now_ms() < dp_until_)          \
			dp_sleep_ms(25);                                       \
		dp_ok_;                                                        \
	})

/* ---- the daemon ---- */

/* Temp dir, token file (token; NULL: DP_TOKEN), fake CLIs (clis, NULL-
 * terminated; NULL: {"claude"}) printing version. 0 or -1. */
int dp_init(struct dp *d, const char *token, const char *const *clis, const char *version);
/* Adds one more fake CLI to the dir on the daemon's PATH. */
int dp_add_cli(struct dp *d, const char *name, const char *version);
/* Writes the config file (atomically: tmp + rename). 0 or -1. */
int dp_write_config(struct dp *d, const struct dp_config *c);
/* Writes raw text as the config file. */
int dp_write_config_text(struct dp *d, const char *text);
/* The text dp_write_config would write (malloc'd). */
char *dp_config_text(const struct dp *d, const struct dp_config *c);
/* Starts the supervisor with the current config file. 0 or -1. */
int dp_start(struct dp *d);
/* Writes c and sends SIGHUP. */
int dp_reload(struct dp *d, const struct dp_config *c);
/* kill(2) to the supervisor. */
int dp_signal(struct dp *d, int sig);
/* True while the supervisor has not exited (reaps it when it has). */
bool dp_alive(struct dp *d);
/* Waits up to timeout_ms for the supervisor to exit; true when it did
 * (d->status holds the waitpid status). */
bool dp_wait_exit(struct dp *d, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL; then kills and reaps every
 * process left in the daemon's process group. Returns true when the
 * supervisor exited by itself in time. */
bool dp_stop(struct dp *d, int timeout_ms);
/* SIGKILL to the supervisor and every process of its group at once (a
 * host crash), then reaps what is ours. Rows stay online on the server. */
void dp_kill_all(struct dp *d);
/* Kills and reaps whatever is left of the daemon's process group (and the
 * supervisor). Safe to call at any time, several times. */
void dp_kill_leftovers(struct dp *d);
/* dp_kill_leftovers, prints the daemon log's tail (and any sanitizer report
 * in it) to stderr, removes the temp dir. Safe on a zeroed or failed dp. */
void dp_free(struct dp *d);

/* ---- processes ---- */

/* The supervisor's direct children (zombies included). Returns the count
 * (at most max stored). */
size_t dp_children(const struct dp *d, pid_t *out, size_t max);
/* The live child titled "multicad: worker <ws>", or 0. */
pid_t dp_worker_pid(const struct dp *d, const char *ws);
/* Children whose title starts with prefix ("multicad: worker ", "multicad: cleanup"). */
size_t dp_count_children_titled(const struct dp *d, const char *prefix);
/* Children in state Z. */
size_t dp_count_zombies(const struct dp *d);
/* Processes (other than zombies) in the daemon's process group, the
 * supervisor included; at most max stored in out (out may be NULL). */
size_t dp_group_pids(const struct dp *d, pid_t *out, size_t max);
/* Entries of /proc/PID/fd, or -1. */
int dp_fd_count(pid_t pid);
/* "FD=target FD=target ..." of /proc/PID/fd (malloc'd), or NULL. */
char *dp_fd_list(pid_t pid);
/* The process's title (cmdline, NULs as spaces, trimmed) into buf; -1 if gone. */
int dp_proc_title(pid_t pid, char *buf, size_t n);
/* The parent's pid from /proc/PID/stat, or -1 when gone. */
pid_t dp_proc_ppid(pid_t pid);
/* State letter from /proc/PID/stat ('R', 'S', 'T', 'Z', ...), or 0 when gone. */
char dp_proc_state(pid_t pid);
/* Exists and is not a zombie. */
bool dp_pid_alive(pid_t pid);

/* ---- the log ---- */

char *dp_log_read(const struct dp *d);              /* malloc'd; "" when empty */
/* Lines containing every one of the non-NULL needles (up to 4). */
int dp_log_count(const struct dp *d, const char *a, const char *b, const char *c,
		 const char *e);
bool dp_log_has(const struct dp *d, const char *a, const char *b, const char *c,
		const char *e);

/* ---- the ledger on disk ---- */

/* The ids in <state_dir>/ledger/<ws> (-1 when no file: an empty set). */
int dp_ledger_ids(const struct dp *d, const char *ws, char (*ids)[DP_ID_LEN + 1], int max);

/* ---- the daemon as another user (the test runs as root) ----
 * A test that must look at the daemon from outside as another local user
 * would (test_secrets: a non-dumpable process's /proc/PID files are owned
 * by root) runs it as an unprivileged uid. */

/* Makes dp_start run the daemon as uid:gid (no supplementary groups) and
 * gives the temp dir and everything in it to them, so the daemon can read
 * its config and token and write its state_dir. Root only. 0 or -1. */
int dp_run_as(struct dp *d, uid_t uid, gid_t gid);
/* Writes path atomically (tmp + rename) with mode, owned by run_uid:run_gid
 * when they are set: the new file is the daemon's the moment it appears
 * (a rewritten token file must never be briefly root's). 0 or -1. */
int dp_write_owned(const struct dp *d, const char *path, const char *text, mode_t mode);

/* ---- the token file and the control socket ---- */

/* Rewrites the token file (tmp + rename: a new inode) with mode. */
int dp_write_token(struct dp *d, const char *token, mode_t mode);
/* One control-socket request (a JSON line, no newline) and its reply
 * (malloc'd into *reply, caller frees), within timeout_ms. 0 or -1 (the
 * daemon did not answer in time, or the socket is gone). */
int dp_control(const struct dp *d, const char *request, char **reply, int timeout_ms);

/* ---- scenario data ---- */

/* Workspace number i (1-based): "5e000000-0000-4000-8000-<i as 12 digits>". */
void dp_ws_id(int i, char out[DP_ID_LEN + 1]);
/* Ids of workspaces first..last as a workspaces = value: space-separated,
 * four a line, on indented continuation lines (malloc'd). */
char *dp_ws_list(int first, int last);
/* A seed: DP_TOKEN -> DP_USER, workspaces 1..n_ws with DP_USER a member,
 * then extra_ws (JSON objects, comma-separated, no brackets; may be NULL),
 * profiles (a JSON array; NULL: []). malloc'd. */
char *dp_seed(int n_ws, const char *extra_ws, const char *profiles);

/* ---- the emulator's view ---- */

struct dp_rt {
	char id[DP_ID_LEN + 1];
	char ws[DP_ID_LEN + 1];
	char provider[32];
	char profile_id[DP_ID_LEN + 1];    /* "" for a built-in */
	bool online;
	int64_t last_seen_ms;              /* wall clock ms, 0 if none */
};

/* Runtime rows of ws (NULL: all); online_only filters. Returns the number of
 * rows (at most max stored), or -1 when the state cannot be read. */
int dp_runtimes(const struct fp_proc *fp, const char *ws, bool online_only, struct dp_rt *out,
		int max);
/* Online rows of ws (NULL: all), or -1. */
int dp_count_online(const struct fp_proc *fp, const char *ws);
/* The row id (first found) of ws with the given provider and profile
 * (NULL profile: a built-in); false when none. */
bool dp_runtime_id(const struct fp_proc *fp, const char *ws, const char *provider,
		   const char *profile_id, char out[DP_ID_LEN + 1]);
/* "online", "offline" or NULL (no row) for id: true when it is `status`. */
bool dp_runtime_is(const struct fp_proc *fp, const char *id, const char *status);

struct dp_req {
	long seq;
	int64_t time_ms;        /* wall clock ms */
	char method[8];
	char path[256];
	char *body;             /* "" when none */
	long status;
};

struct dp_journal {
	struct dp_req *v;
	size_t n;
};

int dp_journal_load(const struct fp_proc *fp, struct dp_journal *j);
void dp_journal_free(struct dp_journal *j);
/* Highest seq so far (0 when empty), or -1. */
long dp_journal_last_seq(const struct fp_proc *fp);
/* Requests with seq > after_seq, method and path prefix (NULL: any), body
 * containing body_has (NULL: any), status (0: any). */
int dp_j_count(const struct dp_journal *j, long after_seq, const char *method,
	       const char *path_prefix, const char *body_has, long status);
/* The same, loading the journal. -1 on error. */
int dp_journal_match(const struct fp_proc *fp, long after_seq, const char *method,
		     const char *path_prefix, const char *body_has, long status);
/* The largest gap (ms) between consecutive heartbeats of runtime id with
 * time in [from_ms, to_ms], counting the edges from_ms and to_ms as beats;
 * *n_beats gets the number of beats in the window. */
int64_t dp_j_heartbeat_gap(const struct dp_journal *j, const char *id, int64_t from_ms,
			   int64_t to_ms, int *n_beats);

#endif
