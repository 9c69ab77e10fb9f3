/* Seeding an agent's new directories, in the agent's own child after the
 * identity switch (agent_proc.c): what it copies is then the agent's, with
 * the agent's umask. Async-signal-safe (no malloc, no stdio, fixed
 * buffers): the worker may have threads (curl's resolver) when it forks.
 *
 * Error convention: 0, or -1 with errno. */
#ifndef MC_WORKER_SEEDTREE_H
#define MC_WORKER_SEEDTREE_H

#define MC_SEED_MAX_DEPTH 16

/* Copies the tree at src (a directory; its own path may hold the
 * operator's symlinks) into the directory dstfd: regular files (their
 * permission bits, less the umask), directories, symlinks as symlinks
 * (never followed); other types are skipped. ELOOP past
 * MC_SEED_MAX_DEPTH levels. An existing directory in dst is merged into;
 * an existing file is an EEXIST. */
int mc_seed_tree(const char *src, int dstfd);

/* A codex task's CODEX_HOME (dstfd): config.toml and auth.json from the
 * directory src (absent files are skipped; src NULL or missing: none), mode
 * 0600, each replacing what dstfd had; config.toml starts with
 * `sandbox_mode = "danger-full-access"` unless it sets sandbox_mode. The
 * copy buffer is wiped (auth.json holds a key). */
int mc_seed_codex(const char *src, int dstfd);

#endif
