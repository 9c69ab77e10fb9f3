/* Configuration loading (see config.h): the file, the problems found in it,
 * the checks that need the whole file, freeing and lookups. Parsing is in
 * config_parse.c, the daemon id and token file in config_id.c, printing in
 * config_print.c (config_int.h has the map). */
#include "supervisor/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "supervisor/duration.h"

#define PROBLEM_TEXT_MAX (MC_PATH_MAX + 1024)
#define JOIN_TAIL 32                          /* room for "; and N more" */

/* ---- problems ---- */

/* Appends a copy of text (one problem) to pr, growing pr->v (heap, owned
 * by pr). Past MC_CONFIG_MAX_PROBLEMS only counts it. */
static void add_problem(struct mc_config_problems *pr, int err_no, unsigned line,
			const char *text)
{
	if (pr->n + pr->dropped == 0 || err_no == ENOMEM)
		pr->err_no = err_no;
	if (pr->n >= MC_CONFIG_MAX_PROBLEMS) {
		pr->dropped++;
		return;
	}
	if (pr->n == pr->cap) {
		size_t cap = pr->cap ? pr->cap * 2 : 8;
		struct mc_config_problem *v = reallocarray(pr->v, cap, sizeof *v);
		if (v == NULL) {
			pr->nomem = true;
			pr->err_no = ENOMEM;
			return;
		}
		pr->v = v;
		pr->cap = cap;
	}
	char *copy = strdup(text);
	if (copy == NULL) {
		pr->nomem = true;
		pr->err_no = ENOMEM;
		return;
	}
	pr->v[pr->n] = (struct mc_config_problem){
		.line = line, .seq = (unsigned)pr->n, .err_no = err_no, .text = copy,
	};
	pr->n++;
}

int mc_cfg_problem(struct parse *p, int err_no, unsigned line, const char *key,
		   const char *fmt, ...)
{
	char msg[768], text[PROBLEM_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (line > 0 && key != NULL)
		snprintf(text, sizeof text, "%s:%u: %s: %s", p->path, line, key, msg);
	else if (line > 0)
		snprintf(text, sizeof text, "%s:%u: %s", p->path, line, msg);
	else if (key != NULL)
		snprintf(text, sizeof text, "%s: %s: %s", p->path, key, msg);
	else
		snprintf(text, sizeof text, "%s: %s", p->path, msg);
	add_problem(p->pr, err_no, line, text);
	if (err_no == ENOMEM || p->pr->nomem)
		p->fatal = true;
	return -1;
}

int mc_cfg_nomem(struct parse *p)
{
	return mc_cfg_problem(p, ENOMEM, 0, NULL, "out of memory");
}

size_t mc_cfg_n_problems(const struct parse *p)
{
	return p->pr->n + p->pr->dropped + (p->pr->nomem ? 1 : 0);
}

int mc_cfg_plain_err(char *err, size_t err_size, int err_no, const char *fmt, ...)
{
	if (err != NULL && err_size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	errno = err_no;
	return -1;
}

/* File order: by line, the file-as-a-whole problems (line 0) last, ties in
 * the order found. */
static int cmp_problem(const void *a, const void *b)
{
	const struct mc_config_problem *x = a, *y = b;
	unsigned lx = x->line ? x->line : UINT_MAX, ly = y->line ? y->line : UINT_MAX;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void sort_problems(struct mc_config_problems *pr)
{
	if (pr->n > 1)
		qsort(pr->v, pr->n, sizeof *pr->v, cmp_problem);
	if (pr->n > 0 && pr->err_no != ENOMEM)
		pr->err_no = pr->v[0].err_no;
}

/* The problems joined with "; " into err, as many whole ones as fit after
 * the first (which is cut if it must be), then "; and N more". */
static void join_problems(const struct mc_config_problems *pr, const char *path, char *err,
			  size_t n)
{
	if (err == NULL || n == 0)
		return;
	err[0] = '\0';
	if (pr->nomem && pr->n == 0) {
		snprintf(err, n, "%s: out of memory", path);
		return;
	}
	size_t used = 0, total = pr->n + pr->dropped;
	for (size_t i = 0; i < pr->n; i++) {
		const char *t = pr->v[i].text;
		size_t tail = i + 1 < total ? JOIN_TAIL : 0;
		if (i > 0 && used + 2 + strlen(t) + tail >= n) {
			snprintf(err + used, n - used, "; and %zu more", total - i);
			return;
		}
		snprintf(err + used, n - used, "%s%s", i > 0 ? "; " : "", t);
		used += strlen(err + used);
	}
	if (pr->dropped > 0 && used < n)
		snprintf(err + used, n - used, "; and %zu more", pr->dropped);
}

void mc_config_problems_print(const struct mc_config_problems *pr, const char *path, FILE *f)
{
	for (size_t i = 0; i < pr->n; i++)
		fprintf(f, "%s\n", pr->v[i].text);
	if (pr->dropped > 0)
		fprintf(f, "%s: %zu more problems not shown\n", path, pr->dropped);
	if (pr->nomem)
		fprintf(f, "%s: out of memory (not every problem is shown)\n", path);
}

void mc_config_problems_free(struct mc_config_problems *pr)
{
	if (pr == NULL)
		return;
	for (size_t i = 0; i < pr->n; i++)
		free(pr->v[i].text);
	free(pr->v);
	memset(pr, 0, sizeof *pr);
}

/* ---- whole-file checks ---- */

static unsigned dkey_line(const struct parse *p, const char *name)
{
	return p->dkey_line[mc_cfg_dkey_index(name)];
}

/* The key was given and rejected: checks that involve it are skipped (its
 * value is the default, and a message about that would mislead). */
static bool dkey_bad(const struct parse *p, const char *name)
{
	return p->dkey_bad[mc_cfg_dkey_index(name)];
}

static int cmp_idline(const void *a, const void *b)
{
	return strcmp(((const struct idline *)a)->id, ((const struct idline *)b)->id);
}

/* Sorts l, reports every duplicate, and moves the ids into a new array
 * *out (heap, owned by the config) when there is none. */
static void idlist_finish(struct parse *p, struct idlist *l, const char *key,
			  char (**out)[MC_ID_MAX], size_t *n_out)
{
	if (l->n == 0)
		return;
	qsort(l->v, l->n, sizeof *l->v, cmp_idline);
	bool dup = false;
	for (size_t i = 1; i < l->n; i++) {
		if (strcmp(l->v[i - 1].id, l->v[i].id) == 0) {
			unsigned a = l->v[i - 1].line, b = l->v[i].line;
			mc_cfg_problem(p, EINVAL, a > b ? a : b, key, "%s is listed twice", l->v[i].id);
			dup = true;
		}
	}
	if (dup)
		return;
	*out = calloc(l->n, sizeof **out);
	if (*out == NULL) {
		mc_cfg_nomem(p);
		return;
	}
	for (size_t i = 0; i < l->n; i++)
		memcpy((*out)[i], l->v[i].id, MC_ID_MAX);
	*n_out = l->n;
}

static int cmp_ws_section(const void *a, const void *b)
{
	return strcmp(((const struct mc_ws_section *)a)->id, ((const struct mc_ws_section *)b)->id);
}

static int cmp_override(const void *a, const void *b)
{
	return strcmp(((const struct mc_profile_override *)a)->profile_id,
		      ((const struct mc_profile_override *)b)->profile_id);
}

static void finish_ws_sections(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->n_ws_sections == 0)
		return;
	qsort(c->ws_sections, c->n_ws_sections, sizeof *c->ws_sections, cmp_ws_section);
	for (size_t i = 0; i < c->n_ws_sections; i++) {
		struct mc_ws_section *s = &c->ws_sections[i];
		if (i > 0 && strcmp(s[-1].id, s->id) == 0) {
			unsigned a = s[-1].line, b = s->line;
			mc_cfg_problem(p, EINVAL, a > b ? a : b, NULL,
				       "section [workspace %s] appears twice (first on line %u)",
				       s->id, a < b ? a : b);
		}
		if (s->n_overrides > 1)
			qsort(s->overrides, s->n_overrides, sizeof *s->overrides, cmp_override);
	}
}

/* a must be less than (or, with or_equal, at most) b; the message goes to
 * whichever of the two keys came later in the file. */
static void check_order(struct parse *p, const char *ka, long a, const char *kb, long b,
			bool or_equal)
{
	if (a < b || (or_equal && a == b) || dkey_bad(p, ka) || dkey_bad(p, kb))
		return;
	char as[32], bs[32];
	mc_format_duration(a, as, sizeof as);
	mc_format_duration(b, bs, sizeof bs);
	unsigned la = dkey_line(p, ka), lb = dkey_line(p, kb);
	const char *rel = or_equal ? "" : "strictly ";
	if (la > lb)
		mc_cfg_problem(p, EINVAL, la, ka, "%s must be %sless than %s%s (%s)",
			       as, rel, or_equal ? "or equal to " : "", kb, bs);
	else
		mc_cfg_problem(p, EINVAL, lb, kb, "%s must be %sgreater than %s%s (%s)",
			       bs, rel, or_equal ? "or equal to " : "", ka, as);
}

static void finish_daemon_id(struct parse *p)
{
	struct mc_config *c = p->c;
	unsigned li = dkey_line(p, "daemon_id"), lf = dkey_line(p, "daemon_id_file");
	if (li != 0 && lf != 0) {
		mc_cfg_problem(p, EINVAL, li > lf ? li : lf, li > lf ? "daemon_id" : "daemon_id_file",
			       "give either daemon_id or daemon_id_file, not both (the other is on line %u)",
			       li > lf ? lf : li);
	} else if (li == 0 && lf == 0) {
		int n = snprintf(c->daemon_id_file, sizeof c->daemon_id_file, "%s/daemon.id",
				 strcmp(c->state_dir, "/") == 0 ? "" : c->state_dir);
		if ((n < 0 || (size_t)n >= sizeof c->daemon_id_file) && !dkey_bad(p, "state_dir"))
			mc_cfg_problem(p, EINVAL, dkey_line(p, "state_dir"), "state_dir",
				       "too long to hold daemon.id");
	}
}

static void finish_device_name(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->device_name[0] != '\0' || dkey_bad(p, "device_name"))
		return;
	if (gethostname(c->device_name, sizeof c->device_name) < 0) {
		int e = errno;
		mc_cfg_problem(p, e, 0, "device_name",
			       "cannot read the hostname (%s); set device_name", strerror(e));
		return;
	}
	c->device_name[sizeof c->device_name - 1] = '\0';
	if (c->device_name[0] == '\0' || mc_cfg_has_control_chars(c->device_name))
		mc_cfg_problem(p, EINVAL, 0, "device_name",
			       "the hostname is not usable as a device name; set device_name");
}

/* Everything that needs the whole file; every problem is reported. */
static void finish(struct parse *p)
{
	struct mc_config *c = p->c;
	if (c->server_url[0] == '\0' && !dkey_bad(p, "server_url"))
		mc_cfg_problem(p, EINVAL, 0, NULL, "server_url is required");
	if (c->token_file[0] == '\0' && !dkey_bad(p, "token_file"))
		mc_cfg_problem(p, EINVAL, 0, NULL, "token_file is required");
	c->all_workspaces = p->ws_all;
	if (!p->ws_all && p->ws.n == 0 && !dkey_bad(p, "workspaces"))
		mc_cfg_problem(p, EINVAL, dkey_line(p, "workspaces"), "workspaces",
			       "empty (use all or a space-separated list of workspace UUIDs)");
	finish_daemon_id(p);
	finish_device_name(p);
	idlist_finish(p, &p->ws, "workspaces", &c->workspaces, &c->n_workspaces);
	idlist_finish(p, &p->ex, "exclude_workspaces", &c->exclude, &c->n_exclude);
	if (c->shard_count > 1 && !p->ws_all && !dkey_bad(p, "workspaces"))
		mc_cfg_problem(p, EINVAL, dkey_line(p, "shard"), "shard",
			       "needs workspaces = all (a list already says what this host serves)");
	finish_ws_sections(p);
	check_order(p, "worker_ping_interval", c->worker_ping_interval_ms,
		    "worker_liveness_timeout", c->worker_liveness_timeout_ms, false);
	check_order(p, "restart_backoff_min", c->restart_backoff_min_ms,
		    "restart_backoff_max", c->restart_backoff_max_ms, true);
	mc_cfg_finish_tasks(p);
	mc_cfg_finish_agents(p);
}

/* ---- loading ---- */

/* Reads the whole regular file at path into a new NUL-terminated buffer
 * (caller frees). NULL with errno and the reason (naming path) in why. */
static char *slurp(const char *path, size_t *len, char *why, size_t why_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		mc_cfg_plain_err(why, why_size, e, "%s: cannot open: %s", path, strerror(e));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		mc_cfg_plain_err(why, why_size, e, "%s: cannot stat: %s", path, strerror(e));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		mc_cfg_plain_err(why, why_size, EINVAL, "%s: not a regular file", path);
		return NULL;
	}
	/* Sized by the file (the buffer grows if it does too), not by the
	 * limit: a 4 MiB buffer per reload is waste (and slowed fuzz_config
	 * to 1.7k runs/s). cap is one over what is allowed, to see the limit. */
	const size_t limit = (size_t)MC_CONFIG_FILE_MAX + 1;
	size_t cap = st.st_size > 0 && (size_t)st.st_size < limit ? (size_t)st.st_size + 1 : 4096,
	       used = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL) {
		close(fd);
		mc_cfg_plain_err(why, why_size, ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	for (;;) {
		ssize_t r = read(fd, buf + used, cap - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			free(buf);
			mc_cfg_plain_err(why, why_size, e, "%s: cannot read: %s", path, strerror(e));
			return NULL;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used == cap && cap < limit) {
			size_t ncap = cap * 2 < limit ? cap * 2 : limit;
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL) {
				close(fd);
				free(buf);
				mc_cfg_plain_err(why, why_size, ENOMEM, "%s: out of memory", path);
				return NULL;
			}
			buf = nb;
			cap = ncap;
		} else if (used == cap) {
			close(fd);
			free(buf);
			mc_cfg_plain_err(why, why_size, EFBIG, "%s: larger than the %ld-byte limit "
					 "of a configuration file", path, MC_CONFIG_FILE_MAX);
			return NULL;
		}
	}
	close(fd);
	buf[used] = '\0';
	*len = used;
	return buf;
}

/* Parses and checks path into *out, every problem into *pr (with_token:
 * the token file too). 0, or -1 with errno and *out freed. */
static int load(const char *path, struct mc_config *out, struct mc_config_problems *pr,
		bool with_token)
{
	memset(out, 0, sizeof *out);
	memset(pr, 0, sizeof *pr);
	struct parse p = { .c = out, .path = path, .pr = pr };
	char why[PROBLEM_TEXT_MAX];
	if (strlcpy(out->path, path, sizeof out->path) >= sizeof out->path) {
		snprintf(why, sizeof why, "%s: path too long", path);
		add_problem(pr, ENAMETOOLONG, 0, why);
	} else if ((p.buf = slurp(path, &p.len, why, sizeof why)) == NULL) {
		add_problem(pr, errno, 0, why);
	} else {
		mc_cfg_apply_defaults(&p);
		mc_cfg_parse_buffer(&p);
		if (!p.fatal)
			finish(&p);
		if (with_token && !p.fatal)
			mc_cfg_check_token(&p);
	}
	free((char *)p.buf);
	free(p.ws.v);
	free(p.ex.v);
	if (pr->n == 0 && pr->dropped == 0 && !pr->nomem)
		return 0;
	sort_problems(pr);
	int e = pr->err_no ? pr->err_no : EINVAL;
	mc_config_free(out);
	errno = e;
	return -1;
}

int mc_config_load(const char *path, struct mc_config *out, char *err, size_t err_size)
{
	struct mc_config_problems pr;
	if (err != NULL && err_size > 0)
		err[0] = '\0';
	int rc = load(path, out, &pr, false);
	int e = errno;
	if (rc < 0)
		join_problems(&pr, path, err, err_size);
	mc_config_problems_free(&pr);
	errno = e;
	return rc;
}

int mc_config_check(const char *path, struct mc_config *out, struct mc_config_problems *pr)
{
	return load(path, out, pr, true);
}

void mc_config_free(struct mc_config *c)
{
	if (c == NULL)
		return;
	free(c->workspaces);
	free(c->exclude);
	for (size_t i = 0; i < c->n_ws_sections; i++)
		free(c->ws_sections[i].overrides);
	free(c->ws_sections);
	memset(c, 0, sizeof *c);
}

/* ---- lookups ---- */

static int cmp_key_ws(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct mc_ws_section *)elem)->id);
}

static int cmp_key_id(const void *key, const void *elem)
{
	return strcasecmp(key, (const char *)elem);
}

const struct mc_ws_section *mc_config_ws_section(const struct mc_config *c, const char *ws)
{
	if (c->n_ws_sections == 0)
		return NULL;
	return bsearch(ws, c->ws_sections, c->n_ws_sections, sizeof *c->ws_sections, cmp_key_ws);
}

static bool in_ids(const char (*ids)[MC_ID_MAX], size_t n, const char *ws)
{
	return n > 0 && bsearch(ws, ids, n, MC_ID_MAX, cmp_key_id) != NULL;
}

bool mc_config_wants_workspace(const struct mc_config *c, const char *ws)
{
	if (in_ids((const char (*)[MC_ID_MAX])c->exclude, c->n_exclude, ws))
		return false;
	if (c->all_workspaces)
		return c->shard_count <= 1 || mc_shard_of(ws, c->shard_count) == c->shard_index;
	return in_ids((const char (*)[MC_ID_MAX])c->workspaces, c->n_workspaces, ws);
}
