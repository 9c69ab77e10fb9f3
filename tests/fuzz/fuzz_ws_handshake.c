/* libFuzzer target: the websocket upgrade answer parser (link/ws_url.c).
 * Properties: no crash or over-read (ASan), MORE only while the header
 * block is incomplete and under the cap, OK only for a 101 whose header
 * block ends within the input, a reason for every refusal, and the same
 * verdict when the input is fed again with more bytes after it (frames
 * that follow a complete header block never change it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link/ws.h"

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			abort();        \
	} while (0)

/* The key whose accept is s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (RFC 6455). */
static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: ASan sees any read past the end. */
	char *buf = malloc(size + 8);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	long status;
	size_t used;
	char why[128];
	enum mc_ws_hs r = mc_ws_handshake_parse(buf, size, key, &status, &used, why, sizeof why);
	switch (r) {
	case MC_WS_HS_OK:
		CHECK(status == 101 && used >= 16 && used <= size);
		CHECK(memcmp(buf + used - 4, "\r\n\r\n", 4) == 0);
		break;
	case MC_WS_HS_REFUSED:
	case MC_WS_HS_BAD:
		CHECK(why[0] != '\0');
		CHECK(used == 0);
		break;
	case MC_WS_HS_MORE:
		CHECK(size < MC_WS_HS_MAX && used == 0);
		break;
	default:
		CHECK(0);
	}
	if (r != MC_WS_HS_MORE) {
		/* Trailing bytes (the first frames) do not change a verdict. */
		memcpy(buf + size, "\x81\x02{}\r\n\r\n", 8);
		long s2;
		size_t u2;
		enum mc_ws_hs r2 = mc_ws_handshake_parse(buf, size + 8, key, &s2, &u2, why, sizeof why);
		if (r == MC_WS_HS_OK || r == MC_WS_HS_REFUSED)
			CHECK(r2 == r && s2 == status && u2 == used);
	}
	free(buf);
	return 0;
}
