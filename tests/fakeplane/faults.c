#include "tests/fakeplane/faults.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "tests/fakeplane/render.h"
#include "tests/fakeplane/util.h"

#define BODY_SIZE_MAX (256L << 20)
#define HEADER_SIZE_MAX (16L << 20)
#define RAW_SEND_DEADLINE_MS 5000

struct fault {
	char *method;        /* NULL: any */
	char *path_prefix;
	long count;          /* -1: forever */
	int64_t delay_ms;
	bool reset;
	unsigned status;     /* 0: no canned answer */
	char *body;          /* NULL: default error body */
	long body_size;      /* -1: not given */
	long header_size;    /* 0: no filler header */
};

struct fp_faults {
	pthread_mutex_t mu;
	struct fp_vec list;      /* struct fault * */
};

struct fp_faults *fp_faults_new(void)
{
	struct fp_faults *f = fp_xcalloc(1, sizeof *f);
	pthread_mutex_init(&f->mu, NULL);
	return f;
}

static void fault_free(struct fault *x)
{
	free(x->method);
	free(x->path_prefix);
	free(x->body);
	free(x);
}

static void clear_locked(struct fp_faults *f)
{
	for (size_t i = 0; i < f->list.len; i++)
		fault_free(f->list.items[i]);
	fp_vec_release(&f->list);
}

void fp_faults_free(struct fp_faults *f)
{
	if (f == NULL)
		return;
	clear_locked(f);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static int spec_error(char *err, size_t errlen, const char *key, const char *what)
{
	snprintf(err, errlen, "%s: %s", key, what);
	return -1;
}

/* Integer member in [min, max]; absent leaves *out. */
static int spec_long(const cJSON *spec, const char *key, long min, long max, long *out,
		     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, key);
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < (double)min || v->valuedouble > (double)max) {
		char what[96];
		snprintf(what, sizeof what, "expected an integer from %ld to %ld", min, max);
		return spec_error(err, errlen, key, what);
	}
	*out = (long)v->valuedouble;
	return 0;
}

static int spec_string(const cJSON *spec, const char *key, char **out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, key);
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return spec_error(err, errlen, key, "expected string");
	fp_replace_str(out, fp_xstrdup(v->valuestring));
	return 0;
}

/* body may be a string (sent as is) or any JSON value (sent printed). */
static int spec_body(const cJSON *spec, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, "body");
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v)) {
		*out = fp_xstrdup(v->valuestring);
	} else {
		char *text = fp_json_print(v);
		*out = fp_xstrdup(text);
		cJSON_free(text);
	}
	return 0;
}

static int parse_spec(const cJSON *spec, struct fault *x, char *err, size_t errlen)
{
	long status = 0, delay = 0;
	const cJSON *reset = cJSON_GetObjectItemCaseSensitive(spec, "reset");
	static const char *const keys[] = {
		"method", "path_prefix", "status", "body", "body_size", "header_size",
		"delay_ms", "reset", "count", NULL,
	};
	if (!cJSON_IsObject(spec))
		return spec_error(err, errlen, "fault", "expected object");
	for (const cJSON *c = spec->child; c != NULL; c = c->next) {
		size_t i = 0;
		while (keys[i] != NULL && strcmp(keys[i], c->string) != 0)
			i++;
		if (keys[i] == NULL)
			return spec_error(err, errlen, c->string, "unknown field");
	}
	if (spec_string(spec, "method", &x->method, err, errlen) < 0 ||
	    spec_string(spec, "path_prefix", &x->path_prefix, err, errlen) < 0 ||
	    spec_long(spec, "status", 100, 599, &status, err, errlen) < 0 ||
	    spec_long(spec, "delay_ms", 0, 3600000, &delay, err, errlen) < 0 ||
	    spec_long(spec, "count", -1, 1000000000, &x->count, err, errlen) < 0 ||
	    spec_long(spec, "body_size", 0, BODY_SIZE_MAX, &x->body_size, err, errlen) < 0 ||
	    spec_long(spec, "header_size", 1, HEADER_SIZE_MAX, &x->header_size, err, errlen) < 0 ||
	    spec_body(spec, &x->body) < 0)
		return -1;
	if (reset != NULL && !cJSON_IsNull(reset) && !cJSON_IsBool(reset))
		return spec_error(err, errlen, "reset", "expected true or false");
	x->reset = cJSON_IsTrue(reset);
	x->status = (unsigned)status;
	x->delay_ms = delay;
	if (x->count == 0)
		return spec_error(err, errlen, "count", "must be -1 or at least 1");
	if (x->status == 0 && !x->reset && x->delay_ms == 0)
		return spec_error(err, errlen, "fault", "needs status, delay_ms or reset");
	if (x->status == 0 && (x->body != NULL || x->body_size >= 0))
		return spec_error(err, errlen, "body", "needs a status");
	if (x->status == 0 && x->header_size > 0)
		return spec_error(err, errlen, "header_size", "needs a status");
	return 0;
}

int fp_faults_add(struct fp_faults *f, const cJSON *spec, char *err, size_t errlen)
{
	struct fault *x = fp_xcalloc(1, sizeof *x);
	x->count = 1;
	x->body_size = -1;
	if (parse_spec(spec, x, err, errlen) < 0) {
		fault_free(x);
		return -1;
	}
	if (x->path_prefix == NULL)
		x->path_prefix = fp_xstrdup("");
	pthread_mutex_lock(&f->mu);
	fp_vec_push(&f->list, x);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

void fp_faults_clear(struct fp_faults *f)
{
	pthread_mutex_lock(&f->mu);
	clear_locked(f);
	pthread_mutex_unlock(&f->mu);
}

cJSON *fp_faults_render(struct fp_faults *f)
{
	cJSON *a = fp_json_array();
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->list.len; i++) {
		const struct fault *x = f->list.items[i];
		cJSON *o = fp_json_object();
		fp_json_add_str(o, "method", x->method);
		fp_json_add_str(o, "path_prefix", x->path_prefix);
		fp_json_add(o, "count", cJSON_CreateNumber((double)x->count));
		fp_json_add(o, "status", cJSON_CreateNumber(x->status));
		fp_json_add(o, "delay_ms", cJSON_CreateNumber((double)x->delay_ms));
		fp_json_add(o, "reset", cJSON_CreateBool(x->reset));
		fp_json_append(a, o);
	}
	pthread_mutex_unlock(&f->mu);
	return a;
}

static bool matches(const struct fault *x, const char *method, const char *path)
{
	if (x->method != NULL && strcasecmp(x->method, method) != 0)
		return false;
	return strncmp(path, x->path_prefix, strlen(x->path_prefix)) == 0;
}

/* Allocates the answer body: filler of body_size bytes, the given body, or
 * a JSON error. */
static void make_body(const struct fault *x, struct fp_fault_action *out)
{
	if (x->body_size >= 0) {
		out->body_len = (size_t)x->body_size;
		out->body = fp_xmalloc(out->body_len + 1);
		memset(out->body, 'x', out->body_len);
		out->body[out->body_len] = '\0';
	} else {
		out->body = fp_xstrdup(x->body ? x->body : "{\"error\":\"injected fault\"}");
		out->body_len = strlen(out->body);
	}
}

bool fp_faults_take(struct fp_faults *f, const char *method, const char *path,
		    struct fp_fault_action *out)
{
	memset(out, 0, sizeof *out);
	bool found = false;
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->list.len && !found; i++) {
		struct fault *x = f->list.items[i];
		if (!matches(x, method, path))
			continue;
		found = true;
		out->delay_ms = x->delay_ms;
		out->reset = x->reset;
		out->respond = x->status != 0;
		out->status = x->status;
		if (out->respond && !out->reset) {
			make_body(x, out);
			out->header_size = (size_t)x->header_size;
		}
		if (x->count > 0 && --x->count == 0) {
			fault_free(x);
			fp_vec_remove(&f->list, i);
		}
	}
	pthread_mutex_unlock(&f->mu);
	return found;
}

void fp_fault_action_release(struct fp_fault_action *a)
{
	free(a->body);
	memset(a, 0, sizeof *a);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends all of buf on the non-blocking fd, waiting for room until deadline
 * (CLOCK_MONOTONIC ms). */
static bool send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		int64_t left = deadline - mono_ms();
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || left <= 0)
			return false; /* the client hung up (as it does at its limit) */
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		poll(&pfd, 1, (int)(left < 1000 ? left : 1000));
	}
	return true;
}

bool fp_fault_send_raw(int fd, const struct fp_fault_action *a)
{
	char head[256];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %u Fault\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\nX-Fakeplane-Filler: ",
			 a->status, a->body_len);
	char *filler = fp_xmalloc(a->header_size + 4);
	memset(filler, 'h', a->header_size);
	memcpy(filler + a->header_size, "\r\n\r\n", 4);
	int64_t deadline = mono_ms() + RAW_SEND_DEADLINE_MS;
	bool ok = send_all(fd, head, (size_t)n, deadline) &&
		  send_all(fd, filler, a->header_size + 4, deadline) &&
		  send_all(fd, a->body != NULL ? a->body : "", a->body_len, deadline);
	free(filler);
	return ok;
}
