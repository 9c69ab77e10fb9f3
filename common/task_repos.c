/* repos[] of a claimed task (task.h): [{url, ref}] the local API allows and
 * checks out. Bounded: at most MC_TASK_REPOS_MAX entries, each url and ref
 * within its array; unknown members (description, ...) ignored. Error
 * convention as in task.h ("repos[i].url: ..."), never a value. */
#include "common/task.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "common/json.h"

#define PATH_LEN 64

/* Copies s trimmed into dst (dst_size with the NUL): -1 when it does not
 * fit or holds a control byte. */
static int copy_trimmed(const char *s, char *dst, size_t dst_size)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= dst_size)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static int get_field(const cJSON *o, const char *path, const char *key, bool required,
		     char *dst, size_t dst_size, char *err, size_t err_size)
{
	char *s = NULL;
	if (mc_json_get_string(o, path, key, MC_JSON_STR_OR_EMPTY, &s, err, err_size) < 0)
		return -1;
	char p[PATH_LEN];
	mc_json_path_key(p, sizeof p, path, key);
	int rc = copy_trimmed(s, dst, dst_size);
	free(s);
	if (rc < 0)
		return mc_json_fail(err, err_size, p, "longer than %zu bytes or holds a control byte",
				    dst_size - 1);
	if (required && dst[0] == '\0')
		return mc_json_fail(err, err_size, p, "empty");
	return 0;
}

static int decode_repo(const cJSON *e, const char *path, struct mc_task_repo *r, char *err,
		       size_t err_size)
{
	if (!cJSON_IsObject(e))
		return mc_json_fail(err, err_size, path, "expected object, got %s",
				    mc_json_type_name(e));
	if (get_field(e, path, "url", true, r->url, sizeof r->url, err, err_size) < 0)
		return -1;
	return get_field(e, path, "ref", false, r->ref, sizeof r->ref, err, err_size);
}

int mc_task_decode_repos(const cJSON *j, struct mc_task *t, char *err, size_t err_size)
{
	const cJSON *a = NULL;
	t->n_repos = 0;
	t->repos = NULL;
	if (mc_json_get_array(j, "", "repos", true, &a, err, err_size) < 0)
		return -1;
	int n = a != NULL ? cJSON_GetArraySize(a) : 0;
	if (n == 0)
		return 0;
	if (n > MC_TASK_REPOS_MAX)
		return mc_json_fail(err, err_size, "repos", "more than %d entries",
				    MC_TASK_REPOS_MAX);
	/* owned by t: mc_task_clear frees it */
	t->repos = calloc((size_t)n, sizeof *t->repos);
	if (t->repos == NULL)
		return mc_json_fail(err, err_size, "repos", "out of memory");
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		char p[PATH_LEN];
		mc_json_path_index(p, sizeof p, "repos", t->n_repos);
		if (decode_repo(e, p, &t->repos[t->n_repos], err, err_size) < 0)
			return -1;
		t->n_repos++;
	}
	return 0;
}
