/* multicactl's modules (multicactl.c: commands and main; ctl_conn.c: the
 * conversation with the daemon; ctl_text.c: terminal-safe text; and
 * ctl_output.c: the status and tasks printers).
 *
 * Error convention: functions that talk to the daemon or print a reply
 * return a multicactl exit code (EXIT_*) after printing why on stderr. */
#ifndef MC_CTL_H
#define MC_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifndef MC_VERSION
#define MC_VERSION "unknown"
#endif

#define REPLY_MAX         (4u * 1024 * 1024) /* ~20k workspaces of status */
#define ERR_MIN_COLS      24 /* LAST ERROR is never cut shorter than this */

enum {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_BAD_REPLY = 4,
};

extern const char *prog;

/* ctl_text.c */
/* A copy of s safe for a terminal (malloc'd; exits on out of memory). */
char *sanitize(const char *s);
size_t text_width(const char *s);
void truncate_to(char *s, size_t cols, bool utf8);
void human_duration(double secs, char *buf, size_t n);
/* A JSON number that is a non-negative integer we can print, else -1. */
long long json_count(const cJSON *v);
size_t terminal_width(void);
bool want_colour(void);

/* ctl_conn.c */
int64_t now_ms(void);
/* Sends req, parses the reply into *reply (an object with "ok"); timeout_ms
 * < 0: wait as long as it takes (drain). EXIT_OK or the exit code. */
int transact(const char *sock, const cJSON *req, int64_t timeout_ms, cJSON **reply);
bool reply_ok(const cJSON *reply);
int daemon_error(const cJSON *reply, const char *what);

/* ctl_output.c */
int print_status(const cJSON *reply, bool colour, bool utf8);
/* ctl_agents.c: the agents' fallback warning line of status, if any. */
void print_agents(const cJSON *reply, bool colour);
int print_tasks(const cJSON *reply, bool utf8);

#endif
