/* Test support: one agent CLI as a child process, the way multicad runs
 * one: fork/exec (no shell), its own session and process group (setsid),
 * stdin/stdout/stderr on pipes, output read as JSON lines with timeouts;
 * plus /proc queries to check that nothing of it is left.
 *
 * Error convention: 0 / -1 (with a line on stderr) for int functions,
 * NULL for "nothing (yet)" from the readers. Parent side only. */
#ifndef MC_TEST_REAL_CLI_PROC_H
#define MC_TEST_REAL_CLI_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

struct rc_buf {
	char *data;             /* malloc'd, NUL-terminated */
	size_t len, cap;
};

struct rc_proc {
	pid_t pid;              /* also its process group and session; 0: none */
	int in_fd;              /* its stdin; -1 once closed */
	int out_fd, err_fd;     /* its stdout / stderr; -1 at EOF */
	struct rc_buf out, err; /* everything it printed so far */
	size_t out_pos;         /* start of the next unread stdout line */
	bool reaped;
	int status;             /* waitpid status once reaped */
};

/* Starts argv[0] (a path) with envp, in cwd, in a new session. Ignores
 * SIGPIPE in the caller (a CLI that died must not kill the test). */
int rc_proc_spawn(struct rc_proc *p, const char *const *argv, char *const *envp,
		  const char *cwd);
/* Writes s and a newline to its stdin. */
int rc_proc_send(struct rc_proc *p, const char *s);
/* Writes the JSON text of obj as one line (obj stays the caller's). */
int rc_proc_send_json(struct rc_proc *p, const cJSON *obj);
void rc_proc_close_stdin(struct rc_proc *p);
/* The next stdout line that is a JSON object, waiting up to timeout_ms
 * (other lines are skipped). Allocates: the caller cJSON_Delete()s it.
 * NULL on timeout or at EOF. */
cJSON *rc_proc_next_json(struct rc_proc *p, int timeout_ms);
/* Reads its output until it exits, up to timeout_ms. 0 once reaped, -1 on
 * timeout (it keeps running). */
int rc_proc_wait(struct rc_proc *p, int timeout_ms);
/* SIGKILL to its process group, reap it, close the pipes, free the
 * buffers; safe to repeat and on a never-started rc_proc (zeroed). */
void rc_proc_free(struct rc_proc *p);
/* Exit code once reaped (-1: killed by a signal or not reaped). */
int rc_proc_exit_code(const struct rc_proc *p);

/* ---- /proc ---- */

struct rc_pidinfo {
	pid_t pid, ppid, pgid, sid;
	unsigned long long start;  /* start time: tells a reused pid apart */
	char comm[32];
};

/* root and every process below it (by parent links, at this moment),
 * root first; at most max. Returns how many. */
size_t rc_tree(pid_t root, struct rc_pidinfo *out, size_t max);
/* The process is still there (same pid and start time, not a zombie). */
bool rc_pidinfo_alive(const struct rc_pidinfo *pi);
/* Live (non-zombie) processes whose session or process group is id. */
int rc_count_in_session(pid_t id);
/* Waits up to timeout_ms until none of pis[0..n) is alive; true then. */
bool rc_wait_gone(const struct rc_pidinfo *pis, size_t n, int timeout_ms);

#endif
