/* File-system steps of the task executor that never follow a symlink below
 * a trusted directory: an agent owns its work dir and may plant symlinks
 * there; nothing the daemon writes, reads or removes may land outside.
 *
 * Error convention: 0 / fd, or -1 with errno (ELOOP or ENOTDIR for a
 * symlink where a directory was expected; EINVAL for a bad name). */
#ifndef MC_WORKER_SAFEFS_H
#define MC_WORKER_SAFEFS_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* True for one path component: non-empty, no '/', not "." or "..". */
bool mc_fs_name_ok(const char *name);

/* mkdir -p of an absolute or relative path the operator configured (its
 * symlinks are the operator's and followed), created with mode; returns an
 * O_DIRECTORY fd. */
int mc_fs_open_root(const char *path, mode_t mode);

/* Opens dfd/name as a directory, refusing a symlink; with create, mkdirat
 * first (mode; an existing directory is kept). With fix_mode the directory
 * is chmod'ed to mode. Returns the fd. */
int mc_fs_subdir(int dfd, const char *name, bool create, mode_t mode, bool fix_mode);

/* Walks rel ("a/b/c", components checked) below dfd with mc_fs_subdir. */
int mc_fs_walk(int dfd, const char *rel, bool create, mode_t mode, bool fix_mode);

/* Replaces dfd/name with the len bytes at data, mode: written to a
 * temporary beside it, optionally fsynced, renamed over (a symlink at name
 * is replaced, never followed). */
int mc_fs_write_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
		   bool durable);

/* Reads the regular file dfd/name (not a symlink) of at most max bytes
 * into a malloc'd NUL-terminated buffer (caller frees); EFBIG past max. */
char *mc_fs_read_at(int dfd, const char *name, size_t max, size_t *len);

/* A directory stream over dfd with its own file offset (a dup()'ed fd
 * would share dfd's, so a second listing would start at the end).
 * Caller closedir()s it. */
DIR *mc_fs_opendir(int dfd);

/* Removes dfd/name and everything below it without following a symlink,
 * doing at most *budget unlinks (decremented). Returns 0 when it is gone,
 * 1 when the budget ran out first (call again), -1 on error. */
int mc_fs_remove_tree(int dfd, const char *name, size_t *budget);

#endif
