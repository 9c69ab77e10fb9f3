/* server_url's validation (see config.h), with libcurl's URL parser. */
#include "supervisor/config_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <curl/curl.h>

static bool url_part_absent(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(u, part, &v, 0);
	curl_free(v);
	return rc != CURLUE_OK;
}

/* Checks an http(s) base URL with libcurl's parser. Returns NULL when it is
 * fine, else a reason. On success writes the normalised URL without its
 * trailing '/' into out (MC_URL_MAX). */
static const char *check_url(CURLU *u, const char *v, char *out)
{
	char *scheme = NULL, *path = NULL, *full = NULL;
	const char *why = NULL;
	if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0)
		why = "must start with http:// or https://";
	else if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK)
		why = "is not a valid URL";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		why = "must start with http:// or https://";
	else if (url_part_absent(u, CURLUPART_HOST))
		why = "has no host";
	else if (!url_part_absent(u, CURLUPART_USER) || !url_part_absent(u, CURLUPART_PASSWORD) ||
		 !url_part_absent(u, CURLUPART_OPTIONS))
		why = "must not contain credentials (the token comes from token_file)";
	else if (!url_part_absent(u, CURLUPART_QUERY) || !url_part_absent(u, CURLUPART_FRAGMENT) ||
		 strpbrk(v, "?#") != NULL)
		why = "must not have a query or fragment";
	else if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
		 (path[0] != '\0' && strcmp(path, "/") != 0))
		why = "must not have a path (the API paths are fixed)";
	else if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
		why = "is not a valid URL";
	if (why == NULL) {
		size_t n = strlen(full);
		while (n > 0 && full[n - 1] == '/')
			n--;
		if (n >= MC_URL_MAX)
			why = "is too long";
		else
			strlcpy(out, full, n + 1);
	}
	curl_free(scheme);
	curl_free(path);
	curl_free(full);
	return why;
}

int mc_cfg_set_url(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	if (mc_cfg_has_control_chars(v) || strpbrk(v, " \t") != NULL)
		return fail_key(p, k->name, "\"%s\" contains blanks or control characters", v);
	CURLU *u = curl_url();
	if (u == NULL)
		return mc_cfg_nomem(p);
	const char *why = check_url(u, v, p->c->server_url);
	curl_url_cleanup(u);
	if (why != NULL)
		return fail_key(p, k->name, "\"%s\" %s", v, why);
	return 0;
}

