/* Which host of a sharded fleet serves a workspace (see config.h). */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "supervisor/config.h"

unsigned mc_shard_of(const char *ws, unsigned n)
{
	if (n <= 1)
		return 0;
	char lower[MC_ID_MAX];
	size_t len = strnlen(ws, sizeof lower - 1);
	for (size_t i = 0; i < len; i++)
		lower[i] = (char)tolower((unsigned char)ws[i]);
	unsigned char d[8];
	crypto_generichash(d, sizeof d, (const unsigned char *)lower, len, NULL, 0);
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | d[i];
	return (unsigned)(v % n);
}
