/* The checkout itself (reference 3.7), under the repo lock, with three
 * departures where multica loses work (reference 8):
 *  - a second checkout into a path that already holds this repository
 *    never runs reset --hard / clean -fd: a dirty checkout is left as it
 *    is, a clean one already on this task's branch too (unless a ref was
 *    asked for), and only a clean one gets a new branch;
 *  - a path that holds anything else (another repository with the same
 *    basename, an agent's own dir) is never touched: the checkout goes to
 *    <name>-2, <name>-3, ... instead;
 *  - a linked worktree is migrated to isolated mode only when clean. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agentapi/rc_int.h"

#define MAX_SUFFIX 9

enum pathkind { P_ABSENT, P_LINKED, P_ISOLATED, P_OTHER };

struct co {
	struct mc_repocache *rc;
	struct rc_repo *r;
	const struct mc_checkout_req *q;
	int64_t dl;
	char refname[512];
	char commit[128];
	char branch[256];      /* wanted */
	char path[PATH_MAX];
	struct mc_checkout_res *res;
};

static const char *const excludes[] = {".agent_context", "CLAUDE.md", "AGENTS.md", ".claude",
				       ".opencode", ".deveco", "CODEBUDDY.md", ".codebuddy"};

/* ---- what a path holds ---- */

static bool same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static enum pathkind classify(const struct co *c, const char *path)
{
	struct stat st, gst;
	char gitp[PATH_MAX + 8], line[PATH_MAX];
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? P_ABSENT : P_OTHER;
	if (!S_ISDIR(st.st_mode))
		return P_OTHER;
	snprintf(gitp, sizeof(gitp), "%s/.git", path);
	if (lstat(gitp, &gst) < 0)
		return P_OTHER;
	if (S_ISREG(gst.st_mode)) {
		if (rc_git_line(c->dl, line, sizeof(line), "-C", path, "rev-parse",
				"--path-format=absolute", "--git-common-dir", NULL) < 0)
			return P_OTHER;
		return same_dir(line, c->r->bare) ? P_LINKED : P_OTHER;
	}
	if (!S_ISDIR(gst.st_mode))
		return P_OTHER;
	if (rc_git_line(c->dl, line, sizeof(line), "-C", path, "config", "--get",
			"multica.checkout-mode", NULL) < 0 ||
	    strcmp(line, "isolated"))
		return P_OTHER;
	if (rc_git_line(c->dl, line, sizeof(line), "-C", path, "config", "--get",
			"remote.origin.url", NULL) < 0 ||
	    strcmp(line, c->q->url))
		return P_OTHER;
	return P_ISOLATED;
}

/* The first of <workdir>/<name>, <name>-2, ... that is absent or ours. */
static int pick_path(struct co *c, enum pathkind *kind, char *err, size_t err_size)
{
	char name[256];
	mc_repo_name(c->q->url, name, sizeof(name));
	for (int i = 1; i <= MAX_SUFFIX; i++) {
		if (i == 1)
			snprintf(c->path, sizeof(c->path), "%s/%s", c->q->workdir, name);
		else
			snprintf(c->path, sizeof(c->path), "%s/%s-%d", c->q->workdir, name, i);
		*kind = classify(c, c->path);
		if (*kind != P_OTHER)
			return 0;
	}
	snprintf(err, err_size, "no free checkout path for %s under %s", c->q->url, c->q->workdir);
	return -1;
}

static bool dirty(const struct co *c)
{
	struct mc_git_out o;
	char e[RC_ERR];
	int rc = rc_git(c->dl, &o, e, sizeof(e), "-C", c->path, "status", "--porcelain", NULL);
	bool d = rc != 0 || (o.out && o.out[0]);
	mc_git_out_free(&o);
	return d;
}

/* ---- branch creation with the one collision retry ---- */

typedef int (*branch_fn)(struct co *c, const char *branch, struct mc_git_out *o, char *err,
			 size_t err_size);

static bool said_branch_exists(const struct mc_git_out *o)
{
	return (o->err && strcasestr(o->err, "a branch named")) ||
	       (o->out && strcasestr(o->out, "a branch named"));
}

/* Runs fn with the wanted branch; while git says "a branch named ..."
 * (and only then: a path collision must never add a branch), again with
 * -<unix seconds>, then -<unix>-2 ... (multica retries once, so two
 * checkouts within a second failed). */
static int with_branch(struct co *c, branch_fn fn, char *err, size_t err_size)
{
	char b[256];
	long long now = (long long)time(NULL);
	snprintf(b, sizeof(b), "%s", c->branch);
	int rc = -1;
	for (int i = 0; i < 5; i++) {
		if (i == 1)
			snprintf(b, sizeof(b), "%.200s-%lld", c->branch, now);
		else if (i > 1)
			snprintf(b, sizeof(b), "%.200s-%lld-%d", c->branch, now, i);
		struct mc_git_out o;
		rc = fn(c, b, &o, err, err_size);
		bool again = rc < 0 && said_branch_exists(&o);
		mc_git_out_free(&o);
		if (!again)
			break;
	}
	if (rc == 0)
		snprintf(c->res->branch, sizeof(c->res->branch), "%s", b);
	return rc;
}

static int fn_worktree_add(struct co *c, const char *b, struct mc_git_out *o, char *err,
			   size_t es)
{
	return rc_git_ok(c->dl, o, err, es, "-C", c->r->bare, "worktree", "add", "-b", b, c->path,
			 c->refname, NULL);
}

static int fn_checkout_ref(struct co *c, const char *b, struct mc_git_out *o, char *err, size_t es)
{
	return rc_git_ok(c->dl, o, err, es, "-C", c->path, "checkout", "-b", b, c->refname, NULL);
}

static int fn_checkout_commit(struct co *c, const char *b, struct mc_git_out *o, char *err,
			      size_t es)
{
	return rc_git_ok(c->dl, o, err, es, "-C", c->path, "checkout", "-b", b, c->commit, NULL);
}

static void prefix(char *err, size_t err_size, const char *what)
{
	char tmp[RC_ERR * 2];
	snprintf(tmp, sizeof(tmp), "%s: %s", what, err);
	snprintf(err, err_size, "%s", tmp);
}

/* ---- linked ---- */

static int linked_fresh(struct co *c, char *err, size_t err_size)
{
	if (with_branch(c, fn_worktree_add, err, err_size) == 0)
		return 0;
	if (!strstr(err, "already registered"))
		goto fail;
	/* A task dir removed under a registered worktree: prune, then again. */
	char e[RC_ERR];
	rc_git(c->dl, NULL, e, sizeof(e), "-C", c->r->bare, "worktree", "prune", NULL);
	if (with_branch(c, fn_worktree_add, err, err_size) == 0)
		return 0;
fail:
	prefix(err, err_size, "create worktree");
	return -1;
}

/* A path that holds this repository already: see the file comment. */
static int reuse(struct co *c, branch_fn fn, char *err, size_t err_size)
{
	char cur[256] = "";
	rc_git_line(c->dl, cur, sizeof(cur), "-C", c->path, "symbolic-ref", "--short", "-q", "HEAD",
		    NULL);
	bool explicit_ref = c->q->ref && c->q->ref[0];
	bool ours = cur[0] && !strncmp(cur, c->branch, strlen(c->branch));
	if (dirty(c) || (ours && !explicit_ref)) {
		snprintf(c->res->branch, sizeof(c->res->branch), "%s", cur[0] ? cur : "HEAD");
		return 0;
	}
	if (with_branch(c, fn, err, err_size) == 0)
		return 0;
	prefix(err, err_size, "update existing worktree");
	return -1;
}

/* ---- isolated ---- */

static int sync_refs(struct co *c, char *err, size_t err_size)
{
	if (rc_git_ok(c->dl, NULL, err, err_size, "-C", c->path, "fetch", "--force", "--no-tags",
		      c->r->bare, "+refs/remotes/origin/*:refs/remotes/origin/*",
		      "+refs/tags/*:refs/tags/*", NULL) < 0)
		return -1;
	return rc_git_ok(c->dl, NULL, err, err_size, "-C", c->path, "fetch", "--force", "--no-tags",
			 c->r->bare, c->refname, NULL);
}

static void drop_local_heads(struct co *c)
{
	struct mc_git_out o;
	char e[RC_ERR];
	if (rc_git(c->dl, &o, e, sizeof(e), "-C", c->path, "for-each-ref", "--format=%(refname)",
		   "refs/heads/", NULL) == 0) {
		for (char *line = o.out, *nl; line && *line; line = nl + 1) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			if (line[0])
				rc_git(c->dl, NULL, e, sizeof(e), "-C", c->path, "update-ref", "-d",
				       line, NULL);
			if (!nl)
				break;
		}
	}
	mc_git_out_free(&o);
}

static int iso_setup(struct co *c, char *err, size_t es)
{
	if (rc_git_ok(c->dl, NULL, err, es, "-C", c->path, "remote", "remove", "multica-cache",
		      NULL) < 0 ||
	    rc_git_ok(c->dl, NULL, err, es, "-C", c->path, "remote", "add", "origin", c->q->url,
		      NULL) < 0 ||
	    rc_git_ok(c->dl, NULL, err, es, "-C", c->path, "checkout", "--detach", c->commit,
		      NULL) < 0)
		return -1;
	drop_local_heads(c);
	if (sync_refs(c, err, es) < 0 ||
	    rc_git_ok(c->dl, NULL, err, es, "-C", c->path, "config", "multica.checkout-mode",
		      "isolated", NULL) < 0)
		return -1;
	return with_branch(c, fn_checkout_commit, err, es);
}

static int iso_fresh(struct co *c, char *err, size_t es)
{
	if (rc_git_ok(c->dl, NULL, err, es, "clone", "--local", "--no-checkout", "--no-tags",
		      "--origin", "multica-cache", c->r->bare, c->path, NULL) < 0) {
		prefix(err, es, "create isolated checkout");
		return -1; /* the path is left alone: it may not be ours */
	}
	if (iso_setup(c, err, es) == 0)
		return 0;
	rc_rmtree(c->path);
	prefix(err, es, "create isolated checkout");
	return -1;
}

static int iso_reuse(struct co *c, char *err, size_t es)
{
	if (rc_git_ok(c->dl, NULL, err, es, "-C", c->path, "remote", "set-url", "origin", c->q->url,
		      NULL) < 0 ||
	    sync_refs(c, err, es) < 0) {
		prefix(err, es, "update existing worktree");
		return -1;
	}
	return reuse(c, fn_checkout_commit, err, es);
}

/* A clean linked worktree asked for in isolated mode: removed, cloned. */
static int migrate(struct co *c, char *err, size_t es)
{
	if (dirty(c))
		return reuse(c, fn_checkout_ref, err, es);
	if (rc_git_ok(c->dl, NULL, err, es, "-C", c->r->bare, "worktree", "remove", "--force",
		      c->path, NULL) < 0) {
		prefix(err, es, "create isolated checkout");
		return -1;
	}
	return iso_fresh(c, err, es);
}

/* ---- excludes ---- */

/* The same, as the agent: the common dir is what the agent's checkout
 * says it is, so this process never writes where it points. */
static void add_excludes_as_agent(const struct co *c, const char *common)
{
	enum { N = sizeof(excludes) / sizeof(excludes[0]) };
	const char *argv[N + 6] = {
		"sh", "-c",
		"f=\"$1/info/exclude\"; shift; mkdir -p \"${f%/*}\" || exit 1; for e do "
		"grep -qF -- \"$e\" \"$f\" 2>/dev/null || printf '\\n%s\\n' \"$e\" >> \"$f\" || exit 1; done",
		"sh", common,
	};
	for (size_t i = 0; i < N; i++)
		argv[5 + i] = excludes[i];
	char e[RC_ERR];
	rc_cmd(c->dl, argv, e, sizeof(e));
}

static void add_excludes(struct co *c)
{
	char common[PATH_MAX], p[PATH_MAX + 32];
	if (rc_git_line(c->dl, common, sizeof(common), "-C", c->path, "rev-parse",
			"--path-format=absolute", "--git-common-dir", NULL) < 0)
		return;
	/* git reads the common dir's info/exclude, also for linked worktrees. */
	if (rc_git_switched()) {
		add_excludes_as_agent(c, common);
		return;
	}
	snprintf(p, sizeof(p), "%s/info", common);
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return;
	snprintf(p, sizeof(p), "%s/info/exclude", common);
	char have[8192] = "";
	FILE *f = fopen(p, "re");
	if (f) {
		size_t n = fread(have, 1, sizeof(have) - 1, f);
		have[n] = '\0';
		fclose(f);
	}
	f = fopen(p, "ae");
	if (!f)
		return;
	for (size_t i = 0; i < sizeof(excludes) / sizeof(excludes[0]); i++)
		if (!strstr(have, excludes[i]))
			fprintf(f, "\n%s\n", excludes[i]);
	fclose(f);
}

/* ---- entry ---- */

static int run_mode(struct co *c, enum pathkind kind, char *err, size_t err_size)
{
	bool iso = c->q->isolated || kind == P_ISOLATED;
	if (kind == P_ISOLATED)
		return iso_reuse(c, err, err_size);
	if (kind == P_LINKED)
		return iso ? migrate(c, err, err_size) : reuse(c, fn_checkout_ref, err, err_size);
	return iso ? iso_fresh(c, err, err_size) : linked_fresh(c, err, err_size);
}

enum mc_checkout_outcome rc_checkout_locked(struct mc_repocache *rc, struct rc_repo *r,
					    const struct mc_checkout_req *req,
					    struct mc_checkout_res *res, char *err, size_t err_size)
{
	struct co *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_size, "repo checkout: out of memory");
		return MC_CO_ERROR;
	}
	*c = (struct co){.rc = rc, .r = r, .q = req, .dl = req->deadline_ms, .res = res};
	const char *ref = req->ref && req->ref[0] ? req->ref : req->default_ref;
	mc_repo_branch_name(req->agent_name, req->task_id, c->branch, sizeof(c->branch));
	enum pathkind kind;
	int rcode = rc_resolve_base(r, ref, c->dl, c->refname, sizeof(c->refname), c->commit,
				    sizeof(c->commit), err, err_size);
	if (rcode == 0)
		rcode = pick_path(c, &kind, err, err_size);
	if (rcode == 0)
		rcode = run_mode(c, kind, err, err_size);
	if (rcode == 0) {
		add_excludes(c);
		snprintf(res->path, sizeof(res->path), "%s", c->path);
	}
	free(c);
	return rcode == 0 ? MC_CO_OK : MC_CO_ERROR;
}
