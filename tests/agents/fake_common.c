#include "fake_common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *fa_mode(void)
{
	const char *m = getenv("FAKE_AGENT_MODE");
	return m != NULL && m[0] != '\0' ? m : "text";
}

bool fa_mode_is(const char *m)
{
	return strcmp(fa_mode(), m) == 0;
}

static long delay_ms(void)
{
	const char *d = getenv("FAKE_AGENT_DELAY_MS");
	if (d != NULL && d[0] != '\0') {
		char *end;
		long v = strtol(d, &end, 10);
		if (*end == '\0' && v >= 0 && v < 3600000)
			return v;
	}
	return fa_mode_is("slow") ? 100 : 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void fa_record(int argc, char **argv)
{
	const char *path = getenv("FAKE_AGENT_RECORD");
	if (path == NULL || path[0] == '\0')
		return;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	for (int i = 0; i < argc; i++)
		fprintf(f, "argv\t%s\n", argv[i]);
	char cwd[4096];
	if (getcwd(cwd, sizeof cwd) != NULL)
		fprintf(f, "cwd\t%s\n", cwd);
	for (char **e = environ; *e != NULL; e++)
		fprintf(f, "env\t%s\n", *e);
	fclose(f);
	rename(tmp, path);
}

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(1, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the reader is gone */
		p += w;
		n -= (size_t)w;
	}
}

void fa_raw_line(const char *s, size_t len)
{
	write_all(s, len);
	write_all("\n", 1);
	long d = delay_ms();
	if (d > 0)
		sleep_ms(d);
}

void fa_line(const char *s)
{
	fa_raw_line(s, strlen(s));
}

void fa_huge_line(const char *prefix, const char *suffix)
{
	static char chunk[65536];
	memset(chunk, 'x', sizeof chunk);
	write_all(prefix, strlen(prefix));
	for (size_t done = 0; done < FA_HUGE_BYTES; done += sizeof chunk)
		write_all(chunk, sizeof chunk);
	write_all(suffix, strlen(suffix));
	write_all("\n", 1);
}

char *fa_read_line(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return NULL;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

void fa_uuid(char out[37])
{
	unsigned char b[16] = { 0 };
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, b, sizeof b) != (ssize_t)sizeof b)
			b[0] = (unsigned char)getpid();
		close(fd);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

void fa_spawn_grandchild(void)
{
	/* Ignored before the fork: a SIGTERM right after it must not find
	 * the grandchild still at the default. */
	signal(SIGTERM, SIG_IGN);
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	signal(SIGTERM, SIG_DFL);
}

void fa_hang(void)
{
	for (;;)
		pause();
}

void fa_exit_at_eof(int code)
{
	char *l;
	while ((l = fa_read_line()) != NULL)
		free(l);
	exit(code);
}

void fa_times(const char *event)
{
	const char *path = getenv("FAKE_AGENT_TIMES");
	if (path == NULL || path[0] == '\0')
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	const char *id = getenv("MULTICA_TASK_ID");
	char line[256];
	int n = snprintf(line, sizeof line, "%s\t%lld.%09ld\t%s\t%d\n", event, (long long)ts.tv_sec,
			 ts.tv_nsec, id != NULL ? id : "-", (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || n <= 0 || (size_t)n >= sizeof line) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* One write to an O_APPEND file: lines of concurrent agents never mix. */
	ssize_t w;
	while ((w = write(fd, line, (size_t)n)) < 0 && errno == EINTR)
		;
	close(fd);
}

static long env_long(const char *name, long def, long max)
{
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0')
		return def;
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	return errno == 0 && *end == '\0' && x > 0 && x <= max ? x : def;
}

long fa_lines_per_s(void)
{
	return env_long("FAKE_AGENT_LINES_PER_S", 200, 100000);
}

long fa_seconds(void)
{
	return env_long("FAKE_AGENT_SECONDS", 10, 86400);
}

long long fa_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void fa_pace(long long start_ns, unsigned long i, long per_s)
{
	long long due = start_ns + (long long)i * 1000000000LL / per_s;
	struct timespec ts = { (time_t)(due / 1000000000LL), (long)(due % 1000000000LL) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}
