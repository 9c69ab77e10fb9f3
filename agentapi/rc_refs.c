/* Base ref resolution (reference 3.5): a requested ref, or the remote's
 * default branch by the five fallbacks. */
#include <stdio.h>
#include <string.h>

#include "agentapi/rc_int.h"

/* The commit of cand in bare, or -1. */
static int verify(const char *bare, const char *cand, int64_t deadline, char *commit,
		  size_t commit_size)
{
	char spec[512];
	if (!cand[0] || cand[0] == '-')
		return -1;
	snprintf(spec, sizeof(spec), "%s^{commit}", cand);
	return rc_git_line(deadline, commit, commit_size, "-C", bare, "rev-parse", "--verify",
			   "--quiet", spec, NULL);
}

static int take(const char *bare, const char *cand, int64_t deadline, char *refname,
		size_t refname_size, char *commit, size_t commit_size)
{
	if (verify(bare, cand, deadline, commit, commit_size) < 0)
		return -1;
	snprintf(refname, refname_size, "%s", cand);
	return 0;
}

static int requested(const struct rc_repo *r, const char *ref, int64_t deadline, char *refname,
		     size_t rn, char *commit, size_t cn, char *err, size_t err_size)
{
	char cand[512];
	snprintf(cand, sizeof(cand), "refs/remotes/origin/%s", ref);
	if (take(r->bare, cand, deadline, refname, rn, commit, cn) == 0)
		return 0;
	snprintf(cand, sizeof(cand), "refs/tags/%s", ref);
	if (take(r->bare, cand, deadline, refname, rn, commit, cn) == 0)
		return 0;
	if (take(r->bare, ref, deadline, refname, rn, commit, cn) == 0)
		return 0;
	snprintf(err, err_size, "cannot resolve requested ref \"%s\" in repo cache at %s", ref,
		 r->bare);
	return -1;
}

/* Fallback 4 and 5: the only remote-tracking branch; the bare HEAD when
 * there are none. 0 when one was taken. */
static int only_branch(const struct rc_repo *r, int64_t deadline, char *refname, size_t rn,
		       char *commit, size_t cn)
{
	struct mc_git_out o;
	char e[RC_ERR];
	if (rc_git(deadline, &o, e, sizeof(e), "-C", r->bare, "for-each-ref",
		   "--format=%(refname)", "refs/remotes/origin/", NULL) != 0) {
		mc_git_out_free(&o);
		return -1;
	}
	char one[512] = "";
	int count = 0;
	for (char *line = o.out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (!len || (len == 24 && !strncmp(line, "refs/remotes/origin/HEAD", 24)))
			continue;
		if (count++ == 0)
			snprintf(one, sizeof(one), "%.*s", (int)len, line);
		if (!nl)
			break;
	}
	mc_git_out_free(&o);
	if (count == 1)
		return take(r->bare, one, deadline, refname, rn, commit, cn);
	if (count == 0)
		return take(r->bare, "HEAD", deadline, refname, rn, commit, cn);
	return -1;
}

static int default_branch(const struct rc_repo *r, int64_t deadline, char *refname, size_t rn,
			  char *commit, size_t cn, char *err, size_t err_size)
{
	char target[512];
	if (rc_git_line(deadline, target, sizeof(target), "-C", r->bare, "symbolic-ref",
			"refs/remotes/origin/HEAD", NULL) == 0 &&
	    take(r->bare, target, deadline, refname, rn, commit, cn) == 0)
		return 0;
	if (take(r->bare, "refs/remotes/origin/main", deadline, refname, rn, commit, cn) == 0 ||
	    take(r->bare, "refs/remotes/origin/master", deadline, refname, rn, commit, cn) == 0)
		return 0;
	if (rc_git_line(deadline, target, sizeof(target), "-C", r->bare, "symbolic-ref", "HEAD",
			NULL) == 0 &&
	    !strncmp(target, "refs/heads/", 11)) {
		char cand[600];
		snprintf(cand, sizeof(cand), "refs/remotes/origin/%s", target + 11);
		if (take(r->bare, cand, deadline, refname, rn, commit, cn) == 0)
			return 0;
	}
	if (only_branch(r, deadline, refname, rn, commit, cn) == 0)
		return 0;
	snprintf(err, err_size,
		 "cannot resolve default branch for %s: bare cache at %s has no usable refs "
		 "(no origin/HEAD, main, master or single remote branch)",
		 r->url ? r->url : "", r->bare);
	return -1;
}

int rc_resolve_base(const struct rc_repo *r, const char *ref, int64_t deadline, char *refname,
		    size_t refname_size, char *commit, size_t commit_size, char *err,
		    size_t err_size)
{
	if (ref && ref[0])
		return requested(r, ref, deadline, refname, refname_size, commit, commit_size, err,
				 err_size);
	return default_branch(r, deadline, refname, refname_size, commit, commit_size, err,
			      err_size);
}
