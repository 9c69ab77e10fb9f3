/* Process titles without libbsd's setproctitle (see proctitle.h for why). */
#include "common/proctitle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define TITLE_MAX 256

extern char **environ;

/* The area the kernel shows as cmdline: [base, arg_end) held the argv
 * strings, [arg_end, end) the environment strings that directly follow them
 * (arg_end == end when there are none). The copies are kept here so they
 * stay reachable (and are no leak) for the life of the process. */
static struct {
	char *base;
	char *arg_end;
	char *end;
	char **argv_copy;
	char **env_copy;
} pt;

/* One past the NUL of the last string of v (n strings, or NULL-terminated
 * when n < 0) that lies contiguously after *end; moves *end there. */
static void extend(char **end, char **v, int n)
{
	for (int i = 0; (n < 0 || i < n) && v[i] != NULL; i++) {
		if (v[i] != *end)
			return;
		*end = v[i] + strlen(v[i]) + 1;
	}
}

/* Heap copies of v's strings in a new NULL-terminated array (allocated,
 * never freed: argv and environ point into it for good). NULL on ENOMEM. */
static char **copy_strings(char **v, size_t n)
{
	char **c = calloc(n + 1, sizeof *c);
	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((c[i] = strdup(v[i])) == NULL) {
			while (i > 0)
				free(c[--i]);
			free(c);
			return NULL;
		}
	}
	return c;
}

void mc_proctitle_init(int argc, char **argv, char **envp)
{
	if (pt.base != NULL || argc < 1 || argv == NULL || argv[0] == NULL)
		return;
	if (envp != environ)
		envp = NULL; /* not the strings that follow argv: leave them alone */
	size_t n_env = 0;
	while (envp != NULL && envp[n_env] != NULL)
		n_env++;
	char **args = copy_strings(argv, (size_t)argc);
	char **env = copy_strings(envp, n_env);
	if (args == NULL || env == NULL) {
		/* keep the original strings: no title then, but nothing breaks */
		for (size_t i = 0; args != NULL && args[i] != NULL; i++)
			free(args[i]);
		for (size_t i = 0; env != NULL && env[i] != NULL; i++)
			free(env[i]);
		free(args);
		free(env);
		return;
	}
	char *base = argv[0], *end = argv[0];
	extend(&end, argv, argc);
	pt.arg_end = end;
	if (envp != NULL)
		extend(&end, envp, -1);
	pt.base = base;
	pt.end = end;
	for (int i = 0; i < argc; i++)
		argv[i] = args[i];
	if (envp != NULL)
		environ = env;
	pt.argv_copy = args;
	pt.env_copy = env;
	/* glibc's copies of argv[0], for error messages (getopt, err, assert) */
	char *slash = strrchr(args[0], '/');
	program_invocation_name = args[0];
	program_invocation_short_name = slash != NULL ? slash + 1 : args[0];
}

void mc_proctitle_set(const char *comm, const char *fmt, ...)
{
	int saved = errno;
	if (comm != NULL)
		prctl(PR_SET_NAME, comm, 0, 0, 0);
	if (pt.base != NULL) {
		char title[TITLE_MAX];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(title, sizeof title, fmt, ap);
		va_end(ap);
		size_t cap = (size_t)(pt.end - pt.base); /* >= 1: argv[0]'s NUL */
		size_t len = strnlen(title, cap - 1);
		memset(pt.base, 0, cap);
		memcpy(pt.base, title, len);
		/* The title's NUL lies before the last byte of the argv area: any
		 * non-NUL byte there makes the kernel stop at that NUL. (When the
		 * title's NUL is that byte, the kernel shows [base, arg_end) as is;
		 * when the title runs past it, the byte is part of the title.) */
		if (pt.base + len + 1 < pt.arg_end)
			pt.arg_end[-1] = ' ';
	}
	errno = saved;
}
