/* The agents' identity per workspace (supervisor/agent_ids.c): slots kept
 * in <state_dir>/agent-ids across restarts and never reused, the range's
 * end refused by name, a corrupt file refused by name and line, and every
 * fallback with its reason. Isolation needs CAP_SETUID/CAP_SETGID: those
 * cases are skipped without them (CI runs as root). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include <bsd/string.h>

#include <criterion/criterion.h>

#include "supervisor/agent_ids.h"

#define WS1 "0c6e7a1e-1111-4a4a-8b8b-000000000001"
#define WS2 "0c6e7a1e-1111-4a4a-8b8b-000000000002"
#define WS3 "0c6e7a1e-1111-4a4a-8b8b-000000000003"
#define NOSUCH "mc-test-no-such-user"

static char dir[64];
static char ids_path[128];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/mc-agids-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(ids_path, sizeof ids_path, "%s/agent-ids", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(agent_ids, .init = setup, .fini = teardown, .timeout = 30);

static void need_caps(void)
{
	if (mc_identity_can_switch())
		return;
	teardown(); /* a skipped test's .fini does not run */
	cr_skip_test("needs CAP_SETUID and CAP_SETGID (CI runs as root)");
}

/* A configuration with the agent keys' defaults and no user. */
static void base_cfg(struct mc_config *c)
{
	memset(c, 0, sizeof *c);
	strlcpy(c->agent_user, NOSUCH, sizeof c->agent_user);
	c->agent_gid_lo = 62000;
	c->agent_gid_hi = 62999;
}

static void uid_cfg(struct mc_config *c, unsigned lo, unsigned hi)
{
	base_cfg(c);
	c->agent_uid_lo = lo;
	c->agent_uid_hi = hi;
}

static struct mc_agent_ids *open_ids(void)
{
	char err[256] = "";
	struct mc_agent_ids *a = mc_agent_ids_new(dir, err, sizeof err);
	cr_assert_not_null(a, "new: %s", err);
	return a;
}

static void configure_ok(struct mc_agent_ids *a, const struct mc_config *c)
{
	char err[256] = "";
	cr_assert_eq(mc_agent_ids_configure(a, c, err, sizeof err), 0, "configure: %s", err);
}

static struct mc_identity get_ok(struct mc_agent_ids *a, const char *ws)
{
	char err[256] = "";
	struct mc_identity id;
	cr_assert_eq(mc_agent_ids_get(a, ws, &id, err, sizeof err), 0, "get %s: %s", ws, err);
	return id;
}

static void read_file(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	size_t r = fread(out, 1, n - 1, f);
	out[r] = '\0';
	fclose(f);
}

static void write_ids(const char *text)
{
	FILE *f = fopen(ids_path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(agent_ids, uid_range_slots_persist_across_restarts)
{
	need_caps();
	struct mc_config c;
	uid_cfg(&c, 61000, 61999);
	struct mc_agent_ids *a = open_ids();
	configure_ok(a, &c);
	cr_assert_null(mc_agent_ids_fallback_reason(a));
	struct mc_identity i1 = get_ok(a, WS1), i2 = get_ok(a, WS2);
	cr_assert(i1.sw && i2.sw);
	cr_assert_eq(i1.uid, 61000);
	cr_assert_eq(i1.gid, 61000);
	cr_assert_eq(i2.uid, 61001);
	cr_assert_eq(i2.gid, 61001);
	cr_assert_eq(i1.extra_gid, (gid_t)-1, "no such agent_user: no shared group");
	cr_assert_str_eq(mc_agent_ids_home(a), "", "uid mode: the worker's per-workspace HOME");
	/* the same answer twice, nothing new written */
	cr_assert_eq(get_ok(a, WS1).uid, 61000);
	mc_agent_ids_free(a);

	char text[512];
	read_file(ids_path, text, sizeof text);
	cr_assert_str_eq(text, WS1 " 0\n" WS2 " 1\n");
	struct stat st;
	cr_assert_eq(stat(ids_path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);

	/* a restart, workspaces asked in the other order: the same slots */
	a = open_ids();
	configure_ok(a, &c);
	cr_assert_eq(get_ok(a, WS2).uid, 61001);
	cr_assert_eq(get_ok(a, "0C6E7A1E-1111-4A4A-8B8B-000000000001").uid, 61000, "case-blind");
	cr_assert_eq(get_ok(a, WS3).uid, 61002);
	mc_agent_ids_free(a);
}

/* A workspace that left keeps its slot: the next one is past the highest
 * ever given, never a gap. */
Test(agent_ids, slots_are_never_reused)
{
	need_caps();
	write_ids(WS1 " 7\n");
	struct mc_config c;
	uid_cfg(&c, 61000, 61999);
	struct mc_agent_ids *a = open_ids();
	configure_ok(a, &c);
	cr_assert_eq(get_ok(a, WS2).uid, 61008);
	cr_assert_eq(get_ok(a, WS1).uid, 61007);
	mc_agent_ids_free(a);
}

Test(agent_ids, user_mode_gives_a_group_per_workspace)
{
	need_caps();
	struct mc_config c;
	base_cfg(&c);
	strlcpy(c.agent_user, "nobody", sizeof c.agent_user);
	c.agent_user_given = true;
	struct mc_agent_ids *a = open_ids();
	configure_ok(a, &c);
	cr_assert_null(mc_agent_ids_fallback_reason(a));
	struct mc_identity i1 = get_ok(a, WS1), i2 = get_ok(a, WS2);
	cr_assert_eq(i1.uid, 65534);
	cr_assert_eq(i2.uid, 65534);
	cr_assert_eq(i1.gid, 62000);
	cr_assert_eq(i2.gid, 62001);
	cr_assert_eq(i1.extra_gid, 65534, "nobody's own group");
	cr_assert_str_neq(mc_agent_ids_home(a), "", "the user's home");
	struct mc_agent_ids_info info;
	mc_agent_ids_info(a, &info);
	cr_assert_eq(info.mode, MC_AGENT_MODE_USER);
	cr_assert_str_eq(info.user, "nobody");
	cr_assert_eq(info.uid, 65534);
	cr_assert_eq(info.gid_lo, 62000);
	cr_assert_eq(info.uid_hi, 0);
	cr_assert_null(info.reason);
	mc_agent_ids_free(a);
}

Test(agent_ids, range_exhausted_names_the_range)
{
	need_caps();
	struct mc_config c;
	uid_cfg(&c, 61000, 61001);
	struct mc_agent_ids *a = open_ids();
	configure_ok(a, &c);
	get_ok(a, WS1);
	get_ok(a, WS2);
	char err[256] = "";
	struct mc_identity id;
	errno = 0;
	cr_assert_eq(mc_agent_ids_get(a, WS3, &id, err, sizeof err), -1);
	cr_assert_eq(errno, ENOSPC);
	cr_assert_not_null(strstr(err, "agent_uid_range 61000-61001 is exhausted"), "%s", err);
	cr_assert_not_null(strstr(err, WS3), "%s", err);
	cr_assert_not(id.sw);
	mc_agent_ids_free(a);
	char text[512];
	read_file(ids_path, text, sizeof text);
	cr_assert_str_eq(text, WS1 " 0\n" WS2 " 1\n", "no slot given past the range");

	/* user mode: its gid range */
	base_cfg(&c);
	strlcpy(c.agent_user, "nobody", sizeof c.agent_user);
	c.agent_gid_lo = 62000;
	c.agent_gid_hi = 62001;
	a = open_ids();
	configure_ok(a, &c);
	cr_assert_eq(mc_agent_ids_get(a, WS3, &id, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "agent_gid_range 62000-62001 is exhausted"), "%s", err);
	mc_agent_ids_free(a);
}

static void corrupt_case(const char *text, const char *want)
{
	write_ids(text);
	char err[256] = "";
	errno = 0;
	struct mc_agent_ids *a = mc_agent_ids_new(dir, err, sizeof err);
	cr_assert_null(a, "accepted: %s", text);
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(err, ids_path), "names the file: %s", err);
	cr_assert_not_null(strstr(err, want), "got %s, want %s", err, want);
}

Test(agent_ids, corrupt_file_is_a_named_error)
{
	char at[160];
	snprintf(at, sizeof at, "%s:2: corrupt", ids_path);
	corrupt_case(WS1 " 0\ngarbage\n", at);
	corrupt_case(WS1 " 0\nnot-a-uuid 1\n", at);
	corrupt_case(WS1 " 0\n" WS2 " -1\n", at);
	corrupt_case(WS1 " 0\n" WS2 " 1x\n", at);
	corrupt_case(WS1 " 0\n" WS2 " 1", "no newline");
	corrupt_case(WS1 " 0\n" WS1 " 1\n", "twice");
	corrupt_case(WS1 " 3\n" WS2 " 3\n", "index 3 given to");
	/* empty is fine: no slot yet */
	write_ids("");
	char err[256];
	struct mc_agent_ids *a = mc_agent_ids_new(dir, err, sizeof err);
	cr_assert_not_null(a, "%s", err);
	mc_agent_ids_free(a);
}

Test(agent_ids, fallback_reasons)
{
	struct mc_config c;
	struct mc_agent_ids *a = open_ids();
	struct mc_identity id;

	base_cfg(&c);
	c.agent_user[0] = '\0';
	c.agent_user_given = true;
	configure_ok(a, &c);
	cr_assert_str_eq(mc_agent_ids_fallback_reason(a), "agent_user is empty");
	id = get_ok(a, WS1);
	cr_assert_not(id.sw);
	cr_assert_str_eq(mc_agent_ids_home(a), "");
	struct mc_agent_ids_info info;
	mc_agent_ids_info(a, &info);
	cr_assert_eq(info.mode, MC_AGENT_MODE_DAEMON);
	cr_assert_null(info.user);
	cr_assert_eq(info.uid, (long)geteuid());
	cr_assert_str_eq(mc_agent_mode_name(info.mode), "daemon");

	base_cfg(&c); /* the default user, absent */
	configure_ok(a, &c);
	cr_assert_str_eq(mc_agent_ids_fallback_reason(a), "no user " NOSUCH);
	cr_assert_not(get_ok(a, WS1).sw);
	cr_assert_eq(access(ids_path, F_OK), -1, "no slot given in the fallback");

	if (geteuid() != 0) {
		/* an ordinary user: no capabilities */
		uid_cfg(&c, 61000, 61999);
		configure_ok(a, &c);
		cr_assert_not_null(strstr(mc_agent_ids_fallback_reason(a), "lacks CAP_SETUID"));
	}
	mc_agent_ids_free(a);
}

/* As root but without CAP_SETUID (a container): the fallback, saying why. */
static int lacking_caps_child(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &h, d) < 0)
		return 20;
	d[0].effective &= ~(1u << CAP_SETUID);
	if (syscall(SYS_capset, &h, d) < 0)
		return 21;
	struct mc_config c;
	uid_cfg(&c, 61000, 61999);
	char err[256];
	struct mc_agent_ids *a = mc_agent_ids_new(dir, err, sizeof err);
	if (a == NULL || mc_agent_ids_configure(a, &c, err, sizeof err) < 0)
		return 22;
	const char *r = mc_agent_ids_fallback_reason(a);
	int rc = r != NULL && strstr(r, "lacks CAP_SETUID") != NULL ? 0 : 23;
	struct mc_identity id;
	if (rc == 0 && (mc_agent_ids_get(a, WS1, &id, err, sizeof err) < 0 || id.sw))
		rc = 24;
	mc_agent_ids_free(a);
	return rc;
}

Test(agent_ids, fallback_without_cap_setuid)
{
	need_caps();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(lacking_caps_child());
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "child check %d", WEXITSTATUS(st));
}

static void configure_fails(const struct mc_config *c, const char *want)
{
	struct mc_agent_ids *a = open_ids();
	/* a good one first: a refused configuration keeps it */
	struct mc_config good;
	base_cfg(&good);
	good.agent_user[0] = '\0';
	configure_ok(a, &good);
	char err[256] = "";
	cr_assert_eq(mc_agent_ids_configure(a, c, err, sizeof err), -1, "accepted; want %s", want);
	cr_assert_not_null(strstr(err, want), "got %s, want %s", err, want);
	cr_assert_str_eq(mc_agent_ids_fallback_reason(a), "agent_user is empty", "the old one kept");
	mc_agent_ids_free(a);
}

Test(agent_ids, configuration_errors)
{
	struct mc_config c;
	base_cfg(&c);
	c.agent_user_given = true; /* given and unknown */
	configure_fails(&c, "agent_user " NOSUCH ": no such user");

	base_cfg(&c);
	strlcpy(c.agent_user, "root", sizeof c.agent_user);
	configure_fails(&c, "has uid 0");

	uid_cfg(&c, 61000, 61999);
	c.agent_user[0] = '\0';
	configure_fails(&c, "agent_uid_range is set");

	uid_cfg(&c, 65000, 65534); /* (the parser refuses it; the check does not rely on that) */
	strlcpy(c.agent_user, "nobody", sizeof c.agent_user);
	configure_fails(&c, "is inside agent_uid_range");
}
