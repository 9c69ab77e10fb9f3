/* FAKE_AGENT_MODE=checkout: what an agent does at the start of an issue
 * task, `multica repo checkout <url>`, as the multica CLI sends it
 * (reference/multica-local-api.md section 4): POST
 * 127.0.0.1:$MULTICA_DAEMON_PORT/repo/checkout with the task token, every
 * key of the body in alphabetical order, the cwd as workdir; then a commit
 * in the checkout. FAKE_AGENT_REPO_URL names the repository;
 * FAKE_AGENT_CHECKOUT_OUT gets "status\t<http>\npath\t<path>\ncommit\t<rc>\n". */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_common.h"

extern char **environ;

struct body {
	char buf[65536];
	size_t n;
};

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
	struct body *b = ud;
	size_t k = sz * nm;
	if (k > sizeof b->buf - 1 - b->n)
		k = sizeof b->buf - 1 - b->n;
	memcpy(b->buf + b->n, p, k);
	b->n += k;
	b->buf[b->n] = '\0';
	return sz * nm;
}

static const char *env(const char *k)
{
	const char *v = getenv(k);
	return v != NULL ? v : "";
}

static int run_git(const char *dir)
{
	char *argv[] = { "git", "-C", (char *)dir, "-c", "user.name=Agent", "-c",
			 "user.email=agent@example.com", "commit", "--allow-empty", "-q", "-m",
			 "agent work", NULL };
	pid_t pid;
	if (posix_spawnp(&pid, "git", NULL, NULL, argv, environ) != 0)
		return -1;
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Returns the checkout path (static) or "" on failure; *status the HTTP status. */
const char *fa_checkout(long *status)
{
	static char path[4096];
	char cwd[4096], url[128], auth[256];
	path[0] = '\0';
	if (getcwd(cwd, sizeof cwd) == NULL)
		return path;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "agent_name", env("MULTICA_AGENT_NAME"));
	cJSON_AddStringToObject(o, "checkout_mode", "");
	cJSON_AddStringToObject(o, "ref", "");
	cJSON_AddBoolToObject(o, "retry_busy", 1);
	cJSON_AddStringToObject(o, "task_id", env("MULTICA_TASK_ID"));
	cJSON_AddStringToObject(o, "url", env("FAKE_AGENT_REPO_URL"));
	cJSON_AddStringToObject(o, "workdir", cwd);
	cJSON_AddStringToObject(o, "workspace_id", env("MULTICA_WORKSPACE_ID"));
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	snprintf(url, sizeof url, "http://127.0.0.1:%s/repo/checkout", env("MULTICA_DAEMON_PORT"));
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", env("MULTICA_TOKEN"));
	struct curl_slist *h = curl_slist_append(NULL, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	struct body b = { .n = 0 };
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	*status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	free(json);
	cJSON *r = *status == 200 ? cJSON_Parse(b.buf) : NULL;
	const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(r, "path"));
	if (p != NULL)
		snprintf(path, sizeof path, "%s", p);
	cJSON_Delete(r);
	int rc = path[0] ? run_git(path) : -1;
	const char *out = getenv("FAKE_AGENT_CHECKOUT_OUT");
	FILE *f = out != NULL ? fopen(out, "w") : NULL;
	if (f != NULL) {
		fprintf(f, "status\t%ld\npath\t%s\ncommit\t%d\nbody\t%s\n", *status, path, rc, b.buf);
		fclose(f);
	}
	return path;
}
