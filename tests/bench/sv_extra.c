/* sv_bench helpers for `make bench`: see sv_extra.h. */
#include "tests/bench/sv_extra.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Returns a FILE the caller fcloses. */
FILE *csv_open(const char *dir, const char *name, const char *header)
{
	if (dir == NULL)
		return NULL;
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "sv_bench: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	fprintf(f, "%s\n", header);
	return f;
}

void csv_figure(const char *dir, int n, const char *proto, const char *figure, double value,
		const char *unit)
{
	if (dir == NULL)
		return;
	char path[1024];
	struct stat st;
	snprintf(path, sizeof path, "%s/figures.csv", dir);
	bool fresh = stat(path, &st) < 0 || st.st_size == 0;
	FILE *f = fopen(path, "a");
	if (f == NULL) {
		fprintf(stderr, "sv_bench: %s: %s\n", path, strerror(errno));
		return;
	}
	if (fresh)
		fputs("n,proto,figure,value,unit\n", f);
	fprintf(f, "%d,%s,%s,%.3f,%s\n", n, proto, figure, value, unit);
	fclose(f);
}

long long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t r = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[r] = '\0';
	/* The title may hold spaces and parentheses: fields start after the
	 * last ')'; utime and stime are fields 14 and 15 (11th and 12th after
	 * the state). */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	p++;
	unsigned long long ut = 0, stime = 0;
	for (int field = 0; field < 13 && p != NULL; field++) {
		while (*p == ' ')
			p++;
		if (field == 11)
			ut = strtoull(p, NULL, 10);
		if (field == 12)
			stime = strtoull(p, NULL, 10);
		p = strchr(p, ' ');
	}
	return (long long)(ut + stime);
}

/* Allocates *out. */
int tcp_inodes_to_port(int port, unsigned long **out)
{
	*out = NULL;
	FILE *f = fopen("/proc/net/tcp", "r");
	if (f == NULL)
		return -1;
	size_t cap = 256, n = 0;
	unsigned long *v = malloc(cap * sizeof *v);
	char line[512];
	if (v == NULL || fgets(line, sizeof line, f) == NULL) {   /* the header */
		free(v);
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char local[64], remote[64];
		unsigned st, uid;
		unsigned long inode;
		int timeout;
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*s %63s %63s %x %*s %*s %*s %u %d %lu", local, remote, &st, &uid,
			   &timeout, &inode) != 6 || st != 1)
			continue;
		const char *colon = strchr(remote, ':');
		if (colon == NULL || strtol(colon + 1, NULL, 16) != port)
			continue;
		if (n == cap) {
			unsigned long *nv = realloc(v, 2 * cap * sizeof *v);
			if (nv == NULL)
				break;
			v = nv;
			cap *= 2;
		}
		v[n++] = inode;
	}
	fclose(f);
	*out = v;
	return (int)n;
}

int pid_sockets_in(pid_t pid, const unsigned long *inodes, int n)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int found = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char link[320], target[64];
		snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
		ssize_t r = readlink(link, target, sizeof target - 1);
		if (r <= 0)
			continue;
		target[r] = '\0';
		unsigned long ino;
		if (sscanf(target, "socket:[%lu]", &ino) != 1)
			continue;
		for (int i = 0; i < n; i++)
			if (inodes[i] == ino) {
				found++;
				break;
			}
	}
	closedir(d);
	return found;
}

int peak_in_window(const int64_t *t, int n, int64_t win_ms)
{
	int best = 0;
	for (int lo = 0, hi = 0; hi < n; hi++) {
		while (t[hi] - t[lo] >= win_ms)
			lo++;
		if (hi - lo + 1 > best)
			best = hi - lo + 1;
	}
	return best;
}
