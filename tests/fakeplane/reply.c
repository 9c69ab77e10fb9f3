#include "tests/fakeplane/app.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fakeplane/render.h"
#include "tests/fakeplane/util.h"

void fp_reply_raw(struct fp_reply *r, unsigned status, char *body, size_t len)
{
	free(r->body);
	r->status = status;
	r->body = body;
	r->body_len = len;
}

static void reply_text(struct fp_reply *r, unsigned status, char *text, bool newline)
{
	size_t len = strlen(text);
	char *body = fp_xmalloc(len + 2);
	memcpy(body, text, len);
	if (newline)
		body[len++] = '\n';
	body[len] = '\0';
	cJSON_free(text);
	fp_reply_raw(r, status, body, len);
}

void fp_reply_json(struct fp_reply *r, unsigned status, cJSON *j)
{
	char *text = fp_json_print(j);
	cJSON_Delete(j);
	reply_text(r, status, text, true);
}

static void reply_error(struct fp_reply *r, unsigned status, const char *msg, bool newline)
{
	cJSON *j = fp_json_object();
	fp_json_add_str(j, "error", msg);
	char *text = fp_json_print(j);
	cJSON_Delete(j);
	reply_text(r, status, text, newline);
}

void fp_reply_error(struct fp_reply *r, unsigned status, const char *msg)
{
	reply_error(r, status, msg, true);
}

void fp_reply_error_bare(struct fp_reply *r, unsigned status, const char *msg)
{
	reply_error(r, status, msg, false);
}

void fp_reply_release(struct fp_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof *r);
}
