/* Durations and the configuration file: every key, every default, and every
 * kind of error naming the file, the line and the key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>
#include <sodium.h>

#include "supervisor/config.h"
#include "supervisor/duration.h"

TestSuite(duration, .timeout = 20);
TestSuite(config, .timeout = 20);

#define WS1 "0c6e7a1e-1111-4a4a-8b8b-000000000001"
#define WS2 "0c6e7a1e-1111-4a4a-8b8b-000000000002"
#define WS3 "0c6e7a1e-1111-4a4a-8b8b-000000000003"
#define PR1 "9f000000-2222-4c4c-9d9d-000000000001"
#define PR2 "9f000000-2222-4c4c-9d9d-000000000002"

/* ---- durations ---- */

Test(duration, valid)
{
	static const struct {
		const char *s;
		long ms;
	} cases[] = {
		{ "250ms", 250 }, { "15s", 15000 }, { "5m", 300000 }, { "1h", 3600000 },
		{ "1m30s", 90000 }, { "1h30m", 5400000 }, { "2s500ms", 2500 }, { "0s", 0 },
		{ "0ms", 0 }, { "007s", 7000 }, { "1h1m1s1ms", 3661001 }, { "24h", 86400000 },
		{ "9223372036854775807ms", LONG_MAX },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long v = -1;
		cr_assert_eq(mc_parse_duration_ms(cases[i].s, &v), 0, "%s", cases[i].s);
		cr_assert_eq(v, cases[i].ms, "%s: %ld", cases[i].s, v);
	}
}

Test(duration, invalid)
{
	static const char *const cases[] = {
		"", "15", "s", "ms", "15x", "1.5s", "-5s", "+5s", " 5s", "5s ", "5 s", "5S",
		"5MS", "30s1m", "1s1s", "1ms1s", "5sec", "1m30", "1d", "0x10s", "1m 30s", "m5",
		"5h5h",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long v = 42;
		errno = 0;
		cr_assert_eq(mc_parse_duration_ms(cases[i], &v), -1, "\"%s\" accepted", cases[i]);
		cr_assert_eq(errno, EINVAL, "\"%s\": errno %d", cases[i], errno);
		cr_assert_eq(v, 42, "output untouched on error");
	}
	long v;
	errno = 0;
	cr_assert_eq(mc_parse_duration_ms(NULL, &v), -1);
	cr_assert_eq(errno, EINVAL);
}

Test(duration, overflow)
{
	static const char *const cases[] = {
		"9223372036854775808ms", "9223372036854775807s", "99999999999999999999999h",
		"2562047788016h", "2562047788015h99999999m", "153722867280912931m",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long v = 42;
		errno = 0;
		cr_assert_eq(mc_parse_duration_ms(cases[i], &v), -1, "\"%s\" accepted", cases[i]);
		cr_assert_eq(errno, ERANGE, "\"%s\": errno %d", cases[i], errno);
		cr_assert_eq(v, 42);
	}
	long v;
	cr_assert_eq(mc_parse_duration_ms("2562047788015h", &v), 0, "the largest whole hour fits");
}

Test(duration, format_and_round_trip)
{
	static const struct {
		long ms;
		const char *s;
	} cases[] = {
		{ 0, "0ms" }, { 250, "250ms" }, { 1000, "1s" }, { 90000, "1m30s" },
		{ 3600000, "1h" }, { 86400000, "24h" }, { 2500, "2s500ms" },
		{ 3661001, "1h1m1s1ms" }, { -1500, "-1s500ms" },
	};
	char buf[64];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mc_format_duration(cases[i].ms, buf, sizeof buf);
		cr_assert_str_eq(buf, cases[i].s);
		long back;
		if (cases[i].ms >= 0) {
			cr_assert_eq(mc_parse_duration_ms(buf, &back), 0, "%s", buf);
			cr_assert_eq(back, cases[i].ms);
		}
	}
	long back;
	mc_format_duration(LONG_MAX, buf, sizeof buf);
	cr_assert_eq(mc_parse_duration_ms(buf, &back), 0, "%s", buf);
	cr_assert_eq(back, LONG_MAX);
	mc_format_duration(LONG_MIN, buf, sizeof buf);
	cr_assert_eq(buf[0], '-');
	/* truncation: always terminated, never past n */
	char small[5];
	memset(small, 'x', sizeof small);
	mc_format_duration(90000, small, 4);
	cr_assert_str_eq(small, "1m3");
	cr_assert_eq(small[4], 'x');
	mc_format_duration(90000, small, 0);
	cr_assert_eq(small[0], '1', "n = 0 writes nothing");
}

/* ---- configuration: helpers ---- */

static char tmpdir[64];
static char conf_path[128];
static char token_path[128];

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mc-config-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof conf_path, "%s/multicad.conf", tmpdir);
	snprintf(token_path, sizeof token_path, "%s/token", tmpdir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

static void write_raw(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* Writes the configuration file from a printf format; %1$s is tmpdir. */
static void write_conf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void write_conf(const char *fmt, ...)
{
	char buf[16384];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof buf);
	write_raw(conf_path, buf, (size_t)n, 0644);
}

/* The smallest valid [daemon] (3 lines). */
#define MIN_DAEMON "[daemon]\nserver_url = http://127.0.0.1:8080\ntoken_file = /etc/multicad/token\n"

static void load_ok(struct mc_config *c)
{
	char err[1024] = "";
	int rc = mc_config_load(conf_path, c, err, sizeof err);
	cr_assert_eq(rc, 0, "load failed: %s", err);
	cr_assert_str_eq(err, "");
}

/* Loads, expects failure with exactly "<conf_path>:<line>: <rest...>" at the
 * start of the message (line 0: "<conf_path>: "), and rest contained. */
static void load_fails(unsigned line, const char *start, const char *contains)
{
	struct mc_config c;
	char err[1024] = "";
	errno = 0;
	cr_assert_eq(mc_config_load(conf_path, &c, err, sizeof err), -1, "accepted; wanted %s", start);
	cr_assert_neq(errno, 0);
	char want[512];
	if (line > 0)
		snprintf(want, sizeof want, "%s:%u: %s", conf_path, line, start);
	else
		snprintf(want, sizeof want, "%s: %s", conf_path, start);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "got:  %s\nwant: %s...", err, want);
	if (contains != NULL)
		cr_assert_not_null(strstr(err, contains), "got: %s\nwant it to contain: %s", err, contains);
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	/* a failed load leaves nothing to free, but freeing must be safe */
	cr_assert_eq(c.n_ws_sections, 0);
	cr_assert_null(c.ws_sections);
	mc_config_free(&c);
}

/* ---- configuration: valid files ---- */

Test(config, full_file_every_key, .init = setup, .fini = teardown)
{
	write_conf("# multicad configuration\n"
		   "[daemon]\n"
		   "server_url = https://multica.example.com/\n"
		   "token_file = /etc/multicad/token         ; mode 0600\n"
		   "daemon_id = host-7.example_A\n"
		   "device_name = build 7\n"
		   "workspaces = " WS2 " " WS1 "\n"
		   "exclude_workspaces = " WS3 "\n"
		   "heartbeat_interval = 250ms\n"
		   "profile_sync_interval = 1m30s\n"
		   "workspace_sync_interval = 1h\n"
		   "state_dir = /srv/multicad\n"
		   "control_socket = /run/mc.sock\n"
		   "stop_timeout = 3s\n"
		   "http_timeout = 45s\n"
		   "worker_ping_interval = 2s\n"
		   "worker_liveness_timeout = 7s\n"
		   "restart_backoff_min = 500ms\n"
		   "restart_backoff_max = 2m\n"
		   "log_level = debug\n"
		   "\n"
		   "[providers]\n"
		   "claude = /opt/claude/bin/claude\n"
		   "codex = codex\n"
		   "\n"
		   "[workspace " WS1 "]\n"
		   "profile_command." PR2 " = /opt/bin/two\n"
		   "profile_command." PR1 " = /opt/bin/ccms\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.path, conf_path);
	cr_assert_str_eq(c.server_url, "https://multica.example.com");
	cr_assert_str_eq(c.token_file, "/etc/multicad/token");
	cr_assert_str_eq(c.daemon_id, "host-7.example_A");
	cr_assert_str_eq(c.daemon_id_file, "");
	cr_assert_str_eq(c.device_name, "build 7");
	cr_assert_not(c.all_workspaces);
	cr_assert_eq(c.n_workspaces, 2);
	cr_assert_str_eq(c.workspaces[0], WS1, "sorted");
	cr_assert_str_eq(c.workspaces[1], WS2);
	cr_assert_eq(c.n_exclude, 1);
	cr_assert_str_eq(c.exclude[0], WS3);
	cr_assert_eq(c.heartbeat_interval_ms, 250);
	cr_assert_eq(c.profile_sync_interval_ms, 90000);
	cr_assert_eq(c.workspace_sync_interval_ms, 3600000);
	cr_assert_str_eq(c.state_dir, "/srv/multicad");
	cr_assert_str_eq(c.control_socket, "/run/mc.sock");
	cr_assert_eq(c.stop_timeout_ms, 3000);
	cr_assert_eq(c.http_timeout_ms, 45000);
	cr_assert_eq(c.worker_ping_interval_ms, 2000);
	cr_assert_eq(c.worker_liveness_timeout_ms, 7000);
	cr_assert_eq(c.restart_backoff_min_ms, 500);
	cr_assert_eq(c.restart_backoff_max_ms, 120000);
	cr_assert_eq(c.log_level, MC_LOG_DEBUG);
	cr_assert(c.providers_section);
	cr_assert_not(c.providers_default);
	cr_assert_eq(c.n_providers, 2);
	cr_assert_str_eq(c.providers[0].key, "claude");
	cr_assert_str_eq(c.providers[0].command, "/opt/claude/bin/claude");
	cr_assert_str_eq(c.providers[1].key, "codex");
	cr_assert_str_eq(c.providers[1].command, "codex");
	cr_assert_eq(c.n_ws_sections, 1);
	const struct mc_ws_section *s = mc_config_ws_section(&c, WS1);
	cr_assert_not_null(s);
	cr_assert_eq(s->line, 26);
	cr_assert_eq(s->n_overrides, 2);
	cr_assert_str_eq(s->overrides[0].profile_id, PR1, "sorted by profile id");
	cr_assert_str_eq(s->overrides[0].path, "/opt/bin/ccms");
	cr_assert_str_eq(s->overrides[1].profile_id, PR2);
	cr_assert_str_eq(s->overrides[1].path, "/opt/bin/two");
	cr_assert_null(mc_config_ws_section(&c, WS2));
	cr_assert(mc_config_wants_workspace(&c, WS1));
	cr_assert(mc_config_wants_workspace(&c, WS2));
	cr_assert_not(mc_config_wants_workspace(&c, WS3));
	mc_config_free(&c);
	cr_assert_null(c.workspaces, "zeroed");
	mc_config_free(&c); /* twice is harmless */
	mc_config_free(NULL);
}

Test(config, defaults, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON);
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.server_url, "http://127.0.0.1:8080");
	cr_assert_str_eq(c.daemon_id, "", "resolved later");
	cr_assert_str_eq(c.daemon_id_file, "/var/lib/multicad/daemon.id");
	char host[MC_NAME_MAX] = "";
	cr_assert_eq(gethostname(host, sizeof host - 1), 0);
	cr_assert_str_eq(c.device_name, host);
	cr_assert(c.all_workspaces);
	cr_assert_eq(c.n_workspaces, 0);
	cr_assert_eq(c.n_exclude, 0);
	cr_assert_eq(c.heartbeat_interval_ms, 15000);
	cr_assert_eq(c.profile_sync_interval_ms, 30000);
	cr_assert_eq(c.workspace_sync_interval_ms, 300000);
	cr_assert_str_eq(c.state_dir, "/var/lib/multicad");
	cr_assert_str_eq(c.control_socket, "/run/multicad/control.sock");
	cr_assert_eq(c.stop_timeout_ms, 10000);
	cr_assert_eq(c.http_timeout_ms, 30000);
	cr_assert_eq(c.worker_ping_interval_ms, 5000);
	cr_assert_eq(c.worker_liveness_timeout_ms, 20000);
	cr_assert_eq(c.restart_backoff_min_ms, 1000);
	cr_assert_eq(c.restart_backoff_max_ms, 60000);
	cr_assert_eq(c.log_level, MC_LOG_INFO);
	cr_assert_not(c.providers_section);
	cr_assert(c.providers_default);
	/* The families with a task backend, and no other (they would never
	 * register). */
	cr_assert_eq(c.n_providers, 2);
	cr_assert_str_eq(c.providers[0].key, "claude");
	cr_assert_str_eq(c.providers[0].command, "claude");
	cr_assert_str_eq(c.providers[1].key, "codex");
	cr_assert_str_eq(c.providers[1].command, "codex");
	cr_assert_eq(c.n_ws_sections, 0);
	cr_assert_null(mc_config_ws_section(&c, WS1));
	cr_assert(mc_config_wants_workspace(&c, WS1));
	mc_config_free(&c);
}

Test(config, daemon_id_file_follows_state_dir, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "state_dir = /srv/mc\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.daemon_id_file, "/srv/mc/daemon.id");
	mc_config_free(&c);
	write_conf(MIN_DAEMON "state_dir = /srv/mc\ndaemon_id_file = /etc/multicad/id\n");
	load_ok(&c);
	cr_assert_str_eq(c.daemon_id_file, "/etc/multicad/id");
	mc_config_free(&c);
}

Test(config, syntax_variants, .init = setup, .fini = teardown)
{
	/* BOM, CRLF, indented header, inline and full-line comments, blank
	 * lines, empty exclude list, upper-case UUIDs folded to lower case. */
	write_conf("\xEF\xBB\xBF; comment\r\n"
		   "  [daemon]   ; the main section\r\n"
		   "server_url = http://localhost:9\r\n"
		   "# another comment\r\n"
		   "token_file = /t\r\n"
		   "exclude_workspaces =\r\n"
		   "\r\n"
		   "[workspace   0C6E7A1E-1111-4A4A-8B8B-000000000001 ]\r\n"
		   "profile_command.9F000000-2222-4C4C-9D9D-000000000001 = /x ; why\r\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.token_file, "/t");
	cr_assert_eq(c.n_exclude, 0);
	cr_assert_eq(c.n_ws_sections, 1);
	cr_assert_str_eq(c.ws_sections[0].id, WS1);
	cr_assert_eq(c.ws_sections[0].line, 8);
	cr_assert_str_eq(c.ws_sections[0].overrides[0].profile_id, PR1);
	cr_assert_str_eq(c.ws_sections[0].overrides[0].path, "/x");
	cr_assert_not_null(mc_config_ws_section(&c, "0C6E7A1E-1111-4A4A-8B8B-000000000001"));
	mc_config_free(&c);
}

Test(config, workspace_list_continuation_lines, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON
		   "workspaces = " WS3 "\n"
		   "    " WS1 "\n"
		   "\t" WS2 "\n"
		   "heartbeat_interval = 1s\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(c.n_workspaces, 3);
	cr_assert_str_eq(c.workspaces[0], WS1);
	cr_assert_str_eq(c.workspaces[2], WS3);
	cr_assert_eq(c.heartbeat_interval_ms, 1000);
	mc_config_free(&c);
}

Test(config, many_workspaces, .init = setup, .fini = teardown)
{
	/* a long explicit list on continuation lines, and many sections */
	size_t cap = 1 << 20, used = 0;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	used += (size_t)snprintf(buf, cap, "%s", MIN_DAEMON "workspaces =");
	for (int i = 0; i < 2000; i++)
		used += (size_t)snprintf(buf + used, cap - used, "\n  0c6e7a1e-1111-4a4a-8b8b-%012d", i);
	used += (size_t)snprintf(buf + used, cap - used, "\n");
	for (int i = 0; i < 2000; i += 2)
		used += (size_t)snprintf(buf + used, cap - used,
					 "[workspace 0c6e7a1e-1111-4a4a-8b8b-%012d]\n"
					 "profile_command." PR1 " = /opt/p%d\n", i, i);
	cr_assert_lt(used, cap);
	write_raw(conf_path, buf, used, 0644);
	free(buf);
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(c.n_workspaces, 2000);
	cr_assert_eq(c.n_ws_sections, 1000);
	const struct mc_ws_section *s = mc_config_ws_section(&c, "0c6e7a1e-1111-4a4a-8b8b-000000001998");
	cr_assert_not_null(s);
	cr_assert_str_eq(s->overrides[0].path, "/opt/p1998");
	cr_assert_null(mc_config_ws_section(&c, "0c6e7a1e-1111-4a4a-8b8b-000000001999"));
	cr_assert(mc_config_wants_workspace(&c, "0c6e7a1e-1111-4a4a-8b8b-000000001999"));
	cr_assert_not(mc_config_wants_workspace(&c, "0c6e7a1e-1111-4a4a-8b8b-000000002000"));
	mc_config_free(&c);
}

Test(config, exclude_wins, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "workspaces = all\nexclude_workspaces = " WS2 " " WS1 "\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert(c.all_workspaces);
	cr_assert_not(mc_config_wants_workspace(&c, WS1));
	cr_assert_not(mc_config_wants_workspace(&c, WS2));
	cr_assert(mc_config_wants_workspace(&c, WS3));
	mc_config_free(&c);
}

/* ---- providers ---- */

Test(config, providers_empty_section_means_none, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "[providers]\n; nothing\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert(c.providers_section);
	cr_assert_not(c.providers_default);
	cr_assert_eq(c.n_providers, 0);
	mc_config_free(&c);
}

Test(config, providers_errors, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "[providers]\nClaude = claude\n");
	load_fails(5, "provider \"Claude\"", NULL);
	write_conf(MIN_DAEMON "[providers]\nclaude = bin/claude\n");
	load_fails(5, "claude: \"bin/claude\" must be a command name without '/' or an absolute path", NULL);
	write_conf(MIN_DAEMON "[providers]\nclaude = claude --fast\n");
	load_fails(5, "claude: ", "without arguments");
	write_conf(MIN_DAEMON "[providers]\nclaude = claude\ncodex = codex\nclaude = x\n");
	load_fails(7, "claude: duplicate key (first set on line 5)", NULL);
	write_conf(MIN_DAEMON "[providers]\nclaude =\n");
	load_fails(5, "claude: empty", NULL);
	write_conf(MIN_DAEMON "[providers]\n[daemon]\n");
	load_fails(5, "section [daemon] appears twice (first on line 1)", NULL);
	write_conf(MIN_DAEMON "[providers]\n[providers]\n");
	load_fails(5, "section [providers] appears twice (first on line 4)", NULL);

	char buf[4096];
	size_t used = (size_t)snprintf(buf, sizeof buf, "%s", MIN_DAEMON "[providers]\n");
	for (int i = 0; i <= MC_MAX_BUILTINS; i++)
		used += (size_t)snprintf(buf + used, sizeof buf - used, "p%d = cmd%d\n", i, i);
	write_raw(conf_path, buf, used, 0644);
	load_fails(5 + MC_MAX_BUILTINS, "p32: more than 32 providers", NULL);
}

/* ---- [workspace] sections ---- */

Test(config, workspace_section_errors, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "[workspace nope]\n");
	load_fails(4, "section [workspace nope]: not a workspace UUID", NULL);
	write_conf(MIN_DAEMON "[workspace]\n");
	load_fails(4, "section [workspace] needs a workspace UUID", NULL);
	write_conf(MIN_DAEMON "[workspace " WS1 "]\nprofile_command.abc = /x\n");
	load_fails(5, "profile_command.abc: \"abc\" is not a profile UUID", NULL);
	write_conf(MIN_DAEMON "[workspace " WS1 "]\nprofile_command." PR1 " = bin/x\n");
	load_fails(5, "profile_command." PR1 ": \"bin/x\" is not an absolute path", NULL);
	write_conf(MIN_DAEMON "[workspace " WS1 "]\nprofile_command." PR1 " = /a\n"
		   "profile_command." PR1 " = /b\n");
	load_fails(6, "profile_command." PR1 ": duplicate key", NULL);
	write_conf(MIN_DAEMON "[workspace " WS1 "]\ncommand = /a\n");
	load_fails(5, "unknown key \"command\" in [workspace " WS1 "]", NULL);
	write_conf(MIN_DAEMON "[workspace " WS1 "]\n\n[workspace " WS2 "]\n[workspace " WS1 "]\n");
	load_fails(7, "section [workspace " WS1 "] appears twice (first on line 4)", NULL);
}

Test(config, test_fault_only_with_test_hooks, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "[workspace " WS1 "]\ntest_fault = crash_on_report\n");
#ifdef MC_TEST_HOOKS
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.ws_sections[0].test_fault, "crash_on_report");
	mc_config_free(&c);
	write_conf(MIN_DAEMON "[workspace " WS1 "]\ntest_fault = this-word-is-much-longer-than-31-chars\n");
	load_fails(5, "test_fault: must be 1 to 31 characters", NULL);
#else
	load_fails(5, "unknown key \"test_fault\"", NULL);
#endif
}

/* ---- errors: file, line, key ---- */

Test(config, unknown_key_and_section, .init = setup, .fini = teardown)
{
	write_conf("[daemon]\nserver_url = http://h\n\n; comment\nfoo = 1\n");
	load_fails(5, "unknown key \"foo\" in [daemon]", NULL);
	write_conf("; c\n\n[dameon]\n");
	load_fails(3, "unknown section [dameon]", NULL);
	write_conf("# c\nserver_url = http://h\n[daemon]\n");
	load_fails(2, "key \"server_url\" outside any section", NULL);
	write_conf(MIN_DAEMON "[daemon\n");
	load_fails(4, "section header without a closing ']'", NULL);
	write_conf(MIN_DAEMON "[daemon] x\n");
	load_fails(4, "unexpected text after the section header", NULL);
}

Test(config, duplicate_key, .init = setup, .fini = teardown)
{
	write_conf("[daemon]\nheartbeat_interval = 5s\nserver_url = http://h\n"
		   "token_file = /t\n\nheartbeat_interval = 6s\n");
	load_fails(6, "heartbeat_interval: duplicate key (first set on line 2)", NULL);
}

Test(config, syntax_error_line, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "; fine\nthis line has no equals sign\nfoo = 1\n");
	load_fails(5, "syntax error: \"this line has no equals sign\"", NULL);
	/* whichever problem comes first in the file is reported */
	write_conf(MIN_DAEMON "heartbeat_interval = 5x\nnonsense\n");
	load_fails(4, "heartbeat_interval: \"5x\" is not a duration", NULL);
	write_conf(MIN_DAEMON "nonsense\nheartbeat_interval = 5x\n");
	load_fails(4, "syntax error: \"nonsense\"", NULL);
}

Test(config, continuation_only_for_lists, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "state_dir = /srv\n   /more\n");
	load_fails(5, "state_dir: an indented line continues this value", NULL);
	/* an indented key right after another key is a continuation too */
	write_conf(MIN_DAEMON "  heartbeat_interval = 5s\n");
	load_fails(4, "token_file: an indented line continues this value", NULL);
}

Test(config, line_too_long_and_nul, .init = setup, .fini = teardown)
{
	char path[400];
	memset(path, 'a', sizeof path);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	write_conf(MIN_DAEMON "state_dir = %s\n", path);
	load_fails(4, "line longer than", NULL);
	static const char with_nul[] = MIN_DAEMON "log_level = de\0bug\n";
	write_raw(conf_path, with_nul, sizeof with_nul - 1, 0644);
	load_fails(4, "line contains a NUL byte", NULL);
}

Test(config, workspace_ids, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "workspaces = " WS1 " not-a-uuid\n");
	load_fails(4, "workspaces: \"not-a-uuid\" is not a workspace UUID", NULL);
	write_conf(MIN_DAEMON "workspaces = " WS1 "," WS2 "\n");
	load_fails(4, "workspaces: ", "is not a workspace UUID (separate IDs with spaces)");
	write_conf(MIN_DAEMON "exclude_workspaces = 1234\n");
	load_fails(4, "exclude_workspaces: \"1234\" is not a workspace UUID", NULL);
	write_conf(MIN_DAEMON "workspaces = all " WS1 "\n");
	load_fails(4, "workspaces: \"all\" cannot be combined with workspace IDs", NULL);
	write_conf(MIN_DAEMON "workspaces = " WS1 "\n  all\n");
	load_fails(5, "workspaces: \"all\" cannot be combined with workspace IDs", NULL);
	write_conf(MIN_DAEMON "workspaces =\n");
	load_fails(4, "workspaces: empty", NULL);
	write_conf(MIN_DAEMON "workspaces = " WS1 " " WS2 "\n  " WS3 "\n  " WS2 "\n");
	load_fails(6, "workspaces: " WS2 " is listed twice", NULL);
	write_conf(MIN_DAEMON "exclude_workspaces = " WS1 " 0C6E7A1E-1111-4A4A-8B8B-000000000001\n");
	load_fails(4, "exclude_workspaces: " WS1 " is listed twice", NULL);
}

Test(config, durations, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "heartbeat_interval = 15x\n");
	load_fails(4, "heartbeat_interval: \"15x\" is not a duration (use ms, s, m or h)", NULL);
	write_conf(MIN_DAEMON "stop_timeout = 15\n");
	load_fails(4, "stop_timeout: \"15\" is not a duration", NULL);
	write_conf(MIN_DAEMON "stop_timeout = 5ms\n");
	load_fails(4, "stop_timeout: \"5ms\" is out of range (10ms to 24h)", NULL);
	write_conf(MIN_DAEMON "workspace_sync_interval = 25h\n");
	load_fails(4, "workspace_sync_interval: \"25h\" is out of range", NULL);
	write_conf(MIN_DAEMON "http_timeout = 2h\n");
	load_fails(4, "http_timeout: \"2h\" is out of range (10ms to 1h)", NULL);
	write_conf(MIN_DAEMON "profile_sync_interval = 99999999999999999999s\n");
	load_fails(4, "profile_sync_interval: \"99999999999999999999s\" is too large", NULL);
	write_conf(MIN_DAEMON "heartbeat_interval = 10ms\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(c.heartbeat_interval_ms, 10, "10ms is the floor, for tests");
	mc_config_free(&c);
}

Test(config, liveness_must_exceed_ping, .init = setup, .fini = teardown)
{
	/* ping given, liveness default 20s */
	write_conf(MIN_DAEMON "worker_ping_interval = 20s\n");
	load_fails(4, "worker_ping_interval: 20s must be strictly less than worker_liveness_timeout (20s)", NULL);
	/* liveness given after ping */
	write_conf(MIN_DAEMON "worker_ping_interval = 1s\nworker_liveness_timeout = 500ms\n");
	load_fails(5, "worker_liveness_timeout: 500ms must be strictly greater than worker_ping_interval (1s)", NULL);
	write_conf(MIN_DAEMON "worker_liveness_timeout = 100ms\nworker_ping_interval = 50ms\n");
	struct mc_config c;
	load_ok(&c);
	mc_config_free(&c);
}

Test(config, backoff_min_le_max, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "restart_backoff_min = 2m\n");
	load_fails(4, "restart_backoff_min: 2m must be less than or equal to restart_backoff_max (1m)", NULL);
	write_conf(MIN_DAEMON "restart_backoff_min = 5s\nrestart_backoff_max = 1s\n");
	load_fails(5, "restart_backoff_max: 1s must be greater than or equal to restart_backoff_min (5s)", NULL);
	write_conf(MIN_DAEMON "restart_backoff_min = 5s\nrestart_backoff_max = 5s\n");
	struct mc_config c;
	load_ok(&c);
	mc_config_free(&c);
}

Test(config, paths, .init = setup, .fini = teardown)
{
	write_conf("[daemon]\nserver_url = http://h\ntoken_file = etc/token\n");
	load_fails(3, "token_file: \"etc/token\" is not an absolute path", NULL);
	write_conf(MIN_DAEMON "state_dir = var/lib\n");
	load_fails(4, "state_dir: \"var/lib\" is not an absolute path", NULL);
	write_conf(MIN_DAEMON "control_socket = run/x.sock\n");
	load_fails(4, "control_socket: \"run/x.sock\" is not an absolute path", NULL);
	write_conf(MIN_DAEMON "daemon_id_file = ./id\n");
	load_fails(4, "daemon_id_file: \"./id\" is not an absolute path", NULL);
	char sock[120];
	memset(sock, 's', sizeof sock);
	sock[0] = '/';
	sock[sizeof sock - 1] = '\0';
	write_conf(MIN_DAEMON "control_socket = %s\n", sock);
	load_fails(4, "control_socket: ", "too long for a unix socket path");
}

Test(config, urls, .init = setup, .fini = teardown)
{
	static const struct {
		const char *url, *why;
	} bad[] = {
		{ "ftp://h.example.com", "must start with http:// or https://" },
		{ "multica.example.com", "must start with http:// or https://" },
		{ "https://h.example.com/api", "must not have a path" },
		{ "https://h.example.com//", "must not have a path" },
		{ "https://user:pw@h.example.com", "must not contain credentials" },
		{ "https://user@h.example.com", "must not contain credentials" },
		{ "https://h.example.com/?a=b", "must not have a query or fragment" },
		{ "https://h.example.com#frag", "must not have a query or fragment" },
		{ "http://", "" },
		{ "http://h .com", "contains blanks" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_conf("[daemon]\ntoken_file = /t\nserver_url = %s\n", bad[i].url);
		char start[256];
		snprintf(start, sizeof start, "server_url: \"%s\" ", bad[i].url);
		load_fails(3, start, bad[i].why);
	}
	write_conf("[daemon]\ntoken_file = /t\nserver_url = HTTPS://Example.com:8443/\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(strncmp(c.server_url, "https://", 8), 0, "%s", c.server_url);
	cr_assert_eq(c.server_url[strlen(c.server_url) - 1], '3', "no trailing slash: %s", c.server_url);
	mc_config_free(&c);
}

Test(config, required_keys, .init = setup, .fini = teardown)
{
	write_conf("[daemon]\ntoken_file = /t\n");
	load_fails(0, "server_url is required", NULL);
	write_conf("[daemon]\nserver_url = http://h\n");
	load_fails(0, "token_file is required", NULL);
	write_raw(conf_path, "", 0, 0644);
	load_fails(0, "server_url is required", NULL);
}

Test(config, daemon_id_rules, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "daemon_id = abc\ndaemon_id_file = /var/lib/x/id\n");
	load_fails(5, "daemon_id_file: give either daemon_id or daemon_id_file, not both (the other is on line 4)", NULL);
	write_conf(MIN_DAEMON "daemon_id_file = /var/lib/x/id\n\ndaemon_id = abc\n");
	load_fails(6, "daemon_id: give either daemon_id or daemon_id_file, not both (the other is on line 4)", NULL);
	write_conf(MIN_DAEMON "daemon_id = has space\n");
	load_fails(4, "daemon_id: \"has space\" must be 1 to 63 characters", NULL);
	write_conf(MIN_DAEMON "daemon_id = a/b\n");
	load_fails(4, "daemon_id: ", NULL);
	char id[80];
	memset(id, 'x', sizeof id);
	id[64] = '\0';
	write_conf(MIN_DAEMON "daemon_id = %s\n", id);
	load_fails(4, "daemon_id: ", "must be 1 to 63");
	id[63] = '\0';
	write_conf(MIN_DAEMON "daemon_id = %s\n", id);
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.daemon_id, id);
	cr_assert_str_eq(c.daemon_id_file, "");
	char err[256] = "";
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(c.daemon_id, id, "a given daemon_id is kept");
	mc_config_free(&c);
}

Test(config, other_values, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "log_level = verbose\n");
	load_fails(4, "log_level: \"verbose\" is not one of debug, info, warn, error", NULL);
	write_conf(MIN_DAEMON "device_name =\n");
	load_fails(4, "device_name: empty", NULL);
}

Test(config, the_file_itself, .init = setup, .fini = teardown)
{
	struct mc_config c;
	char err[512] = "";
	char want[256];
	errno = 0;
	cr_assert_eq(mc_config_load(conf_path, &c, err, sizeof err), -1);
	cr_assert_eq(errno, ENOENT);
	snprintf(want, sizeof want, "%s: cannot open: %s", conf_path, strerror(ENOENT));
	cr_assert_str_eq(err, want);
	mc_config_free(&c);

	errno = 0;
	cr_assert_eq(mc_config_load(tmpdir, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: not a regular file", tmpdir);
	cr_assert_str_eq(err, want);

	char fifo[128];
	snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(mc_config_load(fifo, &c, err, sizeof err), -1, "a FIFO neither blocks nor loads");
	snprintf(want, sizeof want, "%s: not a regular file", fifo);
	cr_assert_str_eq(err, want);
}

/* ---- printing ---- */

Test(config, print_round_trip, .init = setup, .fini = teardown)
{
	write_raw(token_path, "secret-token-value\n", 19, 0600);
	write_conf("[daemon]\nserver_url = http://127.0.0.1:1/\ntoken_file = %s\n"
		   "state_dir = %s/state\nheartbeat_interval = 1m30s\n"
		   "workspaces = " WS1 " " WS2 "\nexclude_workspaces = " WS3 "\n"
		   "[providers]\n"
		   "[workspace " WS2 "]\nprofile_command." PR1 " = /opt/x\n"
		   "[workspace " WS1 "]\n",
		   token_path, tmpdir);
	struct mc_config a, b;
	load_ok(&a);
	char err[256] = "";
	cr_assert_eq(mc_config_resolve_daemon_id(&a, err, sizeof err), 0, "%s", err);

	char out[128];
	snprintf(out, sizeof out, "%s/printed.conf", tmpdir);
	FILE *f = fopen(out, "we");
	cr_assert_not_null(f);
	mc_config_print(&a, f);
	cr_assert_eq(fclose(f), 0);

	char text[8192];
	f = fopen(out, "re");
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	cr_assert_null(strstr(text, "secret-token-value"), "the token is never printed");
	cr_assert_not_null(strstr(text, "heartbeat_interval = 1m30s\n"), "%s", text);
	cr_assert_not_null(strstr(text, "stop_timeout = 10s  ; default\n"), "%s", text);
	cr_assert_not_null(strstr(text, a.daemon_id));
	cr_assert_lt(strstr(text, "[workspace " WS1 "]"), strstr(text, "[workspace " WS2 "]"),
		     "sections sorted");

	cr_assert_eq(mc_config_load(out, &b, err, sizeof err), 0, "printed output reloads: %s\n%s", err, text);
	cr_assert_str_eq(b.server_url, a.server_url);
	cr_assert_str_eq(b.daemon_id_file, a.daemon_id_file);
	cr_assert_eq(b.heartbeat_interval_ms, a.heartbeat_interval_ms);
	cr_assert_eq(b.n_workspaces, 2);
	cr_assert_eq(b.n_exclude, 1);
	cr_assert_eq(b.n_providers, 0);
	cr_assert(b.providers_section);
	cr_assert_eq(b.n_ws_sections, 2);
	cr_assert_str_eq(b.ws_sections[1].overrides[0].path, "/opt/x");
	mc_config_free(&a);
	mc_config_free(&b);
}

/* ---- token file ---- */

static void load_with_token(struct mc_config *c)
{
	write_conf("[daemon]\nserver_url = http://h\ntoken_file = %s\n", token_path);
	load_ok(c);
}

Test(config, token_check, .init = setup, .fini = teardown)
{
	struct mc_config c;
	load_with_token(&c);
	char err[512] = "";

	cr_assert_eq(mc_config_token_check(&c, err, sizeof err), -1, "missing");
	cr_assert_not_null(strstr(err, token_path), "%s", err);

	write_raw(token_path, "mul_abcdef\n", 11, 0644);
	err[0] = '\0';
	errno = 0;
	cr_assert_eq(mc_config_token_check(&c, err, sizeof err), -1, "0644 refused");
	cr_assert_eq(errno, EPERM);
	cr_assert_not_null(strstr(err, token_path), "names the file: %s", err);
	cr_assert_not_null(strstr(err, "group or others"), "%s", err);

	write_raw(token_path, "mul_abcdef\n", 11, 0600);
	cr_assert_eq(mc_config_token_check(&c, err, sizeof err), 0, "%s", err);
	write_raw(token_path, "mul_abcdef\n", 11, 0400);
	cr_assert_eq(mc_config_token_check(&c, err, sizeof err), 0, "0400 is stricter: %s", err);

	write_raw(token_path, " \n", 2, 0600);
	err[0] = '\0';
	cr_assert_eq(mc_config_token_check(&c, err, sizeof err), -1, "empty refused");
	cr_assert_not_null(strstr(err, token_path), "%s", err);
	cr_assert_not_null(strstr(err, "empty"), "%s", err);
	mc_config_free(&c);
}

/* ---- daemon id file ---- */

Test(config, daemon_id_file_created_then_reused, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "state_dir = %s/state\n", tmpdir);
	struct mc_config c;
	load_ok(&c);
	char want[128];
	snprintf(want, sizeof want, "%s/state/daemon.id", tmpdir);
	cr_assert_str_eq(c.daemon_id_file, want);

	char err[512] = "";
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), 0, "%s", err);
	cr_assert(mc_is_uuid(c.daemon_id), "%s", c.daemon_id);
	cr_assert_eq(c.daemon_id[14], '4', "version 4: %s", c.daemon_id);
	cr_assert(strchr("89ab", c.daemon_id[19]) != NULL, "RFC 4122 variant: %s", c.daemon_id);
	char first[MC_ID_MAX];
	strlcpy(first, c.daemon_id, sizeof first);

	struct stat st;
	cr_assert_eq(stat(want, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	char dir[128];
	snprintf(dir, sizeof dir, "%s/state", tmpdir);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "dir mode %o", st.st_mode & 07777);
	mc_config_free(&c);

	/* second run: same id, and no temp files left behind */
	load_ok(&c);
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(c.daemon_id, first);
	mc_config_free(&c);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
	cr_assert_eq(system(cmd), 0, "only daemon.id in %s", dir);
}

Test(config, daemon_id_file_existing_and_bad, .init = setup, .fini = teardown)
{
	char idf[128];
	snprintf(idf, sizeof idf, "%s/id", tmpdir);
	write_conf(MIN_DAEMON "daemon_id_file = %s\n", idf);
	struct mc_config c;
	load_ok(&c);
	char err[512] = "";

	write_raw(idf, "  my-host.1\n\n", 13, 0644);
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(c.daemon_id, "my-host.1", "trimmed");

	write_raw(idf, "not valid!\n", 11, 0600);
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, idf), "%s", err);
	write_raw(idf, "", 0, 0600);
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), -1, "empty file refused");
	mc_config_free(&c);

	/* the parent of the parent is missing: a clear error, nothing created */
	write_conf(MIN_DAEMON "daemon_id_file = %s/a/b/id\n", tmpdir);
	load_ok(&c);
	errno = 0;
	cr_assert_eq(mc_config_resolve_daemon_id(&c, err, sizeof err), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_not_null(strstr(err, "cannot create"), "%s", err);
	mc_config_free(&c);
}

/* ---- every problem of a file at once (multicad -t, reloads) ---- */

/* mc_config_check on conf_path: fails, and its problems are exactly want
 * (n of them, in order): "<conf_path>:<line>: <start>..." (line 0: no line);
 * errno is the first one's. */
struct want_problem {
	unsigned line;
	const char *start;
};

static void check_fails(const struct want_problem *want, size_t n, int first_errno)
{
	struct mc_config c;
	struct mc_config_problems pr;
	errno = 0;
	cr_assert_eq(mc_config_check(conf_path, &c, &pr), -1, "accepted");
	cr_assert_eq(errno, first_errno, "errno of the first problem");
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	mc_config_problems_print(&pr, conf_path, f);
	cr_assert_eq(fclose(f), 0);
	size_t k = 0;
	for (char *line = text, *nl; *line != '\0'; line = nl + 1, k++) {
		nl = strchr(line, '\n');
		cr_assert_not_null(nl, "one problem a line:\n%s", text);
		*nl = '\0';
		cr_assert_lt(k, n, "problem %zu not expected: %s", k + 1, line);
		char start[512];
		if (want[k].line > 0)
			snprintf(start, sizeof start, "%s:%u: %s", conf_path, want[k].line, want[k].start);
		else
			snprintf(start, sizeof start, "%s: %s", conf_path, want[k].start);
		cr_assert_eq(strncmp(line, start, strlen(start)), 0, "problem %zu:\n got: %s\nwant: %s...",
			     k + 1, line, start);
		cr_assert_eq(pr.v[k].line, want[k].line);
	}
	cr_assert_eq(k, n, "%zu problems, want %zu", k, n);
	cr_assert_eq(pr.n, n);
	free(text);
	mc_config_problems_free(&pr);
	mc_config_free(&c);
}

Test(config, check_reports_five_mistakes_on_five_lines, .init = setup, .fini = teardown)
{
	write_raw(token_path, "mul_abcdef\n", 11, 0600);
	write_conf("[daemon]\n"                                   /* 1 */
		   "server_url = http://127.0.0.1:8080\n"         /* 2 */
		   "token_file = %s\n"                            /* 3 */
		   "heartbeat_interval = 15x\n"                   /* 4: bad value */
		   "colour = blue\n"                              /* 5: unknown key */
		   "heartbeat_interval = 10s\n"                   /* 6: duplicate */
		   "this line has no equals sign\n"               /* 7: syntax */
		   "[providers]\n"                                /* 8 */
		   "claude = bin/claude\n",                       /* 9: bad value */
		   token_path);
	static const struct want_problem want[] = {
		{ 4, "heartbeat_interval: \"15x\" is not a duration" },
		{ 5, "unknown key \"colour\" in [daemon]" },
		{ 6, "heartbeat_interval: duplicate key (first set on line 4)" },
		{ 7, "syntax error: \"this line has no equals sign\"" },
		{ 9, "claude: \"bin/claude\" must be a command name without '/'" },
	};
	check_fails(want, sizeof want / sizeof want[0], EINVAL);

	/* a reload gets them all in one message, the first one first */
	struct mc_config c;
	char err[2048] = "";
	cr_assert_eq(mc_config_load(conf_path, &c, err, sizeof err), -1);
	char first[512];
	snprintf(first, sizeof first, "%s:4: heartbeat_interval: ", conf_path);
	cr_assert_eq(strncmp(err, first, strlen(first)), 0, "%s", err);
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	const char *p = err;
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char at[512];
		snprintf(at, sizeof at, "%s:%u: %s", conf_path, want[i].line, want[i].start);
		const char *hit = strstr(p, at);
		cr_assert_not_null(hit, "problem %zu missing from: %s", i + 1, err);
		p = hit + 1;
	}
	cr_assert_not_null(strstr(err, "; "), "joined with \"; \": %s", err);
}

/* Sections: a rejected header's keys are not looked at; whole-file
 * problems (no line) come last; the token file is checked too. */
Test(config, check_sections_required_keys_and_token, .init = setup, .fini = teardown)
{
	write_raw(token_path, "mul_abcdef\n", 11, 0644);
	write_conf("[daemon]\n"                                   /* 1 */
		   "token_file = %s\n"                            /* 2: mode 0644 */
		   "workspaces = " WS1 " not-a-uuid\n"            /* 3 */
		   "[workspace nope]\n"                           /* 4 */
		   "profile_command.x = y\n"                      /* 5: skipped */
		   "[dameon]\n"                                   /* 6 */
		   "foo = 1\n"                                    /* 7: skipped */
		   "[daemon]\n"                                   /* 8 */
		   "bar = 2\n"                                    /* 9: skipped */
		   "  continued\n"                                /* 10: skipped */
		   "[providers]\n"                                /* 11 */
		   "Bad = x\n"                                    /* 12 */
		   "   more\n",                                   /* 13: its continuation */
		   token_path);
	static const struct want_problem want[] = {
		{ 2, "token_file: " },
		{ 3, "workspaces: \"not-a-uuid\" is not a workspace UUID" },
		{ 4, "section [workspace nope]: not a workspace UUID" },
		{ 6, "unknown section [dameon]" },
		{ 8, "section [daemon] appears twice (first on line 1)" },
		{ 12, "provider \"Bad\"" },
		{ 0, "server_url is required" },
	};
	check_fails(want, sizeof want / sizeof want[0], EPERM);
}

/* Continuation lines and rejected values do not cascade: no "empty" for a
 * rejected list, no order complaint against a rejected duration, no
 * "required" for a rejected server_url. */
Test(config, check_no_cascades, .init = setup, .fini = teardown)
{
	write_conf("[daemon]\n"                                   /* 1 */
		   "server_url = ftp://x\n"                       /* 2 */
		   "token_file = relative\n"                      /* 3 */
		   "workspaces = nope\n"                          /* 4 */
		   "    " WS1 "\n"                                /* 5: skipped */
		   "worker_ping_interval = 1x\n"                  /* 6 */
		   "worker_liveness_timeout = 1s\n"               /* 7: 5s default is not the point */
		   "state_dir = /srv\n"                           /* 8 */
		   "   /more\n");                                 /* 9 */
	static const struct want_problem want[] = {
		{ 2, "server_url: \"ftp://x\" must start with http:// or https://" },
		{ 3, "token_file: \"relative\" is not an absolute path" },
		{ 4, "workspaces: \"nope\" is not a workspace UUID" },
		{ 6, "worker_ping_interval: \"1x\" is not a duration" },
		{ 9, "state_dir: an indented line continues this value" },
	};
	check_fails(want, sizeof want / sizeof want[0], EINVAL);
}

/* Hundreds of problems: MC_CONFIG_MAX_PROBLEMS kept, the rest counted; a
 * reload's message holds what fits and says how many more. */
Test(config, check_many_problems_bounded, .init = setup, .fini = teardown)
{
	write_raw(token_path, "mul_abcdef\n", 11, 0600);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	fprintf(f, "[daemon]\nserver_url = http://127.0.0.1:8080\ntoken_file = %s\n", token_path);
	for (int i = 0; i < 150; i++)
		fprintf(f, "unknown_%d = 1\n", i);
	cr_assert_eq(fclose(f), 0);
	write_raw(conf_path, text, len, 0644);
	free(text);
	struct mc_config c;
	struct mc_config_problems pr;
	cr_assert_eq(mc_config_check(conf_path, &c, &pr), -1);
	cr_assert_eq(pr.n, MC_CONFIG_MAX_PROBLEMS);
	cr_assert_eq(pr.dropped, 150 - MC_CONFIG_MAX_PROBLEMS);
	mc_config_problems_free(&pr);
	char err[1024];
	cr_assert_eq(mc_config_load(conf_path, &c, err, sizeof err), -1);
	char first[512];
	snprintf(first, sizeof first, "%s:4: unknown key \"unknown_0\" in [daemon]; ", conf_path);
	cr_assert_eq(strncmp(err, first, strlen(first)), 0, "%s", err);
	cr_assert_not_null(strstr(err, " more"), "%s", err);
	cr_assert_lt(strlen(err), sizeof err - 1, "whole problems only, then the count: %s", err);
	mc_config_free(&c);
}

/* Lines inih cannot parse: each one reported (inih itself reports only the
 * first); an unreadable header's keys are skipped; a key's value may hold
 * an inline comment, a key name may not. */
Test(config, check_every_syntax_error_and_unreadable_line, .init = setup, .fini = teardown)
{
	char long_header[300];
	memset(long_header, 'x', sizeof long_header);
	long_header[0] = '[';
	long_header[sizeof long_header - 2] = ']';
	long_header[sizeof long_header - 1] = '\0';
	write_raw(token_path, "mul_abcdef\n", 11, 0600);
	write_conf("[daemon]\n"                                   /* 1 */
		   "server_url = http://127.0.0.1:8080\n"         /* 2 */
		   "token_file = %s\n"                            /* 3 */
		   "first nonsense\n"                             /* 4 */
		   "log_level = debug ; an inline comment\n"      /* 5: fine */
		   "second ; = nonsense\n"                        /* 6 */
		   "%s\n"                                         /* 7: too long */
		   "ignored = in an unreadable section\n"         /* 8 */
		   "[providers]\n"                                /* 9 */
		   "third nonsense\n"                             /* 10 */
		   "claude = bin/claude\n",                       /* 11 */
		   token_path, long_header);
	static const struct want_problem want[] = {
		{ 4, "syntax error: \"first nonsense\"" },
		{ 6, "syntax error: \"second ; = nonsense\"" },
		{ 7, "line longer than 199 characters" },
		{ 10, "syntax error: \"third nonsense\"" },
		{ 11, "claude: \"bin/claude\" must be a command name without '/'" },
	};
	check_fails(want, sizeof want / sizeof want[0], EINVAL);
}

/* ---- limits, each tested one past its edge ---- */

/* MIN_DAEMON, then lines of filler up to exactly size bytes, then tail. */
static void write_sized(size_t size, const char *tail)
{
	char *buf = malloc(size);
	cr_assert_not_null(buf);
	size_t head = strlen(MIN_DAEMON), nt = strlen(tail);
	cr_assert_lt(head + nt, size);
	memcpy(buf, MIN_DAEMON, head);
	memset(buf + head, '\n', size - head - nt);
	memcpy(buf + size - nt, tail, nt);
	write_raw(conf_path, buf, size, 0644);
	free(buf);
}

Test(config, file_of_exactly_the_size_limit_loads_one_byte_more_is_refused_by_name,
     .init = setup, .fini = teardown)
{
	/* The most lines a file can hold: newlines all the way, and a problem on
	 * the very last one still gets its line number (4194303: the three of
	 * MIN_DAEMON, then one per byte). */
	write_sized(MC_CONFIG_FILE_MAX, "x\n");
	load_fails((unsigned)(MC_CONFIG_FILE_MAX - strlen(MIN_DAEMON) - 2 + 3 + 1),
		   "syntax error: \"x\"", NULL);
	write_sized(MC_CONFIG_FILE_MAX, ";\n");
	struct mc_config c;
	load_ok(&c);
	mc_config_free(&c);
	write_sized(MC_CONFIG_FILE_MAX + 1, ";\n");
	load_fails(0, "larger than the 4194304-byte limit of a configuration file", NULL);
}

Test(config, line_of_199_characters_loads_200_are_refused_by_name,
     .init = setup, .fini = teardown)
{
	char line[201];
	memset(line, 'x', sizeof line);
	line[0] = ';';
	line[199] = '\0';
	write_conf(MIN_DAEMON "%s\n", line);
	struct mc_config c;
	load_ok(&c);
	mc_config_free(&c);
	line[199] = 'x';
	line[200] = '\0';
	write_conf(MIN_DAEMON "%s\n", line);
	load_fails(4, "line longer than 199 characters", NULL);
}

/* A [workspace] section of n profile_command lines, each path "/" plus
 * path_len - 1 times fill. */
static void write_overrides(size_t n, size_t path_len, char fill)
{
	size_t cap = 4096 + n * 256, used = 0;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	used += (size_t)snprintf(buf, cap, MIN_DAEMON "[workspace " WS1 "]\n");
	for (size_t i = 0; i < n; i++) {
		used += (size_t)snprintf(buf + used, cap - used,
					 "profile_command.9f000000-2222-4c4c-9d9d-%012zu = /", i);
		memset(buf + used, fill, path_len - 1);
		used += path_len - 1;
		buf[used++] = '\n';
	}
	cr_assert_lt(used, cap);
	write_raw(conf_path, buf, used, 0644);
	free(buf);
}

Test(config, workspace_holds_256_profile_commands_257_are_refused_by_name,
     .init = setup, .fini = teardown)
{
	write_overrides(MC_MAX_OVERRIDES, 20, 'p');
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(mc_config_ws_section(&c, WS1)->n_overrides, MC_MAX_OVERRIDES);
	mc_config_free(&c);
	write_overrides(MC_MAX_OVERRIDES + 1, 20, 'p');
	load_fails(4 + MC_MAX_OVERRIDES + 1, "profile_command.9f000000-2222-4c4c-9d9d-000000000256: "
		   "more than 256 profile_command entries in one workspace", NULL);
}

/* The paths travel to the worker in one CONFIG frame: 256 of the longest
 * a line holds fit, but not when every character needs escaping. The
 * 150th such entry takes the section past MC_IPC_OVERRIDES_JSON_MAX:
 * 1 + 329 x 150 = 49351 bytes (key 38, colon, path 2 + 1 + 2 x 143). */
Test(config, profile_commands_over_the_config_frame_budget_are_refused_by_name,
     .init = setup, .fini = teardown)
{
	write_overrides(MC_MAX_OVERRIDES, 144, 'p');
	struct mc_config c;
	load_ok(&c);
	const struct mc_ws_section *s = mc_config_ws_section(&c, WS1);
	cr_assert_eq(s->n_overrides, MC_MAX_OVERRIDES);
	cr_assert_leq(mc_ipc_overrides_json_size(s->overrides, s->n_overrides),
		      MC_IPC_OVERRIDES_JSON_MAX);
	mc_config_free(&c);

	write_overrides(MC_MAX_OVERRIDES, 144, '"');
	load_fails(4 + 150, "profile_command.9f000000-2222-4c4c-9d9d-000000000149: the "
		   "profile_command entries of this workspace take 49351 bytes in the worker's "
		   "configuration message, more than its 49152-byte limit", NULL);
}

/* ---- shard = I/N ---- */

Test(config, shard_parses_and_selects_by_a_stable_hash, .init = setup, .fini = teardown)
{
	/* b2sum -l 64 of this id is f88125ef528d394e: little-endian, mod 2 is
	 * 0 and mod 7 is 5. Upper case is the same workspace. */
	const char *id = "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f";
	cr_assert_eq(mc_shard_of(id, 2), 0);
	cr_assert_eq(mc_shard_of(id, 7), 5);
	cr_assert_eq(mc_shard_of("0C6E1F4A-8A51-4D27-9D3C-1B2A3C4D5E6F", 7), 5);
	cr_assert_eq(mc_shard_of(id, 1), 0);

	/* spread: 4000 ids over 4 shards, each within 20% of its share */
	unsigned count[4] = { 0 };
	char ws[40];
	for (int i = 0; i < 4000; i++) {
		snprintf(ws, sizeof ws, "5e000000-0000-4000-8000-%012d", i);
		count[mc_shard_of(ws, 4)]++;
	}
	for (int s = 0; s < 4; s++)
		cr_assert(count[s] > 800 && count[s] < 1200, "shard %d got %u of 4000", s, count[s]);

	struct mc_config c;
	write_conf(MIN_DAEMON "shard = 1/2\n");
	load_ok(&c);
	cr_assert_eq(c.shard_index, 1);
	cr_assert_eq(c.shard_count, 2);
	cr_assert_not(mc_config_wants_workspace(&c, id), "shard 0 of 2 is not ours");
	unsigned mine = 0;
	for (int i = 0; i < 100; i++) {
		snprintf(ws, sizeof ws, "5e000000-0000-4000-8000-%012d", i);
		bool want = mc_config_wants_workspace(&c, ws);
		cr_assert_eq(want, mc_shard_of(ws, 2) == 1, "%s", ws);
		mine += want;
	}
	cr_assert(mine > 20 && mine < 80, "%u of 100", mine);
	mc_config_free(&c);

	write_conf(MIN_DAEMON);
	load_ok(&c);
	cr_assert_eq(c.shard_count, 1, "the default is 0/1: every workspace");
	cr_assert(mc_config_wants_workspace(&c, id));
	mc_config_free(&c);
}

Test(config, shard_errors_name_the_problem, .init = setup, .fini = teardown)
{
	static const struct { const char *v, *want; } bad[] = {
		{ "2/2", "I must be less than N" }, { "0/0", "N must be between 1 and 4096" },
		{ "0/4097", "N must be between 1 and 4096" }, { "1", "is not I/N" },
		{ "-1/2", "is not I/N" }, { "1/2x", "is not I/N" }, { " /2", "is not I/N" },
		{ "a/b", "is not I/N" }, { "99999999999999999999/2", "is not I/N" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_conf(MIN_DAEMON "shard = %s\n", bad[i].v);
		load_fails(4, "shard: ", bad[i].want);
	}
	write_conf(MIN_DAEMON "workspaces = 0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f\nshard = 0/2\n");
	load_fails(5, "shard: needs workspaces = all", NULL);
}

/* ---- the task keys ---- */

Test(config, task_keys_defaults, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "state_dir = /srv/mc\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(c.max_concurrent_tasks, 20);
	cr_assert_eq(c.task_poll_interval_ms, 30000);
	cr_assert_str_eq(c.workspaces_root, "/srv/mc/work", "<state_dir>/work");
	cr_assert_eq(c.task_idle_timeout_ms, 30L * 60000);
	cr_assert_eq(c.task_stop_grace_ms, 10000);
	cr_assert_eq(c.task_drain_timeout_ms, 3600000);
	cr_assert_eq(c.task_retention_ms, 7L * 86400000);
	mc_config_free(&c);
}

Test(config, task_keys_given, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "max_concurrent_tasks = 1000\ntask_poll_interval = 250ms\n"
		   "workspaces_root = /data/work\ntask_idle_timeout = 2h\ntask_stop_grace = 3s\n"
		   "task_drain_timeout = 2d\ntask_retention = 30d\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(c.max_concurrent_tasks, 1000);
	cr_assert_eq(c.task_poll_interval_ms, 250);
	cr_assert_str_eq(c.workspaces_root, "/data/work");
	cr_assert_eq(c.task_idle_timeout_ms, 7200000);
	cr_assert_eq(c.task_stop_grace_ms, 3000);
	cr_assert_eq(c.task_drain_timeout_ms, 2L * 86400000);
	cr_assert_eq(c.task_retention_ms, 30L * 86400000);
	/* multicad -t -d prints them so that they parse back. */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mc_config_print(&c, f);
	fclose(f);
	cr_assert_not_null(strstr(buf, "\nmax_concurrent_tasks = 1000\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\ntask_retention = 30d\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\ntask_poll_interval = 250ms\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\nworkspaces_root = /data/work\n"), "%s", buf);
	mc_config_free(&c);
	write_raw(conf_path, buf, len, 0644);
	load_ok(&c);
	cr_assert_eq(c.task_retention_ms, 30L * 86400000, "the printed file parses back");
	cr_assert_eq(c.max_concurrent_tasks, 1000);
	mc_config_free(&c);
	free(buf);
}

Test(config, task_keys_refused_by_name, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "max_concurrent_tasks = 0\n");
	load_fails(4, "max_concurrent_tasks: 0 is out of range (1 to 1000)", NULL);
	write_conf(MIN_DAEMON "max_concurrent_tasks = 1001\n");
	load_fails(4, "max_concurrent_tasks: 1001 is out of range", NULL);
	write_conf(MIN_DAEMON "max_concurrent_tasks = 20x\n");
	load_fails(4, "max_concurrent_tasks: \"20x\" is not a whole number", NULL);
	write_conf(MIN_DAEMON "max_concurrent_tasks = -3\n");
	load_fails(4, "max_concurrent_tasks: \"-3\" is not a whole number", NULL);
	write_conf(MIN_DAEMON "task_retention = 7days\n");
	load_fails(4, "task_retention: \"7days\" is not a duration", "whole days: 7d");
	write_conf(MIN_DAEMON "task_retention = 401d\n");
	load_fails(4, "task_retention: \"401d\" is out of range (10ms to 400d)", NULL);
	write_conf(MIN_DAEMON "task_retention = 99999999999999999d\n");
	load_fails(4, "task_retention: \"99999999999999999d\" is too large", NULL);
	write_conf(MIN_DAEMON "task_poll_interval = 1d\n");
	load_fails(4, "task_poll_interval: \"1d\" is not a duration", NULL);
	write_conf(MIN_DAEMON "workspaces_root = work\n");
	load_fails(4, "workspaces_root: \"work\" is not an absolute path", NULL);
	write_conf(MIN_DAEMON "task_stop_grace = 2h\n");
	load_fails(4, "task_stop_grace: \"2h\" is out of range (10ms to 1h)", NULL);
}

/* ---- agent_api_listen ---- */

Test(config, agent_api_listen_default_port_and_off, .init = setup, .fini = teardown)
{
	struct mc_config c;
	write_conf(MIN_DAEMON);
	load_ok(&c);
	cr_assert_eq(c.agent_api_port, 19514, "multica's port by default");
	mc_config_free(&c);
	write_conf(MIN_DAEMON "agent_api_listen = 127.0.0.1:0\n");
	load_ok(&c);
	cr_assert_eq(c.agent_api_port, 0, "any free port (tests)");
	mc_config_free(&c);
	write_conf(MIN_DAEMON "agent_api_listen = off\n");
	load_ok(&c);
	cr_assert_eq(c.agent_api_port, MC_AGENT_API_OFF);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mc_config_print(&c, f);
	fclose(f);
	cr_assert_not_null(strstr(buf, "\nagent_api_listen = off\n"), "%s", buf);
	mc_config_free(&c);
	free(buf);
	write_conf(MIN_DAEMON "agent_api_listen = 127.0.0.1:65535\n");
	load_ok(&c);
	buf = NULL;
	f = open_memstream(&buf, &len);
	mc_config_print(&c, f);
	fclose(f);
	cr_assert_not_null(strstr(buf, "\nagent_api_listen = 127.0.0.1:65535\n"), "%s", buf);
	mc_config_free(&c);
	write_raw(conf_path, buf, len, 0644);
	load_ok(&c);
	cr_assert_eq(c.agent_api_port, 65535, "the printed file parses back");
	mc_config_free(&c);
	free(buf);
}

Test(config, agent_api_listen_refused_by_name, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "agent_api_listen = 0.0.0.0:19514\n");
	load_fails(4, "agent_api_listen: \"0.0.0.0:19514\" must be 127.0.0.1:PORT or off", NULL);
	write_conf(MIN_DAEMON "agent_api_listen = localhost:19514\n");
	load_fails(4, "agent_api_listen: \"localhost:19514\" must be 127.0.0.1:PORT or off", NULL);
	write_conf(MIN_DAEMON "agent_api_listen = [::1]:19514\n");
	load_fails(4, "agent_api_listen: \"[::1]:19514\" must be", NULL);
	write_conf(MIN_DAEMON "agent_api_listen = 127.0.0.1:65536\n");
	load_fails(4, "agent_api_listen: \"127.0.0.1:65536\": the port must be 0 to 65535", NULL);
	write_conf(MIN_DAEMON "agent_api_listen = 127.0.0.1:\n");
	load_fails(4, "agent_api_listen: \"127.0.0.1:\": the port must be", NULL);
	write_conf(MIN_DAEMON "agent_api_listen = 127.0.0.1:-1\n");
	load_fails(4, "agent_api_listen: \"127.0.0.1:-1\": the port must be", NULL);
	write_conf(MIN_DAEMON "agent_api_listen = 19514\n");
	load_fails(4, "agent_api_listen: \"19514\" must be 127.0.0.1:PORT or off", NULL);
}
