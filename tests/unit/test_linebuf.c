/* Splitting agent output into bounded lines (worker/linebuf.c): lines cut
 * across reads come out whole, an over-long line comes out once, cut and
 * flagged, and the buffer goes back to nothing after it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "worker/linebuf.h"

#define MAXL 16

static char got[8][64];
static bool cut[8];
static int n_got;

static void on_line(void *ctx, char *line, size_t len, bool truncated)
{
	cr_assert_eq(strlen(line), len, "NUL-terminated at len");
	if (n_got < 8) {
		snprintf(got[n_got], sizeof got[0], "%s", line);
		cut[n_got] = truncated;
	}
	n_got++;
}

static struct mc_linebuf LB;

static void setup(void)
{
	n_got = 0;
	mc_linebuf_init(&LB, MAXL);
}

static void teardown(void)
{
	mc_linebuf_clear(&LB);
}

TestSuite(linebuf, .init = setup, .fini = teardown, .timeout = 10);

static void feed(const char *s)
{
	char *b = strdup(s);
	cr_assert_eq(mc_linebuf_feed(&LB, b, strlen(b), on_line, NULL), 0);
	free(b);
}

Test(linebuf, lines_across_reads)
{
	feed("ab");
	feed("c\nde");
	feed("\n\nf");
	cr_assert_eq(n_got, 3);
	cr_assert_str_eq(got[0], "abc");
	cr_assert_str_eq(got[1], "de");
	cr_assert_str_eq(got[2], "");
	mc_linebuf_finish(&LB, on_line, NULL);
	cr_assert_eq(n_got, 4, "a last line without newline counts at EOF");
	cr_assert_str_eq(got[3], "f");
	cr_assert_not(cut[3]);
}

Test(linebuf, exactly_max_is_whole_max_plus_one_is_cut)
{
	feed("0123456789abcdef\n");            /* 16 = MAXL */
	feed("0123456789abcdefX\nnext\n");     /* 17 */
	cr_assert_eq(n_got, 3);
	cr_assert_str_eq(got[0], "0123456789abcdef");
	cr_assert_not(cut[0]);
	cr_assert_str_eq(got[1], "0123456789abcdef");
	cr_assert(cut[1]);
	cr_assert_str_eq(got[2], "next", "the line after a cut one is read whole");
	cr_assert_not(cut[2]);
}

Test(linebuf, long_line_over_many_reads_is_delivered_once)
{
	feed("0123456789");
	feed("0123456789");           /* passes MAXL: delivered cut now */
	cr_assert_eq(n_got, 1);
	cr_assert(cut[0]);
	feed("0123456789");           /* still the same line: skipped */
	feed("zz\nok");
	cr_assert_eq(n_got, 1);
	feed("\n");
	cr_assert_eq(n_got, 2);
	cr_assert_str_eq(got[1], "ok");
	mc_linebuf_finish(&LB, on_line, NULL);
	cr_assert_eq(n_got, 2);
	cr_assert_leq(LB.peak_cap, MAXL + 1, "never more than max + NUL");
}

Test(linebuf, buffer_shrinks_after_a_big_line)
{
	struct mc_linebuf big;
	mc_linebuf_init(&big, 1u << 20);
	size_t n = 300 * 1024;
	char *b = malloc(n + 1);
	memset(b, 'x', n);
	cr_assert_eq(mc_linebuf_feed(&big, b, n / 2, on_line, NULL), 0);
	cr_assert_eq(mc_linebuf_feed(&big, b + n / 2, n - n / 2, on_line, NULL), 0);
	cr_assert_geq(big.cap, n, "a partial line is held");
	char nl[] = "\n";
	cr_assert_eq(mc_linebuf_feed(&big, nl, 1, on_line, NULL), 0);
	cr_assert_eq(n_got, 1);
	cr_assert_leq(big.cap, MC_LINEBUF_KEEP, "freed back after the line");
	free(b);
	mc_linebuf_clear(&big);
}
