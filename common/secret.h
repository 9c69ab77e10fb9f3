/* A secret (the server token) kept in libsodium guarded memory: its own
 * pages, guard pages around them, locked out of swap, no access except while
 * a caller has it open, and wiped when freed. */
#ifndef MC_SECRET_H
#define MC_SECRET_H

#include <stdbool.h>
#include <stddef.h>

struct mc_secret;

/* Allocates a secret holding a copy of the len bytes at value. The caller
 * should wipe its own copy (sodium_memzero). Returns NULL with errno set. */
struct mc_secret *mc_secret_new(const char *value, size_t len);

/* Reads a token file: surrounding whitespace trimmed, must be non-empty,
 * printable ASCII, at most 4 KiB. Refuses a file readable or writable by
 * group or others (EPERM). On error returns NULL, sets errno and writes a
 * reason into err (may be NULL). The caller owns the result. */
struct mc_secret *mc_secret_from_file(const char *path, char *err, size_t err_size);

/* Opens the secret for reading and returns its NUL-terminated value; it stays
 * readable until mc_secret_close. Opens do not nest. */
const char *mc_secret_open(struct mc_secret *s);
void mc_secret_close(struct mc_secret *s);

size_t mc_secret_len(const struct mc_secret *s);

/* True when both hold the same bytes (constant time over the length); false
 * when either is NULL. */
bool mc_secret_equal(struct mc_secret *a, struct mc_secret *b);

/* Returns a new secret with the same value. Caller owns it. */
struct mc_secret *mc_secret_dup(struct mc_secret *s);

/* Wipes and frees. NULL is a no-op. */
void mc_secret_free(struct mc_secret *s);

/* Makes the calling process non-dumpable (no core dump; no ptrace, no
 * /proc/PID/mem, environ or fd for another process of the same uid) and
 * sets RLIMIT_CORE to 0: for every process that holds a secret or forks
 * from one that does. Test builds (MC_TEST_HOOKS) only: MC_TEST_DUMPABLE=1
 * in the environment leaves it dumpable, for test fixtures that are not
 * root and read the daemon's /proc/PID/fd. */
void mc_secret_forbid_dumps(void);

#endif
