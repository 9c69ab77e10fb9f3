/* The websocket's URL, upgrade request and 101 check (ws.h), pure
 * functions: multica's taskWakeupURL and gorilla's client handshake
 * (reference/multica-websocket.md 1.1, 1.2). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "common/api.h"
#include "link/ws.h"

#ifndef MC_VERSION
#define MC_VERSION "0.0.0"
#endif

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void mc_ws_target_clear(struct mc_ws_target *t)
{
	free(t->url);
	free(t->origin);
	free(t->host);
	free(t->target);
	free(t->set);
	memset(t, 0, sizeof *t);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Allocates the sorted, de-duplicated ids joined with sep ("," for the
 * set, "%2C" for the query, each id percent-encoded there). */
static char *join_ids(char (*v)[40], size_t n, bool query)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += strlen(v[i]) * (query ? 3 : 1) + 3;
	char *s = malloc(cap), *p = s;
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		if (p != s)
			p += query ? (memcpy(p, "%2C", 3), 3) : (*p = ',', 1);
		for (const unsigned char *c = (const unsigned char *)v[i]; *c; c++) {
			if (!query || unreserved(*c))
				*p++ = (char)*c;
			else
				p += snprintf(p, 4, "%%%02X", *c);
		}
	}
	*p = '\0';
	return s;
}

/* "x" of part, or NULL: curl_free'd by the caller. */
static char *url_part(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	if (curl_url_get(u, part, &v, 0) != CURLUE_OK)
		return NULL;
	return v;
}

/* Allocates the formatted string; NULL when out of memory. */
__attribute__((format(printf, 1, 2)))
static char *dup_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (s != NULL) {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	return s;
}

/* Fills origin, host, url and target from the parsed URL and the query. */
static int fill(CURLU *u, const char *query, struct mc_ws_target *t)
{
	char *scheme = url_part(u, CURLUPART_SCHEME), *host = url_part(u, CURLUPART_HOST);
	char *port = url_part(u, CURLUPART_PORT), *path = url_part(u, CURLUPART_PATH);
	char *user = url_part(u, CURLUPART_USER), *pw = url_part(u, CURLUPART_PASSWORD);
	int rc = -1;
	errno = EINVAL;
	if (scheme == NULL || host == NULL || host[0] == '\0' || user != NULL || pw != NULL)
		goto out;
	bool tls;
	if (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "ws") == 0)
		tls = false;
	else if (strcasecmp(scheme, "https") == 0 || strcasecmp(scheme, "wss") == 0)
		tls = true;
	else
		goto out;
	/* The base path without trailing slashes (taskWakeupURL). */
	size_t plen = path != NULL ? strlen(path) : 0;
	while (plen > 0 && path[plen - 1] == '/')
		plen--;
	char hostport[320];
	if (port != NULL)
		snprintf(hostport, sizeof hostport, "%s:%s", host, port);
	else
		strlcpy(hostport, host, sizeof hostport);
	errno = ENOMEM;
	t->host = strdup(hostport);
	t->origin = dup_printf("%s://%s", tls ? "https" : "http", hostport);
	char base[2048];
	if (plen >= sizeof base) {
		errno = EINVAL;
		goto out;
	}
	memcpy(base, path != NULL ? path : "", plen);
	base[plen] = '\0';
	size_t tl = plen + sizeof "/api/daemon/ws?runtime_ids=" + strlen(query);
	t->target = malloc(tl);
	if (t->target != NULL)
		snprintf(t->target, tl, "%s/api/daemon/ws%s%s", base,
			 query[0] ? "?runtime_ids=" : "", query);
	if (t->target != NULL)
		t->url = dup_printf("%s://%s%s", tls ? "wss" : "ws", hostport, t->target);
	if (t->host != NULL && t->origin != NULL && t->target != NULL && t->url != NULL)
		rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_free(pw);
	return rc;
}

int mc_ws_target_build(const char *server_url, const char (*ids)[40], size_t n,
		       struct mc_ws_target *t)
{
	memset(t, 0, sizeof *t);
	char (*v)[40] = n > 0 ? calloc(n, sizeof *v) : NULL;
	if (n > 0 && v == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		strlcpy(v[i], ids[i], sizeof v[i]);
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_id);
	char *query = join_ids(v, n, true);
	t->set = join_ids(v, n, false);
	free(v);
	CURLU *u = curl_url();
	int rc = -1;
	if (query == NULL || t->set == NULL || u == NULL) {
		errno = ENOMEM;
	} else if (server_url == NULL ||
		   curl_url_set(u, CURLUPART_URL, server_url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		errno = EINVAL;
	} else {
		rc = fill(u, query, t);
	}
	int e = errno;
	curl_url_cleanup(u);
	free(query);
	if (rc < 0) {
		mc_ws_target_clear(t);
		errno = e;
	}
	return rc;
}

/* ---- the request ---- */

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int mc_ws_request_new(const struct mc_ws_target *t, const struct mc_ws_req_headers *h,
		      char key[MC_WS_KEY_LEN + 1], char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	const char *tok = h->token != NULL ? h->token : "";
	const char *ver = h->client_version != NULL && h->client_version[0] ? h->client_version
			  : "multicad/" MC_VERSION;
	if (!header_value_ok(tok) || !header_value_ok(ver) || !header_value_ok(t->host) ||
	    !header_value_ok(t->target)) {
		errno = EINVAL;
		return -1;
	}
	unsigned char raw[16];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(key, MC_WS_KEY_LEN + 1, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
	/* No Origin, no subprotocol, no extension: as multica's dialer. Never
	 * X-User-ID (the server would trust it on an mdt_ token). */
#define REQ_FMT "GET %s HTTP/1.1\r\n" \
			  "Host: %s\r\n" \
			  "Upgrade: websocket\r\n" \
			  "Connection: Upgrade\r\n" \
			  "Sec-WebSocket-Key: %s\r\n" \
			  "Sec-WebSocket-Version: 13\r\n" \
			  "%s%s%s" \
			  "User-Agent: multicad/" MC_VERSION "\r\n" \
			  "X-Client-Platform: daemon\r\n" \
			  "X-Client-Version: %s\r\n" \
			  "X-Client-OS: linux\r\n" \
			  "X-Client-Capabilities: " MC_CLIENT_CAPABILITIES "\r\n" \
		"\r\n"
	const char *a0 = tok[0] ? "Authorization: Bearer " : "", *a2 = tok[0] ? "\r\n" : "";
	int n = snprintf(NULL, 0, REQ_FMT, t->target, t->host, key, a0, tok, a2, ver);
	if (n < 0)
		return -1;
	char *buf = malloc((size_t)n + 1);
	if (buf == NULL)
		return -1;
	snprintf(buf, (size_t)n + 1, REQ_FMT, t->target, t->host, key, a0, tok, a2, ver);
	*out = buf;
	*len = (size_t)n;
	return 0;
}

/* ---- the answer ---- */

void mc_ws_accept_for(const char *key, char out[29])
{
	char in[MC_WS_KEY_LEN + sizeof ws_guid + 1];
	int n = snprintf(in, sizeof in, "%s%s", key, ws_guid);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (n < 0 || (size_t)n >= sizeof in ||
	    EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
		out[0] = '\0';
		return;
	}
	sodium_bin2base64(out, 29, md, 20, sodium_base64_VARIANT_ORIGINAL);
}

/* The end of the header block (after "\r\n\r\n"), or 0. */
static size_t header_end(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

/* Whether a comma-separated header value holds token (case-insensitive). */
static bool list_has(const char *v, size_t vlen, const char *token)
{
	size_t tl = strlen(token), i = 0;
	while (i < vlen) {
		while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < vlen && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
			return true;
	}
	return false;
}

__attribute__((format(printf, 3, 4)))
static enum mc_ws_hs refused(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_size, fmt, ap);
	va_end(ap);
	return MC_WS_HS_REFUSED;
}

enum mc_ws_hs mc_ws_handshake_parse(const char *buf, size_t len, const char *key,
				    long *status, size_t *used, char *why, size_t why_size)
{
	*status = 0;
	*used = 0;
	if (why_size > 0)
		why[0] = '\0';
	size_t end = header_end(buf, len < MC_WS_HS_MAX ? len : MC_WS_HS_MAX);
	if (end == 0) {
		/* Fail early on what cannot become an HTTP/1.x status line. */
		size_t k = len < 7 ? len : 7;
		if (memcmp(buf, "HTTP/1.", k) != 0) {
			snprintf(why, why_size, "not an HTTP response");
			return MC_WS_HS_BAD;
		}
		if (len >= MC_WS_HS_MAX) {
			snprintf(why, why_size, "response headers over %d bytes", MC_WS_HS_MAX);
			return MC_WS_HS_BAD;
		}
		return MC_WS_HS_MORE;
	}
	/* Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF */
	if (end < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)buf[7]) ||
	    buf[8] != ' ' || !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
	    !isdigit((unsigned char)buf[11]) || (buf[12] != ' ' && buf[12] != '\r')) {
		snprintf(why, why_size, "malformed status line");
		return MC_WS_HS_BAD;
	}
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (*status != 101)
		return refused(why, why_size, "HTTP status %ld", *status);
	bool upgrade = false, connection = false, accept_ok = false, ext = false, proto = false;
	char want[29];
	mc_ws_accept_for(key, want);
	const char *p = memchr(buf, '\n', end) + 1, *stop = buf + end - 2;
	while (p < stop) {
		const char *eol = memchr(p, '\n', (size_t)(stop + 2 - p));
		if (eol == NULL || eol == p || eol[-1] != '\r') {
			snprintf(why, why_size, "malformed header line");
			return MC_WS_HS_BAD;
		}
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon == p) {
			snprintf(why, why_size, "malformed header line");
			return MC_WS_HS_BAD;
		}
		size_t nl = (size_t)(colon - p);
		const char *v = colon + 1, *ve = eol - 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t vl = (size_t)(ve - v);
#define IS(name) (nl == sizeof name - 1 && strncasecmp(p, name, nl) == 0)
		if (IS("Upgrade"))
			upgrade = upgrade || list_has(v, vl, "websocket");
		else if (IS("Connection"))
			connection = connection || list_has(v, vl, "upgrade");
		else if (IS("Sec-WebSocket-Accept"))
			accept_ok = want[0] && vl == 28 && memcmp(v, want, 28) == 0;
		else if (IS("Sec-WebSocket-Extensions"))
			ext = vl > 0;
		else if (IS("Sec-WebSocket-Protocol"))
			proto = vl > 0;
#undef IS
		p = eol + 1;
	}
	if (!upgrade)
		return refused(why, why_size, "%ld without Upgrade: websocket", *status);
	if (!connection)
		return refused(why, why_size, "%ld without Connection: Upgrade", *status);
	if (!accept_ok)
		return refused(why, why_size, "%ld with a wrong or missing Sec-WebSocket-Accept",
			       *status);
	if (ext || proto) /* we asked for neither (RFC 6455 4.1) */
		return refused(why, why_size, "%ld with an extension or subprotocol not asked for",
			       *status);
	*used = end;
	return MC_WS_HS_OK;
}
