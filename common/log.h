/* Structured logging: one logfmt line per event on stderr.
 *
 *   ts=2026-11-28T22:19:26.123Z level=info proc=worker ws=<id> pid=42 msg="..." k=v
 *
 * Values are quoted and escaped when they need it, so a server's error text
 * can never forge a line. Under journald (JOURNAL_STREAM set) each line gets
 * the <N> priority prefix. Never pass a secret as a value. */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <stddef.h>

enum mc_log_level {
	MC_LOG_DEBUG = 0,
	MC_LOG_INFO,
	MC_LOG_WARN,
	MC_LOG_ERROR,
};

/* Sets who is logging: proc is "supervisor", "worker", "cleanup", ...; ws may
 * be NULL. Both strings are copied. Call again after fork. */
void mc_log_set_context(const char *proc, const char *ws);
void mc_log_set_level(enum mc_log_level level);
enum mc_log_level mc_log_get_level(void);
/* Parses "debug|info|warn|error"; returns -1 with errno=EINVAL otherwise. */
int mc_log_parse_level(const char *s, enum mc_log_level *out);

/* Logs msg followed by key/value string pairs, terminated by NULL:
 *   mc_log(MC_LOG_WARN, "heartbeat failed", "runtime", id,
 *          "status", MC_LOG_NUM(status), NULL);
 * A NULL value is written as key=null. */
void mc_log(enum mc_log_level level, const char *msg, ...)
	__attribute__((sentinel));

/* Like mc_log, but a call site (identified by msg, which must be a string
 * literal) logs at most once per window_ms; the next line after a quiet
 * window carries suppressed_repeats=N. For what a flapping server or a
 * crash-looping worker would otherwise repeat endlessly. */
void mc_log_rl(long window_ms, enum mc_log_level level, const char *msg, ...)
	__attribute__((sentinel));
#define MC_LOG_REPEAT_WINDOW_MS 60000

/* Formats n into buf (at least 24 bytes) and returns buf. */
const char *mc_log_num(char *buf, long long n);
#define MC_LOG_NUM(n) mc_log_num((char[24]){0}, (long long)(n))

/* Writes at most dst_size-1 bytes of logfmt-escaped value into dst (quoted if
 * needed) and NUL-terminates. Exposed for tests and the control socket. */
size_t mc_log_escape(char *dst, size_t dst_size, const char *value);

#endif
