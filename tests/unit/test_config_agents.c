/* The agents' identity keys of [daemon] (supervisor/config_agents.c) and
 * websocket: defaults, good values, and each mistake named by line and key
 * (bad, inverted, too wide or overlapping ranges, relative paths, an
 * environment file others could write). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "supervisor/config.h"

TestSuite(config_agents, .timeout = 20);

static char tmpdir[64];
static char conf_path[128];

static void setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mc-cfgag-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof conf_path, "%s/multicad.conf", tmpdir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	size_t n = strlen(text);
	cr_assert_eq(write(fd, text, n), (ssize_t)n);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* The smallest valid [daemon] (3 lines), then the extra lines. */
#define MIN_DAEMON "[daemon]\nserver_url = http://127.0.0.1:8080\ntoken_file = /etc/multicad/token\n"

static void write_conf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void write_conf(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof buf);
	write_file(conf_path, buf, 0644);
}

static void load_ok(struct mc_config *c)
{
	char err[1024] = "";
	cr_assert_eq(mc_config_load(conf_path, c, err, sizeof err), 0, "load failed: %s", err);
}

/* Fails with "<conf>:<line>: <start>..." containing contains. */
static void load_fails(unsigned line, const char *start, const char *contains)
{
	struct mc_config c;
	char err[1024] = "";
	cr_assert_eq(mc_config_load(conf_path, &c, err, sizeof err), -1, "accepted; wanted %s", start);
	char want[512];
	snprintf(want, sizeof want, "%s:%u: %s", conf_path, line, start);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "got:  %s\nwant: %s...", err, want);
	if (contains != NULL)
		cr_assert_not_null(strstr(err, contains), "got: %s\nwant: %s", err, contains);
	mc_config_free(&c);
}

Test(config_agents, defaults, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON);
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.agent_user, "multicad-agent");
	cr_assert_not(c.agent_user_given);
	cr_assert_eq(c.agent_uid_lo, 0);
	cr_assert_eq(c.agent_uid_hi, 0);
	cr_assert_eq(c.agent_gid_lo, 62000);
	cr_assert_eq(c.agent_gid_hi, 62999);
	cr_assert_str_eq(c.agent_home_template, "");
	cr_assert_str_eq(c.agent_env_file, "");
	cr_assert_not(c.allow_profile_paths);
	cr_assert(c.websocket);
	mc_config_free(&c);
}

Test(config_agents, every_key_given, .init = setup, .fini = teardown)
{
	char env[128];
	snprintf(env, sizeof env, "%s/agents.env", tmpdir);
	write_file(env, "ANTHROPIC_API_KEY=x\n", 0600);
	write_conf(MIN_DAEMON "agent_user = build_agent-2\nagent_uid_range = 61000-61999\n"
		   "agent_gid_range = 1000-1099\nagent_home_template = /etc/multicad/agent-home\n"
		   "agent_env_file = %s\nallow_profile_paths = yes\nwebsocket = off\n", env);
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.agent_user, "build_agent-2");
	cr_assert(c.agent_user_given);
	cr_assert_eq(c.agent_uid_lo, 61000);
	cr_assert_eq(c.agent_uid_hi, 61999);
	cr_assert_eq(c.agent_gid_lo, 1000);
	cr_assert_eq(c.agent_gid_hi, 1099);
	cr_assert_str_eq(c.agent_home_template, "/etc/multicad/agent-home");
	cr_assert_str_eq(c.agent_env_file, env);
	cr_assert(c.allow_profile_paths);
	cr_assert_not(c.websocket);
	mc_config_free(&c);
}

Test(config_agents, empty_agent_user_is_the_daemons_own, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "agent_user =\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_str_eq(c.agent_user, "");
	cr_assert(c.agent_user_given);
	mc_config_free(&c);
}

Test(config_agents, widest_and_narrowest_ranges, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "agent_uid_range = 4294867295-4294967294\nagent_gid_range = 1000-1000\n");
	struct mc_config c;
	load_ok(&c);
	cr_assert_eq(c.agent_uid_lo, 4294867295u);
	cr_assert_eq(c.agent_uid_hi, 4294967294u);
	cr_assert_eq(c.agent_gid_lo, 1000);
	cr_assert_eq(c.agent_gid_hi, 1000);
	mc_config_free(&c);
}

Test(config_agents, bad_agent_user, .init = setup, .fini = teardown)
{
	static const char *const bad[] = { "Root", "1abc", "-x", "a b", "a/b",
					   "abcdefghijklmnopqrstuvwxyz0123456" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_conf(MIN_DAEMON "agent_user = %s\n", bad[i]);
		load_fails(4, "agent_user: ", "is not a user name");
	}
}

Test(config_agents, bad_ranges, .init = setup, .fini = teardown)
{
	static const struct {
		const char *v, *msg;
	} bad[] = {
		{ "61000", "is not LO-HI" },
		{ "61000-", "is not LO-HI" },
		{ "-61000", "is not LO-HI" },
		{ "61000-61999-62000", "is not LO-HI" },
		{ "61a00-61999", "is not LO-HI" },
		{ " 61000 - 61999", "is not LO-HI" },
		{ "+61000-61999", "is not LO-HI" },
		{ "61000-4294967295", "is not LO-HI" },       /* (uid_t)-1 */
		{ "61000-99999999999", "is not LO-HI" },
		{ "999-1500", "LO must be at least 1000" },
		{ "0-100", "LO must be at least 1000" },
		{ "61999-61000", "LO is greater than HI" },
		{ "100000-200000", "more than 100000" },
		{ "60000-70000", "nobody" },
		{ "65535-65600", "nobody" },
	};
	static const char *const keys[] = { "agent_uid_range", "agent_gid_range" };
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			write_conf(MIN_DAEMON "%s = %s\n", keys[k], bad[i].v);
			char start[64];
			snprintf(start, sizeof start, "%s: ", keys[k]);
			load_fails(4, start, bad[i].msg);
		}
	/* empty: "not set" for uids; gids always have a range */
	write_conf(MIN_DAEMON "agent_gid_range =\n");
	load_fails(4, "agent_gid_range: ", "is not LO-HI");
}

Test(config_agents, overlapping_ranges, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "agent_uid_range = 61000-61999\nagent_gid_range = 61500-62500\n");
	load_fails(5, "agent_gid_range: 61500-62500 overlaps agent_uid_range (61000-61999)", NULL);
	write_conf(MIN_DAEMON "agent_gid_range = 60000-61000\nagent_uid_range = 61000-61999\n");
	load_fails(5, "agent_uid_range: 61000-61999 overlaps agent_gid_range (60000-61000)", NULL);
	/* the gid range left at its default: only the uid range matters */
	write_conf(MIN_DAEMON "agent_uid_range = 62000-62999\n");
	struct mc_config c;
	load_ok(&c);
	mc_config_free(&c);
	/* touching but apart */
	write_conf(MIN_DAEMON "agent_uid_range = 61000-61999\nagent_gid_range = 62000-62001\n");
	load_ok(&c);
	mc_config_free(&c);
}

Test(config_agents, relative_paths, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "agent_home_template = etc/home\n");
	load_fails(4, "agent_home_template: \"etc/home\" is not an absolute path", NULL);
	write_conf(MIN_DAEMON "agent_env_file = ./agents.env\n");
	load_fails(4, "agent_env_file: \"./agents.env\" is not an absolute path", NULL);
}

Test(config_agents, env_file_must_be_safe, .init = setup, .fini = teardown)
{
	char env[128];
	snprintf(env, sizeof env, "%s/agents.env", tmpdir);
	write_conf(MIN_DAEMON "agent_env_file = %s\n", env);
	load_fails(4, "agent_env_file: ", "cannot stat");
	write_file(env, "A=1\n", 0620);
	load_fails(4, "agent_env_file: ", "group or world writable");
	write_file(env, "A=1\n", 0602);
	load_fails(4, "agent_env_file: ", "group or world writable");
	write_file(env, "A=1\n", 0644);
	struct mc_config c;
	load_ok(&c); /* readable by others is the operator's choice */
	mc_config_free(&c);
	if (geteuid() == 0) {
		cr_assert_eq(chown(env, 4242, 4242), 0);
		load_fails(4, "agent_env_file: ", "owned by uid 4242");
	}
	write_conf(MIN_DAEMON "agent_env_file = %s\n", tmpdir);
	load_fails(4, "agent_env_file: ", "not a regular file");
}

Test(config_agents, bad_booleans, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "allow_profile_paths = maybe\n");
	load_fails(4, "allow_profile_paths: \"maybe\" is not true or false", NULL);
	write_conf(MIN_DAEMON "websocket = yes\n");
	load_fails(4, "websocket: \"yes\" is not on or off", NULL);
	static const char *const t[] = { "true", "yes", "on", "1" }, *const f[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		struct mc_config c;
		write_conf(MIN_DAEMON "allow_profile_paths = %s\n", t[i]);
		load_ok(&c);
		cr_assert(c.allow_profile_paths, "%s", t[i]);
		mc_config_free(&c);
		write_conf(MIN_DAEMON "allow_profile_paths = %s\n", f[i]);
		load_ok(&c);
		cr_assert_not(c.allow_profile_paths, "%s", f[i]);
		mc_config_free(&c);
	}
}

/* Printing: every key, marked default or not, and the output parses back
 * to the same values (the empty ones included). */
static char *print_to_string(const struct mc_config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	mc_config_print(c, f);
	fclose(f);
	return text;
}

Test(config_agents, print_round_trip, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON);
	struct mc_config a, b;
	load_ok(&a);
	char *text = print_to_string(&a);
	cr_assert_not_null(strstr(text, "\nagent_user = multicad-agent  ; default\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nagent_uid_range =  ; default\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nagent_gid_range = 62000-62999  ; default\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nallow_profile_paths = false  ; default\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nwebsocket = on  ; default\n"), "%s", text);
	write_file(conf_path, text, 0644);
	load_ok(&b);
	cr_assert_str_eq(b.agent_user, "multicad-agent");
	cr_assert_eq(b.agent_uid_hi, 0);
	cr_assert_eq(b.agent_gid_lo, 62000);
	free(text);
	mc_config_free(&a);
	mc_config_free(&b);

	write_conf(MIN_DAEMON "agent_user =\nagent_uid_range = 61000-61999\n"
		   "agent_home_template = /srv/home\nallow_profile_paths = on\nwebsocket = off\n");
	load_ok(&a);
	text = print_to_string(&a);
	cr_assert_not_null(strstr(text, "\nagent_user =\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nagent_uid_range = 61000-61999\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nagent_home_template = /srv/home\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nallow_profile_paths = true\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nwebsocket = off\n"), "%s", text);
	write_file(conf_path, text, 0644);
	load_ok(&b);
	cr_assert_str_eq(b.agent_user, "");
	cr_assert(b.agent_user_given);
	cr_assert_eq(b.agent_uid_lo, 61000);
	cr_assert_eq(b.agent_uid_hi, 61999);
	cr_assert_str_eq(b.agent_home_template, "/srv/home");
	cr_assert(b.allow_profile_paths);
	cr_assert_not(b.websocket);
	free(text);
	mc_config_free(&a);
	mc_config_free(&b);
}

/* More than 32 [daemon] keys: each one given is marked as given (the set
 * of given keys is 64 bits wide). */
Test(config_agents, keys_past_the_32nd_are_marked_given, .init = setup, .fini = teardown)
{
	write_conf(MIN_DAEMON "websocket = on\nagent_gid_range = 62000-62999\n");
	struct mc_config c;
	load_ok(&c);
	char *text = print_to_string(&c);
	cr_assert_not_null(strstr(text, "\nwebsocket = on\n"), "%s", text);
	cr_assert_not_null(strstr(text, "\nagent_gid_range = 62000-62999\n"), "%s", text);
	free(text);
	mc_config_free(&c);
}
