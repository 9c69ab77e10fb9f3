/* Test support: run multica-fakeplane as a child process on an ephemeral
 * loopback port, drive its admin API, read its state and journal.
 * For use from Criterion tests (parent side only; never from a forked child). */
#ifndef MC_TEST_FAKEPLANE_PROC_H
#define MC_TEST_FAKEPLANE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

struct fp_proc {
	pid_t pid;
	int port;
	char url[64];        /* "http://127.0.0.1:PORT" */
	char dir[256];       /* temp dir holding the seed file; removed by fp_stop */
};

/* Starts the fakeplane (path from the FAKEPLANE_BIN compile definition) with
 * seed_json written to a temp seed file (NULL: no --seed), plus extra argv
 * entries (NULL-terminated, may be NULL). Waits for "listening on ..." and
 * fills fp. Returns 0, or -1 (the test should cr_assert on it). */
int fp_start(struct fp_proc *fp, const char *seed_json, const char *const *extra_args);
/* SIGTERM, wait (SIGKILL after 5 s), remove the temp dir. Returns the exit
 * status as from waitpid. */
int fp_stop(struct fp_proc *fp);

/* One admin or raw HTTP request to the fakeplane. body may be NULL.
 * extra_headers: NULL-terminated list of "Name: value" (may be NULL).
 * Returns the HTTP status (or -1 on transport error); *out_body (if not NULL)
 * receives a malloc'd NUL-terminated body the caller frees. */
long fp_http(const struct fp_proc *fp, const char *method, const char *path,
	     const char *body, const char *const *extra_headers, char **out_body);

/* GET /_admin/state or /_admin/journal parsed; caller cJSON_Delete()s. NULL on error. */
cJSON *fp_state(const struct fp_proc *fp);
cJSON *fp_journal(const struct fp_proc *fp);

/* Convenience: POST /_admin/faults with the given JSON; returns status. */
long fp_fault(const struct fp_proc *fp, const char *fault_json);

/* Count journal entries matching method and path prefix (NULL = any). */
int fp_journal_count(const struct fp_proc *fp, const char *method, const char *path_prefix);

/* Status string ("online"/"offline") of runtime id in /_admin/state, or
 * NULL when the row does not exist. Returns a malloc'd string. */
char *fp_runtime_status(const struct fp_proc *fp, const char *runtime_id);

/* Runs the fakeplane to completion: FAKEPLANE_BIN, then "--seed
 * DIR/seed.json" when seed_json is not NULL, then args (NULL-terminated,
 * may be NULL). Captures stderr; kills it after timeout_ms. Returns 0 with
 * *status (as from waitpid) and *out_stderr (malloc'd, caller frees), or -1.
 * For tests of start-up errors: bad flags, bad seed files. */
int fp_run(const char *seed_json, const char *const *args, int timeout_ms,
	   int *status, char **out_stderr);

/* The port in s = prefix + "PORT" (optionally + "\n"), or -1. */
long fp_parse_port_after(const char *s, const char *prefix);

/* fp_http with a timeout in milliseconds (fp_http uses 30 s). */
long fp_http_timeout(const struct fp_proc *fp, const char *method, const char *path,
		     const char *body, const char *const *extra_headers, char **out_body,
		     long timeout_ms);

/* ---- raw keep-alive connections ----
 * Plain sockets speaking HTTP/1.1 to the fakeplane, one request in flight
 * each, for tests and benchmarks that hold thousands of connections at
 * once or must know which connection a request travelled on (libcurl
 * chooses its connections itself). Replies are framed by Content-Length,
 * which is all the fakeplane sends. */
struct fp_conn {
	int fd;                /* -1: closed, by us or by the peer */
	bool waiting;          /* a request went out, its reply is not whole yet */
	bool peer_closed;      /* EOF or reset came instead of a (whole) reply */
	int status;            /* of the last whole reply; 0 before the first */
	char *buf;             /* malloc'd: the last reply, NUL-terminated */
	size_t got, cap;
	size_t body_off;       /* offset of the last reply's body in buf */
	int64_t sent_ms, done_ms;   /* CLOCK_MONOTONIC: request sent, reply whole */
};

/* Connects to 127.0.0.1:port (TCP_NODELAY, then non-blocking) and
 * allocates c->buf. Returns 0, or -1 with errno (c is then closed). */
int fp_conn_open(struct fp_conn *c, int port);
/* Sends one request: Host and Content-Length are added, extra_headers as
 * for fp_http, body may be NULL. Marks c waiting. Returns 0 or -1. */
int fp_conn_send(struct fp_conn *c, const char *method, const char *path, const char *body,
		 const char *const *extra_headers);
/* Reads every waiting connection of cs[0..n) until each has a whole reply
 * or was closed by the peer, or timeout_ms passed. Returns how many are
 * still waiting. */
size_t fp_conn_wait(struct fp_conn *cs, size_t n, int timeout_ms);
/* The body of the last whole reply ("" before one). */
const char *fp_conn_body(const struct fp_conn *c);
/* True when the peer has closed c: looks without blocking, consumes no
 * data (a reply nobody asked for counts as open). */
bool fp_conn_peer_gone(struct fp_conn *c);
/* Closes the socket and frees the buffer; safe to repeat. */
void fp_conn_close(struct fp_conn *c);
/* Raises this process's soft RLIMIT_NOFILE towards want, up to the hard
 * limit. Returns the soft limit afterwards, or -1. */
long fp_raise_nofile(long want);

#endif
