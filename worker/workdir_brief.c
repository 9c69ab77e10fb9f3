/* The runtime brief file (CLAUDE.md / AGENTS.md): our wording of the facts
 * multica's brief carries, inside a marker block that a reused work dir
 * gets replaced rather than duplicated. */
#include "worker/workdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/safefs.h"
#include "worker/textbuf.h"

const char *mc_workdir_brief_name(const char *provider)
{
	return provider && strcmp(provider, "claude") == 0 ? "CLAUDE.md" : "AGENTS.md";
}

static bool has(const char *s)
{
	return s && *s;
}

static int add(struct mc_sbuf *b, const char *s)
{
	return s ? mc_sbuf_add_clean(b, s, strlen(s)) : 0;
}

/* "## title\n\n<text>\n\n" when text is set. */
static int section(struct mc_sbuf *b, const char *title, const char *text)
{
	if (!has(text))
		return 0;
	return mc_sbuf_addf(b, "## %s\n\n", title) | add(b, text) | mc_sbuf_adds(b, "\n\n");
}

static int identity(struct mc_sbuf *b, const struct mc_task *t)
{
	int rc = mc_sbuf_adds(b, "# Multica agent brief\n\nYou are the agent **");
	rc |= add(b, has(t->agent_name) ? t->agent_name : "(unnamed)");
	rc |= mc_sbuf_addf(b, "** (agent id `%s`) of the Multica workspace `%s`, running on "
			   "a host served by multicad. This run is task `%s`.\n\n",
			   t->agent_id, t->workspace_id, t->id);
	if (t->kind == MC_TASK_CHAT) {
		rc |= mc_sbuf_adds(b, "You are answering chat session `");
		rc |= add(b, t->chat_session_id);
		rc |= mc_sbuf_adds(b, "`.\n\n");
	}
	if (has(t->issue_id)) {
		rc |= mc_sbuf_adds(b, "The issue you work on is `");
		rc |= add(b, t->issue_id);
		rc |= mc_sbuf_adds(b, "`.\n\n");
	}
	return rc;
}

static int cli_usage(struct mc_sbuf *b, const struct mc_task *t)
{
	const char *id = has(t->issue_id) ? t->issue_id : "<issue-id>";
	int rc = mc_sbuf_adds(b,
		"## Working with Multica\n\n"
		"Talk to Multica with the `multica` CLI. It is already authenticated for "
		"this task through MULTICA_TOKEN and MULTICA_SERVER_URL in your "
		"environment: do not log in, and do not use any other token.\n\n");
	rc |= mc_sbuf_adds(b, "- read the issue: `multica issue get ");
	rc |= add(b, id);
	rc |= mc_sbuf_adds(b, " --output json`\n- read its comments: `multica issue comment list ");
	rc |= add(b, id);
	rc |= mc_sbuf_adds(b, " --output json`\n- comment or reply in a thread: `multica issue "
			   "comment add ");
	rc |= add(b, id);
	rc |= mc_sbuf_adds(b, " --content \"...\"` (see `multica issue comment add --help` "
			   "for replying to a comment)\n- everything else: `multica --help`\n\n"
			   "Your working directory is yours for this task; keep temporary files "
			   "in $TMPDIR.\n\n");
	return rc;
}

char *mc_workdir_brief_text(const struct mc_task *t, const char *provider)
{
	(void)provider;
	struct mc_sbuf b = {0};
	int rc = mc_sbuf_adds(&b, MC_WORKDIR_BEGIN "\n");
	rc |= identity(&b, t);
	rc |= section(&b, "Your instructions", t->agent_instructions);
	rc |= cli_usage(&b, t);
	rc |= section(&b, "Workspace context", t->workspace_context);
	if (has(t->project_title) || has(t->project_description)) {
		rc |= mc_sbuf_adds(&b, "## Project\n\n");
		if (has(t->project_title)) {
			rc |= add(&b, t->project_title);
			rc |= mc_sbuf_adds(&b, "\n\n");
		}
		if (has(t->project_description)) {
			rc |= add(&b, t->project_description);
			rc |= mc_sbuf_adds(&b, "\n\n");
		}
	}
	rc |= section(&b, "Handoff note", t->handoff_note);
	rc |= mc_sbuf_adds(&b, MC_WORKDIR_END "\n");
	if (rc) {
		mc_sbuf_free(&b);
		errno = ENOMEM;
		return NULL;
	}
	return mc_sbuf_take(&b);
}

/* old with its marker block replaced by block (or block appended). */
static int merge(struct mc_sbuf *out, const char *old, size_t old_len, const char *block)
{
	const char *beg = old ? memmem(old, old_len, MC_WORKDIR_BEGIN, strlen(MC_WORKDIR_BEGIN)) : NULL;
	const char *end = beg ? memmem(beg, old_len - (size_t)(beg - old), MC_WORKDIR_END,
				       strlen(MC_WORKDIR_END)) : NULL;
	if (!old || old_len == 0)
		return mc_sbuf_adds(out, block);
	if (!beg || !end) {
		int rc = mc_sbuf_add(out, old, old_len);
		if (old[old_len - 1] != '\n')
			rc |= mc_sbuf_adds(out, "\n");
		return rc | mc_sbuf_adds(out, "\n") | mc_sbuf_adds(out, block);
	}
	end += strlen(MC_WORKDIR_END);
	if (end < old + old_len && *end == '\n')
		end++;
	return mc_sbuf_add(out, old, (size_t)(beg - old)) | mc_sbuf_adds(out, block) |
	       mc_sbuf_add(out, end, old_len - (size_t)(end - old));
}

int mc_workdir_write_brief(const struct mc_workdir *wd, const struct mc_task *t,
			   const char *provider, char *err, size_t err_size)
{
	const char *name = mc_workdir_brief_name(provider);
	int fd = open(wd->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_size, "brief: work dir: %s", strerror(errno));
		return -1;
	}
	size_t old_len = 0;
	char *old = mc_fs_read_at(fd, name, MC_WORKDIR_BRIEF_MAX, &old_len);
	/* a symlink or an oversized file in its place is replaced, not read */
	char *block = mc_workdir_brief_text(t, provider);
	struct mc_sbuf out = {0};
	int rc = -1;
	if (block && merge(&out, old, old_len, block) == 0)
		rc = mc_fs_write_at(fd, name, out.p, out.len, wd->shared ? MC_WORKDIR_SHARED_FILE : 0644,
				    false);
	else
		errno = ENOMEM;
	int e = errno;
	free(old);
	free(block);
	mc_sbuf_free(&out);
	close(fd);
	if (rc < 0)
		snprintf(err, err_size, "brief: %s: %s", name, strerror(e));
	errno = e;
	return rc;
}
