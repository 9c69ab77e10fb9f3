/* What the fake agent CLIs share: the scripted mode, recording, output
 * with optional delays, a grandchild that ignores SIGTERM, a huge line.
 *
 * Environment (the tests pass it through the agent's custom_env):
 *   FAKE_AGENT_MODE      text (default) | tool | error | crash | hang |
 *                        huge_line | bad_bytes | flood | grandchild |
 *                        resume_reject | slow | rate
 *   FAKE_AGENT_DELAY_MS  pause after every line printed (slow: 100 by default)
 *   FAKE_AGENT_RECORD    file written at start: "argv\t<arg>" per argument,
 *                        "cwd\t<dir>", "env\t<KEY=VALUE>" per variable
 *                        (written to <file>.tmp, then renamed).
 *   FAKE_AGENT_TIMES     file appended (O_APPEND, one write a line) with
 *                        "<event>\t<CLOCK_REALTIME s.ns>\t<MULTICA_TASK_ID>\t<pid>"
 *                        for the events "exec" (first thing in main) and
 *                        "result" (just before the result line is written):
 *                        tests/bench/task_bench.c's clock.
 *   FAKE_AGENT_LINES_PER_S, FAKE_AGENT_SECONDS  rate: that many text lines a
 *                        second (default 200) for that many seconds (default
 *                        10), paced on absolute times, each text "rl#<i>;",
 *                        then the result. */
#ifndef FAKE_COMMON_H
#define FAKE_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#define FA_HUGE_BYTES (20u * 1024u * 1024u)

const char *fa_mode(void);
bool fa_mode_is(const char *m);
void fa_record(int argc, char **argv);
/* Appends one FAKE_AGENT_TIMES line for event (nothing when unset). */
void fa_times(const char *event);
/* FAKE_AGENT_LINES_PER_S / FAKE_AGENT_SECONDS, defaults 200 and 10. */
long fa_lines_per_s(void);
long fa_seconds(void);
/* Sleeps until CLOCK_MONOTONIC start_ns + i * 1e9 / per_s. */
void fa_pace(long long start_ns, unsigned long i, long per_s);
long long fa_mono_ns(void);
/* Writes s and '\n' to stdout (whole), then sleeps the delay. Exits 0
 * quietly if stdout is gone. */
void fa_line(const char *s);
/* Writes len raw bytes as one line (no JSON building: bad bytes stay). */
void fa_raw_line(const char *s, size_t len);
/* prefix + FA_HUGE_BYTES of 'x' + suffix + '\n', streamed in chunks. */
void fa_huge_line(const char *prefix, const char *suffix);
/* One line from stdin (malloc'd, without '\n'), NULL at EOF. */
char *fa_read_line(void);
void fa_uuid(char out[37]);
/* Forks a child in our process group that ignores SIGTERM and sleeps. */
void fa_spawn_grandchild(void);
__attribute__((noreturn)) void fa_hang(void);
/* Reads stdin to EOF, then exits with code. */
__attribute__((noreturn)) void fa_exit_at_eof(int code);

/* fake_checkout.c: `multica repo checkout` as the CLI sends it, then a
 * commit in the checkout; the path ("" on failure), *status the HTTP status. */
const char *fa_checkout(long *status);

#endif
