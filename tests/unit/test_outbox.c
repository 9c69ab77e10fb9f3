/* worker/outbox: terminal reports on disk, and the terminal call bodies. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <cjson/cJSON.h>

#include "worker/outbox.h"
#include "worker/textbuf.h"

TestSuite(outbox, .timeout = 30);

#define WS "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define RT "22222222-3333-4444-8555-666666666666"

static char state[64];

static void setup(void)
{
	snprintf(state, sizeof state, "/tmp/mc-outbox-XXXXXX");
	cr_assert_not_null(mkdtemp(state));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", state);
	cr_expect_eq(system(cmd), 0);
}

static void task_id(char *dst, int i)
{
	snprintf(dst, 40, "aaaaaaaa-bbbb-4ccc-8ddd-%012d", i);
}

static void put(int i, enum mc_outbox_op op, const char *body, int64_t created)
{
	struct mc_outbox_entry e = {.op = op, .body = (char *)body, .attempts = 0,
				    .created_at = created};
	task_id(e.task_id, i);
	snprintf(e.runtime_id, sizeof e.runtime_id, RT);
	char err[128] = "";
	cr_assert_eq(mc_outbox_write(state, WS, &e, err, sizeof err), 0, "%s", err);
}

static void path_of(char *dst, size_t n, const char *leaf)
{
	snprintf(dst, n, "%s/outbox/" WS "/%s", state, leaf);
}

Test(outbox, write_read_remove_modes, .init = setup, .fini = teardown)
{
	char *body = mc_outbox_complete_body("done", 4, &(struct mc_outbox_extra){
		.session_id = "s-1", .work_dir = "/w"});
	put(1, MC_OUTBOX_COMPLETE, body, 0);
	char id[40], p[256];
	task_id(id, 1);
	struct mc_outbox_entry e;
	char err[128];
	cr_assert_eq(mc_outbox_read(state, WS, id, &e, err, sizeof err), 0, "%s", err);
	cr_assert_eq(e.op, MC_OUTBOX_COMPLETE);
	cr_assert_str_eq(e.task_id, id);
	cr_assert_str_eq(e.runtime_id, RT);
	cr_assert_str_eq(e.body, body, "the exact body comes back");
	cr_assert_gt(e.created_at, 0, "created_at set at the first write");
	mc_outbox_entry_clear(&e);
	free(body);

	struct stat st;
	snprintf(p, sizeof p, "%s/outbox", state);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	path_of(p, sizeof p, "");
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	char leaf[64];
	snprintf(leaf, sizeof leaf, "%s.json", id);
	path_of(p, sizeof p, leaf);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);

	cr_assert_eq(mc_outbox_remove(state, WS, id), 0);
	cr_assert_neq(access(p, F_OK), 0);
	cr_assert_eq(mc_outbox_remove(state, WS, id), 0, "removing twice is fine");
	cr_assert_lt(mc_outbox_read(state, WS, id, &e, err, sizeof err), 0);
	cr_assert_eq(errno, ENOENT);
}

Test(outbox, rewrite_keeps_one_file, .init = setup, .fini = teardown)
{
	put(1, MC_OUTBOX_FAIL, "{\"error\":\"x\"}", 5000);
	struct mc_outbox_entry e = {.op = MC_OUTBOX_FAIL, .body = "{\"error\":\"x\"}",
				    .attempts = 3, .created_at = 5000};
	task_id(e.task_id, 1);
	snprintf(e.runtime_id, sizeof e.runtime_id, RT);
	char err[128];
	cr_assert_eq(mc_outbox_write(state, WS, &e, err, sizeof err), 0);
	struct mc_outbox_list l;
	cr_assert_eq(mc_outbox_list(state, WS, &l), 0);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(l.v[0].attempts, 3);
	cr_assert_eq(l.v[0].created_at, 5000);
	mc_outbox_list_clear(&l);
}

Test(outbox, list_in_creation_order, .init = setup, .fini = teardown)
{
	put(3, MC_OUTBOX_COMPLETE, "{\"output\":\"c\"}", 3000);
	put(1, MC_OUTBOX_CANCEL_ACK, "{}", 1000);
	put(2, MC_OUTBOX_FAIL, "{\"error\":\"b\",\"failure_reason\":\"timeout\"}", 2000);
	put(4, MC_OUTBOX_FAIL, "{\"error\":\"d\"}", 2000);
	struct mc_outbox_list l;
	cr_assert_eq(mc_outbox_list(state, WS, &l), 0);
	cr_assert_eq(l.n, 4);
	const char *want[] = {"000000000001", "000000000002", "000000000004", "000000000003"};
	for (size_t i = 0; i < 4; i++)
		cr_assert_str_eq(l.v[i].task_id + 24, want[i], "entry %zu", i);
	cr_assert_eq(l.v[0].op, MC_OUTBOX_CANCEL_ACK);
	cr_assert_str_eq(l.v[0].body, "{}");
	mc_outbox_list_clear(&l);

	struct mc_outbox_list empty;
	cr_assert_eq(mc_outbox_list(state, "0c6e1f4a-8a51-4d27-9d3c-000000000000", &empty), 0);
	cr_assert_eq(empty.n, 0, "an absent outbox is empty");
}

static void write_raw(const char *leaf, const char *text)
{
	char p[256];
	path_of(p, sizeof p, leaf);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(outbox, crash_leftovers_and_corrupt_files, .init = setup, .fini = teardown)
{
	put(1, MC_OUTBOX_COMPLETE, "{\"output\":\"ok\"}", 1000);
	char id[40], leaf[80], p[256];
	/* a crash between write and rename leaves a .tmp: never delivered */
	task_id(id, 2);
	snprintf(leaf, sizeof leaf, "%s.json.tmp", id);
	write_raw(leaf, "{\"op\":\"complete\",\"task_id\":\"half");
	/* a torn or foreign file: set aside as .bad */
	task_id(id, 3);
	snprintf(leaf, sizeof leaf, "%s.json", id);
	write_raw(leaf, "{\"op\":\"complete\",\"task_id\":");
	task_id(id, 4);
	snprintf(leaf, sizeof leaf, "%s.json", id);
	write_raw(leaf, "{\"op\":\"explode\",\"task_id\":\"x\",\"runtime_id\":\"\",\"body\":{},"
			"\"attempts\":0,\"created_at\":1}");
	/* a file whose task_id is not its name */
	task_id(id, 5);
	snprintf(leaf, sizeof leaf, "%s.json", id);
	char other[40], text[512];
	task_id(other, 6);
	snprintf(text, sizeof text, "{\"op\":\"fail\",\"task_id\":\"%s\",\"runtime_id\":\"\","
		 "\"body\":{},\"attempts\":0,\"created_at\":1}", other);
	write_raw(leaf, text);

	struct mc_outbox_list l;
	cr_assert_eq(mc_outbox_list(state, WS, &l), 0);
	cr_assert_eq(l.n, 1, "only the good entry");
	cr_assert_str_eq(l.v[0].body, "{\"output\":\"ok\"}");
	mc_outbox_list_clear(&l);

	task_id(id, 2);
	snprintf(leaf, sizeof leaf, "%s.json.tmp", id);
	path_of(p, sizeof p, leaf);
	cr_assert_neq(access(p, F_OK), 0, "the .tmp is cleaned");
	for (int i = 3; i <= 5; i++) {
		task_id(id, i);
		snprintf(leaf, sizeof leaf, "%s.json.bad", id);
		path_of(p, sizeof p, leaf);
		cr_assert_eq(access(p, F_OK), 0, "entry %d set aside as .bad", i);
	}
	/* listing again changes nothing, and leaves no fd behind */
	int before = open_fds();
	cr_assert_eq(mc_outbox_list(state, WS, &l), 0);
	cr_assert_eq(l.n, 1);
	mc_outbox_list_clear(&l);
	cr_assert_eq(open_fds(), before);
}

Test(outbox, refuses_bad_ids_and_bodies, .init = setup, .fini = teardown)
{
	struct mc_outbox_entry e = {.op = MC_OUTBOX_FAIL, .body = "{}"};
	snprintf(e.task_id, sizeof e.task_id, "../../etc/passwd");
	char err[128];
	cr_assert_lt(mc_outbox_write(state, WS, &e, err, sizeof err), 0);
	task_id(e.task_id, 1);
	cr_assert_lt(mc_outbox_write(state, "../x", &e, err, sizeof err), 0);
	e.body = "[1]";
	cr_assert_lt(mc_outbox_write(state, WS, &e, err, sizeof err), 0, "body must be an object");
}

static cJSON *parse(char *body)
{
	cr_assert_not_null(body);
	cr_assert(mc_text_clean(body, strlen(body)));
	cJSON *j = cJSON_Parse(body);
	free(body);
	cr_assert(cJSON_IsObject(j));
	return j;
}

Test(outbox, bodies)
{
	cJSON *j = parse(mc_outbox_complete_body("", 0, NULL));
	cr_assert_eq(cJSON_GetArraySize(j), 1, "only output when nothing else");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "output")->valuestring, "");
	cJSON_Delete(j);

	static const char out[] = "res\0ult\xff";
	j = parse(mc_outbox_complete_body(out, sizeof out - 1, &(struct mc_outbox_extra){
		.session_id = "s", .work_dir = "/w", .branch_name = "",
		.session_rollout_missing = true, .retired_session_id = "old"}));
	cr_assert_str_eq(cJSON_GetObjectItem(j, "output")->valuestring, "result\xEF\xBF\xBD",
			 "NUL stripped, invalid UTF-8 repaired (#7124)");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "session_id")->valuestring, "s");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "work_dir")->valuestring, "/w");
	cr_assert_null(cJSON_GetObjectItem(j, "branch_name"), "empty fields omitted");
	cr_assert_null(cJSON_GetObjectItem(j, "durable_work_dir"));
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "session_rollout_missing")));
	cr_assert_str_eq(cJSON_GetObjectItem(j, "retired_session_id")->valuestring, "old");
	cJSON_Delete(j);

	j = parse(mc_outbox_fail_body(NULL, "runtime_offline", &(struct mc_outbox_extra){
		.work_dir = "/w"}));
	cr_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "", "error always present");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "failure_reason")->valuestring, "runtime_offline");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "work_dir")->valuestring, "/w");
	cr_assert_null(cJSON_GetObjectItem(j, "session_rollout_missing"));
	cJSON_Delete(j);

	j = parse(mc_outbox_fail_body("boom\xc3", "", NULL));
	cr_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "boom\xEF\xBF\xBD");
	cr_assert_null(cJSON_GetObjectItem(j, "failure_reason"));
	cJSON_Delete(j);

	char *ack = mc_outbox_cancel_ack_body(NULL, NULL, NULL, NULL);
	cr_assert_str_eq(ack, "{}");
	free(ack);
	j = parse(mc_outbox_cancel_ack_body("b", "", "e", "local_directory_error"));
	cr_assert_eq(cJSON_GetArraySize(j), 3);
	cJSON_Delete(j);
}

static int collect(const struct mc_outbox_entry *e, void *arg)
{
	int *seen = arg;
	cr_assert_eq(e->op, seen[0] == 0 ? MC_OUTBOX_FAIL : MC_OUTBOX_COMPLETE);
	return ++seen[0] == 2;      /* stop after two */
}

Test(outbox, put_and_foreach, .init = setup, .fini = teardown)
{
	char id[40];
	task_id(id, 1);
	cr_assert_eq(mc_outbox_put(state, WS, id, RT, MC_OUTBOX_FAIL, "{\"error\":\"\"}"), 0);
	usleep(2000);           /* a later created_at */
	task_id(id, 2);
	cr_assert_eq(mc_outbox_put(state, WS, id, RT, MC_OUTBOX_COMPLETE, "{\"output\":\"\"}"), 0);
	usleep(2000);
	task_id(id, 3);
	cr_assert_eq(mc_outbox_put(state, WS, id, RT, MC_OUTBOX_CANCEL_ACK, "{}"), 0);
	cr_assert_lt(mc_outbox_put(state, WS, "nope", RT, MC_OUTBOX_FAIL, "{}"), 0);
	int seen[1] = {0};
	cr_assert_eq(mc_outbox_foreach(state, WS, collect, seen), 0);
	cr_assert_eq(seen[0], 2, "oldest first, stopped when asked");
}
