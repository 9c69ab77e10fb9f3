/* The ledger: round trips, persistence across reopen, corrupt state dirs,
 * a thousand workspaces, and no leaked descriptors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "ipc/messages.h"
#include "supervisor/ledger.h"

TestSuite(ledger, .timeout = 20);

#define WS1 "0c6e7a1e-1111-4a4a-8b8b-000000000001"
#define WS2 "0c6e7a1e-1111-4a4a-8b8b-000000000002"
#define WS3 "0c6e7a1e-1111-4a4a-8b8b-000000000003"
#define WS4 "0c6e7a1e-1111-4a4a-8b8b-000000000004"
#define RT1 "7a000000-3333-4e4e-afaf-000000000001"
#define RT2 "7a000000-3333-4e4e-afaf-000000000002"
#define RT3 "7a000000-3333-4e4e-afaf-000000000003"

static char state_dir[64];

static void setup(void)
{
	snprintf(state_dir, sizeof state_dir, "/tmp/mc-ledger-XXXXXX");
	cr_assert_not_null(mkdtemp(state_dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", state_dir);
	cr_expect_eq(system(cmd), 0);
}

static const char *ledger_path(const char *name)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/ledger/%s", state_dir, name);
	return path;
}

static bool exists(const char *name)
{
	struct stat st;
	return stat(ledger_path(name), &st) == 0;
}

static void write_ledger_file(const char *name, const void *data, size_t len)
{
	int fd = open(ledger_path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", ledger_path(name), strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static char *read_ledger_file(const char *name, char *buf, size_t n)
{
	FILE *f = fopen(ledger_path(name), "re");
	cr_assert_not_null(f, "%s", ledger_path(name));
	size_t got = fread(buf, 1, n - 1, f);
	buf[got] = '\0';
	fclose(f);
	return buf;
}

static struct mc_ledger *open_ok(void)
{
	char err[512] = "";
	struct mc_ledger *l = mc_ledger_open(state_dir, err, sizeof err);
	cr_assert_not_null(l, "open: %s", err);
	return l;
}

/* The files follow memory in the background: wait for them. */
static void sync_ok(struct mc_ledger *l)
{
	cr_assert_eq(mc_ledger_sync(l, 5000), 0, "sync: %s", strerror(errno));
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	int n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

Test(ledger, set_get_clear_round_trip, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	struct stat st;
	cr_assert_eq(stat(ledger_path(""), &st), 0, "ledger dir created");
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(mc_ledger_count(l), 0);

	const char *ids[] = { RT1, RT2 };
	cr_assert_eq(mc_ledger_set(l, WS1, 2, ids), 0);
	const char *const *got = NULL;
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 2);
	cr_assert_str_eq(got[0], RT1);
	cr_assert_str_eq(got[1], RT2);
	cr_assert_eq(mc_ledger_count(l), 1);

	char buf[256];
	sync_ok(l);
	cr_assert_str_eq(read_ledger_file(WS1, buf, sizeof buf), RT1 "\n" RT2 "\n");
	cr_assert_eq(stat(ledger_path(WS1), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_not(exists(WS1 ".tmp"));

	/* replace */
	const char *ids2[] = { RT3 };
	cr_assert_eq(mc_ledger_set(l, WS1, 1, ids2), 0);
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 1);
	cr_assert_str_eq(got[0], RT3);
	sync_ok(l);
	cr_assert_str_eq(read_ledger_file(WS1, buf, sizeof buf), RT3 "\n");

	/* unknown workspace */
	got = (const char *const *)1;
	cr_assert_eq(mc_ledger_get(l, WS2, &got), 0);
	cr_assert_null(got);
	cr_assert_eq(mc_ledger_get(l, "not-a-uuid", NULL), 0);

	cr_assert_eq(mc_ledger_clear(l, WS1), 0);
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 0);
	cr_assert_eq(mc_ledger_count(l), 0);
	sync_ok(l);
	cr_assert_not(exists(WS1));
	cr_assert_eq(mc_ledger_clear(l, WS1), 0, "clearing twice is fine");
	cr_assert_eq(mc_ledger_clear(l, WS2), 0, "clearing an unknown workspace is fine");
	mc_ledger_free(l);
	mc_ledger_free(NULL);
}

Test(ledger, empty_set_removes_the_file, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *ids[] = { RT1 };
	cr_assert_eq(mc_ledger_set(l, WS1, 1, ids), 0);
	sync_ok(l);
	cr_assert(exists(WS1));
	cr_assert_eq(mc_ledger_set(l, WS1, 0, NULL), 0);
	sync_ok(l);
	cr_assert_not(exists(WS1));
	cr_assert_eq(mc_ledger_count(l), 0);
	mc_ledger_free(l);
}

Test(ledger, persists_across_reopen, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *a[] = { RT1, RT2 }, *b[] = { RT3 };
	cr_assert_eq(mc_ledger_set(l, WS1, 2, a), 0);
	cr_assert_eq(mc_ledger_set(l, WS2, 1, b), 0);
	cr_assert_eq(mc_ledger_set(l, WS3, 1, b), 0);
	cr_assert_eq(mc_ledger_clear(l, WS3), 0);
	mc_ledger_free(l); /* as if killed: nothing but the files survives */

	l = open_ok();
	cr_assert_eq(mc_ledger_count(l), 2);
	const char *const *got;
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 2);
	cr_assert_str_eq(got[0], RT1);
	cr_assert_str_eq(got[1], RT2);
	cr_assert_eq(mc_ledger_get(l, WS2, &got), 1);
	cr_assert_str_eq(got[0], RT3);
	cr_assert_eq(mc_ledger_get(l, WS3, &got), 0);
	mc_ledger_free(l);
}

Test(ledger, ids_are_lowercased, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *ids[] = { "7A000000-3333-4E4E-AFAF-000000000001" };
	cr_assert_eq(mc_ledger_set(l, "0C6E7A1E-1111-4A4A-8B8B-000000000001", 1, ids), 0);
	const char *const *got;
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 1, "lookups ignore case");
	cr_assert_str_eq(got[0], RT1);
	sync_ok(l);
	cr_assert(exists(WS1), "the file name is lowercase");
	mc_ledger_free(l);
}

Test(ledger, invalid_arguments, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *bad[] = { RT1, "nope" };
	errno = 0;
	cr_assert_eq(mc_ledger_set(l, WS1, 2, bad), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_ledger_get(l, WS1, NULL), 0, "nothing changed");
	const char *ok[] = { RT1 };
	errno = 0;
	cr_assert_eq(mc_ledger_set(l, "../../etc/passwd", 1, ok), -1);
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_eq(mc_ledger_clear(l, "x"), -1);
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_eq(mc_ledger_set(l, WS1, MC_LEDGER_MAX_IDS + 1, ok), -1, "too many");
	cr_assert_eq(errno, EINVAL);
	mc_ledger_free(l);
}

Test(ledger, unchanged_set_is_not_rewritten, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *ids[] = { RT1, RT2 };
	cr_assert_eq(mc_ledger_set(l, WS1, 2, ids), 0);
	sync_ok(l);
	struct stat a, b;
	cr_assert_eq(stat(ledger_path(WS1), &a), 0);
	cr_assert_eq(mc_ledger_set(l, WS1, 2, ids), 0);
	sync_ok(l);
	cr_assert_eq(stat(ledger_path(WS1), &b), 0);
	cr_assert_eq(a.st_ino, b.st_ino, "same file: no rewrite");
	const char *other[] = { RT2, RT1 };
	cr_assert_eq(mc_ledger_set(l, WS1, 2, other), 0);
	sync_ok(l);
	cr_assert_eq(stat(ledger_path(WS1), &b), 0);
	cr_assert_neq(a.st_ino, b.st_ino, "a change is written through a new file");
	mc_ledger_free(l);
}

Test(ledger, write_failure_keeps_memory_and_retries, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	/* a directory where the temp file goes makes the write fail, even as root */
	cr_assert_eq(mkdir(ledger_path(WS1 ".tmp"), 0700), 0);
	const char *ids[] = { RT1 };
	cr_assert_eq(mc_ledger_set(l, WS1, 1, ids), 0, "memory changes; the disk follows");
	errno = 0;
	cr_assert_eq(mc_ledger_sync(l, 5000), -1, "the failed write is reported");
	cr_assert_neq(errno, 0);
	cr_assert_neq(errno, ETIMEDOUT);
	const char *const *got;
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 1, "memory holds what the worker reported");
	cr_assert_not(exists(WS1));
	cr_assert_eq(rmdir(ledger_path(WS1 ".tmp")), 0);
	sync_ok(l); /* the failed file is still dirty: written again */
	cr_assert(exists(WS1));
	mc_ledger_free(l);
}

static int collect(const char *ws, size_t n, const char *const *ids, void *arg)
{
	char *out = arg;
	size_t len = strlen(out);
	out[len] = ws[35]; /* last digit of the test UUIDs */
	out[len + 1] = '\0';
	return 0;
}

static int stop_at_second(const char *ws, size_t n, const char *const *ids, void *arg)
{
	int *calls = arg;
	return ++*calls == 2 ? 7 : 0;
}

Test(ledger, foreach_in_order, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *ids[] = { RT1 };
	cr_assert_eq(mc_ledger_set(l, WS3, 1, ids), 0);
	cr_assert_eq(mc_ledger_set(l, WS1, 1, ids), 0);
	cr_assert_eq(mc_ledger_set(l, WS2, 1, ids), 0);
	char seen[16] = "";
	cr_assert_eq(mc_ledger_foreach(l, collect, seen), 0);
	cr_assert_str_eq(seen, "123");
	int calls = 0;
	cr_assert_eq(mc_ledger_foreach(l, stop_at_second, &calls), 7);
	cr_assert_eq(calls, 2);
	mc_ledger_free(l);
}

Test(ledger, corrupt_files_are_quarantined, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok(); /* creates the directory */
	mc_ledger_free(l);

	write_ledger_file("not-a-uuid", RT1 "\n", 37);
	write_ledger_file(WS1, RT1 "\nhello\n", 43);
	static const unsigned char junk[] = { 0x00, 0xff, 0x13, 0x37, '\n', 0x80, 0x00 };
	write_ledger_file(WS2, junk, sizeof junk);
	write_ledger_file(WS3, RT2 "\n" RT3, 73); /* no final newline: still fine */
	write_ledger_file(WS4 ".tmp", RT1 "\n", 37);
	write_ledger_file("0C6E7A1E-1111-4A4A-8B8B-000000000005", RT1 "\n", 37);
	write_ledger_file("0c6e7a1e-1111-4a4a-8b8b-000000000006", "", 0);
	cr_assert_eq(mkdir(ledger_path("0c6e7a1e-1111-4a4a-8b8b-000000000007"), 0700), 0);
	write_ledger_file("old.bad", "x", 1);

	l = open_ok();
	cr_assert_eq(mc_ledger_count(l), 1, "only the valid file loads");
	const char *const *got;
	cr_assert_eq(mc_ledger_get(l, WS3, &got), 2);
	cr_assert_str_eq(got[0], RT2);
	cr_assert_str_eq(got[1], RT3);
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 0);

	cr_assert(exists("not-a-uuid.bad"));
	cr_assert(exists(WS1 ".bad"));
	cr_assert(exists(WS2 ".bad"));
	cr_assert(exists("0C6E7A1E-1111-4A4A-8B8B-000000000005.bad"));
	cr_assert(exists("0c6e7a1e-1111-4a4a-8b8b-000000000006.bad"), "empty file");
	cr_assert(exists("0c6e7a1e-1111-4a4a-8b8b-000000000007.bad"), "a directory");
	cr_assert(exists("old.bad"), "earlier quarantine left alone");
	cr_assert_not(exists("not-a-uuid"));
	cr_assert_not(exists(WS1));
	cr_assert_not(exists(WS2));
	cr_assert_not(exists(WS4 ".tmp"), "leftover temp file removed");
	cr_assert_not(exists(WS4));

	/* the workspace works normally afterwards */
	const char *ids[] = { RT1 };
	cr_assert_eq(mc_ledger_set(l, WS1, 1, ids), 0);
	mc_ledger_free(l);
	l = open_ok();
	cr_assert_eq(mc_ledger_count(l), 2, "quarantined files are not reloaded");
	mc_ledger_free(l);
}

Test(ledger, too_many_ids_is_corrupt, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	mc_ledger_free(l);
	size_t n = MC_LEDGER_MAX_IDS + 1, len = n * 37;
	char *buf = malloc(len + 1); /* snprintf's final NUL */
	cr_assert_not_null(buf);
	for (size_t i = 0; i < n; i++)
		snprintf(buf + i * 37, 38, "7a000000-3333-4e4e-afaf-%012zu\n", i);
	write_ledger_file(WS1, buf, len);
	write_ledger_file(WS2, buf, len - 37); /* exactly the maximum */
	free(buf);
	l = open_ok();
	cr_assert_eq(mc_ledger_get(l, WS1, NULL), 0);
	cr_assert(exists(WS1 ".bad"));
	cr_assert_eq(mc_ledger_get(l, WS2, NULL), MC_LEDGER_MAX_IDS);
	mc_ledger_free(l);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(ledger, thousand_workspaces, .init = setup, .fini = teardown)
{
	enum { N = 1000 };
	struct mc_ledger *l = open_ok();
	char ws[MC_ID_MAX], rt[3][MC_ID_MAX];
	const char *ids[3] = { rt[0], rt[1], rt[2] };
	double t0 = now_s();
	for (int i = 0; i < N; i++) {
		snprintf(ws, sizeof ws, "0c6e7a1e-1111-4a4a-8b8b-%012d", i);
		for (int j = 0; j < 3; j++)
			snprintf(rt[j], sizeof rt[j], "7a000000-3333-4e4e-afaf-%06d%06d", i, j);
		cr_assert_eq(mc_ledger_set(l, ws, 3, ids), 0);
	}
	double t_set = now_s() - t0;
	cr_assert_eq(mc_ledger_count(l), N);
	t0 = now_s();
	sync_ok(l);
	double t_sync = now_s() - t0;
	mc_ledger_free(l);

	t0 = now_s();
	l = open_ok();
	double t_load = now_s() - t0;
	cr_assert_eq(mc_ledger_count(l), N);
	t0 = now_s();
	for (int i = 0; i < N; i++) {
		snprintf(ws, sizeof ws, "0c6e7a1e-1111-4a4a-8b8b-%012d", i);
		const char *const *got;
		cr_assert_eq(mc_ledger_get(l, ws, &got), 3);
		snprintf(rt[2], sizeof rt[2], "7a000000-3333-4e4e-afaf-%06d%06d", i, 2);
		cr_assert_str_eq(got[2], rt[2]);
	}
	double t_get = now_s() - t0;
	mc_ledger_free(l);
	cr_log_info("1000 sets %.3fs, sync %.3fs, reload %.3fs, 1000 gets %.6fs", t_set, t_sync,
		    t_load, t_get);
	/* sets touch memory only (the loop never waits for the disk); the
	 * writer fsyncs each file once; reloading and lookups must be cheap */
	cr_assert_lt(t_set, 1.0);
	cr_assert_lt(t_sync, 15.0);
	cr_assert_lt(t_load, 2.0);
	cr_assert_lt(t_get, 0.1);
}

Test(ledger, no_fd_leak, .init = setup, .fini = teardown)
{
	int before = count_fds();
	struct mc_ledger *l = open_ok();
	const char *ids[] = { RT1, RT2 };
	cr_assert_eq(mc_ledger_set(l, WS1, 2, ids), 0);
	cr_assert_eq(mc_ledger_set(l, WS2, 2, ids), 0);
	cr_assert_eq(mc_ledger_clear(l, WS2), 0);
	sync_ok(l);
	cr_assert_eq(count_fds(), before + 2, "only the directory and the writer's eventfd stay open");
	mc_ledger_free(l);
	write_ledger_file("junk", "x", 1);
	write_ledger_file(WS3 ".tmp", "x", 1);
	l = open_ok();
	cr_assert_eq(mc_ledger_count(l), 1);
	mc_ledger_free(l);
	cr_assert_eq(count_fds(), before);
}

Test(ledger, open_errors, .init = setup, .fini = teardown)
{
	char path[128], err[512] = "";
	snprintf(path, sizeof path, "%s/file", state_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	errno = 0;
	cr_assert_null(mc_ledger_open(path, err, sizeof err), "state_dir is a file");
	cr_assert_neq(errno, 0);
	cr_assert_not_null(strstr(err, path), "%s", err);

	snprintf(path, sizeof path, "%s/missing/deeper", state_dir);
	cr_assert_null(mc_ledger_open(path, err, sizeof err));
	cr_assert_eq(errno, ENOENT);
	cr_assert_not_null(strstr(err, "cannot create"), "%s", err);
}

/* A stalled disk must not stall the caller (the supervisor's loop): a FIFO
 * where the temp file goes blocks the writer's open() until a reader
 * appears, as a hung storage device would. Sets keep returning at once;
 * sync reports the timeout; once the "disk" recovers, everything lands. */
Test(ledger, a_stalled_disk_does_not_block_the_caller, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	cr_assert_eq(mkfifo(ledger_path(WS1 ".tmp"), 0600), 0);
	const char *a[] = { RT1 }, *b[] = { RT2 };
	double t0 = now_s();
	cr_assert_eq(mc_ledger_set(l, WS1, 1, a), 0);
	mc_ledger_flush(l);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(mc_ledger_set(l, WS2, 1, (i % 2) ? a : b), 0);
		cr_assert_eq(mc_ledger_set(l, WS3, 1, (i % 2) ? b : a), 0);
		mc_ledger_flush(l);
		mc_ledger_on_ready(l);
	}
	cr_assert_eq(mc_ledger_clear(l, WS3), 0);
	double t_calls = now_s() - t0;
	cr_assert_lt(t_calls, 0.5, "the calls waited for the disk (%.3f s)", t_calls);
	errno = 0;
	cr_assert_eq(mc_ledger_sync(l, 300), -1);
	cr_assert_eq(errno, ETIMEDOUT);

	/* The disk comes back: the stuck open completes, the write to the FIFO
	 * cannot be fsynced and fails (the FIFO is removed), and the retry
	 * writes a real file. */
	int rfd = open(ledger_path(WS1 ".tmp"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert_geq(rfd, 0);
	int rc = -1;
	for (int i = 0; i < 50 && rc != 0; i++)
		rc = mc_ledger_sync(l, 2000);
	close(rfd);
	cr_assert_eq(rc, 0, "the ledger did not recover: %s", strerror(errno));
	char buf[256];
	cr_assert_str_eq(read_ledger_file(WS1, buf, sizeof buf), RT1 "\n");
	cr_assert_str_eq(read_ledger_file(WS2, buf, sizeof buf), RT1 "\n", "the last set wins");
	cr_assert_not(exists(WS3));
	mc_ledger_free(l);
}

/* ---- tasks in flight ---- */

#define TK1 "7b000000-0000-4000-8000-00000000000a"
#define TK2 "7b000000-0000-4000-8000-00000000000b"

static int count_ws(const char *ws, size_t n, const char *const *ids, void *arg)
{
	(void)ws;
	(void)ids;
	*(size_t *)arg += n;
	return 0;
}

Test(ledger, task_ids_are_journaled_beside_the_runtime_ids, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	const char *rt[] = { RT1 }, *tk[] = { TK1, TK2 };
	cr_assert_eq(mc_ledger_set(l, WS1, 1, rt), 0);
	cr_assert_eq(mc_ledger_set_tasks(l, WS1, 2, tk), 0);
	cr_assert_eq(mc_ledger_set_tasks(l, WS2, 1, tk), 0);
	sync_ok(l);
	char buf[256];
	cr_assert_str_eq(read_ledger_file(WS1 ".tasks", buf, sizeof buf), TK1 "\n" TK2 "\n");
	cr_assert_str_eq(read_ledger_file(WS1, buf, sizeof buf), RT1 "\n");
	cr_assert_eq(mc_ledger_count(l), 1, "tasks are not runtime sets");
	size_t n = 0;
	mc_ledger_foreach(l, count_ws, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(mc_ledger_set_tasks(l, WS2, 0, NULL), 0);
	mc_ledger_free(l); /* as if killed */
	cr_assert(!exists(WS2 ".tasks"), "an empty set has no file");

	l = open_ok();
	cr_assert(!exists(WS1 ".tasks.bad"), "a tasks file is no corrupt file");
	const char *const *got;
	cr_assert_eq(mc_ledger_get_tasks(l, WS1, &got), 2);
	cr_assert_str_eq(got[1], TK2);
	cr_assert_eq(mc_ledger_get(l, WS1, &got), 1);
	cr_assert_str_eq(got[0], RT1);
	n = 0;
	mc_ledger_foreach_tasks(l, count_ws, &n);
	cr_assert_eq(n, 2);
	cr_assert_eq(mc_ledger_set_tasks(l, "nope", 1, tk), -1);
	cr_assert_eq(errno, EINVAL);
	mc_ledger_free(l);
}

static void note_change(void *arg, const char *ws)
{
	snprintf(arg, 64, "%s", ws);
}

Test(ledger, observer_hears_runtime_set_changes_only, .init = setup, .fini = teardown)
{
	struct mc_ledger *l = open_ok();
	char heard[64] = "";
	mc_ledger_set_observer(l, note_change, heard);
	const char *rt[] = { RT1 }, *tk[] = { TK1 };
	cr_assert_eq(mc_ledger_set(l, WS1, 1, rt), 0);
	cr_assert_str_eq(heard, WS1);
	heard[0] = '\0';
	cr_assert_eq(mc_ledger_set(l, WS1, 1, rt), 0);
	cr_assert_str_eq(heard, "", "an unchanged set is no change");
	cr_assert_eq(mc_ledger_set_tasks(l, WS2, 1, tk), 0);
	cr_assert_str_eq(heard, "", "tasks are not runtimes");
	cr_assert_eq(mc_ledger_clear(l, WS1), 0);
	cr_assert_str_eq(heard, WS1);
	mc_ledger_free(l);
}
