/* Small helpers of the cache: git with a variadic argument list, tree
 * removal and size. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentapi/rc_int.h"

#define RC_ARGV_MAX 24

/* The lock holder's (rc_perm_enter): every git a repository's lock holder
 * runs is the workspace's, without threading it through every caller. */
static _Thread_local const struct mc_identity *thread_id;
static _Thread_local bool thread_refuse;

void rc_git_identity(const struct mc_identity *id, bool refuse)
{
	thread_id = id;
	thread_refuse = refuse;
}

static int collect(const char **argv, va_list ap)
{
	int n = 0;
	argv[n++] = "git";
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		if (n >= RC_ARGV_MAX - 1)
			return -1;
		argv[n++] = a;
	}
	argv[n] = NULL;
	return n;
}

static int run_va(int64_t deadline, struct mc_git_out *o, char *err, size_t err_size, bool describe,
		  va_list ap)
{
	const char *argv[RC_ARGV_MAX];
	if (collect(argv, ap) < 0) {
		snprintf(err, err_size, "git: too many arguments");
		return -1;
	}
	struct mc_git_out local;
	struct mc_git_out *out = o ? o : &local;
	if (thread_refuse) {
		memset(out, 0, sizeof(*out));
		out->status = -1;
		snprintf(err, err_size, "git: the workspace's agent identity is not known yet");
		return -1;
	}
	int rc = mc_git_run_as(thread_id, argv, deadline, out, err, err_size);
	if (rc == 1 && describe)
		mc_git_describe(argv, out, err, err_size);
	if (!o)
		mc_git_out_free(&local);
	return describe && rc != 0 ? -1 : rc;
}

int rc_git(int64_t deadline, struct mc_git_out *o, char *err, size_t err_size, ...)
{
	va_list ap;
	va_start(ap, err_size);
	int rc = run_va(deadline, o, err, err_size, false, ap);
	va_end(ap);
	return rc;
}

int rc_git_ok(int64_t deadline, struct mc_git_out *o, char *err, size_t err_size, ...)
{
	va_list ap;
	va_start(ap, err_size);
	int rc = run_va(deadline, o, err, err_size, true, ap);
	va_end(ap);
	return rc;
}

int rc_git_line(int64_t deadline, char *dst, size_t dst_size, ...)
{
	char err[RC_ERR];
	struct mc_git_out o;
	va_list ap;
	va_start(ap, dst_size);
	int rc = run_va(deadline, &o, err, sizeof(err), false, ap);
	va_end(ap);
	if (dst_size)
		dst[0] = '\0';
	if (rc == 0 && o.out) {
		size_t n = strcspn(o.out, "\r\n");
		snprintf(dst, dst_size, "%.*s", (int)n, o.out);
	}
	mc_git_out_free(&o);
	return rc == 0 && dst_size && dst[0] ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
	return rc < 0 && errno != ENOENT ? -1 : 0;
}

bool rc_git_switched(void)
{
	return thread_id != NULL && thread_id->sw;
}

int rc_cmd(int64_t deadline, const char *const *argv, char *err, size_t err_size)
{
	if (thread_refuse) {
		snprintf(err, err_size, "%s: the workspace's agent identity is not known yet", argv[0]);
		return -1;
	}
	struct mc_git_out o;
	int rc = mc_git_run_as(thread_id, argv, deadline, &o, err, err_size);
	if (rc == 1)
		snprintf(err, err_size, "%s: %.200s: exit status %d", argv[0], o.err ? o.err : "",
			 o.status);
	mc_git_out_free(&o);
	return rc == 0 ? 0 : -1;
}

int rc_rmtree(const char *path)
{
	/* What the agents can write (a bare, a checkout) is removed as them:
	 * a directory swapped for a symlink mid-walk then leads this process
	 * nowhere it could do harm. */
	if (rc_git_switched() || thread_refuse) {
		char err[RC_ERR];
		const char *argv[] = {"rm", "-rf", "--", path, NULL};
		return rc_cmd(0, argv, err, sizeof(err));
	}
	int rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc < 0 && errno == ENOENT ? 0 : rc;
}

static _Thread_local int64_t tree_sum;

static int add_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F || flag == FTW_D || flag == FTW_DP || flag == FTW_SL)
		tree_sum += (int64_t)st->st_blocks * 512;
	return 0;
}

int64_t rc_tree_bytes(const char *path)
{
	tree_sum = 0;
	if (nftw(path, add_one, 16, FTW_PHYS) < 0)
		return tree_sum;
	return tree_sum;
}
