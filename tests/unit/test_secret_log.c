/* mc_secret (token files, guarded memory) and mc_log (escaping: a server's
 * text must never forge a log line). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "common/log.h"
#include "common/secret.h"

TestSuite(secret, .timeout = 30);
TestSuite(log, .timeout = 30);

/* ---- secret ---- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	/* mc_secret_from_file calls sodium_malloc before any sodium_init (only
	 * mc_secret_new initialises), and libsodium aborts then. The daemon
	 * runs mc_api_global_init first; do the same here. */
	cr_assert_geq(sodium_init(), 0);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mc-secret-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

/* Writes len bytes to tmpdir/name with mode; returns the path (static). */
static const char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void cleanup_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

Test(secret, new_open_close_dup)
{
	struct mc_secret *s = mc_secret_new("abc\0def", 7);
	cr_assert_not_null(s);
	cr_assert_eq(mc_secret_len(s), 7);
	const char *v = mc_secret_open(s);
	cr_assert_eq(memcmp(v, "abc\0def", 8), 0, "value plus a NUL terminator");
	mc_secret_close(s);
	struct mc_secret *d = mc_secret_dup(s);
	cr_assert_not_null(d);
	mc_secret_free(s);
	cr_assert_eq(mc_secret_len(d), 7);
	cr_assert_eq(memcmp(mc_secret_open(d), "abc\0def", 7), 0);
	mc_secret_close(d);
	mc_secret_free(d);
	mc_secret_free(NULL);
}

Test(secret, file_trimmed, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	static const char content[] = " \t mul_0123abcd\r\n\n";
	const char *p = write_file("tok", content, strlen(content), 0600);
	char err[256] = "";
	struct mc_secret *s = mc_secret_from_file(p, err, sizeof err);
	cr_assert_not_null(s, "%s", err);
	cr_assert_eq(mc_secret_len(s), 12);
	cr_assert_str_eq(mc_secret_open(s), "mul_0123abcd");
	mc_secret_close(s);
	mc_secret_free(s);

	p = write_file("tok400", "x", 1, 0400);
	s = mc_secret_from_file(p, err, sizeof err);
	cr_assert_not_null(s, "0400 is fine: %s", err);
	mc_secret_free(s);
}

Test(secret, file_readable_by_others_refused, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0660, 0606, 0610, 0601 };
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		const char *p = write_file("tok", "secret-token", 12, modes[i]);
		char err[256] = "";
		errno = 0;
		cr_assert_null(mc_secret_from_file(p, err, sizeof err), "mode %o", modes[i]);
		cr_assert_eq(errno, EPERM, "mode %o", modes[i]);
		cr_assert_not_null(strstr(err, "group or others"), "%s", err);
		cr_assert_null(strstr(err, "secret-token"), "the message never shows the token");
	}
}

Test(secret, empty_and_blank_files, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	char err[256] = "";
	const char *p = write_file("empty", "", 0, 0600);
	errno = 0;
	cr_assert_null(mc_secret_from_file(p, err, sizeof err));
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "empty"), "%s", err);

	p = write_file("blank", " \n\t\r\n", 5, 0600);
	errno = 0;
	cr_assert_null(mc_secret_from_file(p, err, sizeof err));
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "empty"), "%s", err);
}

Test(secret, inner_whitespace_or_control_refused, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	char err[256] = "";
	const char *p = write_file("tok", "two words\n", 10, 0600);
	errno = 0;
	cr_assert_null(mc_secret_from_file(p, err, sizeof err));
	cr_assert_eq(errno, EINVAL);
	p = write_file("tok", "abc\x01" "def", 7, 0600);
	cr_assert_null(mc_secret_from_file(p, err, sizeof err));
	cr_assert_eq(errno, EINVAL);
}

Test(secret, oversize_refused_and_limit_accepted, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	char big[4097];
	memset(big, 'a', sizeof big);
	char err[256] = "";
	const char *p = write_file("big", big, sizeof big, 0600);
	errno = 0;
	cr_assert_null(mc_secret_from_file(p, err, sizeof err));
	cr_assert_eq(errno, EFBIG);
	cr_assert_not_null(strstr(err, "4 KiB"), "%s", err);

	p = write_file("limit", big, 4096, 0600);
	struct mc_secret *s = mc_secret_from_file(p, err, sizeof err);
	cr_assert_not_null(s, "exactly 4 KiB is allowed: %s", err);
	cr_assert_eq(mc_secret_len(s), 4096);
	mc_secret_free(s);
}

/* A FIFO at token_file must be refused at once: opening one for reading
 * blocks until a writer appears, which would hang a reload on the
 * supervisor's loop. The alarm turns a hang into a failure. */
Test(secret, fifo_refused_without_blocking, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	char p[128];
	snprintf(p, sizeof p, "%s/fifo", tmpdir);
	cr_assert_eq(mkfifo(p, 0600), 0);
	char err[256] = "";
	alarm(5);
	errno = 0;
	struct mc_secret *s = mc_secret_from_file(p, err, sizeof err);
	alarm(0);
	cr_assert_null(s);
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}

Test(secret, missing_file_and_directory, .init = make_tmpdir, .fini = cleanup_tmpdir)
{
	char err[256] = "";
	char path[128];
	snprintf(path, sizeof path, "%s/nope", tmpdir);
	errno = 0;
	cr_assert_null(mc_secret_from_file(path, err, sizeof err));
	cr_assert_eq(errno, ENOENT);
	cr_assert_not_null(strstr(err, "nope"));
	errno = 0;
	cr_assert_null(mc_secret_from_file(tmpdir, NULL, 0), "a directory is refused");
	cr_assert_eq(errno, EINVAL);
}

/* ---- log escaping ---- */

static const char *esc(const char *v)
{
	static char buf[512];
	mc_log_escape(buf, sizeof buf, v);
	return buf;
}

Test(log, escape_values)
{
	cr_assert_str_eq(esc("plain"), "plain");
	cr_assert_str_eq(esc(""), "\"\"");
	cr_assert_str_eq(esc("two words"), "\"two words\"");
	cr_assert_str_eq(esc("k=v"), "\"k=v\"");
	cr_assert_str_eq(esc("say \"hi\""), "\"say \\\"hi\\\"\"");
	cr_assert_str_eq(esc("back\\slash"), "\"back\\\\slash\"");
	cr_assert_str_eq(esc("a\nb"), "\"a\\nb\"");
	cr_assert_str_eq(esc("a\rb\tc"), "\"a\\rb\\tc\"");
	cr_assert_str_eq(esc("bell\x07" "esc\x1b" "del\x7f"), "\"bell\\x07esc\\x1bdel\\x7f\"");
	cr_assert_str_eq(esc("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

Test(log, escape_truncates_safely)
{
	char small[6];
	size_t n = mc_log_escape(small, sizeof small, "abcdefghij");
	cr_assert_eq(n, 5);
	cr_assert_str_eq(small, "abcde");
	n = mc_log_escape(small, 1, "abc");
	cr_assert_eq(n, 0);
	cr_assert_str_eq(small, "");
}

/* Runs fn with stderr redirected to a temp file and returns what it wrote
 * (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/mc-log-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	cr_assert_geq(saved, 0);
	cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	cr_assert_geq(len, 0);
	char *out = calloc(1, (size_t)len + 1);
	cr_assert_not_null(out);
	cr_assert_eq(pread(fd, out, (size_t)len, 0), len);
	close(fd);
	return out;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

static void log_forgery_attempt(void)
{
	mc_log_set_context("worker", "ws-1");
	mc_log(MC_LOG_WARN, "register failed\nts=2026-01-01T00:00:00Z level=error msg=forged",
	       "error", "POST /x: 500 \"oops\"\n level=error proc=supervisor msg=\"pwned\"",
	       "ctl", "\x1b[2J\r", "none", NULL, NULL);
}

Test(log, one_event_is_one_line)
{
	char *out = capture_stderr(log_forgery_attempt);
	cr_assert_eq(count_char(out, '\n'), 1, "got: %s", out);
	cr_assert_eq(out[strlen(out) - 1], '\n');
	cr_assert_eq(count_char(out, '\r'), 0);
	cr_assert_eq(count_char(out, '\x1b'), 0);
	cr_assert_eq(strncmp(out, "ts=", 3), 0, "got: %s", out);
	cr_assert_not_null(strstr(out, " level=warn proc=worker ws=ws-1 pid="));
	cr_assert_not_null(strstr(out, " msg=\"register failed\\nts=2026-01-01T00:00:00Z level=error msg=forged\""));
	cr_assert_not_null(strstr(out, " error=\"POST /x: 500 \\\"oops\\\"\\n level=error proc=supervisor msg=\\\"pwned\\\"\""));
	cr_assert_not_null(strstr(out, " ctl=\"\\x1b[2J\\r\""));
	cr_assert_not_null(strstr(out, " none=null"));
	free(out);
}

static void log_levels(void)
{
	mc_log_set_level(MC_LOG_WARN);
	mc_log(MC_LOG_INFO, "hidden", NULL);
	mc_log(MC_LOG_DEBUG, "hidden", NULL);
	mc_log(MC_LOG_ERROR, "shown", "n", MC_LOG_NUM(-42), NULL);
}

Test(log, level_filter_and_numbers)
{
	char *out = capture_stderr(log_levels);
	cr_assert_eq(count_char(out, '\n'), 1, "got: %s", out);
	cr_assert_null(strstr(out, "hidden"));
	cr_assert_not_null(strstr(out, "level=error"));
	cr_assert_not_null(strstr(out, " n=-42"));
	free(out);
}

static void log_journald(void)
{
	setenv("JOURNAL_STREAM", "8:1234", 1);
	mc_log(MC_LOG_INFO, "hello", NULL);
	mc_log(MC_LOG_ERROR, "bad", NULL);
}

Test(log, journald_priority_prefix)
{
	char *out = capture_stderr(log_journald);
	cr_assert_eq(strncmp(out, "<6>ts=", 6), 0, "got: %s", out);
	cr_assert_not_null(strstr(out, "\n<3>ts="));
	free(out);
}

Test(log, parse_level)
{
	enum mc_log_level l;
	cr_assert_eq(mc_log_parse_level("debug", &l), 0);
	cr_assert_eq(l, MC_LOG_DEBUG);
	cr_assert_eq(mc_log_parse_level("error", &l), 0);
	cr_assert_eq(l, MC_LOG_ERROR);
	errno = 0;
	cr_assert_eq(mc_log_parse_level("verbose", &l), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_log_parse_level("INFO", &l), -1);
}
