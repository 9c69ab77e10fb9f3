/* multicactl: text for a terminal. Everything the daemon sends is untrusted
 * on its way to a terminal: control characters are replaced before
 * printing, so that an error message quoting a server response cannot move
 * the cursor or change the terminal's state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <bsd/stdlib.h>

#include "ctl/ctl.h"

/* A copy of s that is safe to print on a terminal: C0 controls, DEL and
 * the UTF-8 encodings of the C1 controls (U+0080..U+009F, which some
 * terminals obey: U+009B is CSI) become '?'. Other bytes >= 0x80 are kept
 * (UTF-8 names and messages). */
char *sanitize(const char *s)
{
	char *out = strdup(s != NULL ? s : "");
	if (out == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(EXIT_BAD_REPLY);
	}
	for (unsigned char *p = (unsigned char *)out; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*p = '?';
		} else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			p[0] = p[1] = '?';
			p++;
		}
	}
	return out;
}

/* Display columns of a UTF-8 string: one per character. (Double-width
 * characters are rare in these fields; they only make a line a little
 * long, never cut one mid-character.) */
size_t text_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Cuts s in place so that it takes at most cols columns, ending in an
 * ellipsis when something was cut. Cuts only at character boundaries. */
void truncate_to(char *s, size_t cols, bool utf8)
{
	if (text_width(s) <= cols)
		return;
	const char *ell = utf8 ? "\xe2\x80\xa6" : "...";
	size_t ell_cols = utf8 ? 1 : 3;
	if (cols < ell_cols) {
		s[0] = '\0';
		return;
	}
	size_t keep = cols - ell_cols, n = 0;
	char *p = s;
	for (; *p; p++) {
		if (((unsigned char)*p & 0xc0) != 0x80) {
			if (n == keep)
				break;
			n++;
		}
	}
	/* p is at a character start. The text was too wide, so more than
	 * ell_cols characters follow: "..." always fits in their bytes; the
	 * 3-byte UTF-8 ellipsis may not (two ASCII characters), and then the
	 * text just ends here, a column shorter. */
	size_t room = strlen(p);
	if (room >= strlen(ell))
		memcpy(p, ell, strlen(ell) + 1);
	else
		*p = '\0';
}

/* "5s", "5m12s", "3h4m", "3d4h": the two most significant units. */
void human_duration(double secs, char *buf, size_t n)
{
	if (!(secs >= 0) || secs > 1e12) {
		snprintf(buf, n, "-");
		return;
	}
	unsigned long long s = (unsigned long long)secs;
	unsigned long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
	s %= 60;
	if (d > 0)
		snprintf(buf, n, "%llud%lluh", d, h);
	else if (h > 0)
		snprintf(buf, n, "%lluh%llum", h, m);
	else if (m > 0)
		snprintf(buf, n, "%llum%llus", m, s);
	else
		snprintf(buf, n, "%llus", s);
}

/* A JSON number that is a non-negative integer we can print, else -1. */
long long json_count(const cJSON *v)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9.0e15)
		return -1;
	return (long long)v->valuedouble;
}

/* Terminal width for cutting LAST ERROR, or 0 for "do not cut" (not a
 * terminal: a pipe or file gets every byte). COLUMNS overrides, as for
 * systemctl and ls. */
size_t terminal_width(void)
{
	if (!isatty(STDOUT_FILENO))
		return 0;
	const char *env = getenv("COLUMNS");
	if (env != NULL && env[0]) {
		const char *e = NULL;
		long long v = strtonum(env, 1, 100000, &e);
		if (e == NULL)
			return (size_t)v;
	}
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

bool want_colour(void)
{
	const char *nc = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	/* no-color.org: NO_COLOR present and non-empty disables colour. */
	if (nc != NULL && nc[0] != '\0')
		return false;
	if (term != NULL && strcmp(term, "dumb") == 0)
		return false;
	return isatty(STDOUT_FILENO) != 0;
}
