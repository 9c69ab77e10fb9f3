/* One agent process on the worker's event loop: spawned in its own session
 * and process group with three pipes, read and written without ever
 * blocking, and stopped as a whole group (reference section 8.1 item 8:
 * SIGTERM, grace, SIGKILL, done only when the group is empty).
 *
 * Memory: the struct (about 2.2 KiB with the stderr tail) plus the current
 * partial stdout line (bounded by MC_AGENT_LINE_MAX, freed back after a
 * big line) plus the stdin queue (bounded by MC_AGENT_STDIN_MAX). Lines are
 * handed to the caller as they complete: nothing accumulates here, so an
 * output flood costs the caller's sink, which must cap what it keeps.
 *
 * Use: spawn; every loop iteration poll mc_agent_waitfds and wake by
 * mc_agent_next_deadline, then mc_agent_service; the agent is over when
 * mc_agent_done. A leader that exited while members of its group live on
 * (or keep stdout open) is not done: bound that with your own timer and
 * mc_agent_stop. mc_agent_free at any time kills what is left.
 *
 * SIGPIPE must be ignored in the calling process (the worker does): a
 * write to an agent that closed its stdin is an EPIPE here.
 *
 * Error convention: mc_agent_spawn returns NULL with errno set and a named
 * reason in err ("exec /x/claude: No such file or directory"); other calls
 * return 0, or -1 with errno. */
#ifndef MC_WORKER_AGENT_PROC_H
#define MC_WORKER_AGENT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/identity.h"
#include "worker/linebuf.h"

#define MC_AGENT_LINE_MAX (8u * 1024u * 1024u)
#define MC_AGENT_STDERR_TAIL 2048u
#define MC_AGENT_STDIN_MAX (16u * 1024u * 1024u)
/* Bytes read from stdout per mc_agent_service call: a flood cannot hold
 * the loop, and the rest waits for the next poll. */
#define MC_AGENT_READ_BUDGET (1024u * 1024u)

struct mc_agent;

/* How a directory the child creates is filled when it was just made. */
enum mc_agent_seed {
	MC_SEED_NONE,
	MC_SEED_TREE,    /* seed: a tree copied in (seedtree.h), on first creation only */
	MC_SEED_CODEX,   /* seed: a CODEX_HOME's config.toml, auth.json; every time */
};

/* A directory the child makes after the identity switch, so it is the
 * agent's: mkdir 0700; an existing one is kept only when it is a directory
 * owned by the agent's uid. */
struct mc_agent_dir {
	const char *label;       /* "HOME", "TMPDIR", "CODEX_HOME": named in errors */
	const char *path;        /* absolute */
	enum mc_agent_seed seed_kind;
	const char *seed;        /* the seed's source directory; NULL: none */
};
#define MC_AGENT_DIRS_MAX 4

struct mc_agent_spec {
	const char *path;        /* executable: absolute, or a bare name searched on
				    envp's PATH in the child (as the agent) */
	char *const *argv;       /* NULL-terminated; argv[0] is what the agent sees */
	char *const *envp;       /* NULL-terminated, complete (nothing inherited) */
	const char *cwd;         /* NULL: the caller's */
	const struct mc_identity *as; /* NULL: no switch (mc_identity_enter not called) */
	const struct mc_agent_dir *dirs; /* made in order, after the switch */
	size_t n_dirs;           /* at most MC_AGENT_DIRS_MAX */
};

/* Forks and execs. The child: a session of its own, the identity (as),
 * its dirs, chdir, exec. Returns once the exec succeeded (pgid == pid) or
 * failed (child reaped, NULL returned, err names the step: "exec <path>:
 * <strerror>", "chdir <cwd>: ...", "switch to uid 61003: Operation not
 * permitted", "HOME <path> is not the agent's (owner uid 0)", "mkdir
 * TMPDIR <path>: ..."). Allocates; mc_agent_free releases. */
struct mc_agent *mc_agent_spawn(const struct mc_agent_spec *spec, char *err, size_t err_size);

/* Kills the group (SIGKILL) if anything is left, reaps the leader, closes
 * every fd and frees. NULL is a no-op. Blocks at most briefly: a SIGKILLed
 * leader is reaped at once. */
void mc_agent_free(struct mc_agent *a);

pid_t mc_agent_pid(const struct mc_agent *a);

/* Appends the fds to poll (stdout, stderr, stdin while bytes are queued,
 * the pidfd) to fds, at most max; returns how many. */
unsigned mc_agent_waitfds(const struct mc_agent *a, struct curl_waitfd *fds, unsigned max);

/* The revents of the fds mc_agent_waitfds gave (fds: that slice, n of
 * them), right after the poll: from then on a service reads and waits
 * only on what is ready (without it, on everything, every call). */
void mc_agent_set_ready(struct mc_agent *a, const struct curl_waitfd *fds, unsigned n);

/* Call after every poll (whatever woke it): reads stdout (at most
 * MC_AGENT_READ_BUDGET bytes) and hands each complete line to fn, reads
 * stderr into the tail, writes queued stdin, reaps the leader, escalates a
 * stop past its grace and checks the group. At stdout EOF the last partial
 * line is delivered too. */
void mc_agent_service(struct mc_agent *a, mc_ms_t now, mc_line_fn fn, void *ctx);

/* Earliest time service must run again without an fd event (a stop's
 * grace end, group polling, a reap without pidfd), or -1. */
mc_ms_t mc_agent_next_deadline(const struct mc_agent *a);

/* Queues bytes for stdin and writes what the pipe takes now. -1 with EPIPE
 * when stdin is closed or the agent closed it, ENOBUFS when the queue would
 * pass MC_AGENT_STDIN_MAX (nothing queued then). */
int mc_agent_write(struct mc_agent *a, const void *data, size_t n);
/* Closes stdin once the queue is written (at once if it is empty). */
void mc_agent_close_stdin(struct mc_agent *a);
size_t mc_agent_stdin_pending(const struct mc_agent *a);
/* A stdin write failed (EPIPE or other): the queue was dropped. */
bool mc_agent_stdin_failed(const struct mc_agent *a);

/* Stops the whole group: closes stdin, SIGTERM to the group now (SIGKILL
 * at once when grace_ms <= 0), SIGKILL to the group at now + grace_ms.
 * Works in any state (after the leader exited it kills what is left of its
 * group). A second call can only shorten the grace. */
void mc_agent_stop(struct mc_agent *a, mc_ms_t grace_ms, mc_ms_t now);

/* The leader has been reaped; *wstatus (may be NULL) is its wait status. */
bool mc_agent_exited(const struct mc_agent *a, int *wstatus);
/* stdout reached EOF (every holder of the pipe closed or died). */
bool mc_agent_eof(const struct mc_agent *a);
/* Leader reaped, stdout at EOF and the process group empty: nothing of the
 * agent runs any more. */
bool mc_agent_done(const struct mc_agent *a);
/* The process group still has a live (non-zombie) member. */
bool mc_agent_group_alive(const struct mc_agent *a);
/* SIGKILL had to be sent (the grace passed). */
bool mc_agent_killed(const struct mc_agent *a);

/* The last MC_AGENT_STDERR_TAIL bytes of stderr, NUL-terminated, starting
 * on a UTF-8 boundary, NUL bytes replaced by spaces; "" when none. Borrowed. */
const char *mc_agent_stderr_tail(const struct mc_agent *a);

/* Capacity of the stdout line buffer now and at its largest (tests). */
size_t mc_agent_linebuf_cap(const struct mc_agent *a);
size_t mc_agent_linebuf_peak(const struct mc_agent *a);

/* execve of path, or with a bare name each candidate on envp's PATH
 * (absolute entries only; default /usr/local/bin:/usr/bin:/bin) until one
 * runs: ENOENT, EACCES, ENOTDIR go on to the next. Returns only on failure
 * (-1, errno: EACCES if a candidate was refused, else the last error).
 * Async-signal-safe: for a child between fork and exec. */
int mc_agent_execve(const char *path, char *const *argv, char *const *envp);

/* "exit 3", "signal 9 (Killed)" for a wait status, into out. */
void mc_agent_describe_status(int wstatus, char *out, size_t out_size);

#endif
