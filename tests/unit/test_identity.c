/* The agents' identity (common/identity.c): after mc_identity_enter a child
 * has the agent's uid, gid and groups, no capability, cannot gain any
 * (NoNewPrivs) and cannot get back to root; a root without CAP_SETUID is
 * not one that can switch. The switching cases need root (CI runs as
 * root): skipped otherwise. */
#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include <criterion/criterion.h>

#include "common/identity.h"

TestSuite(identity, .timeout = 30);

/* The value of "Key:" in /proc/self/status, or "" */
static void status_field(const char *key, char *out, size_t n)
{
	out[0] = '\0';
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return;
	char line[256];
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			const char *v = line + kl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(out, n, "%s", v);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

/* Runs check() in a forked child after entering id; the child's exit code
 * says which check failed (0: all held). */
static int in_child(const struct mc_identity *id, int (*check)(const struct mc_identity *))
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (mc_identity_enter(id) < 0)
			_exit(100);
		_exit(check(id));
	}
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died: status %d", st);
	return WEXITSTATUS(st);
}

static int check_agent(const struct mc_identity *id)
{
	if (getuid() != id->uid || geteuid() != id->uid)
		return 1;
	if (getgid() != id->gid || getegid() != id->gid)
		return 2;
	gid_t g[8];
	int n = getgroups(8, g);
	int want = id->extra_gid == (gid_t)-1 ? 1 : 2;
	/* the kernel keeps the list sorted */
	bool has_gid = false, has_extra = want == 1;
	for (int i = 0; i < n; i++) {
		has_gid |= g[i] == id->gid;
		has_extra |= g[i] == id->extra_gid;
	}
	if (n != want || !has_gid || !has_extra)
		return 3;
	char v[64];
	status_field("CapEff", v, sizeof v);
	if (strcmp(v, "0000000000000000") != 0)
		return 4;
	status_field("CapPrm", v, sizeof v);
	if (strcmp(v, "0000000000000000") != 0)
		return 5;
	status_field("CapAmb", v, sizeof v);
	if (strcmp(v, "0000000000000000") != 0)
		return 6;
	status_field("NoNewPrivs", v, sizeof v);
	if (strcmp(v, "1") != 0)
		return 7;
	if (setuid(0) == 0 || errno != EPERM)
		return 8;
	gid_t root = 0;
	if (setgroups(1, &root) == 0 || errno != EPERM)
		return 9;
	mode_t m = umask(0);
	if (m != MC_AGENT_UMASK)
		return 10;
	if (mc_identity_can_switch())
		return 11;
	return 0;
}

Test(identity, enter_switches_and_drops_everything)
{
	if (geteuid() != 0 || !mc_identity_can_switch())
		cr_skip_test("needs root with CAP_SETUID (CI runs as root)");
	struct mc_identity id = { .sw = true, .uid = 61900, .gid = 61900, .extra_gid = (gid_t)-1 };
	int rc = in_child(&id, check_agent);
	cr_assert_eq(rc, 0, "check %d failed in the child", rc);
}

Test(identity, enter_with_a_supplementary_group)
{
	if (geteuid() != 0 || !mc_identity_can_switch())
		cr_skip_test("needs root with CAP_SETUID (CI runs as root)");
	struct mc_identity id = { .sw = true, .uid = 61901, .gid = 62001, .extra_gid = 61999 };
	int rc = in_child(&id, check_agent);
	cr_assert_eq(rc, 0, "check %d failed in the child", rc);
}

static int check_fallback(const struct mc_identity *id)
{
	(void)id;
	char v[64];
	status_field("CapEff", v, sizeof v);
	if (strcmp(v, "0000000000000000") != 0)
		return 1;
	status_field("NoNewPrivs", v, sizeof v);
	if (strcmp(v, "1") != 0)
		return 2;
	if (umask(0) != MC_AGENT_UMASK)
		return 3;
	return 0;
}

/* Fallback keeps the uid but none of the daemon's capabilities (it may
 * hold CAP_SETUID with agent_user = ""). */
Test(identity, fallback_keeps_the_uid_and_drops_the_caps)
{
	struct mc_identity id = { .sw = false, .uid = 0, .gid = 0, .extra_gid = (gid_t)-1 };
	uid_t me = getuid();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (mc_identity_enter(&id) < 0)
			_exit(100);
		if (getuid() != me)
			_exit(50);
		_exit(check_fallback(&id));
	}
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), 0);
}

static int drop_setuid_then_ask(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &h, d) < 0)
		return 20;
	d[0].effective &= ~(1u << CAP_SETUID);
	d[0].permitted &= ~(1u << CAP_SETUID);
	if (syscall(SYS_capset, &h, d) < 0)
		return 21;
	if (geteuid() != 0)
		return 22;
	return mc_identity_can_switch() ? 23 : 0;
}

/* A root without CAP_SETUID (some containers) cannot switch: the answer
 * comes from the capability, not from euid 0. */
Test(identity, root_without_cap_setuid_cannot_switch)
{
	if (geteuid() != 0 || !mc_identity_can_switch())
		cr_skip_test("needs root with CAP_SETUID (CI runs as root)");
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(drop_setuid_then_ask());
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), 0);
}

Test(identity, refuses_to_switch_to_root)
{
	struct mc_identity id = { .sw = true, .uid = 0, .gid = 0, .extra_gid = (gid_t)-1 };
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(mc_identity_enter(&id) < 0 && errno == EINVAL ? 0 : 1);
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), 0);
}

Test(identity, describe)
{
	char out[96];
	struct mc_identity a = { .sw = true, .uid = 61003, .gid = 61003, .extra_gid = (gid_t)-1 };
	mc_identity_describe(&a, out, sizeof out);
	cr_assert_str_eq(out, "uid 61003 gid 61003");
	a.gid = 62004;
	a.extra_gid = 999;
	mc_identity_describe(&a, out, sizeof out);
	cr_assert_str_eq(out, "uid 61003 gid 62004 (and group 999)");
	struct mc_identity f = { .sw = false };
	mc_identity_describe(&f, out, sizeof out);
	char want[96];
	snprintf(want, sizeof want, "the daemon's own user (uid %u)", (unsigned)getuid());
	cr_assert_str_eq(out, want);
}
