#include "tests/fakeplane/ws_frame.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tests/fakeplane/util.h"

int fp_ws_header_parse(const uint8_t *buf, size_t n, struct fp_ws_header *h)
{
	if (n < 2)
		return 0;
	h->fin = (buf[0] & 0x80) != 0;
	h->rsv = (buf[0] >> 4) & 7;
	h->opcode = buf[0] & 0x0F;
	h->masked = (buf[1] & 0x80) != 0;
	size_t need = 2;
	uint64_t len = buf[1] & 0x7F;
	if (len == 126)
		need += 2;
	else if (len == 127)
		need += 8;
	if (h->masked)
		need += 4;
	if (n < need)
		return 0;
	size_t p = 2;
	if (len == 126) {
		len = (uint64_t)buf[2] << 8 | buf[3];
		p = 4;
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | buf[2 + i];
		p = 10;
		if (len >> 63)
			return -1;   /* RFC 6455 5.2: the top bit must be 0 */
	}
	h->len = len;
	if (h->masked)
		memcpy(h->mask, buf + p, 4);
	return (int)need;
}

size_t fp_ws_header_encode(uint8_t out[FP_WS_HEADER_MAX], const struct fp_ws_header *h)
{
	size_t p = 2;
	out[0] = (uint8_t)((h->fin ? 0x80 : 0) | (h->rsv & 7) << 4 | (h->opcode & 0x0F));
	uint8_t m = h->masked ? 0x80 : 0;
	if (h->len < 126) {
		out[1] = (uint8_t)(m | h->len);
	} else if (h->len <= 0xFFFF) {
		out[1] = m | 126;
		out[2] = (uint8_t)(h->len >> 8);
		out[3] = (uint8_t)h->len;
		p = 4;
	} else {
		out[1] = m | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(h->len >> (56 - 8 * i));
		p = 10;
	}
	if (h->masked) {
		memcpy(out + p, h->mask, 4);
		p += 4;
	}
	return p;
}

void fp_ws_mask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		data[i] ^= mask[(off + i) & 3];
}

uint8_t *fp_ws_frame_build(unsigned opcode, bool fin, const void *payload, size_t len,
			   const uint8_t *mask, size_t *out_len)
{
	struct fp_ws_header h = { .fin = fin, .opcode = opcode, .masked = mask != NULL,
				  .len = len };
	if (mask != NULL)
		memcpy(h.mask, mask, 4);
	uint8_t hdr[FP_WS_HEADER_MAX];
	size_t hl = fp_ws_header_encode(hdr, &h);
	uint8_t *f = fp_xmalloc(hl + len + 1);
	memcpy(f, hdr, hl);
	if (len > 0)
		memcpy(f + hl, payload, len);
	if (mask != NULL)
		fp_ws_mask(f + hl, len, mask, 0);
	*out_len = hl + len;
	return f;
}

/* ---- SHA-1 (FIPS 180-4), for the handshake only ---- */

static uint32_t rol(uint32_t x, int n)
{
	return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t s[5], const uint8_t *b)
{
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = s[0], bb = s[1], c = s[2], d = s[3], e = s[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (bb & c) | (~bb & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = bb ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (bb & c) | (bb & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = bb ^ c ^ d;
			k = 0xCA62C1D6;
		}
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(bb, 30);
		bb = a;
		a = t;
	}
	s[0] += a;
	s[1] += bb;
	s[2] += c;
	s[3] += d;
	s[4] += e;
}

void fp_ws_sha1(const void *data, size_t len, uint8_t out[20])
{
	uint32_t s[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
	const uint8_t *p = data;
	size_t left = len;
	for (; left >= 64; left -= 64, p += 64)
		sha1_block(s, p);
	uint8_t tail[128] = { 0 };
	memcpy(tail, p, left);
	tail[left] = 0x80;
	size_t tl = left + 1 + 8 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
	sha1_block(s, tail);
	if (tl == 128)
		sha1_block(s, tail + 64);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(s[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s[i] >> 8);
		out[4 * i + 3] = (uint8_t)s[i];
	}
}

void fp_ws_accept(const char *key, char out[FP_WS_ACCEPT_LEN + 1])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char buf[256];
	size_t kl = strnlen(key, sizeof buf - sizeof guid);
	memcpy(buf, key, kl);
	memcpy(buf + kl, guid, sizeof guid - 1);
	uint8_t d[20];
	fp_ws_sha1(buf, kl + sizeof guid - 1, d);
	sodium_bin2base64(out, FP_WS_ACCEPT_LEN + 1, d, sizeof d, sodium_base64_VARIANT_ORIGINAL);
}
