/* The profile-set signature (common/signature.h): what changes it, what
 * does not, and that the length-prefixed encoding cannot collide. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/signature.h"

TestSuite(signature, .timeout = 30);

/* Test profiles point at string literals; the signature only reads them. */
#define MAX_ARGS 4
struct tprof {
	const char *id, *family, *command, *visibility, *display, *description, *ws;
	bool enabled;
	size_t nargs;
	const char *args[MAX_ARGS];
};

static struct mc_profile to_profile(const struct tprof *t)
{
	struct mc_profile p = {
		.id = (char *)t->id,
		.workspace_id = (char *)t->ws,
		.display_name = (char *)t->display,
		.protocol_family = (char *)t->family,
		.command_name = (char *)t->command,
		.description = (char *)t->description,
		.visibility = (char *)t->visibility,
		.enabled = t->enabled,
		.n_fixed_args = t->nargs,
		.fixed_args = (char **)t->args,
	};
	return p;
}

static struct mc_signature sig_of(const struct tprof *t, size_t n)
{
	struct mc_profile v[8];
	cr_assert(n <= 8);
	for (size_t i = 0; i < n; i++)
		v[i] = to_profile(&t[i]);
	struct mc_profile_list l = { .n = n, .v = n > 0 ? v : NULL };
	struct mc_signature s;
	cr_assert_eq(mc_signature_compute(&l, &s), 0);
	cr_assert_eq(s.state, MC_SIG_KNOWN);
	return s;
}

static const struct tprof base_a = {
	.id = "11111111-1111-1111-1111-111111111111", .family = "claude",
	.command = "my-claude", .visibility = "workspace", .display = "My Claude",
	.description = "d", .ws = "ws-1", .enabled = true, .nargs = 2,
	.args = { "--model", "fast" },
};
static const struct tprof base_b = {
	.id = "22222222-2222-2222-2222-222222222222", .family = "codex",
	.command = "wrap-codex", .visibility = "workspace", .display = "Wrapped",
	.description = NULL, .ws = "ws-1", .enabled = true, .nargs = 0,
};

static struct mc_signature one(const struct tprof *t)
{
	return sig_of(t, 1);
}

static void assert_differs(const struct tprof *changed)
{
	struct mc_signature a = one(&base_a), b = one(changed);
	cr_assert(!mc_signature_equal(&a, &b), "a change must change the signature");
}

Test(signature, stable_and_order_independent)
{
	struct tprof ab[2] = { base_a, base_b }, ba[2] = { base_b, base_a };
	struct mc_signature s1 = sig_of(ab, 2), s2 = sig_of(ba, 2), s3 = sig_of(ab, 2);
	cr_assert(mc_signature_equal(&s1, &s2));
	cr_assert(mc_signature_equal(&s1, &s3));
}

Test(signature, does_not_reorder_the_callers_list)
{
	struct mc_profile v[2] = { to_profile(&base_b), to_profile(&base_a) };
	struct mc_profile_list l = { .n = 2, .v = v };
	struct mc_signature s;
	cr_assert_eq(mc_signature_compute(&l, &s), 0);
	cr_assert_str_eq(l.v[0].id, base_b.id);
	cr_assert_str_eq(l.v[1].id, base_a.id);
}

Test(signature, each_hashed_field_changes_it)
{
	struct tprof t;
	t = base_a; t.id = "11111111-1111-1111-1111-111111111112"; assert_differs(&t);
	t = base_a; t.enabled = false; assert_differs(&t);
	t = base_a; t.family = "codex"; assert_differs(&t);
	t = base_a; t.command = "my-claude2"; assert_differs(&t);
	t = base_a; t.visibility = "private"; assert_differs(&t);
	t = base_a; t.display = "My Claude (renamed)"; assert_differs(&t);
	t = base_a; t.args[1] = "slow"; assert_differs(&t);           /* value */
	t = base_a; t.nargs = 1; assert_differs(&t);                  /* count */
	t = base_a; t.nargs = 3; t.args[2] = ""; assert_differs(&t);  /* empty extra arg */
	t = base_a; t.args[0] = "fast"; t.args[1] = "--model"; assert_differs(&t); /* order */
}

Test(signature, description_and_workspace_do_not_change_it)
{
	struct tprof t = base_a;
	t.description = "something else entirely";
	struct mc_signature a = one(&base_a), b = one(&t);
	cr_assert(mc_signature_equal(&a, &b));
	t.description = NULL;
	b = one(&t);
	cr_assert(mc_signature_equal(&a, &b));
	t = base_a;
	t.ws = "another-workspace";
	b = one(&t);
	cr_assert(mc_signature_equal(&a, &b));
}

Test(signature, adding_or_removing_a_profile_changes_it)
{
	struct tprof ab[2] = { base_a, base_b };
	struct mc_signature one_p = sig_of(ab, 1), two_p = sig_of(ab, 2);
	struct mc_signature none = sig_of(NULL, 0);
	cr_assert(!mc_signature_equal(&one_p, &two_p));
	cr_assert(!mc_signature_equal(&one_p, &none));
	cr_assert(!mc_signature_equal(&two_p, &none));
}

Test(signature, arg_boundaries_are_unambiguous)
{
	struct tprof x = base_a, y = base_a;
	x.nargs = 2; x.args[0] = "a"; x.args[1] = "b";
	y.nargs = 1; y.args[0] = "ab";
	struct mc_signature sx = one(&x), sy = one(&y);
	cr_assert(!mc_signature_equal(&sx, &sy), "[a,b] vs [ab]");

	/* multica's separators (0x1f unit, 0x1e record) inside values. */
	x.nargs = 2; x.args[0] = "a\x1f"; x.args[1] = "b";
	y.nargs = 2; y.args[0] = "a"; y.args[1] = "\x1f" "b";
	sx = one(&x); sy = one(&y);
	cr_assert(!mc_signature_equal(&sx, &sy), "[a\\x1f,b] vs [a,\\x1fb]");

	x.nargs = 1; x.args[0] = "a\x1f" "b";
	y.nargs = 2; y.args[0] = "a"; y.args[1] = "b";
	sx = one(&x); sy = one(&y);
	cr_assert(!mc_signature_equal(&sx, &sy), "[a\\x1fb] vs [a,b]");

	/* A field boundary moved between command and visibility. */
	x = base_a; y = base_a;
	x.command = "cmd\x1e"; x.visibility = "vis";
	y.command = "cmd"; y.visibility = "\x1evis";
	sx = one(&x); sy = one(&y);
	cr_assert(!mc_signature_equal(&sx, &sy));

	/* A profile boundary moved: two profiles vs one with the other's id in its args. */
	struct tprof two[2] = { base_a, base_b };
	two[0].nargs = 0;
	struct tprof merged = base_a;
	merged.nargs = 1; merged.args[0] = base_b.id;
	struct mc_signature s2 = sig_of(two, 2), s1 = one(&merged);
	cr_assert(!mc_signature_equal(&s2, &s1));
}

Test(signature, empty_list_unknown_semantics)
{
	struct mc_signature e1 = sig_of(NULL, 0), e2 = sig_of(NULL, 0);
	struct mc_signature u1 = mc_signature_unknown(), u2 = mc_signature_unknown();
	cr_assert(mc_signature_equal(&e1, &e2), "the empty list is stable");
	cr_assert(!mc_signature_equal(&e1, &u1), "empty != unknown");
	cr_assert(!mc_signature_equal(&u1, &e1), "unknown != empty");
	cr_assert(!mc_signature_equal(&u1, &u2), "unknown equals nothing");
	cr_assert(!mc_signature_equal(&u1, &u1), "not even itself");
	struct mc_profile_list empty_non_null = { .n = 0, .v = (struct mc_profile *)&e1 };
	struct mc_signature e3;
	cr_assert_eq(mc_signature_compute(&empty_non_null, &e3), 0);
	cr_assert(mc_signature_equal(&e1, &e3), "n == 0 is empty whatever v is");
}

Test(signature, hex_output)
{
	struct mc_signature s = one(&base_a);
	char hex[2 * MC_SIGNATURE_BYTES + 1];
	mc_signature_hex(&s, hex);
	cr_assert_eq(strlen(hex), 64);
	cr_assert_eq(strspn(hex, "0123456789abcdef"), 64);
	char again[2 * MC_SIGNATURE_BYTES + 1];
	struct mc_signature s2 = one(&base_a);
	mc_signature_hex(&s2, again);
	cr_assert_str_eq(hex, again);
	/* The hex is the digest, byte by byte. */
	for (size_t i = 0; i < MC_SIGNATURE_BYTES; i++) {
		char byte[3] = { hex[2 * i], hex[2 * i + 1], '\0' };
		cr_assert_eq(strtoul(byte, NULL, 16), s.digest[i]);
	}
	struct mc_signature u = mc_signature_unknown();
	mc_signature_hex(&u, hex);
	cr_assert_str_eq(hex, "unknown");
}

Test(signature, compute_resets_out_and_known_values_differ_from_zero)
{
	struct mc_signature e = sig_of(NULL, 0);
	static const uint8_t zero[MC_SIGNATURE_BYTES];
	cr_assert_neq(memcmp(e.digest, zero, sizeof zero), 0);
}
