/* multicactl: the operator's client for multicad's control socket
 * (INTERFACE.md, "multicactl"). One request line out, one reply line in,
 * then the daemon closes the connection.
 *
 * Exit codes (also in multicactl.8):
 *   0  the daemon answered {"ok":true,...}
 *   1  the daemon answered {"ok":false,"error":...}
 *   2  usage error
 *   3  the daemon could not be reached: connect failed, or it did not answer
 *      in time, or it closed the connection without a reply
 *   4  a reply arrived but is not one we understand (not JSON, no "ok",
 *      missing fields, longer than REPLY_MAX)
 *
 * Everything the daemon sends is treated as untrusted text on its way to a
 * terminal: control characters are replaced before printing, so that an
 * error message quoting a server response cannot move the cursor or change
 * the terminal's state. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <cjson/cJSON.h>

#ifndef MC_VERSION
#define MC_VERSION "unknown"
#endif

#define DEFAULT_SOCKET    "/run/multicad/control.sock"
#define REPLY_MAX         (4u * 1024 * 1024) /* ~20k workspaces of status */
#define TIMEOUT_MS        10000
#define ERR_MIN_COLS      24 /* LAST ERROR is never cut shorter than this */
/* A reload parses the file, reads the token and diffs every workspace
 * inside the daemon's loop before it answers: give it longer. */
#define RELOAD_TIMEOUT_MS 30000

enum {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_BAD_REPLY = 4,
};

static const char *prog = "multicactl";

/* ---- output helpers ---- */

static void usage(FILE *f, bool full)
{
	fprintf(f,
		"usage: multicactl [-s SOCKET] status [--json]\n"
		"       multicactl [-s SOCKET] reload\n"
		"       multicactl [-s SOCKET] restart WORKSPACE\n"
		"       multicactl -h | --help | -V | --version\n");
	if (!full) {
		fprintf(f, "Try 'multicactl -h' for more information.\n");
		return;
	}
	fprintf(f,
		"\n"
		"  status          one line per workspace: pid, state, runtimes, restarts,\n"
		"                  uptime, last error (--json: the daemon's reply as JSON)\n"
		"  reload          reload the configuration (like SIGHUP) and print the result\n"
		"  restart WS      restart the worker of one workspace\n"
		"  -s SOCKET       control socket (default %s)\n"
		"  -h, --help      this help\n"
		"  -V, --version   the version\n"
		"\n"
		"Exit codes: 0 ok, 1 the daemon reported an error, 2 usage error,\n"
		"3 cannot reach the daemon, 4 bad reply. See multicactl(8).\n",
		DEFAULT_SOCKET);
}

/* A copy of s that is safe to print on a terminal: C0 controls, DEL and
 * the UTF-8 encodings of the C1 controls (U+0080..U+009F, which some
 * terminals obey: U+009B is CSI) become '?'. Other bytes >= 0x80 are kept
 * (UTF-8 names and messages). */
static char *sanitize(const char *s)
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
static size_t text_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Cuts s in place so that it takes at most cols columns, ending in an
 * ellipsis when something was cut. Cuts only at character boundaries. */
static void truncate_to(char *s, size_t cols, bool utf8)
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
static void human_duration(double secs, char *buf, size_t n)
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

/* ---- the conversation with the daemon ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. 0, or -1 with
 * errno (ETIMEDOUT, or poll's own error). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 0; /* ready, or POLLHUP/POLLERR: the next call says which */
	}
}

static void set_timeout(int fd, int opt, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000) };
	(void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* Connects to path. The fd, or -1 with errno. The connect itself is
 * blocking (an AF_UNIX connect only waits when the daemon's backlog is full,
 * and a non-blocking one would fail with EAGAIN instead of waiting), bounded
 * by SO_SNDTIMEO; the conversation after it is non-blocking with poll. */
static int connect_socket(const char *path, int64_t timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlcpy(sa.sun_path, path, sizeof sa.sun_path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_timeout(fd, SO_SNDTIMEO, timeout_ms);
	int r;
	/* An interrupted AF_UNIX connect leaves the socket unconnected, so
	 * trying again is correct (unlike TCP, where it would be EALREADY). */
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		close(fd);
		errno = (e == EAGAIN || e == EWOULDBLOCK) ? ETIMEDOUT : e;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wait_fd(fd, POLLOUT, deadline) < 0)
					return -1;
				continue;
			}
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

enum recv_result { RECV_OK, RECV_UNREACHABLE, RECV_BAD };

/* Reads one line (without its '\n') into a malloc'd NUL-terminated *out.
 * A reply without a final newline is accepted at EOF: the daemon closes
 * after its one line anyway. *why says what went wrong otherwise. */
static enum recv_result recv_line(int fd, int64_t deadline, char **out, const char **why)
{
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL) {
		*why = "out of memory";
		return RECV_BAD;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= REPLY_MAX) {
				free(buf);
				*why = "reply longer than 4 MiB";
				return RECV_BAD;
			}
			size_t ncap = cap * 2 > REPLY_MAX ? REPLY_MAX : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL) {
				free(buf);
				*why = "out of memory";
				return RECV_BAD;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wait_fd(fd, POLLIN, deadline) == 0)
					continue;
			}
			free(buf);
			*why = errno == ETIMEDOUT ? "no reply in time (is multicad stuck?)"
						  : strerror(errno);
			return RECV_UNREACHABLE;
		}
		if (r == 0) {
			if (len == 0) {
				free(buf);
				*why = "the daemon closed the connection without replying";
				return RECV_UNREACHABLE;
			}
			break;
		}
		char *nl = memchr(buf + len, '\n', (size_t)r);
		len += (size_t)r;
		if (nl != NULL) {
			len = (size_t)(nl - buf);
			break;
		}
	}
	buf[len] = '\0';
	*out = buf;
	return RECV_OK;
}

/* Sends req to the daemon and parses its reply into *reply (an object with
 * a boolean "ok"). Returns EXIT_OK, or the exit code after printing why. */
static int transact(const char *sock, const cJSON *req, int64_t timeout_ms, cJSON **reply)
{
	*reply = NULL;
	char *text = cJSON_PrintUnformatted(req);
	if (text == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	size_t tlen = strlen(text);
	char *line = malloc(tlen + 2);
	if (line == NULL) {
		free(text);
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	memcpy(line, text, tlen);
	line[tlen] = '\n';
	line[tlen + 1] = '\0';
	free(text);

	int64_t deadline = now_ms() + timeout_ms;
	int fd = connect_socket(sock, timeout_ms);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s (is multicad running?)\n", prog, sock,
			strerror(errno));
		free(line);
		return EXIT_UNREACHABLE;
	}
	/* A daemon at its client limit answers and closes before the request
	 * is sent: its answer is still there to read. */
	if (send_all(fd, line, tlen + 1, deadline) < 0 && errno != EPIPE && errno != ECONNRESET) {
		fprintf(stderr, "%s: cannot send the request to %s: %s\n", prog, sock,
			strerror(errno));
		free(line);
		close(fd);
		return EXIT_UNREACHABLE;
	}
	free(line);
	/* Half-close: the daemon reads a line, but an EOF after it costs
	 * nothing and tells a future daemon that no more requests follow. */
	(void)shutdown(fd, SHUT_WR);

	char *buf = NULL;
	const char *why = NULL;
	enum recv_result rr = recv_line(fd, deadline, &buf, &why);
	close(fd);
	if (rr != RECV_OK) {
		fprintf(stderr, "%s: %s: %s\n", prog, sock, why);
		return rr == RECV_UNREACHABLE ? EXIT_UNREACHABLE : EXIT_BAD_REPLY;
	}
	cJSON *r = cJSON_Parse(buf);
	free(buf);
	if (r == NULL || !cJSON_IsObject(r) ||
	    !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
		fprintf(stderr, "%s: %s: the reply is not a JSON object with \"ok\"\n", prog, sock);
		cJSON_Delete(r);
		return EXIT_BAD_REPLY;
	}
	*reply = r;
	return EXIT_OK;
}

static bool reply_ok(const cJSON *reply)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"));
}

/* Prints the daemon's error ("what: error") and returns EXIT_DAEMON_ERROR. */
static int daemon_error(const cJSON *reply, const char *what)
{
	const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "error"));
	char *s = sanitize(e != NULL ? e : "(no error message)");
	fprintf(stderr, "%s: %s%s%s\n", prog, what ? what : "", what ? ": " : "", s);
	free(s);
	return EXIT_DAEMON_ERROR;
}

/* ---- status ---- */

static const char *state_colour(const char *state)
{
	if (strcmp(state, "running") == 0)
		return "\033[32m";
	if (strcmp(state, "failed") == 0 || strcmp(state, "config-error") == 0)
		return "\033[31m";
	if (strcmp(state, "starting") == 0 || strcmp(state, "stopping") == 0 ||
	    strcmp(state, "cleanup") == 0 || strcmp(state, "backoff") == 0)
		return "\033[33m";
	return "";
}

#define RED   "\033[31m"
#define BOLD  "\033[1m"
#define RESET "\033[0m"

enum { C_WS, C_PID, C_STATE, C_RT, C_RESTARTS, C_UPTIME, C_ERR, NCOLS };

static const char *const col_title[NCOLS] = {
	"WORKSPACE", "PID", "STATE", "RUNTIMES", "RESTARTS", "UPTIME", "LAST ERROR",
};
/* Numbers are right-aligned, as in ps and bgpctl. */
static const bool col_right[NCOLS] = { false, true, false, true, true, true, false };

struct row {
	char *cell[NCOLS];   /* sanitized, heap */
	const char *state;   /* borrowed from cell[C_STATE] */
};

/* A JSON number that is a non-negative integer we can print, else -1. */
static long long json_count(const cJSON *v)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9.0e15)
		return -1;
	return (long long)v->valuedouble;
}

static char *fmt_count(const cJSON *v)
{
	long long n = json_count(v);
	char buf[32];
	if (n < 0)
		snprintf(buf, sizeof buf, "-");
	else
		snprintf(buf, sizeof buf, "%lld", n);
	return sanitize(buf);
}

/* Fills row from one element of "workspaces". -1 if it is not an object
 * with a string "id" (a bad reply). */
static int make_row(const cJSON *w, struct row *row, size_t *online, size_t *failed)
{
	memset(row, 0, sizeof *row);
	if (!cJSON_IsObject(w))
		return -1;
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "id"));
	if (id == NULL)
		return -1;
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(w, "pid");
	const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "state"));
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(w, "runtime_ids");
	const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "last_error"));
	bool has_pid = json_count(pid) > 0;
	int n_rt = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : -1;
	char buf[32];

	row->cell[C_WS] = sanitize(id);
	row->cell[C_PID] = has_pid ? fmt_count(pid) : sanitize("-");
	row->cell[C_STATE] = sanitize(state != NULL ? state : "?");
	row->state = row->cell[C_STATE];
	if (n_rt >= 0)
		snprintf(buf, sizeof buf, "%d", n_rt);
	else
		snprintf(buf, sizeof buf, "-");
	row->cell[C_RT] = sanitize(buf);
	row->cell[C_RESTARTS] = fmt_count(cJSON_GetObjectItemCaseSensitive(w, "restarts"));
	/* uptime_s is 0 for a worker that is not running: show "-" then. */
	long long up = json_count(cJSON_GetObjectItemCaseSensitive(w, "uptime_s"));
	if (has_pid && up >= 0)
		human_duration((double)up, buf, sizeof buf);
	else
		snprintf(buf, sizeof buf, "-");
	row->cell[C_UPTIME] = sanitize(buf);
	row->cell[C_ERR] = sanitize(err != NULL && err[0] ? err : "-");

	/* Same counting as the daemon's sd_notify STATUS line (notify.c):
	 * runtimes of running workers are online, failed + config-error fail. */
	if (state != NULL && strcmp(state, "running") == 0 && n_rt > 0)
		*online += (size_t)n_rt;
	if (state != NULL && (strcmp(state, "failed") == 0 || strcmp(state, "config-error") == 0))
		(*failed)++;
	return 0;
}

static void free_rows(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < NCOLS; c++)
			free(rows[i].cell[c]);
	free(rows);
}

/* Terminal width for cutting LAST ERROR, or 0 for "do not cut" (not a
 * terminal: a pipe or file gets every byte). COLUMNS overrides, as for
 * systemctl and ls. */
static size_t terminal_width(void)
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

static void print_header(const cJSON *sup, bool colour)
{
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(sup, "pid");
	const char *ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "version"));
	const char *cfg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "config"));
	long long up = json_count(cJSON_GetObjectItemCaseSensitive(sup, "uptime_s"));
	long long reloads = json_count(cJSON_GetObjectItemCaseSensitive(sup, "reloads"));
	const cJSON *lr = cJSON_GetObjectItemCaseSensitive(sup, "last_reload");
	const cJSON *lr_ok = cJSON_GetObjectItemCaseSensitive(lr, "ok");
	const char *lr_err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lr, "error"));
	char upbuf[32];
	human_duration(up >= 0 ? (double)up : -1, upbuf, sizeof upbuf);
	char *sver = sanitize(ver != NULL ? ver : "?");
	char *scfg = sanitize(cfg != NULL ? cfg : "?");

	printf("multicad %s, supervisor pid %lld, up %s, config %s, ", sver, json_count(pid), upbuf,
	       scfg);
	if (cJSON_IsFalse(lr_ok)) {
		char *serr = sanitize(lr_err != NULL ? lr_err : "(no message)");
		printf("%slast reload REJECTED%s (%lld reload%s)\n", colour ? RED BOLD : "",
		       colour ? RESET : "", reloads, reloads == 1 ? "" : "s");
		printf("  %s%s%s\n", colour ? RED : "", serr, colour ? RESET : "");
		free(serr);
	} else if (reloads > 0) {
		printf("last reload ok (%lld reload%s)\n", reloads, reloads == 1 ? "" : "s");
	} else {
		printf("no reloads\n");
	}
	free(sver);
	free(scfg);
}

static void print_cell(const char *s, size_t width, bool right, const char *colour)
{
	size_t pad = width > text_width(s) ? width - text_width(s) : 0;
	if (right)
		printf("%*s", (int)pad, "");
	printf("%s%s%s", colour != NULL && colour[0] ? colour : "", s,
	       colour != NULL && colour[0] ? RESET : "");
	if (!right)
		printf("%*s", (int)pad, "");
}

static int print_status(const cJSON *reply, bool colour, bool utf8)
{
	const cJSON *sup = cJSON_GetObjectItemCaseSensitive(reply, "supervisor");
	const cJSON *wss = cJSON_GetObjectItemCaseSensitive(reply, "workspaces");
	if (!cJSON_IsObject(sup) || !cJSON_IsArray(wss)) {
		fprintf(stderr, "%s: the status reply has no \"supervisor\" object or "
			"\"workspaces\" array\n", prog);
		return EXIT_BAD_REPLY;
	}
	size_t n = (size_t)cJSON_GetArraySize(wss), online = 0, failed = 0, i = 0;
	struct row *rows = calloc(n ? n : 1, sizeof *rows);
	if (rows == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	const cJSON *w;
	cJSON_ArrayForEach(w, wss) {
		if (make_row(w, &rows[i], &online, &failed) < 0) {
			free_rows(rows, i + 1);
			fprintf(stderr, "%s: the status reply has a workspace without an \"id\"\n", prog);
			return EXIT_BAD_REPLY;
		}
		i++;
	}

	print_header(sup, colour);
	if (n > 0) {
		size_t width[NCOLS];
		for (int c = 0; c < NCOLS; c++) {
			width[c] = text_width(col_title[c]);
			for (i = 0; i < n; i++)
				if (text_width(rows[i].cell[c]) > width[c])
					width[c] = text_width(rows[i].cell[c]);
		}
		size_t term = terminal_width(), before_err = 0;
		for (int c = 0; c < C_ERR; c++)
			before_err += width[c] + 2;
		/* On a terminal, LAST ERROR gets what is left of the line, so a
		 * long message does not wrap the table; the full text is in
		 * --json and the log. On a terminal too narrow for the other
		 * columns (a UUID alone takes 36), lines wrap anyway: keep
		 * ERR_MIN_COLS of the message so it stays recognisable. */
		if (term > 0) {
			size_t avail = term > before_err ? term - before_err : 0;
			if (avail < ERR_MIN_COLS)
				avail = ERR_MIN_COLS;
			for (i = 0; i < n; i++)
				truncate_to(rows[i].cell[C_ERR], avail, utf8);
		}

		putchar('\n');
		if (colour)
			fputs(BOLD, stdout);
		for (int c = 0; c < NCOLS; c++) {
			print_cell(col_title[c], c == C_ERR ? 0 : width[c], col_right[c], NULL);
			fputs(c == C_ERR ? "" : "  ", stdout);
		}
		fputs(colour ? RESET "\n" : "\n", stdout);
		for (i = 0; i < n; i++) {
			for (int c = 0; c < NCOLS; c++) {
				const char *col = NULL;
				if (colour && c == C_STATE)
					col = state_colour(rows[i].state);
				else if (colour && c == C_ERR && strcmp(rows[i].cell[c], "-") != 0)
					col = RED;
				print_cell(rows[i].cell[c], c == C_ERR ? 0 : width[c], col_right[c], col);
				fputs(c == C_ERR ? "\n" : "  ", stdout);
			}
		}
	}
	printf("\n%zu workspace%s, %zu runtime%s online, ", n, n == 1 ? "" : "s", online,
	       online == 1 ? "" : "s");
	if (failed > 0 && colour)
		printf(RED "%zu failed" RESET "\n", failed);
	else
		printf("%zu failed\n", failed);
	free_rows(rows, n);
	return EXIT_OK;
}

static bool want_colour(void)
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

static int cmd_status(const char *sock, bool json)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", "status");
	cJSON *reply;
	int rc = transact(sock, req, TIMEOUT_MS, &reply);
	cJSON_Delete(req);
	if (rc != EXIT_OK)
		return rc;
	if (json) {
		/* The daemon's reply as it is (even {"ok":false}): scripts parse
		 * it; cJSON escapes control characters in strings. */
		char *text = cJSON_Print(reply);
		if (text != NULL)
			puts(text);
		free(text);
		rc = reply_ok(reply) ? EXIT_OK : EXIT_DAEMON_ERROR;
		if (rc != EXIT_OK)
			daemon_error(reply, "status");
	} else if (!reply_ok(reply)) {
		rc = daemon_error(reply, "status");
	} else {
		bool utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
		rc = print_status(reply, want_colour(), utf8);
	}
	cJSON_Delete(reply);
	if (fflush(stdout) != 0 && rc == EXIT_OK) {
		fprintf(stderr, "%s: writing the output: %s\n", prog, strerror(errno));
		rc = EXIT_DAEMON_ERROR;
	}
	return rc;
}

/* reload and restart: print the daemon's "message" on success. */
static int cmd_simple(const char *sock, cJSON *req, int64_t timeout, const char *what,
		      const char *prefix)
{
	cJSON *reply;
	int rc = transact(sock, req, timeout, &reply);
	cJSON_Delete(req);
	if (rc != EXIT_OK)
		return rc;
	if (!reply_ok(reply)) {
		rc = daemon_error(reply, what);
	} else {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "message"));
		char *s = sanitize(msg != NULL ? msg : "ok");
		if (prefix != NULL)
			printf("%s: %s\n", prefix, s);
		else
			printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(reply);
	return rc;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = DEFAULT_SOCKET;
	int c;
	setlocale(LC_CTYPE, ""); /* only to know whether the terminal takes UTF-8 */
	/* '+': stop at the command, so its own options (status --json) are
	 * left for it. */
	while ((c = getopt_long(argc, argv, "+s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (optarg[0] == '\0') {
				fprintf(stderr, "%s: -s needs a socket path\n", prog);
				return EXIT_USAGE;
			}
			sock = optarg;
			break;
		case 'h':
			usage(stdout, true);
			return EXIT_OK;
		case 'V':
			printf("multicactl %s\n", MC_VERSION);
			return EXIT_OK;
		default:
			usage(stderr, false);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s: no command given\n", prog);
		usage(stderr, false);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind++];
	int nargs = argc - optind;
	char **args = argv + optind;

	if (strcmp(cmd, "status") == 0) {
		bool json = false;
		for (int i = 0; i < nargs; i++) {
			if (strcmp(args[i], "--json") == 0 || strcmp(args[i], "-j") == 0) {
				json = true;
			} else {
				fprintf(stderr, "%s: status: unexpected argument: %s\n", prog, args[i]);
				usage(stderr, false);
				return EXIT_USAGE;
			}
		}
		return cmd_status(sock, json);
	}
	if (strcmp(cmd, "reload") == 0) {
		if (nargs != 0) {
			fprintf(stderr, "%s: reload takes no arguments\n", prog);
			usage(stderr, false);
			return EXIT_USAGE;
		}
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "cmd", "reload");
		return cmd_simple(sock, req, RELOAD_TIMEOUT_MS, "reload failed", NULL);
	}
	if (strcmp(cmd, "restart") == 0) {
		if (nargs != 1 || args[0][0] == '\0') {
			fprintf(stderr, "%s: restart needs exactly one workspace id\n", prog);
			usage(stderr, false);
			return EXIT_USAGE;
		}
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "cmd", "restart");
		cJSON_AddStringToObject(req, "workspace", args[0]);
		char *ws = sanitize(args[0]);
		int rc = cmd_simple(sock, req, TIMEOUT_MS, "restart failed", ws);
		free(ws);
		return rc;
	}
	if (strcmp(cmd, "help") == 0) {
		usage(stdout, true);
		return EXIT_OK;
	}
	fprintf(stderr, "%s: unknown command: %s\n", prog, cmd);
	usage(stderr, false);
	return EXIT_USAGE;
}
