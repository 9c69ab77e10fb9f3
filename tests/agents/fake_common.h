/* What the fake agent CLIs share: the scripted mode, recording, output
 * with optional delays, a grandchild that ignores SIGTERM, a huge line.
 *
 * Environment (the tests pass it through the agent's custom_env):
 *   FAKE_AGENT_MODE      text (default) | tool | error | crash | hang |
 *                        huge_line | bad_bytes | flood | grandchild |
 *                        resume_reject | slow
 *   FAKE_AGENT_DELAY_MS  pause after every line printed (slow: 100 by default)
 *   FAKE_AGENT_RECORD    file written at start: "argv\t<arg>" per argument,
 *                        "cwd\t<dir>", "env\t<KEY=VALUE>" per variable
 *                        (written to <file>.tmp, then renamed). */
#ifndef FAKE_COMMON_H
#define FAKE_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#define FA_HUGE_BYTES (20u * 1024u * 1024u)

const char *fa_mode(void);
bool fa_mode_is(const char *m);
void fa_record(int argc, char **argv);
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

#endif
