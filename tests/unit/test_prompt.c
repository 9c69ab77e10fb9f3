/* worker/prompt: the prompt for each task kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "worker/prompt.h"
#include "worker/textbuf.h"

TestSuite(prompt, .timeout = 30);

#define ISSUE "99999999-8888-4777-8666-555555555555"

static struct mc_task task;
static struct mc_task_comment folded[2];

static void init(enum mc_task_kind kind)
{
	memset(&task, 0, sizeof task);
	snprintf(task.id, sizeof task.id, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
	task.kind = kind;
	task.issue_id = (char *)ISSUE;
}

static void contains(const char *p, const char *what)
{
	cr_assert_not_null(strstr(p, what), "prompt lacks \"%s\":\n%s", what, p);
}

Test(prompt, assignment_names_issue_and_cli)
{
	init(MC_TASK_ASSIGNMENT);
	task.handoff_note = (char *)"Pick up where Ana stopped.";
	char *p = mc_prompt_build(&task, "claude", false);
	cr_assert_not_null(p);
	contains(p, ISSUE);
	contains(p, "multica issue get " ISSUE " --output json");
	contains(p, "comment list " ISSUE);
	contains(p, "Pick up where Ana stopped.");
	contains(p, "CLAUDE.md");
	cr_assert_null(strstr(p, mc_prompt_continuity_notice()), "no notice without a gap");
	free(p);
	p = mc_prompt_build(&task, "codex", false);
	contains(p, "AGENTS.md");
	free(p);
}

Test(prompt, comment_carries_text_author_folded_and_thread)
{
	init(MC_TASK_COMMENT);
	task.trigger_comment_id = (char *)"c-new";
	task.trigger_thread_id = (char *)"c-thread";
	task.trigger_comment_content = (char *)"Please also fix the tests.";
	task.trigger_author_type = (char *)"member";
	task.trigger_author_name = (char *)"Ana";
	folded[0] = (struct mc_task_comment){"c-1", "member", "Bo", "First remark", "2026-01-01T00:00:00Z"};
	folded[1] = (struct mc_task_comment){"c-2", "agent", "", "Second remark", ""};
	task.coalesced = folded;
	task.n_coalesced = 2;
	char *p = mc_prompt_build(&task, "claude", false);
	cr_assert_not_null(p);
	contains(p, ISSUE);
	contains(p, "[NEW COMMENT]");
	contains(p, "Please also fix the tests.");
	contains(p, "by Ana (member)");
	contains(p, "First remark");
	contains(p, "by Bo");
	contains(p, "Second remark");
	contains(p, "by agent");
	contains(p, "reply to comment c-thread");
	cr_assert_lt(strstr(p, "First remark") - p, strstr(p, "Second remark") - p, "oldest first");
	free(p);
	task.trigger_thread_id = (char *)"";
	p = mc_prompt_build(&task, "claude", false);
	contains(p, "reply to comment c-new");
	free(p);
}

Test(prompt, chat_carries_message)
{
	init(MC_TASK_CHAT);
	task.issue_id = (char *)"";
	task.chat_session_id = (char *)"chat-42";
	task.chat_message = (char *)"What does main.c do?";
	char *p = mc_prompt_build(&task, "codex", false);
	cr_assert_not_null(p);
	contains(p, "chat-42");
	contains(p, "What does main.c do?");
	cr_assert_null(strstr(p, "multica issue get"), "a chat is not about an issue");
	free(p);
}

Test(prompt, continuity_notice_appended)
{
	init(MC_TASK_ASSIGNMENT);
	char *p = mc_prompt_build(&task, "claude", true);
	const char *n = strstr(p, mc_prompt_continuity_notice());
	cr_assert_not_null(n, "a dropped resume adds the notice");
	cr_assert_eq(strlen(n), strlen(mc_prompt_continuity_notice()), "at the end");
	free(p);
	task.prior_session_resume_unavailable = true;
	p = mc_prompt_build(&task, "claude", false);
	cr_assert_not_null(strstr(p, mc_prompt_continuity_notice()), "so does the server's flag");
	free(p);
}

Test(prompt, server_text_sanitized)
{
	init(MC_TASK_CHAT);
	task.chat_session_id = (char *)"c";
	task.chat_message = (char *)"hi\xff there";
	char *p = mc_prompt_build(&task, "claude", false);
	cr_assert(mc_text_clean(p, strlen(p)));
	contains(p, "hi\xEF\xBF\xBD there");
	free(p);
}
