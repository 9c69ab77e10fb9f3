/* The fake claude's attacker mode: tries what a prompt-injected agent
 * would, records what worked (fake_attack.h). */
#include "fake_attack.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEEP_MAX (64u * 1024u)
#define SCAN_DEPTH 4
#define SCAN_FILES 300

static unsigned scanned;

static const char *ename(int e)
{
	if (e == 0)
		return "";
	const char *n = strerrorname_np(e);
	return n != NULL ? n : "E?";
}

/* base64 of len bytes (malloc'd). */
static char *b64(const unsigned char *p, size_t len)
{
	static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc((len + 2) / 3 * 4 + 1), *q = o;
	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*q++ = T[(v >> 18) & 63];
		*q++ = T[(v >> 12) & 63];
		*q++ = i + 1 < len ? T[(v >> 6) & 63] : '=';
		*q++ = i + 2 < len ? T[v & 63] : '=';
	}
	*q = '\0';
	return o;
}

static cJSON *entry(cJSON *results, const char *label, const char *action, const char *target)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "label", label);
	cJSON_AddStringToObject(e, "action", action);
	cJSON_AddStringToObject(e, "target", target);
	cJSON_AddItemToArray(results, e);
	return e;
}

static void outcome(cJSON *e, bool ok, int err)
{
	cJSON_AddBoolToObject(e, "ok", ok);
	cJSON_AddStringToObject(e, "errno", ok ? "" : ename(err));
}

/* Reads up to KEEP_MAX bytes of path into e's "data" when keep; the errno of
 * the open (or of the first read) otherwise 0. */
static int read_into(cJSON *e, const char *path, bool keep)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno;
	unsigned char *buf = malloc(KEEP_MAX);
	size_t n = 0;
	int err = 0;
	while (buf != NULL && n < KEEP_MAX) {
		ssize_t r = read(fd, buf + n, KEEP_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = n == 0 ? errno : 0;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (keep && buf != NULL && e != NULL) {
		char *s = b64(buf, n);
		cJSON_AddStringToObject(e, "data", s ? s : "");
		free(s);
	}
	free(buf);
	/* /proc/N/mem opens for a tracer only; a read error after an open that
	 * worked is still an open that worked: reported, not hidden. */
	if (err != 0 && e != NULL)
		cJSON_AddStringToObject(e, "read_errno", ename(err));
	return 0;
}

static int list_dir(const char *path, cJSON *e)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return errno;
	errno = 0;
	struct dirent *de;
	cJSON *names = cJSON_CreateArray();
	int n = 0;
	while ((de = readdir(d)) != NULL && n < 64) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cJSON_AddItemToArray(names, cJSON_CreateString(de->d_name));
		n++;
	}
	int err = errno;
	closedir(d);
	cJSON_AddItemToObject(e, "names", names);
	return err;
}

static void scan(cJSON *results, const char *label, const char *dir, int depth)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && scanned < SCAN_FILES) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[4096];
		if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
			continue;
		struct stat st;
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < SCAN_DEPTH) {
			scan(results, label, p, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			cJSON *e = cJSON_CreateObject();
			if (read_into(e, p, true) == 0) {
				cJSON_AddStringToObject(e, "label", label);
				cJSON_AddStringToObject(e, "action", "scan_file");
				cJSON_AddStringToObject(e, "target", p);
				cJSON_AddBoolToObject(e, "ok", true);
				cJSON_AddStringToObject(e, "errno", "");
				cJSON_AddItemToArray(results, e);
				scanned++;
			} else {
				cJSON_Delete(e);
			}
		}
	}
	closedir(d);
}

static int do_ptrace(pid_t pid)
{
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
		return errno;
	int st;
	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	return 0;
}

static int do_exec(const char *path)
{
	pid_t p = fork();
	if (p < 0)
		return errno;
	if (p == 0) {
		char *argv[] = { (char *)path, NULL };
		execv(path, argv);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : ENOEXEC;
}

static int do_connect(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof a.sun_path) {
		close(s);
		return ENAMETOOLONG;
	}
	memcpy(a.sun_path, path, len + 1);
	int r = connect(s, (struct sockaddr *)&a, sizeof a), err = errno;
	close(s);
	return r == 0 ? 0 : err;
}

static int do_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno;
	int err = write(fd, "attack\n", 7) == 7 ? 0 : (errno ? errno : EIO);
	close(fd);
	return err;
}

static pid_t pid_of(const char *t)
{
	if (strcmp(t, "ppid") == 0)
		return getppid();
	char *end;
	long v = strtol(t, &end, 10);
	return *end == '\0' && v > 0 ? (pid_t)v : -1;
}

/* $HOME/ $TMPDIR/ $CWD/ prefixes, into out. */
static void expand(const char *t, char *out, size_t n)
{
	static const char *const vars[] = { "HOME", "TMPDIR", "CWD" };
	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(vars[i]);
		if (t[0] == '$' && strncmp(t + 1, vars[i], k) == 0 && (t[k + 1] == '/' || !t[k + 1])) {
			char cwd[4096] = "";
			const char *v = i == 2 ? getcwd(cwd, sizeof cwd) : getenv(vars[i]);
			snprintf(out, n, "%s%s", v ? v : "", t + k + 1);
			return;
		}
	}
	if (strncmp(t, "/proc/ppid/", 11) == 0) {
		snprintf(out, n, "/proc/%d/%s", (int)getppid(), t + 11);
		return;
	}
	snprintf(out, n, "%s", t);
}

static void act(cJSON *results, const char *label, const char *action, const char *raw)
{
	char t[4096];
	expand(raw, t, sizeof t);
	if (strcmp(action, "scan") == 0) {
		scan(results, label, t, 0);
		return;
	}
	cJSON *e = entry(results, label, action, t);
	int err = EINVAL;
	pid_t pid;
	if (strcmp(action, "read_file") == 0 || strcmp(action, "dump") == 0) {
		err = read_into(e, t, true);
	} else if (strcmp(action, "list_dir") == 0) {
		err = list_dir(t, e);
	} else if (strcmp(action, "open_dir_path") == 0) {
		int fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		err = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
	} else if (strcmp(action, "write_file") == 0) {
		err = do_write(t);
	} else if (strcmp(action, "connect_unix") == 0) {
		err = do_connect(t);
	} else if (strcmp(action, "kill0") == 0) {
		pid = pid_of(t);
		err = pid < 0 ? EINVAL : kill(pid, 0) == 0 ? 0 : errno;
	} else if (strcmp(action, "ptrace_attach") == 0) {
		pid = pid_of(t);
		err = pid < 0 ? EINVAL : do_ptrace(pid);
	} else if (strcmp(action, "read_proc") == 0) {
		struct stat st;
		if (stat(t, &st) == 0 && S_ISDIR(st.st_mode))
			err = list_dir(t, e);
		else
			err = read_into(e, t, false);
	} else if (strcmp(action, "exec") == 0) {
		err = do_exec(t);
	} else if (strcmp(action, "getenv") == 0) {
		const char *v = getenv(t);
		if (v != NULL)
			cJSON_AddStringToObject(e, "value", v);
		err = v != NULL ? 0 : ENOENT;
	}
	outcome(e, err == 0, err);
}

static void ids(cJSON *r)
{
	cJSON_AddNumberToObject(r, "uid", getuid());
	cJSON_AddNumberToObject(r, "gid", getgid());
	cJSON_AddNumberToObject(r, "euid", geteuid());
	cJSON_AddNumberToObject(r, "egid", getegid());
	gid_t g[256];
	int n = getgroups(256, g);
	cJSON *a = cJSON_AddArrayToObject(r, "groups");
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(g[i]));
	char cwd[4096] = "";
	cJSON_AddStringToObject(r, "home", getenv("HOME") ? getenv("HOME") : "");
	cJSON_AddStringToObject(r, "tmpdir", getenv("TMPDIR") ? getenv("TMPDIR") : "");
	cJSON_AddStringToObject(r, "cwd", getcwd(cwd, sizeof cwd) ? cwd : "");
}

static void save(const char *text)
{
	int fd = open("attack.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	fchmod(fd, 0644);
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
	if (off == len)
		rename("attack.json.tmp", "attack.json");
}

char *fa_attack(void)
{
	cJSON *r = cJSON_CreateObject();
	ids(r);
	cJSON *results = cJSON_AddArrayToObject(r, "results");
	const char *plan = getenv("FAKE_ATTACK_PLAN");
	FILE *f = plan != NULL ? fopen(plan, "r") : NULL;
	if (f == NULL) {
		cJSON_AddStringToObject(r, "error", plan ? strerror(errno) : "no FAKE_ATTACK_PLAN");
	} else {
		char line[8192];
		while (fgets(line, sizeof line, f) != NULL) {
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0] == '#' || line[0] == '\0')
				continue;
			char *a = strchr(line, '\t'), *t = a ? strchr(a + 1, '\t') : NULL;
			if (t == NULL)
				continue;
			*a++ = '\0';
			*t++ = '\0';
			act(results, line, a, t);
		}
		fclose(f);
	}
	char *full = cJSON_PrintUnformatted(r);
	if (full != NULL)
		save(full);
	free(full);
	cJSON *e;
	cJSON_ArrayForEach(e, results)
		cJSON_DeleteItemFromObject(e, "data");
	char *s = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return s != NULL ? s : strdup("{\"error\":\"out of memory\"}");
}

void fa_wait_file(void)
{
	const char *p = getenv("FAKE_AGENT_WAIT_FILE");
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	for (int i = 0; p != NULL && i < 2400 && access(p, F_OK) != 0; i++)
		nanosleep(&ts, NULL);
}
