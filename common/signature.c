#include "common/signature.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* Domain separation: a digest of this encoding can never be confused with
 * a BLAKE2b of anything else the project might hash later. Changing the
 * encoding means changing the tag. */
static const char sig_domain[] = "multicad profile-set signature v1";

static void put_u32(crypto_generichash_state *st, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	crypto_generichash_update(st, b, sizeof b);
}

/* Length-prefixed string: no separator byte can make two different field
 * sequences encode the same. NULL is hashed as "" (decoders never produce a
 * NULL here; this only keeps a hand-built list from crashing). */
static int put_str(crypto_generichash_state *st, const char *s)
{
	size_t len = s != NULL ? strlen(s) : 0;
	if (len > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	put_u32(st, (uint32_t)len);
	if (len > 0)
		crypto_generichash_update(st, (const unsigned char *)s, len);
	return 0;
}

static int put_profile(crypto_generichash_state *st, const struct mc_profile *p)
{
	uint8_t enabled = p->enabled ? 1 : 0;
	if (put_str(st, p->id) < 0)
		return -1;
	crypto_generichash_update(st, &enabled, 1);
	if (put_str(st, p->protocol_family) < 0 || put_str(st, p->command_name) < 0 ||
	    put_str(st, p->visibility) < 0 || put_str(st, p->display_name) < 0)
		return -1;
	if (p->n_fixed_args > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	put_u32(st, (uint32_t)p->n_fixed_args);
	for (size_t i = 0; i < p->n_fixed_args; i++)
		if (put_str(st, p->fixed_args[i]) < 0)
			return -1;
	return 0;
}

static int cmp_by_id(const void *a, const void *b)
{
	const struct mc_profile *pa = *(const struct mc_profile *const *)a;
	const struct mc_profile *pb = *(const struct mc_profile *const *)b;
	return strcmp(pa->id != NULL ? pa->id : "", pb->id != NULL ? pb->id : "");
}

int mc_signature_compute(const struct mc_profile_list *l, struct mc_signature *out)
{
	*out = mc_signature_unknown();
	if (sodium_init() < 0) {
		errno = ENOMEM;
		return -1;
	}
	if (l->n > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	/* Sort pointers, not the caller's list: the worker registers profiles
	 * in server order and must keep it. */
	const struct mc_profile **sorted = NULL;
	if (l->n > 0) {
		sorted = malloc(l->n * sizeof *sorted);
		if (sorted == NULL) {
			errno = ENOMEM;
			return -1;
		}
		for (size_t i = 0; i < l->n; i++)
			sorted[i] = &l->v[i];
		qsort(sorted, l->n, sizeof *sorted, cmp_by_id);
	}

	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, MC_SIGNATURE_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)sig_domain, sizeof sig_domain);
	put_u32(&st, (uint32_t)l->n);
	int rc = 0;
	for (size_t i = 0; i < l->n && rc == 0; i++)
		rc = put_profile(&st, sorted[i]);
	free(sorted);
	if (rc < 0)
		return -1;
	crypto_generichash_final(&st, out->digest, MC_SIGNATURE_BYTES);
	out->state = MC_SIG_KNOWN;
	return 0;
}

struct mc_signature mc_signature_unknown(void)
{
	struct mc_signature s;
	memset(&s, 0, sizeof s);
	s.state = MC_SIG_UNKNOWN;
	return s;
}

bool mc_signature_equal(const struct mc_signature *a, const struct mc_signature *b)
{
	if (a->state != MC_SIG_KNOWN || b->state != MC_SIG_KNOWN)
		return false;
	return memcmp(a->digest, b->digest, MC_SIGNATURE_BYTES) == 0;
}

void mc_signature_hex(const struct mc_signature *s, char out[2 * MC_SIGNATURE_BYTES + 1])
{
	static const char digits[] = "0123456789abcdef";
	if (s->state != MC_SIG_KNOWN) {
		memcpy(out, "unknown", sizeof "unknown");
		return;
	}
	for (size_t i = 0; i < MC_SIGNATURE_BYTES; i++) {
		out[2 * i] = digits[s->digest[i] >> 4];
		out[2 * i + 1] = digits[s->digest[i] & 0x0f];
	}
	out[2 * MC_SIGNATURE_BYTES] = '\0';
}
