/* Agent backends, table-driven by protocol family (reference section 4):
 * how to launch the CLI (argv), what to write to its stdin, and how to read
 * its stdout into messages, a session id, usage and exactly one final
 * result. No process handling here: the caller (task_exec) owns the agent
 * process (agent_proc.h) and connects the two through the sink, so every
 * backend is tested by feeding it lines.
 *
 * Use: s = mc_backend_session_new(ops, &opts, &sink); mc_backend_session_start(s)
 * (writes the first frames); for each stdout line mc_backend_session_line();
 * when the agent is gone (exited / stopped, stdout at EOF)
 * mc_backend_session_finish() emits the usage and the one result (if the
 * session has not already). All strings passed to sink callbacks are
 * borrowed for the duration of the call.
 *
 * Error convention: functions returning int give 0, or -1 with err filled
 * (argv building) or errno (ENOMEM). */
#ifndef MC_WORKER_BACKEND_H
#define MC_WORKER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"

/* Keep at most this much of the final answer (it is cut, not refused). */
#define MC_BACKEND_OUTPUT_MAX (1024u * 1024u)
/* A tool result's output as a message: the first bytes only (reference
 * step 9: 8192 bytes on the wire; a little more here for the caller). */
#define MC_BACKEND_TOOL_OUTPUT_MAX 8192u

enum mc_msg_type {
	MC_MSG_TEXT,
	MC_MSG_THINKING,
	MC_MSG_TOOL_USE,
	MC_MSG_TOOL_RESULT,
	MC_MSG_ERROR,
};

struct mc_backend_msg {
	enum mc_msg_type type;
	const char *text;        /* text, thinking, error content; tool_result output */
	size_t text_len;         /* may contain anything but NUL-free: NULs stripped */
	const char *tool;        /* tool_use / tool_result: tool name ("" unknown) */
	const char *call_id;     /* tool_use / tool_result: the call id ("" unknown) */
	const char *input_json;  /* tool_use: the input object as JSON text */
};

struct mc_usage {
	int64_t input, output, cache_read, cache_write;
};

enum mc_result_status {
	MC_RESULT_COMPLETED,
	MC_RESULT_FAILED,
	MC_RESULT_ABORTED,
	MC_RESULT_TIMEOUT,
};

struct mc_backend_result {
	enum mc_result_status status;
	const char *output;       /* "" unless completed */
	const char *error;        /* "" when completed; else the reason, + "; <family> stderr: <tail>" */
	const char *session_id;   /* "" when none (or a rejected resume) */
	bool resume_rejected;     /* the CLI refused --resume / thread/resume */
	bool tool_ran;            /* a tool was used (no fresh-session retry then) */
};

/* What a session emits. Every callback may be NULL but write. */
struct mc_backend_sink {
	void *ctx;
	void (*message)(void *ctx, const struct mc_backend_msg *m);
	/* The session id the agent announced (claude init / codex thread):
	 * once per new value, for the session pin. */
	void (*session_id)(void *ctx, const char *id);
	/* Usage per model, once each, right before the result. */
	void (*usage)(void *ctx, const char *model, const struct mc_usage *u);
	/* Bytes for the agent's stdin; returns 0, or -1 when they cannot be
	 * queued (the session then fails the run: stdin is broken). */
	int (*write)(void *ctx, const char *data, size_t len);
	/* The run is over from the protocol's view: close stdin so the CLI exits. */
	void (*close_stdin)(void *ctx);
	/* Exactly once per session. */
	void (*result)(void *ctx, const struct mc_backend_result *r);
};

struct mc_backend_opts {
	const char *prompt;          /* the user prompt */
	const char *model;           /* NULL or "": the CLI's default */
	const char *resume_id;       /* NULL or "": a fresh session */
	const char *cwd;             /* codex thread/start|resume cwd */
	const char *thread_name;     /* codex thread/name/set; NULL: not sent */
	/* codex: prefixed to the prompt when thread/resume failed and a fresh
	 * thread was started instead (the continuity notice). NULL: none. */
	const char *resume_fallback_notice;
	char *const *custom_args;    /* agent.custom_args (filtered here) */
	size_t n_custom_args;
	bool codex_home_set;         /* codex: drop -c shell_environment_policy.* */
	mc_ms_t rpc_timeout_ms;      /* codex: bound on each handshake RPC; 0: 30 s */
};

/* How the agent went away, for mc_backend_session_finish. */
enum mc_end_cause {
	/* It ended by itself (or after the session closed stdin). A CLI that
	 * had to be stopped after mc_backend_session_turn_done (it lingered) is
	 * still an MC_END_EXIT: the protocol's result stands, a death by
	 * signal after it says nothing about the run. */
	MC_END_EXIT,
	MC_END_CANCEL,    /* stopped by the caller: cancel, shutdown */
	MC_END_TIMEOUT,   /* stopped by the caller's timer */
};

struct mc_backend_end {
	enum mc_end_cause cause;
	bool exited;              /* wstatus is valid */
	int wstatus;
	const char *stderr_tail;  /* NULL or "": none */
	const char *timeout_text; /* MC_END_TIMEOUT: e.g. "claude timed out after 30m" */
};

/* A growable NULL-terminated argv of malloc'd strings. */
struct mc_argv {
	char **v;
	size_t n, cap;
};
int mc_argv_push(struct mc_argv *a, const char *s);
void mc_argv_free(struct mc_argv *a);

struct mc_backend_session;

struct mc_backend_ops {
	const char *family;          /* "claude", "codex" */
	const char *brief_file;      /* "CLAUDE.md", "AGENTS.md" */
	/* argv: path, filtered fixed_args (launch prefix), the family's own
	 * arguments, filtered custom args. Fills out (caller frees). */
	int (*build_argv)(const char *path, char *const *fixed_args, size_t n_fixed,
			  const struct mc_backend_opts *o, struct mc_argv *out);
	/* Family state: allocated by init, freed by fini. */
	void *(*init)(struct mc_backend_session *s);
	void (*fini)(void *st);
	void (*start)(struct mc_backend_session *s, void *st);
	void (*line)(struct mc_backend_session *s, void *st, char *line, size_t len,
		     bool truncated);
	void (*finish)(struct mc_backend_session *s, void *st, const struct mc_backend_end *e);
	/* Optional timers (NULL: none). */
	mc_ms_t (*deadline)(const void *st);
	void (*tick)(struct mc_backend_session *s, void *st, mc_ms_t now);
};

/* The backend of a protocol family, or NULL when there is none. */
const struct mc_backend_ops *mc_backend_find(const char *family);

/* Allocates a session (opts strings copied); mc_backend_session_free. NULL
 * with errno ENOMEM. */
struct mc_backend_session *mc_backend_session_new(const struct mc_backend_ops *ops,
						  const struct mc_backend_opts *opts,
						  const struct mc_backend_sink *sink);
void mc_backend_session_free(struct mc_backend_session *s);
void mc_backend_session_start(struct mc_backend_session *s);
/* One stdout line (without '\n'); modified in place (NUL escapes stripped). */
void mc_backend_session_line(struct mc_backend_session *s, char *line, size_t len,
			     bool truncated);
/* The agent is gone: emits usage and the result unless already done. */
void mc_backend_session_finish(struct mc_backend_session *s, const struct mc_backend_end *e);
/* The protocol says the run is over (claude: result line; codex: turn
 * ended): the CLI should exit soon; a caller may bound that wait. */
bool mc_backend_session_turn_done(const struct mc_backend_session *s);
/* The session's own timers (codex: each handshake RPC is bounded): the
 * earliest time mc_backend_session_tick must run, or -1. A handshake that
 * times out fails the run and closes stdin; the caller then bounds the
 * wait for the exit as after any turn_done. */
mc_ms_t mc_backend_session_next_deadline(const struct mc_backend_session *s);
void mc_backend_session_tick(struct mc_backend_session *s, mc_ms_t now);
bool mc_backend_session_has_result(const struct mc_backend_session *s);
/* A line failed to parse or was cut (counted, not fatal). */
size_t mc_backend_session_bad_lines(const struct mc_backend_session *s);

/* ---- for the backend files (backend_claude.c, backend_codex.c) ---- */

const struct mc_backend_opts *mc_bs_opts(const struct mc_backend_session *s);
void mc_bs_message(struct mc_backend_session *s, const struct mc_backend_msg *m);
void mc_bs_session_id(struct mc_backend_session *s, const char *id);
/* Sends bytes to stdin; on failure marks stdin broken and returns -1. */
int mc_bs_write(struct mc_backend_session *s, const char *data, size_t len);
bool mc_bs_stdin_broken(const struct mc_backend_session *s);
/* Prints j (deleted, even on failure) as one line to the agent's stdin. */
struct cJSON;
int mc_bs_write_json(struct mc_backend_session *s, struct cJSON *j);
void mc_bs_close_stdin(struct mc_backend_session *s);
void mc_bs_turn_done(struct mc_backend_session *s);
void mc_bs_bad_line(struct mc_backend_session *s);
/* Adds to (or, replace=true, sets) the usage of model. */
void mc_bs_usage(struct mc_backend_session *s, const char *model, const struct mc_usage *u,
		 bool replace);
void mc_bs_usage_reset(struct mc_backend_session *s);
/* Emits usage then the result, once; later calls do nothing. The error
 * gets "; <family> stderr: <tail>" appended when tail is non-empty. */
void mc_bs_result(struct mc_backend_session *s, enum mc_result_status st, const char *output,
		  const char *error, const char *stderr_tail, const char *session_id,
		  bool resume_rejected, bool tool_ran);

/* Pure helpers, exposed for tests. */

/* Removes "\u0000" escapes and raw NUL bytes from a JSON line in place;
 * returns the new length. */
size_t mc_backend_strip_nul(char *line, size_t len);
/* One flag a family refuses from fixed/custom args. */
struct mc_blocked_flag {
	const char *name;   /* "--output-format" */
	bool takes_value;   /* its value (next token, or =value) goes too */
};
/* Appends args to out without the blocked flags (and their values); when
 * unquote, one layer of surrounding shell quotes is stripped from each arg
 * (and from the value of --k="v"). Positional tokens are never dropped. */
int mc_backend_filter_args(char *const *args, size_t n, const struct mc_blocked_flag *blocked,
			   bool unquote, struct mc_argv *out);
/* Case-insensitive (ASCII) substring search. */
bool mc_backend_contains_ci(const char *hay, const char *needle);

extern const struct mc_backend_ops mc_backend_claude;
extern const struct mc_backend_ops mc_backend_codex;

#endif
