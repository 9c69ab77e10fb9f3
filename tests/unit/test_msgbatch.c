/* worker/msgbatch: the per-task message stream to POST .../messages. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <cjson/cJSON.h>

#include "worker/msgbatch.h"
#include "worker/textbuf.h"

TestSuite(msgbatch, .timeout = 30);

/* Flushes b and parses the body; returns the "messages" array's parent
 * (caller deletes). */
static cJSON *flush_json(struct mc_msgbatch *b)
{
	size_t len = 0;
	char *body = mc_msgbatch_flush(b, &len);
	cr_assert_not_null(body, "a flush with pending messages gives a body");
	cr_assert_eq(strlen(body), len);
	cr_assert(mc_text_clean(body, len), "the body is valid UTF-8 without NUL");
	cJSON *j = cJSON_Parse(body);
	free(body);
	cr_assert_not_null(j, "the body is JSON");
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(j, "messages")));
	return j;
}

static cJSON *msg(cJSON *j, int i)
{
	cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), i);
	cr_assert_not_null(m, "message %d present", i);
	return m;
}

static int nmsg(cJSON *j)
{
	return cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages"));
}

static double seq_of(cJSON *m)
{
	return cJSON_GetObjectItem(m, "seq")->valuedouble;
}

static const char *str_of(cJSON *m, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(m, k);
	cr_assert(cJSON_IsString(v), "%s is a string", k);
	return v->valuestring;
}

Test(msgbatch, empty_flush_gives_nothing)
{
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	cr_assert_not(mc_msgbatch_pending(b));
	cr_assert_eq(mc_msgbatch_deadline(b), -1);
	cr_assert_null(mc_msgbatch_flush(b, NULL));
	cr_assert_eq(mc_msgbatch_seq(b), 0);
	mc_msgbatch_free(b);
}

Test(msgbatch, tools_numbered_on_arrival_text_at_flush)
{
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	cr_assert_eq(mc_msgbatch_text(b, "Looking ", 8), 0);
	cr_assert_eq(mc_msgbatch_thinking(b, "hmm", 3), 0);
	cJSON *in = cJSON_Parse("{\"command\":\"ls\"}");
	cr_assert_eq(mc_msgbatch_tool_use(b, "Bash", in), 0);
	cJSON_Delete(in);
	cr_assert_eq(mc_msgbatch_tool_result(b, "Bash", "README.md\n", 10), 0);
	cr_assert_eq(mc_msgbatch_text(b, "around.", 7), 0);
	cr_assert(mc_msgbatch_pending(b));
	cr_assert_gt(mc_msgbatch_deadline(b), 0);

	cJSON *j = flush_json(b);
	cr_assert_eq(nmsg(j), 4);
	cr_assert_str_eq(str_of(msg(j, 0), "type"), "tool_use");
	cr_assert_eq(seq_of(msg(j, 0)), 1);
	cr_assert_str_eq(str_of(msg(j, 0), "tool"), "Bash");
	cr_assert_str_eq(str_of(cJSON_GetObjectItem(msg(j, 0), "input"), "command"), "ls");
	cr_assert_str_eq(str_of(msg(j, 1), "type"), "tool_result");
	cr_assert_eq(seq_of(msg(j, 1)), 2);
	cr_assert_str_eq(str_of(msg(j, 1), "output"), "README.md\n");
	cr_assert_str_eq(str_of(msg(j, 2), "type"), "thinking", "thinking before text");
	cr_assert_eq(seq_of(msg(j, 2)), 3);
	cr_assert_str_eq(str_of(msg(j, 3), "type"), "text");
	cr_assert_eq(seq_of(msg(j, 3)), 4);
	cr_assert_str_eq(str_of(msg(j, 3), "content"), "Looking around.", "text concatenated");
	cJSON_Delete(j);

	cr_assert_not(mc_msgbatch_pending(b), "flush empties the batch");
	cr_assert_null(mc_msgbatch_flush(b, NULL));
	mc_msgbatch_free(b);
}

Test(msgbatch, seq_strictly_increasing_across_flushes_and_retry)
{
	/* the executor keeps one batch across a fresh-session retry: numbering
	 * goes on where the first attempt stopped */
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	double last = 0;
	for (int round = 0; round < 5; round++) {
		mc_msgbatch_error(b, "e", 1);
		mc_msgbatch_text(b, "t", 1);
		mc_msgbatch_tool_use_text(b, "Read", "{\"path\":\"x\"}", 12);
		cJSON *j = flush_json(b);
		for (int i = 0; i < nmsg(j); i++) {
			cr_assert_gt(seq_of(msg(j, i)), last, "seq %g after %g", seq_of(msg(j, i)), last);
			last = seq_of(msg(j, i));
		}
		cJSON_Delete(j);
	}
	cr_assert_eq(last, 15);
	cr_assert_eq(mc_msgbatch_seq(b), 15);
	mc_msgbatch_free(b);
}

Test(msgbatch, nul_and_invalid_utf8_repaired_everywhere)
{
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	static const char bad[] = "a\0b\xff" "c\xc3";        /* NUL, stray byte, cut sequence */
	mc_msgbatch_text(b, bad, sizeof bad - 1);
	mc_msgbatch_error(b, bad, sizeof bad - 1);
	mc_msgbatch_tool_result(b, "T\xfe", bad, sizeof bad - 1);
	cJSON *in = cJSON_CreateObject();
	cJSON_AddStringToObject(in, "k\xff", "v\xc0\xaf");   /* overlong '/' */
	mc_msgbatch_tool_use(b, "Edit", in);
	cJSON_Delete(in);
	cJSON *j = flush_json(b);
	cr_assert_str_eq(str_of(msg(j, 0), "content"), "ab\xEF\xBF\xBD" "c\xEF\xBF\xBD");
	cr_assert_str_eq(str_of(msg(j, 1), "output"), "ab\xEF\xBF\xBD" "c\xEF\xBF\xBD");
	cr_assert_str_eq(str_of(msg(j, 1), "tool"), "T\xEF\xBF\xBD");
	cJSON *input = cJSON_GetObjectItem(msg(j, 2), "input");
	cr_assert_str_eq(str_of(input, "k\xEF\xBF\xBD"), "v\xEF\xBF\xBD\xEF\xBF\xBD");
	cr_assert_str_eq(str_of(msg(j, 3), "content"), "ab\xEF\xBF\xBD" "c\xEF\xBF\xBD");
	cJSON_Delete(j);
	mc_msgbatch_free(b);
}

Test(msgbatch, tool_result_cut_to_8192_bytes_on_a_char_boundary)
{
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	size_t n = 9000;
	char *big = malloc(n);
	memset(big, 'x', n);
	memcpy(big + 8191, "\xC3\xA9", 2);       /* an é straddling the limit */
	mc_msgbatch_tool_result(b, "Bash", big, n);
	free(big);
	cJSON *j = flush_json(b);
	const char *out = str_of(msg(j, 0), "output");
	cr_assert_eq(strlen(out), 8191, "cut before the é, not inside it");
	cJSON_Delete(j);
	mc_msgbatch_free(b);
}

Test(msgbatch, tool_input_always_an_object)
{
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	cJSON *arr = cJSON_Parse("[1,2]");
	mc_msgbatch_tool_use(b, "A", arr);
	cJSON_Delete(arr);
	mc_msgbatch_tool_use(b, "B", NULL);
	mc_msgbatch_tool_use_text(b, "C", "not json {", 10);
	mc_msgbatch_tool_use_text(b, "D", "\"ls -l\"", 7);
	cJSON *j = flush_json(b);
	cr_assert_eq(nmsg(j), 4);
	for (int i = 0; i < 4; i++)
		cr_assert(cJSON_IsObject(cJSON_GetObjectItem(msg(j, i), "input")), "input %d", i);
	cr_assert(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(msg(j, 0), "input"), "input")));
	cr_assert_str_eq(str_of(cJSON_GetObjectItem(msg(j, 2), "input"), "raw"), "not json {");
	cr_assert_str_eq(str_of(cJSON_GetObjectItem(msg(j, 3), "input"), "input"), "ls -l");
	cJSON_Delete(j);
	mc_msgbatch_free(b);
}

Test(msgbatch, window_flood_capped_with_one_note)
{
	struct mc_msgbatch *b = mc_msgbatch_new(4096, 0);
	char line[100];
	memset(line, 'y', sizeof line);
	for (int i = 0; i < 1000; i++)       /* 100 kB into a 4 kB window */
		mc_msgbatch_text(b, line, sizeof line);
	cr_assert_leq(mc_msgbatch_held(b), 3 * 4096 + 1024, "held %zu", mc_msgbatch_held(b));
	cr_assert_eq(mc_msgbatch_dropped(b), 100000 - 4096);
	cJSON *j = flush_json(b);
	cr_assert_eq(nmsg(j), 2, "the text and ONE note");
	cr_assert_str_eq(str_of(msg(j, 0), "type"), "error");
	cr_assert(strstr(str_of(msg(j, 0), "content"), "95904 bytes"), "%s",
		  str_of(msg(j, 0), "content"));
	cr_assert_eq(strlen(str_of(msg(j, 1), "content")), 4096);
	cJSON_Delete(j);
	cr_assert_leq(mc_msgbatch_held(b), 1024, "the pending buffer is released");

	/* a new window takes output again */
	mc_msgbatch_text(b, "ok", 2);
	j = flush_json(b);
	cr_assert_eq(nmsg(j), 1);
	cr_assert_str_eq(str_of(msg(j, 0), "content"), "ok");
	cJSON_Delete(j);
	mc_msgbatch_free(b);
}

Test(msgbatch, task_cap_one_note_then_silence)
{
	struct mc_msgbatch *b = mc_msgbatch_new(4096, 10000);
	char chunk[1000];
	memset(chunk, 'z', sizeof chunk);
	int notes = 0;
	size_t text = 0;
	for (int w = 0; w < 20; w++) {       /* 20 windows of 3000 bytes */
		for (int i = 0; i < 3; i++)
			mc_msgbatch_text(b, chunk, sizeof chunk);
		size_t len;
		char *body = mc_msgbatch_flush(b, &len);
		if (!body)
			continue;
		cJSON *j = cJSON_Parse(body);
		free(body);
		for (int i = 0; i < nmsg(j); i++) {
			if (strcmp(str_of(msg(j, i), "type"), "error") == 0)
				notes++;
			else
				text += strlen(str_of(msg(j, i), "content"));
		}
		cJSON_Delete(j);
	}
	cr_assert_eq(text, 10000, "exactly the task cap got through");
	cr_assert_eq(notes, 1, "one note for the cap");
	cr_assert_eq(mc_msgbatch_dropped(b), 60000 - 10000);
	cr_assert_null(mc_msgbatch_flush(b, NULL), "nothing more after the cap");
	mc_msgbatch_free(b);
}

Test(msgbatch, last_line_kept_short_and_clean)
{
	struct mc_msgbatch *b = mc_msgbatch_new(0, 0);
	cr_assert_str_eq(mc_msgbatch_last_line(b), "");
	mc_msgbatch_text(b, "first\nsecond\tline\n\n", 20);
	cr_assert_str_eq(mc_msgbatch_last_line(b), "second line");
	char big[600];
	memset(big, 'q', sizeof big);
	mc_msgbatch_text(b, big, sizeof big);
	cr_assert_eq(strlen(mc_msgbatch_last_line(b)), MC_MSGBATCH_LAST_LINE);
	mc_msgbatch_text(b, "bad\xff\x01", 5);
	cr_assert_str_eq(mc_msgbatch_last_line(b), "bad\xEF\xBF\xBD ");
	char *body = mc_msgbatch_flush(b, NULL);
	free(body);
	cr_assert_str_eq(mc_msgbatch_last_line(b), "bad\xEF\xBF\xBD ", "survives a flush");
	mc_msgbatch_free(b);
}
