/* IPC framing and message codecs: what a worker or the supervisor must
 * accept, and every kind of bad frame it must refuse. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "ipc/frame.h"
#include "ipc/messages.h"

TestSuite(ipc, .timeout = 20);

static const char *WS = "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f";
static const char *RT1 = "11111111-1111-4111-8111-111111111111";
static const char *RT2 = "22222222-2222-4222-8222-222222222222";

static void make_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* Sends everything queued on w through sv[0] and reads it into r from sv[1]. */
static void pump(struct mc_ipc_writer *w, int sv[2], struct mc_ipc_reader *r)
{
	while (mc_ipc_writer_pending(w) > 0) {
		cr_assert_geq(mc_ipc_writer_flush(w, sv[0]), 0);
		while (mc_ipc_reader_fill(r, sv[1]) > 0)
			;
	}
	while (mc_ipc_reader_fill(r, sv[1]) > 0)
		;
}

static void next_frame(struct mc_ipc_reader *r, uint16_t type, struct mc_ipc_frame *f)
{
	cr_assert_eq(mc_ipc_reader_next(r, f), 1);
	cr_assert_eq(f->type, type, "got %s", mc_ipc_type_name(f->type));
}

Test(ipc, header_roundtrip_and_limits)
{
	uint8_t h[MC_IPC_HEADER_SIZE];
	uint16_t t;
	uint32_t l;
	mc_ipc_header_encode(h, MC_IPC_REPORT, 1234);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_supervisor, &t, &l), 0);
	cr_assert_eq(t, MC_IPC_REPORT);
	cr_assert_eq(l, 1234);

	mc_ipc_header_encode(h, MC_IPC_REPORT, MC_IPC_MAX_PAYLOAD + 1);
	errno = 0;
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_supervisor, &t, &l), -1);
	cr_assert_eq(errno, EMSGSIZE);

	mc_ipc_header_encode(h, MC_IPC_REPORT, 1);
	h[3] = 1; /* reserved */
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_supervisor, &t, &l), -1);
	cr_assert_eq(errno, EPROTO);

	/* A worker must not accept a worker-to-supervisor type, and vice versa. */
	mc_ipc_header_encode(h, MC_IPC_REPORT, 1);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_worker, &t, &l), -1);
	mc_ipc_header_encode(h, MC_IPC_TOKEN, 1);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_supervisor, &t, &l), -1);
	mc_ipc_header_encode(h, 999, 1);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_worker, &t, &l), -1);
	cr_assert_eq(errno, EPROTO);
}

Test(ipc, frames_survive_one_byte_writes)
{
	int sv[2];
	make_pair(sv);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	const char *ids[] = { RT1, RT2 };
	cr_assert_eq(mc_ipc_send_report(&w, 2, ids), 0);
	cr_assert_eq(mc_ipc_send_pong(&w, 77), 0);

	struct mc_ipc_reader r;
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_supervisor), 0);
	struct mc_ipc_frame f;
	size_t total = mc_ipc_writer_pending(&w);
	for (size_t i = 0; i < total; i++) {
		cr_assert_eq(write(sv[0], w.buf + i, 1), 1);
		cr_assert_eq(mc_ipc_reader_fill(&r, sv[1]), 1);
		if (i + 1 < total && mc_ipc_reader_pending(&r) > 0) {
			int got = mc_ipc_reader_next(&r, &f);
			cr_assert_neq(got, -1);
			if (got == 1) {
				cr_assert_eq(f.type, MC_IPC_REPORT);
				struct mc_report rep;
				cr_assert_eq(mc_ipc_parse_report(&f, &rep, NULL, 0), 0);
				cr_assert_eq(rep.n, 2);
				cr_assert_str_eq(rep.ids[1], RT2);
				mc_report_clear(&rep);
			}
		}
	}
	next_frame(&r, MC_IPC_PONG, &f);
	uint64_t seq;
	cr_assert_eq(mc_ipc_parse_seq(&f, &seq, NULL, 0), 0);
	cr_assert_eq(seq, 77);
	cr_assert_eq(mc_ipc_reader_next(&r, &f), 0);
	cr_assert_eq(mc_ipc_reader_pending(&r), 0);

	close(sv[0]);
	cr_assert_eq(mc_ipc_reader_fill(&r, sv[1]), 0);
	cr_assert(r.eof);
	mc_ipc_reader_free(&r);
	mc_ipc_writer_free(&w);
	close(sv[1]);
}

Test(ipc, garbage_and_oversized_frames_are_refused)
{
	int sv[2];
	make_pair(sv);
	struct mc_ipc_reader r;
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_worker), 0);
	struct mc_ipc_frame f;

	const char garbage[] = "GET / HTTP/1.1\r\n\r\n";
	cr_assert_eq(write(sv[0], garbage, sizeof garbage - 1), (ssize_t)(sizeof garbage - 1));
	cr_assert_eq(mc_ipc_reader_fill(&r, sv[1]), 1);
	errno = 0;
	cr_assert_eq(mc_ipc_reader_next(&r, &f), -1);
	cr_assert_eq(errno, EPROTO);
	mc_ipc_reader_free(&r);

	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_worker), 0);
	uint8_t h[MC_IPC_HEADER_SIZE];
	mc_ipc_header_encode(h, MC_IPC_PING, 0x7fffffff);
	cr_assert_eq(write(sv[0], h, sizeof h), (ssize_t)sizeof h);
	cr_assert_eq(mc_ipc_reader_fill(&r, sv[1]), 1);
	cr_assert_eq(mc_ipc_reader_next(&r, &f), -1);
	cr_assert_eq(errno, EMSGSIZE);
	mc_ipc_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc, max_size_frame_passes_and_queue_cap_is_enforced)
{
	int sv[2];
	make_pair(sv);
	static uint8_t payload[MC_IPC_MAX_PAYLOAD];
	memset(payload, 'x', sizeof payload);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_writer_queue(&w, MC_IPC_TOKEN, payload, sizeof payload), 0);
	cr_assert_eq(mc_ipc_writer_queue(&w, MC_IPC_TOKEN, payload, sizeof payload + 1), -1);
	cr_assert_eq(errno, EMSGSIZE);

	struct mc_ipc_reader r;
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_worker), 0);
	pump(&w, sv, &r);
	struct mc_ipc_frame f;
	next_frame(&r, MC_IPC_TOKEN, &f);
	cr_assert_eq(f.len, MC_IPC_MAX_PAYLOAD);
	cr_assert_eq(memcmp(f.payload, payload, f.len), 0);
	mc_ipc_reader_free(&r);

	/* Nobody reads: the queue fills up to its cap, then refuses. */
	int queued = 0, rc;
	while ((rc = mc_ipc_writer_queue(&w, MC_IPC_TOKEN, payload, sizeof payload)) == 0)
		queued++;
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_geq(queued, 10);
	cr_assert_leq(mc_ipc_writer_pending(&w), MC_IPC_WQUEUE_MAX);

	/* A closed peer is an error, not a SIGPIPE. */
	close(sv[1]);
	cr_assert_eq(mc_ipc_writer_flush(&w, sv[0]), -1);
	cr_assert(errno == EPIPE || errno == ECONNRESET);
	mc_ipc_writer_free(&w);
	close(sv[0]);
}

static struct mc_worker_config sample_config(void)
{
	struct mc_worker_config c = { 0 };
	snprintf(c.workspace_id, sizeof c.workspace_id, "%s", WS);
	snprintf(c.server_url, sizeof c.server_url, "http://127.0.0.1:8080");
	snprintf(c.daemon_id, sizeof c.daemon_id, "daemon-1");
	snprintf(c.device_name, sizeof c.device_name, "build-7");
	snprintf(c.cli_version, sizeof c.cli_version, "multicad/0.1.0");
	snprintf(c.log_level, sizeof c.log_level, "info");
	c.heartbeat_interval_ms = 15000;
	c.profile_sync_interval_ms = 30000;
	c.http_timeout_ms = 30000;
	c.probe_timeout_ms = 5000;
	return c;
}

Test(ipc, config_roundtrip_with_overrides)
{
	int sv[2];
	make_pair(sv);
	struct mc_worker_config c = sample_config();
	struct mc_profile_override ov[2] = {
		{ "33333333-3333-4333-8333-333333333333", "/opt/bin/ccms" },
		{ "44444444-4444-4444-8444-444444444444", "/usr/local/bin/x y" },
	};
	c.overrides = ov;
	c.n_overrides = 2;
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	struct mc_ipc_reader r;
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_worker), 0);
	pump(&w, sv, &r);
	struct mc_ipc_frame f;
	next_frame(&r, MC_IPC_CONFIG, &f);
	struct mc_worker_config got;
	char err[256] = "";
	cr_assert_eq(mc_ipc_parse_config(&f, &got, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(got.workspace_id, WS);
	cr_assert_str_eq(got.device_name, "build-7");
	cr_assert_eq(got.heartbeat_interval_ms, 15000);
	cr_assert_eq(got.n_overrides, 2);
	cr_assert_str_eq(got.overrides[1].path, "/usr/local/bin/x y");
	mc_worker_config_clear(&got);
	mc_ipc_reader_free(&r);
	mc_ipc_writer_free(&w);
	close(sv[0]);
	close(sv[1]);
}

/* Parses text as a payload of the given type. */
static int parse_as(uint16_t type, const char *text, char *err, size_t err_size)
{
	struct mc_ipc_frame f = { .type = type, .len = (uint32_t)strlen(text),
				  .payload = (const uint8_t *)text };
	struct mc_worker_config c;
	struct mc_report rep;
	struct mc_probes p;
	uint64_t seq;
	int rc;
	switch (type) {
	case MC_IPC_CONFIG:
		rc = mc_ipc_parse_config(&f, &c, err, err_size);
		if (rc == 0)
			mc_worker_config_clear(&c);
		return rc;
	case MC_IPC_REPORT:
		rc = mc_ipc_parse_report(&f, &rep, err, err_size);
		if (rc == 0)
			mc_report_clear(&rep);
		return rc;
	case MC_IPC_PROBES:
		return mc_ipc_parse_probes(&f, &p, err, err_size);
	case MC_IPC_PING:
		return mc_ipc_parse_seq(&f, &seq, err, err_size);
	default:
		return mc_ipc_parse_empty(&f, err, err_size);
	}
}

Test(ipc, invalid_payloads_name_the_problem)
{
	char err[256];
	struct { uint16_t type; const char *text; const char *needle; } cases[] = {
		{ MC_IPC_REPORT, "not json", "not a JSON object" },
		{ MC_IPC_REPORT, "[]", "not a JSON object" },
		{ MC_IPC_REPORT, "{}", "runtime_ids" },
		{ MC_IPC_REPORT, "{\"runtime_ids\":[\"x\"]}", "runtime_ids[0]" },
		{ MC_IPC_REPORT, "{\"runtime_ids\":[1]}", "runtime_ids[0]" },
		{ MC_IPC_PING, "{\"seq\":-1}", "seq" },
		{ MC_IPC_PING, "{\"seq\":1.5}", "seq" },
		{ MC_IPC_PING, "{\"seq\":\"1\"}", "seq" },
		{ MC_IPC_PROBES, "{\"builtins\":{}}", "builtins" },
		{ MC_IPC_PROBES, "{\"builtins\":[{\"provider\":\"Claude X\",\"name\":\"C\",\"version\":\"\"}]}", "provider" },
		{ MC_IPC_PROBES, "{\"builtins\":[{\"provider\":\"claude\",\"name\":\"C\",\"version\":\"1\"},"
				 "{\"provider\":\"claude\",\"name\":\"C\",\"version\":\"1\"}]}", "twice" },
		{ MC_IPC_STOP, "{\"x\":1}", "unexpected" },
		{ MC_IPC_CONFIG, "{\"proto\":2}", "proto" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = '\0';
		errno = 0;
		cr_expect_eq(parse_as(cases[i].type, cases[i].text, err, sizeof err), -1,
			     "case %zu accepted: %s", i, cases[i].text);
		cr_expect_eq(errno, EPROTO, "case %zu", i);
		cr_expect(strstr(err, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'",
			  i, err, cases[i].needle);
	}
}

Test(ipc, config_field_validation)
{
	struct mc_worker_config c = sample_config();
	struct mc_ipc_writer w;
	char err[256];
	/* Each broken variant is refused with the field named. */
	snprintf(c.workspace_id, sizeof c.workspace_id, "not-a-uuid");
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	struct mc_ipc_frame f = { .type = MC_IPC_CONFIG,
				  .len = (uint32_t)(w.tail - MC_IPC_HEADER_SIZE),
				  .payload = w.buf + MC_IPC_HEADER_SIZE };
	struct mc_worker_config got;
	cr_assert_eq(mc_ipc_parse_config(&f, &got, err, sizeof err), -1);
	cr_assert(strstr(err, "workspace_id") != NULL, "%s", err);
	mc_ipc_writer_free(&w);

	c = sample_config();
	c.heartbeat_interval_ms = 0;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	f.len = (uint32_t)(w.tail - MC_IPC_HEADER_SIZE);
	f.payload = w.buf + MC_IPC_HEADER_SIZE;
	cr_assert_eq(mc_ipc_parse_config(&f, &got, err, sizeof err), -1);
	cr_assert(strstr(err, "heartbeat_interval_ms") != NULL, "%s", err);
	mc_ipc_writer_free(&w);

	c = sample_config();
	struct mc_profile_override ov = { "33333333-3333-4333-8333-333333333333", "relative/path" };
	c.overrides = &ov;
	c.n_overrides = 1;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	f.len = (uint32_t)(w.tail - MC_IPC_HEADER_SIZE);
	f.payload = w.buf + MC_IPC_HEADER_SIZE;
	cr_assert_eq(mc_ipc_parse_config(&f, &got, err, sizeof err), -1);
	cr_assert(strstr(err, "absolute") != NULL, "%s", err);
	mc_ipc_writer_free(&w);
}

Test(ipc, uuid_check)
{
	cr_assert(mc_is_uuid(RT1));
	cr_assert(mc_is_uuid("ABCDEF01-2345-6789-abcd-ef0123456789"));
	cr_assert_not(mc_is_uuid("11111111-1111-4111-8111-11111111111"));
	cr_assert_not(mc_is_uuid("11111111x1111-4111-8111-111111111111"));
	cr_assert_not(mc_is_uuid("g1111111-1111-4111-8111-111111111111"));
	cr_assert_not(mc_is_uuid(""));
	cr_assert_not(mc_is_uuid(NULL));
}

/* ---- numbers: the range is checked on the double, before any cast ---- */

Test(ipc, seq_out_of_range_negative_or_fractional_is_refused_by_name)
{
	char err[256];
	struct { const char *text, *needle; } bad[] = {
		{ "{\"seq\":1e300}", "out of range" },
		{ "{\"seq\":-1e300}", "negative" },
		{ "{\"seq\":1e400}", "out of range" },            /* inf after strtod */
		{ "{\"seq\":9223372036854775808}", "out of range" }, /* 2^63 */
		{ "{\"seq\":-1}", "negative" },
		{ "{\"seq\":1.5}", "not an integer" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		errno = 0;
		cr_expect_eq(parse_as(MC_IPC_PING, bad[i].text, err, sizeof err), -1,
			     "accepted %s", bad[i].text);
		cr_expect_eq(errno, EPROTO, "%s", bad[i].text);
		cr_expect(strstr(err, "seq") != NULL && strstr(err, bad[i].needle) != NULL,
			  "%s: '%s' lacks '%s'", bad[i].text, err, bad[i].needle);
	}
	/* A large seq still passes, exactly. */
	const char *max = "{\"seq\":999999999999999}";
	struct mc_ipc_frame f = { .type = MC_IPC_PING, .len = (uint32_t)strlen(max),
				  .payload = (const uint8_t *)max };
	uint64_t seq = 0;
	cr_assert_eq(mc_ipc_parse_seq(&f, &seq, err, sizeof err), 0, "%s", err);
	cr_assert_eq(seq, 999999999999999ULL);
	/* A pid beyond int is out of range, not truncated. */
	const char *hello = "{\"proto\":1,\"pid\":4294967297}";
	struct mc_ipc_frame h = { .type = MC_IPC_HELLO, .len = (uint32_t)strlen(hello),
				  .payload = (const uint8_t *)hello };
	int proto = 0, pid = 0;
	cr_assert_eq(mc_ipc_parse_hello(&h, &proto, &pid, err, sizeof err), -1);
	cr_assert(strstr(err, "pid") != NULL && strstr(err, "out of range") != NULL, "%s", err);
}

/* ---- PROBES: the sender refuses what the parser refuses ---- */

/* The JSON a sender without checks would write for p (malloc'd). */
static char *probes_json(const struct mc_probes *p)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "builtins");
	for (size_t i = 0; i < p->n; i++) {
		cJSON *b = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, b);
		char prov[MC_PROVIDER_MAX + 1], name[MC_NAME_MAX + 1], ver[MC_VERSION_MAX + 1];
		/* %.*s: a field that fills its array has no NUL. */
		snprintf(prov, sizeof prov, "%.*s", (int)sizeof p->v[i].provider, p->v[i].provider);
		snprintf(name, sizeof name, "%.*s", (int)sizeof p->v[i].name, p->v[i].name);
		snprintf(ver, sizeof ver, "%.*s", (int)sizeof p->v[i].version, p->v[i].version);
		cJSON_AddStringToObject(b, "provider", prov);
		cJSON_AddStringToObject(b, "name", name);
		cJSON_AddStringToObject(b, "version", ver);
	}
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	cr_assert_not_null(text);
	return text;
}

static struct mc_probes two_probes(void)
{
	struct mc_probes p = { .n = 2 };
	p.v[0] = (struct mc_builtin){ "claude", "Claude", "2.1.0", "/usr/bin/claude" };
	p.v[1] = (struct mc_builtin){ "codex", "Codex", "0.5.0", "" };
	return p;
}

Test(ipc, probes_sender_and_parser_refuse_the_same_sets)
{
	struct mc_probes bad[10];
	const char *why[10];
	size_t n = 0;
	bad[n] = two_probes(); snprintf(bad[n].v[1].provider, MC_PROVIDER_MAX, "claude");
	why[n++] = "twice";
	bad[n] = two_probes(); bad[n].v[0].name[0] = '\0';
	why[n++] = "name";
	bad[n] = two_probes(); bad[n].v[1].version[0] = '\0';
	why[n++] = "version";
	bad[n] = two_probes(); bad[n].v[0].provider[0] = '\0';
	why[n++] = "provider";
	bad[n] = two_probes(); snprintf(bad[n].v[0].provider, MC_PROVIDER_MAX, "Claude X");
	why[n++] = "provider";
	bad[n] = two_probes(); snprintf(bad[n].v[0].version, MC_VERSION_MAX, "2.1\n0");
	why[n++] = "version";
	bad[n] = two_probes(); memset(bad[n].v[0].provider, 'a', MC_PROVIDER_MAX);
	why[n++] = "provider";
	bad[n] = two_probes(); memset(bad[n].v[1].version, '1', MC_VERSION_MAX);
	why[n++] = "version";
	bad[n] = two_probes(); memset(bad[n].v[1].name, 'N', MC_NAME_MAX);
	why[n++] = "name";
	for (size_t i = 0; i < n; i++) {
		char err[256] = "";
		char *text = probes_json(&bad[i]);
		errno = 0;
		cr_expect_eq(parse_as(MC_IPC_PROBES, text, err, sizeof err), -1,
			     "case %zu: the parser accepted %s", i, text);
		cr_expect_eq(errno, EPROTO, "case %zu", i);
		cr_expect(strstr(err, why[i]) != NULL, "case %zu: '%s' lacks '%s'", i, err, why[i]);
		err[0] = '\0';
		errno = 0;
		cr_expect_eq(mc_ipc_probes_check(&bad[i], err, sizeof err), -1, "case %zu", i);
		cr_expect(strstr(err, why[i]) != NULL, "case %zu: '%s' lacks '%s'", i, err, why[i]);
		struct mc_ipc_writer w;
		mc_ipc_writer_init(&w);
		errno = 0;
		cr_expect_eq(mc_ipc_send_probes(&w, &bad[i]), -1, "case %zu: the sender sent %s", i,
			     text);
		cr_expect_eq(errno, EINVAL, "case %zu", i);
		cr_expect_eq(mc_ipc_writer_pending(&w), 0, "case %zu: a frame was queued", i);
		mc_ipc_writer_free(&w);
		free(text);
	}
	/* More entries than a set holds. */
	struct mc_probes many = { .n = MC_MAX_BUILTINS + 1 };
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_expect_eq(mc_ipc_send_probes(&w, &many), -1);
	cr_expect_eq(mc_ipc_writer_pending(&w), 0);
	mc_ipc_writer_free(&w);
}

Test(ipc, probes_roundtrip)
{
	int sv[2];
	make_pair(sv);
	struct mc_probes p = two_probes();
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_probes(&w, &p), 0);
	struct mc_ipc_reader r;
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_worker), 0);
	pump(&w, sv, &r);
	struct mc_ipc_frame f;
	next_frame(&r, MC_IPC_PROBES, &f);
	struct mc_probes got;
	char err[256] = "";
	cr_assert_eq(mc_ipc_parse_probes(&f, &got, err, sizeof err), 0, "%s", err);
	cr_assert_eq(got.n, 2);
	cr_assert_str_eq(got.v[1].provider, "codex");
	cr_assert_str_eq(got.v[1].version, "0.5.0");
	char none[8] = "";
	cr_assert_eq(mc_ipc_probes_check(&got, none, sizeof none), 0);
	/* An empty set is a valid one: no built-in found. */
	struct mc_probes empty = { .n = 0 };
	cr_assert_eq(mc_ipc_probes_check(&empty, err, sizeof err), 0);
	mc_ipc_reader_free(&r);
	mc_ipc_writer_free(&w);
	close(sv[0]);
	close(sv[1]);
}

/* ---- message limits, each tested one past its edge ---- */

/* n distinct UUIDs (heap; free the array and the block at ids[0]). */
static char **make_ids(size_t n)
{
	char **ids = calloc(n, sizeof *ids);
	char *block = calloc(n, 37);
	cr_assert(ids != NULL && block != NULL);
	for (size_t i = 0; i < n; i++) {
		ids[i] = block + 37 * i;
		snprintf(ids[i], 37, "5e000000-0000-4000-8000-%012u", (unsigned)(i % 1000000u));
	}
	return ids;
}

static void free_ids(char **ids)
{
	free(ids[0]);
	free(ids);
}

/* A REPORT of n ids, printed by hand (the sender would refuse n > max). */
static char *report_text(size_t n)
{
	char **ids = make_ids(n);
	size_t cap = 32 + n * 40, used = 0;
	char *t = malloc(cap);
	cr_assert_not_null(t);
	used += (size_t)snprintf(t, cap, "{\"runtime_ids\":[");
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(t + used, cap - used, "%s\"%s\"", i ? "," : "", ids[i]);
	snprintf(t + used, cap - used, "]}");
	free_ids(ids);
	return t;
}

Test(ipc, report_holds_exactly_MC_MAX_REPORT_ids)
{
	char **ids = make_ids(MC_MAX_REPORT + 1);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_report(&w, MC_MAX_REPORT, (const char *const *)ids), 0);
	cr_assert_leq(mc_ipc_writer_pending(&w), MC_IPC_HEADER_SIZE + MC_IPC_MAX_PAYLOAD,
		      "a full report must fit one frame");
	struct mc_ipc_frame f = { .type = MC_IPC_REPORT,
				  .len = (uint32_t)(mc_ipc_writer_pending(&w) - MC_IPC_HEADER_SIZE),
				  .payload = w.buf + w.head + MC_IPC_HEADER_SIZE };
	struct mc_report r;
	char err[256] = "";
	cr_assert_eq(mc_ipc_parse_report(&f, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.n, MC_MAX_REPORT);
	mc_report_clear(&r);

	/* One more: the sender refuses it, queueing nothing ... */
	size_t before = mc_ipc_writer_pending(&w);
	errno = 0;
	cr_assert_eq(mc_ipc_send_report(&w, MC_MAX_REPORT + 1, (const char *const *)ids), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_ipc_writer_pending(&w), before);
	mc_ipc_writer_free(&w);
	free_ids(ids);

	/* ... and the parser names the limit. */
	char *text = report_text(MC_MAX_REPORT + 1);
	errno = 0;
	cr_assert_eq(parse_as(MC_IPC_REPORT, text, err, sizeof err), -1);
	cr_assert_eq(errno, EPROTO);
	cr_assert_str_eq(err, "runtime_ids: more than 1024 entries");
	free(text);
}

/* n overrides whose paths, grown with fill, print to json_size bytes (0:
 * as short as they go). Heap; the caller frees it. */
static struct mc_profile_override *make_overrides(size_t n, size_t json_size, char fill)
{
	struct mc_profile_override *v = calloc(n, sizeof *v);
	cr_assert_not_null(v);
	for (size_t i = 0; i < n; i++) {
		snprintf(v[i].profile_id, sizeof v[i].profile_id, "a0000000-0000-4000-8000-%012zu", i);
		v[i].path[0] = '/';
	}
	/* Grow the paths one character at a time, round robin, to the size. */
	size_t size = mc_ipc_overrides_json_size(v, n), unit = fill == '"' ? 2 : 1;
	for (size_t i = 0; size + unit <= json_size; i = (i + 1) % n) {
		size_t len = strlen(v[i].path);
		cr_assert_lt(len + 1, sizeof v[i].path);
		v[i].path[len] = fill;
		v[i].path[len + 1] = '\0';
		size += unit;
	}
	cr_assert_eq(mc_ipc_overrides_json_size(v, n), size);
	return v;
}

Test(ipc, overrides_limits_in_count_and_bytes)
{
	struct mc_worker_config c = sample_config();
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);

	/* The count: MC_MAX_OVERRIDES go, one more is refused by both sides. */
	c.overrides = make_overrides(MC_MAX_OVERRIDES + 1, 0, 'a');
	c.n_overrides = MC_MAX_OVERRIDES;
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	c.n_overrides = MC_MAX_OVERRIDES + 1;
	errno = 0;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1);
	cr_assert_eq(errno, EINVAL);
	cJSON *o = cJSON_CreateObject();
	cJSON *ov = cJSON_AddObjectToObject(o, "profile_commands");
	for (size_t i = 0; i < c.n_overrides; i++)
		cJSON_AddStringToObject(ov, c.overrides[i].profile_id, "/x");
	char *text = cJSON_PrintUnformatted(ov);
	char cfg[64 * 1024];
	snprintf(cfg, sizeof cfg, "{\"proto\":1,\"workspace_id\":\"%s\",\"server_url\":\"http://h\","
		 "\"daemon_id\":\"d\",\"device_name\":\"\",\"cli_version\":\"v\",\"log_level\":\"info\","
		 "\"test_fault\":\"\",\"ca_file\":\"\",\"heartbeat_interval_ms\":1,"
		 "\"profile_sync_interval_ms\":1,\"http_timeout_ms\":1,\"probe_timeout_ms\":1,"
		 "\"profile_commands\":%s}", WS, text);
	free(text);
	cJSON_Delete(o);
	char err[256] = "";
	cr_assert_eq(parse_as(MC_IPC_CONFIG, cfg, err, sizeof err), -1);
	cr_assert_str_eq(err, "profile_commands: more than 256 entries");
	free(c.overrides);

	/* The bytes: exactly MC_IPC_OVERRIDES_JSON_MAX go, one more does not. */
	c.overrides = make_overrides(MC_MAX_OVERRIDES, MC_IPC_OVERRIDES_JSON_MAX, 'a');
	c.n_overrides = MC_MAX_OVERRIDES;
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	size_t last = strlen(c.overrides[7].path);
	c.overrides[7].path[last] = 'b';
	c.overrides[7].path[last + 1] = '\0';
	cr_assert_eq(mc_ipc_overrides_json_size(c.overrides, c.n_overrides),
		     MC_IPC_OVERRIDES_JSON_MAX + 1);
	errno = 0;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1);
	cr_assert_eq(errno, EINVAL);
	free(c.overrides);
	mc_ipc_writer_free(&w);
}

/* The bound MC_IPC_OVERRIDES_JSON_MAX rests on: every other field at its
 * longest, made of the characters that print longest, and overrides at the
 * budget (quotes: escaped) still make one frame, which the worker parses. */
Test(ipc, longest_possible_config_fits_one_frame)
{
	struct mc_worker_config c = sample_config();
	/* '"' prints longest of what a sender may send (escaped: 2 bytes). */
	memset(c.server_url, '"', sizeof c.server_url - 1);
	memset(c.daemon_id, '"', sizeof c.daemon_id - 1);
	memset(c.device_name, '"', sizeof c.device_name - 1);
	memset(c.cli_version, '"', sizeof c.cli_version - 1);
	memset(c.log_level, '"', sizeof c.log_level - 1);
	memset(c.test_fault, '"', sizeof c.test_fault - 1);
	memset(c.ca_file, '"', sizeof c.ca_file - 1);
	memset(c.workspaces_root, '"', sizeof c.workspaces_root - 1);
	memset(c.state_dir, '"', sizeof c.state_dir - 1);
	memset(c.agent_home, '"', sizeof c.agent_home - 1);
	memset(c.agent_home_template, '"', sizeof c.agent_home_template - 1);
	memset(c.agent_env_file, '"', sizeof c.agent_env_file - 1);
	c.agent_home[0] = c.agent_home_template[0] = c.agent_env_file[0] = '/';
	c.agent_switch = c.allow_profile_paths = c.websocket_off = true;
	c.agent_uid = c.agent_gid = c.agent_extra_gid = 4294967294L;
	c.task_poll_interval_ms = c.task_idle_timeout_ms = c.task_retention_ms = 400L * 86400000L;
	c.task_stop_grace_ms = c.stop_timeout_ms = 86400000L;
	c.max_concurrent_tasks = 1000;
	c.agent_api_port = 65535;
	c.heartbeat_interval_ms = c.profile_sync_interval_ms = 86400000L;
	c.http_timeout_ms = c.probe_timeout_ms = 3600000L;
	c.overrides = make_overrides(MC_MAX_OVERRIDES, MC_IPC_OVERRIDES_JSON_MAX, '"');
	c.n_overrides = MC_MAX_OVERRIDES;
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0, "%s", strerror(errno));
	cr_log_info("longest CONFIG: %zu of %u bytes", mc_ipc_writer_pending(&w) - MC_IPC_HEADER_SIZE,
		    MC_IPC_MAX_PAYLOAD);
	mc_ipc_writer_free(&w);

	/* The same with fields a worker accepts: it parses them back. */
	struct mc_worker_config v = sample_config();
	memset(v.device_name, '"', sizeof v.device_name - 1);
	memset(v.ca_file, '"', sizeof v.ca_file - 1);
	v.ca_file[0] = '/';
	memset(v.workspaces_root, '"', sizeof v.workspaces_root - 1);
	v.workspaces_root[0] = '/';
	memset(v.state_dir, '"', sizeof v.state_dir - 1);
	v.state_dir[0] = '/';
	v.task_poll_interval_ms = 86400000L;
	v.task_retention_ms = 400L * 86400000L;
	v.max_concurrent_tasks = 1000;
	v.overrides = c.overrides;
	v.n_overrides = c.n_overrides;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, &v), 0, "%s", strerror(errno));
	struct mc_ipc_frame f = { .type = MC_IPC_CONFIG,
				  .len = (uint32_t)(mc_ipc_writer_pending(&w) - MC_IPC_HEADER_SIZE),
				  .payload = w.buf + w.head + MC_IPC_HEADER_SIZE };
	struct mc_worker_config got;
	char err[256] = "";
	cr_assert_eq(mc_ipc_parse_config(&f, &got, err, sizeof err), 0, "%s", err);
	cr_assert_eq(got.n_overrides, MC_MAX_OVERRIDES);
	cr_assert_str_eq(got.overrides[3].path, c.overrides[3].path);
	cr_assert_str_eq(got.workspaces_root, v.workspaces_root);
	cr_assert_str_eq(got.state_dir, v.state_dir);
	cr_assert_eq(got.task_retention_ms, 400L * 86400000L);
	cr_assert_eq(got.max_concurrent_tasks, 1000);
	mc_worker_config_clear(&got);
	mc_ipc_writer_free(&w);

	/* A control byte, which the worker would refuse, is never sent. */
	c.workspaces_root[5] = '\x01';
	mc_ipc_writer_init(&w);
	errno = 0;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_ipc_writer_pending(&w), 0);
	mc_ipc_writer_free(&w);
	free(c.overrides);
}
