/* Removing what an agent left, as the agent (workdir_gc.c's child under
 * isolation: the agent's files are its own, maybe in 0755 directories the
 * daemon cannot write). Async-signal-safe: no malloc, no stdio.
 *
 * Error convention: 0, or -1 with errno (the first failure; the rest of
 * the tree is still tried). */
#ifndef MC_WORKER_RMTREE_H
#define MC_WORKER_RMTREE_H

#define MC_RMTREE_MAX_DEPTH 64

/* Removes dfd/name and everything below it, never following a symlink
 * (a symlink is unlinked). Directories of ours are made 0700 first so a
 * read-only one can be emptied. ELOOP past MC_RMTREE_MAX_DEPTH levels
 * (what is deeper stays). Absent: 0. */
int mc_rmtree_at(int dfd, const char *name);

/* mc_rmtree_at for every entry of dfd whose name starts with prefix. */
int mc_rmtree_prefixed(int dfd, const char *prefix);

#endif
