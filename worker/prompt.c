/* Per-kind prompt bodies, plus the appended run-scoped notice. */
#include "worker/prompt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker/textbuf.h"

static const char continuity_notice[] =
	"\n\nNote on continuity: this run could not resume your previous session "
	"for this conversation, so you start without its history. Re-read the issue, "
	"its comments and the files in your working directory to recover the context "
	"you need before acting.\n";

const char *mc_prompt_continuity_notice(void)
{
	return continuity_notice + 2;
}

static bool has(const char *s)
{
	return s && *s;
}

/* Appends untrusted text (server data) repaired to clean UTF-8. */
static int add_text(struct mc_sbuf *b, const char *s)
{
	return s ? mc_sbuf_add_clean(b, s, strlen(s)) : 0;
}

static const char *brief_name(const char *provider)
{
	return provider && strcmp(provider, "claude") == 0 ? "CLAUDE.md" : "AGENTS.md";
}

static const char *author_label(const char *type, const char *name)
{
	if (has(name))
		return name;
	if (has(type))
		return type;
	return "someone";
}

static int assignment(struct mc_sbuf *b, const struct mc_task *t, const char *provider)
{
	int rc = 0;
	rc |= mc_sbuf_addf(b, "You are a coding agent working for a Multica workspace on this "
			   "host. Your standing instructions are in %s in your working "
			   "directory.\n\nYou have been assigned issue ", brief_name(provider));
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, ".\n");
	if (has(t->handoff_note)) {
		rc |= mc_sbuf_adds(b, "\nHandoff note from whoever assigned it:\n");
		rc |= add_text(b, t->handoff_note);
		rc |= mc_sbuf_adds(b, "\n");
	}
	rc |= mc_sbuf_adds(b, "\nStart by reading the issue and its discussion:\n"
			   "  multica issue get ");
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, " --output json\n  multica issue comment list ");
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, " --output json\nThen do the work the issue asks for and report "
			   "back on the issue with the `multica` CLI.\n");
	return rc;
}

static int coalesced(struct mc_sbuf *b, const struct mc_task *t)
{
	int rc = 0;
	if (t->n_coalesced == 0)
		return 0;
	rc |= mc_sbuf_addf(b, "\nEarlier comments folded into this run (%zu), oldest first:\n",
			   t->n_coalesced);
	for (size_t i = 0; i < t->n_coalesced; i++) {
		const struct mc_task_comment *c = &t->coalesced[i];
		rc |= mc_sbuf_adds(b, "--- comment ");
		rc |= add_text(b, c->id);
		rc |= mc_sbuf_adds(b, " by ");
		rc |= add_text(b, author_label(c->author_type, c->author_name));
		if (has(c->created_at)) {
			rc |= mc_sbuf_adds(b, " at ");
			rc |= add_text(b, c->created_at);
		}
		rc |= mc_sbuf_adds(b, ":\n");
		rc |= add_text(b, c->content);
		rc |= mc_sbuf_adds(b, "\n");
	}
	return rc;
}

static int comment(struct mc_sbuf *b, const struct mc_task *t, const char *provider)
{
	int rc = 0;
	const char *thread = has(t->trigger_thread_id) ? t->trigger_thread_id
						       : t->trigger_comment_id;
	rc |= mc_sbuf_addf(b, "You are a coding agent working for a Multica workspace on this "
			   "host. Your standing instructions are in %s in your working "
			   "directory.\n\nA new comment on issue ", brief_name(provider));
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, " needs your attention.\n\n[NEW COMMENT] ");
	rc |= add_text(b, t->trigger_comment_id);
	rc |= mc_sbuf_adds(b, " by ");
	rc |= add_text(b, author_label(t->trigger_author_type, t->trigger_author_name));
	if (has(t->trigger_author_type) && has(t->trigger_author_name)) {
		rc |= mc_sbuf_adds(b, " (");
		rc |= add_text(b, t->trigger_author_type);
		rc |= mc_sbuf_adds(b, ")");
	}
	rc |= mc_sbuf_adds(b, ":\n");
	rc |= add_text(b, t->trigger_comment_content);
	rc |= mc_sbuf_adds(b, "\n[END OF COMMENT]\n");
	rc |= coalesced(b, t);
	rc |= mc_sbuf_adds(b, "\nFor the issue and its full discussion run:\n  multica issue get ");
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, " --output json\n  multica issue comment list ");
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, " --output json\nAnswer in the same thread: reply to comment ");
	rc |= add_text(b, thread);
	rc |= mc_sbuf_adds(b, " on issue ");
	rc |= add_text(b, t->issue_id);
	rc |= mc_sbuf_adds(b, " with the `multica` CLI (its thread, not a new top-level "
			   "comment).\n");
	return rc;
}

static int chat(struct mc_sbuf *b, const struct mc_task *t, const char *provider)
{
	int rc = 0;
	rc |= mc_sbuf_addf(b, "You are a coding agent working for a Multica workspace on this "
			   "host, answering in a chat session. Your standing instructions are "
			   "in %s in your working directory. Your reply to the message below is "
			   "delivered to the chat as your final answer.\n\nChat session: ",
			   brief_name(provider));
	rc |= add_text(b, t->chat_session_id);
	rc |= mc_sbuf_adds(b, "\n\n[USER MESSAGE]\n");
	rc |= add_text(b, t->chat_message);
	rc |= mc_sbuf_adds(b, "\n[END OF MESSAGE]\n");
	return rc;
}

char *mc_prompt_build(const struct mc_task *t, const char *provider, bool resume_dropped)
{
	if (!t) {
		errno = EINVAL;
		return NULL;
	}
	struct mc_sbuf b = {0};
	int rc;
	switch (t->kind) {
	case MC_TASK_CHAT:
		rc = chat(&b, t, provider);
		break;
	case MC_TASK_COMMENT:
		rc = comment(&b, t, provider);
		break;
	case MC_TASK_ASSIGNMENT:
	default:
		rc = assignment(&b, t, provider);
		break;
	}
	if (rc == 0 && (resume_dropped || t->prior_session_resume_unavailable))
		rc = mc_sbuf_adds(&b, continuity_notice + 1);
	if (rc != 0) {
		mc_sbuf_free(&b);
		errno = ENOMEM;
		return NULL;
	}
	return mc_sbuf_take(&b);
}
