/* The profile-set signature: did a workspace's custom profiles change in a
 * way that affects registration? BLAKE2b (libsodium crypto_generichash) over
 * an unambiguous length-prefixed encoding of the profiles sorted by id:
 * id, enabled, protocol_family, command_name, visibility, display_name,
 * fixed_args (count, then each length-prefixed). Unlike multica's FNV hash
 * it includes display_name, so a rename reaches the server (DESIGN.md,
 * deliberate difference 3). */
#ifndef MC_SIGNATURE_H
#define MC_SIGNATURE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/profile.h"

#define MC_SIGNATURE_BYTES 32

enum mc_signature_state {
	MC_SIG_UNKNOWN = 0, /* never fetched, or the fetch failed: equals nothing */
	MC_SIG_KNOWN,
};

struct mc_signature {
	enum mc_signature_state state;
	uint8_t digest[MC_SIGNATURE_BYTES];
};

/* The signature of a fetched list (the empty list has its own value). The
 * order of l->v does not matter. Returns -1 with errno=ENOMEM. */
int mc_signature_compute(const struct mc_profile_list *l, struct mc_signature *out);

/* A value meaning "unknown / fetch failed". */
struct mc_signature mc_signature_unknown(void);

/* True only when both are known and their digests are equal. */
bool mc_signature_equal(const struct mc_signature *a, const struct mc_signature *b);

/* Lowercase hex of the digest (65 bytes incl. NUL), or "unknown". */
void mc_signature_hex(const struct mc_signature *s, char out[2 * MC_SIGNATURE_BYTES + 1]);

#endif
