#include "tests/support/fp_tasks.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include <time.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fpt_queue(const struct fp_proc *fp, const char *runtime_id, const char *env,
	       const char *extra, char id[40])
{
	static unsigned n;
	snprintf(id, 40, "c%07u-2222-4222-8222-%012u", ++n, (unsigned)getpid());
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	cr_assert_not_null(f);
	fprintf(f,
		"{\"id\":\"%s\",\"runtime_id\":\"%s\",\"issue_id\":\"" FPT_ISSUE_ID "\","
		"\"agent\":{\"id\":\"" FPT_AGENT_ID "\",\"name\":\"Agent Smith\","
		"\"instructions\":\"Be brief.\",\"custom_env\":{%s}}%s%s}",
		id, runtime_id, env, extra[0] ? "," : "", extra);
	fclose(f);
	long st = fp_http(fp, "POST", "/_admin/tasks", body, NULL, NULL);
	free(body);
	cr_assert_eq(st, 200, "queueing the task answered %ld", st);
}

cJSON *fpt_detail(const struct fp_proc *fp, const char *id)
{
	char path[128], *body = NULL;
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	long st = fp_http(fp, "GET", path, NULL, NULL, &body);
	cr_assert_eq(st, 200, "GET %s: %ld", path, st);
	cJSON *j = cJSON_Parse(body);
	free(body);
	cr_assert_not_null(j);
	return j;
}

char *fpt_field(const struct fp_proc *fp, const char *id, const char *field)
{
	cJSON *j = fpt_detail(fp, id);
	cJSON *row = cJSON_GetObjectItem(j, "task");
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(row ? row : j, field));
	char *r = strdup(s ? s : "");
	cJSON_Delete(j);
	return r;
}

bool fpt_wait_status(const struct fp_proc *fp, const char *id, const char *want,
		     int timeout_ms, fpt_pump_fn pump)
{
	int64_t until = now_ms() + timeout_ms;
	for (;;) {
		char *s = fpt_field(fp, id, "status");
		bool ok = strcmp(s, want) == 0;
		free(s);
		if (ok)
			return true;
		if (now_ms() >= until)
			return false;
		if (pump != NULL)
			pump();
		else
			usleep(20000);
	}
}

void fpt_calls(const struct fp_proc *fp, const char *id, char *out, size_t n)
{
	cJSON *j = fpt_detail(fp, id), *c;
	out[0] = '\0';
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "calls")) {
		const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(c, "op"));
		if (op == NULL || strcmp(op, "status") == 0 || strcmp(op, "claim") == 0)
			continue;
		if (out[0])
			strlcat(out, ",", n);
		strlcat(out, op, n);
	}
	cJSON_Delete(j);
}

int fpt_count_op(const char *calls, const char *op)
{
	int k = 0;
	size_t l = strlen(op);
	for (const char *p = calls; (p = strstr(p, op)) != NULL; p += l)
		if ((p == calls || p[-1] == ',') && (p[l] == ',' || p[l] == '\0'))
			k++;
	return k;
}

bool fpt_seqs_increase(const struct fp_proc *fp, const char *id)
{
	cJSON *j = fpt_detail(fp, id), *m;
	double last = 0;
	int n = 0;
	bool ok = true;
	cJSON_ArrayForEach(m, cJSON_GetObjectItem(j, "messages")) {
		double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(m, "seq"));
		ok = ok && seq > last;
		last = seq;
		n++;
	}
	cJSON_Delete(j);
	return ok && n > 0;
}

static bool read_small(const char *path, char *buf, size_t n, size_t *got)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return false;
	buf[r] = '\0';
	*got = (size_t)r;
	return true;
}

static bool proc_live(const char *pid, int *pgrp)
{
	char path[300], buf[512];
	size_t n;
	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	if (!read_small(path, buf, sizeof buf, &n))
		return false;
	const char *p = strrchr(buf, ')');
	char st;
	int ppid;
	return p != NULL && sscanf(p + 1, " %c %d %d", &st, &ppid, pgrp) == 3 && st != 'Z';
}

bool fpt_group_alive(int pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool alive = false;
	int pg;
	while (d != NULL && !alive && (e = readdir(d)) != NULL)
		alive = proc_live(e->d_name, &pg) && pg == pgid;
	if (d != NULL)
		closedir(d);
	return alive;
}

int fpt_count_task_procs(const char *id)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int k = 0, pg;
	char want[80];
	snprintf(want, sizeof want, "MULTICA_TASK_ID=%s", id);
	static char buf[1 << 16];
	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[300];
		size_t n;
		snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
		if (!proc_live(e->d_name, &pg) || !read_small(path, buf, sizeof buf, &n))
			continue;
		for (char *p = buf; p < buf + n; p += strlen(p) + 1)
			if (strcmp(p, want) == 0) {
				k++;
				break;
			}
	}
	if (d != NULL)
		closedir(d);
	return k;
}
