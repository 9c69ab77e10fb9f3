/* The operator's environment file for agents (agent_env_file): KEY=VALUE
 * lines, '#' comments and blank lines; one pair of surrounding double
 * quotes stripped from a value, nothing else interpreted; keys
 * [A-Za-z_][A-Za-z0-9_]*. MULTICA_* keys and the keys agent_env.c blocks
 * are refused. A bad line is logged once per load ("<file>:<line>: what",
 * never its value) and skipped. Re-read when the file changed (device,
 * inode, size, mtime). The values go to agents only, never to a log.
 *
 * Error convention: mc_envfile_refresh returns 0, or -1 with errno when the
 * file cannot be read (the previous variables are dropped, logged once). */
#ifndef MC_WORKER_ENVFILE_H
#define MC_WORKER_ENVFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define MC_ENVFILE_MAX (256u * 1024u)
#define MC_ENVFILE_VARS_MAX 512

struct mc_envfile {
	char path[PATH_MAX];       /* "" : none */
	bool seen;                 /* stat'ed once */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool failed;               /* the last read failed (logged) */
	char **vars;               /* "KEY=VALUE", NULL-terminated; NULL: none */
	size_t n;
};

/* path "" or NULL: no file. Nothing is read yet. */
void mc_envfile_init(struct mc_envfile *f, const char *path);
/* Re-reads the file when it changed since the last call. Allocates. */
int mc_envfile_refresh(struct mc_envfile *f);
/* The variables (NULL-terminated; NULL when none). Borrowed. */
char *const *mc_envfile_vars(const struct mc_envfile *f);
/* Wipes and frees the variables. */
void mc_envfile_clear(struct mc_envfile *f);

/* Parses text (len bytes) into f's variables; bad lines logged against
 * name. Exposed for tests. Allocates. */
int mc_envfile_parse(struct mc_envfile *f, const char *name, const char *text, size_t len);

#endif
