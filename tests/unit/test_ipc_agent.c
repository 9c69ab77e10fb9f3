/* The agents' identity fields of CONFIG (ipc/config_agent.c): they arrive
 * as sent, absent ones are the fallback's, and what would give agents
 * root or a relative path is neither sent nor accepted. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "ipc/frame.h"
#include "ipc/messages.h"

#define WS "11111111-1111-4111-8111-111111111111"

TestSuite(ipc_agent, .timeout = 20);

static struct mc_worker_config sample(void)
{
	struct mc_worker_config c = { 0 };
	snprintf(c.workspace_id, sizeof c.workspace_id, "%s", WS);
	snprintf(c.server_url, sizeof c.server_url, "http://127.0.0.1:8080");
	snprintf(c.daemon_id, sizeof c.daemon_id, "daemon-1");
	snprintf(c.cli_version, sizeof c.cli_version, "multicad/0.1.0");
	snprintf(c.log_level, sizeof c.log_level, "info");
	c.heartbeat_interval_ms = c.profile_sync_interval_ms = c.http_timeout_ms = 1000;
	c.probe_timeout_ms = 1000;
	return c;
}

/* Sends c and parses it back into got: the parser's rc. */
static int round_trip(const struct mc_worker_config *c, struct mc_worker_config *got, char *err,
		      size_t n)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_config(&w, c), 0, "send: %s", strerror(errno));
	struct mc_ipc_frame f = { .type = MC_IPC_CONFIG,
				  .len = (uint32_t)(mc_ipc_writer_pending(&w) - MC_IPC_HEADER_SIZE),
				  .payload = w.buf + w.head + MC_IPC_HEADER_SIZE };
	int rc = mc_ipc_parse_config(&f, got, err, n);
	mc_ipc_writer_free(&w);
	return rc;
}

static int parse_text(const char *text, struct mc_worker_config *got, char *err, size_t n)
{
	struct mc_ipc_frame f = { .type = MC_IPC_CONFIG, .len = (uint32_t)strlen(text),
				  .payload = (uint8_t *)(uintptr_t)text };
	return mc_ipc_parse_config(&f, got, err, n);
}

Test(ipc_agent, fields_round_trip)
{
	struct mc_worker_config c = sample(), got;
	c.agent_switch = true;
	c.agent_uid = 61003;
	c.agent_gid = 62003;
	c.agent_extra_gid = 999;
	snprintf(c.agent_home, sizeof c.agent_home, "/var/lib/multicad-agent");
	snprintf(c.agent_home_template, sizeof c.agent_home_template, "/etc/multicad/home");
	snprintf(c.agent_env_file, sizeof c.agent_env_file, "/etc/multicad/agents.env");
	c.allow_profile_paths = true;
	c.websocket_off = true;
	char err[256] = "";
	cr_assert_eq(round_trip(&c, &got, err, sizeof err), 0, "%s", err);
	cr_assert(got.agent_switch);
	cr_assert_eq(got.agent_uid, 61003);
	cr_assert_eq(got.agent_gid, 62003);
	cr_assert_eq(got.agent_extra_gid, 999);
	cr_assert_str_eq(got.agent_home, "/var/lib/multicad-agent");
	cr_assert_str_eq(got.agent_home_template, "/etc/multicad/home");
	cr_assert_str_eq(got.agent_env_file, "/etc/multicad/agents.env");
	cr_assert(got.allow_profile_paths);
	cr_assert(got.websocket_off);
	mc_worker_config_clear(&got);

	/* the fallback: no ids on the wire whatever the struct holds */
	c = sample();
	c.agent_uid = 5;
	cr_assert_eq(round_trip(&c, &got, err, sizeof err), 0, "%s", err);
	cr_assert_not(got.agent_switch);
	cr_assert_eq(got.agent_uid, -1);
	cr_assert_eq(got.agent_extra_gid, -1);
	cr_assert_not(got.allow_profile_paths);
	cr_assert_not(got.websocket_off);
	mc_worker_config_clear(&got);
}

Test(ipc_agent, absent_fields_are_the_fallback)
{
	struct mc_worker_config got;
	char err[256] = "";
	const char *text = "{\"proto\":1,\"workspace_id\":\"" WS "\",\"server_url\":\"http://h\","
			   "\"daemon_id\":\"d\",\"device_name\":\"\",\"cli_version\":\"v\","
			   "\"log_level\":\"info\",\"test_fault\":\"\",\"ca_file\":\"\","
			   "\"heartbeat_interval_ms\":1,\"profile_sync_interval_ms\":1,"
			   "\"http_timeout_ms\":1,\"probe_timeout_ms\":1,\"profile_commands\":{}}";
	cr_assert_eq(parse_text(text, &got, err, sizeof err), 0, "%s", err);
	cr_assert_not(got.agent_switch);
	cr_assert_eq(got.agent_uid, -1);
	cr_assert_eq(got.agent_gid, -1);
	cr_assert_eq(got.agent_extra_gid, -1);
	cr_assert_str_eq(got.agent_home, "");
	cr_assert_not(got.websocket_off);
	mc_worker_config_clear(&got);
}

Test(ipc_agent, root_or_relative_is_never_sent)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	struct mc_worker_config c = sample();
	c.agent_switch = true;
	c.agent_uid = 0;
	c.agent_gid = 62000;
	c.agent_extra_gid = -1;
	errno = 0;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "uid 0");
	cr_assert_eq(errno, EINVAL);
	c.agent_uid = 61000;
	c.agent_gid = 0;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "gid 0");
	c.agent_gid = 62000;
	c.agent_extra_gid = 0;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "extra gid 0");
	c.agent_extra_gid = -1;
	c.agent_uid = 4294967295L;
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "(uid_t)-1");
	c.agent_uid = 61000;
	snprintf(c.agent_home, sizeof c.agent_home, "home/agent");
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "relative HOME");
	snprintf(c.agent_home, sizeof c.agent_home, "/home/\x01");
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "control byte");
	c.agent_home[0] = '\0';
	snprintf(c.agent_env_file, sizeof c.agent_env_file, "agents.env");
	cr_assert_eq(mc_ipc_send_config(&w, &c), -1, "relative env file");
	cr_assert_eq(mc_ipc_writer_pending(&w), 0, "nothing queued");
	c.agent_env_file[0] = '\0';
	cr_assert_eq(mc_ipc_send_config(&w, &c), 0);
	mc_ipc_writer_free(&w);
}

Test(ipc_agent, root_or_relative_is_never_accepted)
{
	static const struct {
		const char *fields, *want;
	} bad[] = {
		{ "\"agent_switch\":true,\"agent_uid\":0,\"agent_gid\":5", "agent_switch:" },
		{ "\"agent_switch\":true,\"agent_gid\":5", "agent_switch:" },
		{ "\"agent_switch\":true,\"agent_uid\":5,\"agent_gid\":5,\"agent_extra_gid\":0",
		  "agent_switch:" },
		{ "\"agent_uid\":4294967295", "agent_uid" },
		{ "\"agent_gid\":-2", "agent_gid" },
		{ "\"agent_switch\":1", "agent_switch: not a bool" },
		{ "\"websocket_off\":\"yes\"", "websocket_off: not a bool" },
		{ "\"agent_home\":\"rel\"", "agent_home: not an absolute path" },
		{ "\"agent_home_template\":\"rel\"", "agent_home_template: not an absolute path" },
		{ "\"agent_env_file\":\"rel\"", "agent_env_file: not an absolute path" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[1024];
		snprintf(text, sizeof text,
			 "{\"proto\":1,\"workspace_id\":\"" WS "\",\"server_url\":\"http://h\","
			 "\"daemon_id\":\"d\",\"device_name\":\"\",\"cli_version\":\"v\","
			 "\"log_level\":\"info\",\"test_fault\":\"\",\"ca_file\":\"\","
			 "\"heartbeat_interval_ms\":1,\"profile_sync_interval_ms\":1,"
			 "\"http_timeout_ms\":1,\"probe_timeout_ms\":1,\"profile_commands\":{},%s}",
			 bad[i].fields);
		struct mc_worker_config got;
		char err[256] = "";
		errno = 0;
		cr_assert_eq(parse_text(text, &got, err, sizeof err), -1, "accepted %s", bad[i].fields);
		cr_assert_eq(errno, EPROTO);
		cr_assert_not_null(strstr(err, bad[i].want), "%s: got %s", bad[i].fields, err);
	}
}
