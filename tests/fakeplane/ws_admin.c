/* multica-fakeplane: admin routes of the daemon websocket (GET /api/daemon/ws).
 *
 *   GET    /_admin/ws         {connections:[{id, runtime_ids, workspace_ids,
 *                             connected_at_ms, pings_sent, pongs_received,
 *                             frames_received, frames_sent}],
 *                             upgrades:{"101":N,"404":N,..}, closed:N}
 *   GET    /_admin/ws/faults  the switches below, as they are now
 *   POST   /_admin/ws/faults  {refuse: status (every upgrade answered with it,
 *                             0 clears), silent: bool (nothing sent at all: no
 *                             pings, pushes, pongs; a half-open socket),
 *                             ignore_pongs: bool (pongs do not count: the socket
 *                             is dropped pong_wait after the last counted one),
 *                             pong_delay_ms: N (client pings answered late),
 *                             ping_interval_ms, pong_wait_ms (the flags' values,
 *                             overridden)}; fields left out keep their value
 *   DELETE /_admin/ws/faults  back to no faults and the flags' timings
 *   POST   /_admin/ws/drop    {close_frame: bool, default true}: every
 *                             connection closed now -> {dropped}
 *   POST   /_admin/ws/send    one of {json: value} (one text message) |
 *                             {text: "raw, e.g. invalid JSON"} |
 *                             {fragments: N, json: value} (one message in N
 *                             frames: TEXT then CONTINUATIONs, FIN on the last) |
 *                             {oversize: true} (a TEXT header declaring
 *                             65 MiB + 1 bytes, no payload) |
 *                             {big_bytes: N, json: object} (the object with a
 *                             "pad" string making the message N bytes) |
 *                             {raw_hex: "8a00.."} (bytes as given: bad opcodes,
 *                             masked server frames, reserved bits);
 *                             optional connection: id (default: every one)
 *                             -> {connections: how many got it}; 404 for an
 *                             unknown connection id
 *
 * The flags: --ws-ping-interval (default 54s), --ws-pong-wait (60s).
 * Pushes: daemon:task_available on POST /_admin/tasks ({runtime_id, task_id})
 * and on complete/fail/cancel/recover ({runtime_id}); daemon:
 * runtime_profiles_changed on profile create/PATCH/delete; daemon:
 * workspaces_changed on POST/DELETE /_admin/workspaces. */
#include "tests/fakeplane/ws_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakeplane/render.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/ws.h"
#include "tests/fakeplane/ws_frame.h"

#define FRAGMENTS_MAX 4096
#define BIG_MAX (64u << 20)

static cJSON *render_faults(const struct fp_ws_faults *f)
{
	cJSON *o = fp_json_object();
	fp_json_add(o, "refuse", cJSON_CreateNumber(f->refuse));
	fp_json_add(o, "silent", cJSON_CreateBool(f->silent));
	fp_json_add(o, "ignore_pongs", cJSON_CreateBool(f->ignore_pongs));
	fp_json_add(o, "pong_delay_ms", cJSON_CreateNumber((double)f->pong_delay_ms));
	fp_json_add(o, "ping_interval_ms", cJSON_CreateNumber((double)f->ping_interval_ms));
	fp_json_add(o, "pong_wait_ms", cJSON_CreateNumber((double)f->pong_wait_ms));
	return o;
}

/* A whole number in [min, max] at key, when present. Returns false after a
 * 400. */
static bool opt_num(const cJSON *body, const char *key, double min, double max, int64_t *v,
		    struct fp_reply *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, key);
	if (j == NULL)
		return true;
	if (!cJSON_IsNumber(j) || j->valuedouble < min || j->valuedouble > max ||
	    j->valuedouble != (double)(int64_t)j->valuedouble) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s: expected a whole number from %.0f to %.0f", key,
			 min, max);
		fp_reply_error(out, 400, msg);
		return false;
	}
	*v = (int64_t)j->valuedouble;
	return true;
}

static bool opt_bool(const cJSON *body, const char *key, bool *v, struct fp_reply *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, key);
	if (j == NULL)
		return true;
	if (!cJSON_IsBool(j)) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s: expected true or false", key);
		fp_reply_error(out, 400, msg);
		return false;
	}
	*v = cJSON_IsTrue(j);
	return true;
}

static void faults_post(struct fp_ws_hub *h, const cJSON *body, struct fp_reply *out)
{
	struct fp_ws_faults f;
	fp_ws_get_faults(h, &f);
	int64_t refuse = f.refuse;
	if (!opt_num(body, "refuse", 0, 599, &refuse, out) ||
	    !opt_bool(body, "silent", &f.silent, out) ||
	    !opt_bool(body, "ignore_pongs", &f.ignore_pongs, out) ||
	    !opt_num(body, "pong_delay_ms", 0, 3600000, &f.pong_delay_ms, out) ||
	    !opt_num(body, "ping_interval_ms", 1, 86400000, &f.ping_interval_ms, out) ||
	    !opt_num(body, "pong_wait_ms", 1, 86400000, &f.pong_wait_ms, out))
		return;
	if (refuse != 0 && refuse < 200) {
		fp_reply_error(out, 400, "refuse: expected 0 or a status from 200 to 599");
		return;
	}
	f.refuse = (unsigned)refuse;
	fp_ws_set_faults(h, &f);
	fp_reply_json(out, 200, render_faults(&f));
}

/* Appends n bytes to a growing buffer (malloc'd). */
static void buf_add(uint8_t **b, size_t *len, const void *data, size_t n)
{
	*b = fp_xrealloc(*b, *len + n + 1);
	memcpy(*b + *len, data, n);
	*len += n;
}

/* One message as nfrag frames: TEXT, CONTINUATIONs, FIN on the last. */
static uint8_t *fragmented(const char *text, size_t len, unsigned nfrag, size_t *out_len)
{
	uint8_t *b = NULL;
	*out_len = 0;
	size_t off = 0;
	for (unsigned i = 0; i < nfrag; i++) {
		size_t part = len / nfrag + (i < len % nfrag ? 1 : 0);
		size_t fl;
		uint8_t *f = fp_ws_frame_build(i == 0 ? FP_WS_TEXT : FP_WS_CONT, i + 1 == nfrag,
					       text + off, part, NULL, &fl);
		buf_add(&b, out_len, f, fl);
		free(f);
		off += part;
	}
	return b;
}

/* Allocates the printed object padded with "pad" to exactly want bytes;
 * NULL when it is already longer. */
static char *padded(cJSON *obj, size_t want)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "pad");
	fp_json_add_str(obj, "pad", "");
	char *t = fp_json_print(obj);
	size_t base = strlen(t);
	cJSON_free(t);
	if (base > want)
		return NULL;
	char *pad = fp_xmalloc(want - base + 1);
	memset(pad, 'x', want - base);
	pad[want - base] = '\0';
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "pad");
	fp_json_add_str(obj, "pad", pad);
	free(pad);
	return fp_json_print(obj);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Allocates the bytes of a hex string; NULL when it is not one. */
static uint8_t *unhex(const char *s, size_t *len)
{
	size_t n = strlen(s);
	if (n % 2 != 0)
		return NULL;
	uint8_t *b = fp_xmalloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(b);
			return NULL;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return b;
}

/* Builds the bytes a send body asks for (malloc'd), or NULL after a 400. */
static uint8_t *send_bytes(const cJSON *body, size_t *len, unsigned *nframes,
			   struct fp_reply *out)
{
	const cJSON *json = cJSON_GetObjectItemCaseSensitive(body, "json");
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(body, "text");
	const cJSON *raw = cJSON_GetObjectItemCaseSensitive(body, "raw_hex");
	int64_t frags = 0, big = 0;
	bool oversize = false;
	if (!opt_num(body, "fragments", 1, FRAGMENTS_MAX, &frags, out) ||
	    !opt_num(body, "big_bytes", 1, BIG_MAX, &big, out) ||
	    !opt_bool(body, "oversize", &oversize, out))
		return NULL;
	*nframes = 1;
	if (oversize) {
		struct fp_ws_header h = { .fin = true, .opcode = FP_WS_TEXT,
					  .len = (65ull << 20) + 1 };
		uint8_t *b = fp_xmalloc(FP_WS_HEADER_MAX);
		*len = fp_ws_header_encode(b, &h);
		return b;
	}
	if (cJSON_IsString(raw)) {
		uint8_t *b = unhex(raw->valuestring, len);
		if (b == NULL)
			fp_reply_error(out, 400, "raw_hex: expected an even count of hex digits");
		return b;
	}
	char *msg = NULL;
	if (cJSON_IsString(text)) {
		msg = fp_xstrdup(text->valuestring);
	} else if (json != NULL && big > 0) {
		cJSON *copy = cJSON_Duplicate(json, 1);
		char *p = cJSON_IsObject(copy) ? padded(copy, (size_t)big) : NULL;
		cJSON_Delete(copy);
		if (p == NULL) {
			fp_reply_error(out, 400,
				       "big_bytes: json must be an object shorter than it");
			return NULL;
		}
		msg = fp_xstrdup(p);
		cJSON_free(p);
	} else if (json != NULL) {
		char *p = fp_json_print(json);
		msg = fp_xstrdup(p);
		cJSON_free(p);
	} else {
		fp_reply_error(out, 400, "expected one of json, text, oversize, raw_hex");
		return NULL;
	}
	uint8_t *b;
	if (frags > 1) {
		b = fragmented(msg, strlen(msg), (unsigned)frags, len);
		*nframes = (unsigned)frags;
	} else {
		b = fp_ws_frame_build(FP_WS_TEXT, true, msg, strlen(msg), NULL, len);
	}
	free(msg);
	return b;
}

static void send_post(struct fp_ws_hub *h, const cJSON *body, struct fp_reply *out)
{
	int64_t id = 0;
	if (!opt_num(body, "connection", 1, 9007199254740991.0, &id, out))
		return;
	size_t len = 0;
	unsigned nframes = 1;
	uint8_t *b = send_bytes(body, &len, &nframes, out);
	if (b == NULL)
		return;
	int n = fp_ws_send_raw(h, (uint64_t)id, b, len, nframes);
	free(b);
	if (id != 0 && n == 0) {
		fp_reply_error(out, 404, "no such connection");
		return;
	}
	cJSON *o = fp_json_object();
	fp_json_add(o, "connections", cJSON_CreateNumber(n));
	fp_reply_json(out, 200, o);
}

static void drop_post(struct fp_ws_hub *h, const cJSON *body, struct fp_reply *out)
{
	bool close_frame = true;
	if (!opt_bool(body, "close_frame", &close_frame, out))
		return;
	cJSON *o = fp_json_object();
	fp_json_add(o, "dropped", cJSON_CreateNumber(fp_ws_drop(h, close_frame)));
	fp_reply_json(out, 200, o);
}

void fp_ws_admin_handle(struct fp_app *app, const struct fp_request *rq, char **segs,
			int nsegs, struct fp_reply *out)
{
	struct fp_ws_hub *h = app->st->ws;
	const char *m = rq->method, *sub = nsegs >= 3 ? segs[2] : "";
	if (h == NULL || nsegs > 3) {
		fp_reply_error(out, 404, "not found");
		return;
	}
	cJSON *body = NULL;
	if (strcmp(m, "POST") == 0) {
		body = rq->body_len > 0 ? cJSON_ParseWithLength(rq->body, rq->body_len)
					: fp_json_object();
		if (!cJSON_IsObject(body)) {
			cJSON_Delete(body);
			fp_reply_error(out, 400, "expected a JSON object body");
			return;
		}
	}
	struct fp_ws_faults f;
	if (nsegs == 2 && strcmp(m, "GET") == 0) {
		fp_reply_json(out, 200, fp_ws_render(h));
	} else if (strcmp(sub, "faults") == 0 && strcmp(m, "GET") == 0) {
		fp_ws_get_faults(h, &f);
		fp_reply_json(out, 200, render_faults(&f));
	} else if (strcmp(sub, "faults") == 0 && strcmp(m, "POST") == 0) {
		faults_post(h, body, out);
	} else if (strcmp(sub, "faults") == 0 && strcmp(m, "DELETE") == 0) {
		fp_ws_clear_faults(h);
		fp_ws_get_faults(h, &f);
		fp_reply_json(out, 200, render_faults(&f));
	} else if (strcmp(sub, "drop") == 0 && strcmp(m, "POST") == 0) {
		drop_post(h, body, out);
	} else if (strcmp(sub, "send") == 0 && strcmp(m, "POST") == 0) {
		send_post(h, body, out);
	} else {
		fp_reply_error(out, 404, "not found");
	}
	cJSON_Delete(body);
}
