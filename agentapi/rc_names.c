/* Names: the checkout dir, the agent branch, the bare cache dir. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agentapi/rc_int.h"

void mc_repo_name(const char *url, char *out, size_t out_size)
{
	if (!out_size)
		return;
	if (!url)
		url = "";
	size_t len = strlen(url);
	while (len && (url[len - 1] == '/' || isspace((unsigned char)url[len - 1])))
		len--;
	size_t start = len;
	while (start && url[start - 1] != '/' && url[start - 1] != ':')
		start--;
	size_t n = len - start;
	if (n >= 4 && memcmp(url + start + n - 4, ".git", 4) == 0)
		n -= 4;
	if (n == 0 || (n == 1 && url[start] == '.') ||
	    (n == 2 && url[start] == '.' && url[start + 1] == '.')) {
		snprintf(out, out_size, "repo");
		return;
	}
	snprintf(out, out_size, "%.*s", (int)n, url + start);
}

/* Lowercased, non-[a-z0-9] runs as '-', trimmed, at most 30, "agent" if empty. */
static void sanitize_name(const char *name, char *out, size_t out_size)
{
	char buf[64];
	size_t k = 0;
	bool dash = false;
	for (const char *p = name ? name : ""; *p && k < 31; p++) {
		unsigned char c = (unsigned char)tolower((unsigned char)*p);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && k)
				buf[k++] = '-';
			dash = false;
			if (k < 30)
				buf[k++] = (char)c;
			else
				break;
		} else {
			dash = true;
		}
	}
	while (k && buf[k - 1] == '-')
		k--;
	buf[k] = '\0';
	snprintf(out, out_size, "%s", k ? buf : "agent");
}

/* The last 12 alphanumerics of the dashless task id, lowercased. */
static void task_key(const char *task_id, char *out, size_t out_size)
{
	char all[128];
	size_t k = 0;
	for (const char *p = task_id ? task_id : ""; *p && k + 1 < sizeof(all); p++)
		if (isalnum((unsigned char)*p))
			all[k++] = (char)tolower((unsigned char)*p);
	all[k] = '\0';
	const char *key = k > 12 ? all + k - 12 : all;
	snprintf(out, out_size, "%s", k ? key : "task");
}

void mc_repo_branch_name(const char *agent_name, const char *task_id, char *out, size_t out_size)
{
	char name[64], key[16];
	sanitize_name(agent_name, name, sizeof(name));
	task_key(task_id, key, sizeof(key));
	snprintf(out, out_size, "agent/%s/%s", name, key);
}

bool rc_ws_id_ok(const char *ws)
{
	if (!ws || !ws[0] || strlen(ws) >= 128 || !strcmp(ws, ".") || !strcmp(ws, ".."))
		return false;
	for (const char *p = ws; *p; p++)
		if (*p == '/' || (unsigned char)*p < 0x20)
			return false;
	return true;
}

/* ---- bare dir name ---- */

struct namebuf {
	char *s;
	size_t n, k;
};

static void put(struct namebuf *b, const char *s, size_t len, bool lower)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = c == ':' ? "%3A" : c == '+' ? "%2B" : c == '%' ? "%25" : NULL;
		char one[2] = {(char)(lower ? tolower(c) : c), 0};
		for (const char *e = esc ? esc : one; *e; e++)
			if (b->k + 1 < b->n)
				b->s[b->k++] = *e;
	}
	b->s[b->k] = '\0';
}

static void put_segments(struct namebuf *b, const char *path)
{
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = p;
		while (*e && *e != '/')
			e++;
		if (e > p) {
			if (b->k && b->k + 1 < b->n)
				b->s[b->k++] = '+'; /* the separator, not escaped */
			put(b, p, (size_t)(e - p), false);
		}
		p = e;
	}
	b->s[b->k] = '\0';
}

/* host and path of url (3.1); host empty when it has none. */
static void split_url(const char *url, const char **host, size_t *host_len, const char **path)
{
	const char *sep = strstr(url, "://");
	if (sep) {
		const char *auth = sep + 3;
		const char *end = auth + strcspn(auth, "/");
		const char *h = auth;
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				h = q + 1;
		if (end > h) {
			*host = h;
			*host_len = (size_t)(end - h);
			*path = end;
			return;
		}
	}
	const char *at = strchr(url, '@');
	const char *start = at ? at + 1 : url;
	const char *colon = strchr(start, ':');
	if (colon) {
		*host = start;
		*host_len = (size_t)(colon - start);
		*path = colon + 1;
		return;
	}
	*host = "";
	*host_len = 0;
	*path = url;
}

static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

void rc_bare_dir_name(const char *url, char *out, size_t out_size)
{
	char buf[1024];
	struct namebuf b = {buf, sizeof(buf), 0};
	buf[0] = '\0';
	const char *host, *path;
	size_t hl;
	split_url(url ? url : "", &host, &hl, &path);
	put(&b, host, hl, true);
	put_segments(&b, path);
	size_t k = b.k;
	if (k == 0 || !strcmp(buf, ".git")) {
		snprintf(out, out_size, "repo.git");
		return;
	}
	bool has_git = k >= 4 && !strcmp(buf + k - 4, ".git");
	/* A name too long for a directory entry keeps its head and a hash. */
	if (k > 200)
		snprintf(out, out_size, "%.180s-%016llx.git", buf, (unsigned long long)fnv64(url));
	else
		snprintf(out, out_size, "%s%s", buf, has_git ? "" : ".git");
}
