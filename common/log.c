#include "common/log.h"
#include "common/fdio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#define MC_LOG_LINE_MAX 4096

static struct {
	enum mc_log_level level;
	char proc[32];
	char ws[80];
	int journald; /* -1 unknown, 0 no, 1 yes */
} log_ctx = { .level = MC_LOG_INFO, .proc = "multicad", .journald = -1 };

static const char *const level_names[] = { "debug", "info", "warn", "error" };
/* syslog priorities: debug=7 info=6 warning=4 err=3 */
static const int level_prio[] = { 7, 6, 4, 3 };

void mc_log_set_context(const char *proc, const char *ws)
{
	strlcpy(log_ctx.proc, proc ? proc : "multicad", sizeof log_ctx.proc);
	strlcpy(log_ctx.ws, ws ? ws : "", sizeof log_ctx.ws);
}

void mc_log_set_level(enum mc_log_level level) { log_ctx.level = level; }
enum mc_log_level mc_log_get_level(void) { return log_ctx.level; }

int mc_log_parse_level(const char *s, enum mc_log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum mc_log_level)i;
			return 0;
		}
	}
	errno = EINVAL;
	return -1;
}

const char *mc_log_num(char *buf, long long n)
{
	snprintf(buf, 24, "%lld", n);
	return buf;
}

static bool needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
			return true;
	return false;
}

size_t mc_log_escape(char *dst, size_t dst_size, const char *value)
{
	size_t n = 0;
	if (dst_size == 0)
		return 0;
#define PUT(c) do { if (n + 1 < dst_size) dst[n++] = (c); } while (0)
	bool quote = needs_quotes(value);
	if (quote)
		PUT('"');
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		switch (*p) {
		case '"': PUT('\\'); PUT('"'); break;
		case '\\': PUT('\\'); PUT('\\'); break;
		case '\n': PUT('\\'); PUT('n'); break;
		case '\r': PUT('\\'); PUT('r'); break;
		case '\t': PUT('\\'); PUT('t'); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				char hex[5];
				snprintf(hex, sizeof hex, "\\x%02x", *p);
				for (int i = 0; hex[i]; i++)
					PUT(hex[i]);
			} else {
				PUT((char)*p);
			}
		}
	}
	if (quote)
		PUT('"');
#undef PUT
	dst[n] = '\0';
	return n;
}

static size_t append(char *line, size_t used, const char *s)
{
	size_t len = strlen(s);
	if (used + len >= MC_LOG_LINE_MAX)
		len = MC_LOG_LINE_MAX - 1 - used;
	memcpy(line + used, s, len);
	used += len;
	line[used] = '\0';
	return used;
}

static size_t append_kv(char *line, size_t used, const char *key, const char *value)
{
	char esc[MC_LOG_LINE_MAX];
	used = append(line, used, " ");
	used = append(line, used, key);
	used = append(line, used, "=");
	if (value == NULL)
		return append(line, used, "null");
	mc_log_escape(esc, sizeof esc, value);
	return append(line, used, esc);
}


/* The line itself; extra_key/extra_val (may be NULL) go after msg. */
static void log_line(enum mc_log_level level, const char *msg, const char *extra_key,
		     const char *extra_val, va_list ap)
{
	int saved_errno = errno;
	if (log_ctx.journald < 0)
		log_ctx.journald = getenv("JOURNAL_STREAM") != NULL;

	char line[MC_LOG_LINE_MAX];
	size_t used = 0;
	line[0] = '\0';
	if (log_ctx.journald) {
		char prio[8];
		snprintf(prio, sizeof prio, "<%d>", level_prio[level]);
		used = append(line, used, prio);
	}

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char ts[96];
	snprintf(ts, sizeof ts, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
	used = append(line, used, ts);
	used = append_kv(line, used, "level", level_names[level]);
	used = append_kv(line, used, "proc", log_ctx.proc);
	if (log_ctx.ws[0])
		used = append_kv(line, used, "ws", log_ctx.ws);
	used = append_kv(line, used, "pid", MC_LOG_NUM(getpid()));
	used = append_kv(line, used, "msg", msg);
	for (;;) {
		const char *key = va_arg(ap, const char *);
		if (key == NULL)
			break;
		const char *value = va_arg(ap, const char *);
		used = append_kv(line, used, key, value);
	}
	if (extra_key != NULL)
		used = append_kv(line, used, extra_key, extra_val);

	if (used >= MC_LOG_LINE_MAX - 1)
		used = MC_LOG_LINE_MAX - 2;
	line[used++] = '\n';
	(void)mc_write_all(STDERR_FILENO, line, used); /* nowhere to report a failure */
	errno = saved_errno;
}

void mc_log(enum mc_log_level level, const char *msg, ...)
{
	if (level < log_ctx.level)
		return;
	va_list ap;
	va_start(ap, msg);
	log_line(level, msg, NULL, NULL, ap);
	va_end(ap);
}

/* Repeat suppression: one slot per call site (keyed by the message
 * pointer, a string literal), a window per slot. */
#define RL_SLOTS 32

static struct {
	const char *key;
	struct timespec last;
	unsigned long suppressed;
} rl_slots[RL_SLOTS];

static long long ms_since(const struct timespec *t, const struct timespec *now)
{
	return (long long)(now->tv_sec - t->tv_sec) * 1000 + (now->tv_nsec - t->tv_nsec) / 1000000;
}

void mc_log_rl(long window_ms, enum mc_log_level level, const char *msg, ...)
{
	if (level < log_ctx.level)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	size_t slot = RL_SLOTS, free_slot = RL_SLOTS;
	for (size_t i = 0; i < RL_SLOTS; i++) {
		if (rl_slots[i].key == msg)
			slot = i;
		else if (rl_slots[i].key == NULL && free_slot == RL_SLOTS)
			free_slot = i;
	}
	char count[24] = "";
	if (slot < RL_SLOTS) {
		if (ms_since(&rl_slots[slot].last, &now) < window_ms) {
			rl_slots[slot].suppressed++;
			return;
		}
		if (rl_slots[slot].suppressed > 0)
			snprintf(count, sizeof count, "%lu", rl_slots[slot].suppressed);
	} else if (free_slot < RL_SLOTS) {
		slot = free_slot;
		rl_slots[slot].key = msg;
	}
	if (slot < RL_SLOTS) {
		rl_slots[slot].last = now;
		rl_slots[slot].suppressed = 0;
	}
	va_list ap;
	va_start(ap, msg);
	log_line(level, msg, count[0] ? "suppressed_repeats" : NULL, count, ap);
	va_end(ap);
}
