/* SPDX-License-Identifier: Apache-2.0 */
/* The checked number parser, constant-time comparison and log quoting. */
#include <check.h>
#include <string.h>

#include "mrtc/base/util.h"
#include "vectors.h"

START_TEST(test_parse_u64_accepts_and_rejects)
{
	uint64_t v = 7;
	ck_assert(mrtc_parse_u64("0", 0, 10, &v) && v == 0);
	ck_assert(mrtc_parse_u64("18446744073709551615", 0, UINT64_MAX, &v) && v == UINT64_MAX);
	static const char *const bad[] = { "",
					   "-1",
					   "+1",
					   " 1",
					   "1 ",
					   "01",
					   "1a",
					   "0x10",
					   "18446744073709551616",
					   "99999999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		ck_assert_msg(!mrtc_parse_u64(bad[i], 0, UINT64_MAX, &v), "accepted '%s'", bad[i]);
		ck_assert_uint_eq(v, 7);
	}
	ck_assert(!mrtc_parse_u64("11", 0, 10, &v));
	ck_assert(!mrtc_parse_u64("4", 5, 10, &v));
	ck_assert(!mrtc_parse_u64(NULL, 0, 10, &v));
	ck_assert(mrtc_parse_u64_n("123abc", 3, 0, 1000, &v) && v == 123);
}
END_TEST

START_TEST(test_str_equal_ct_cases)
{
	ck_assert(mrtc_str_equal_ct("abc", "abc"));
	ck_assert(mrtc_str_equal_ct("", ""));
	ck_assert(!mrtc_str_equal_ct("abc", "abd"));
	ck_assert(!mrtc_str_equal_ct("abc", "ab"));
	ck_assert(!mrtc_str_equal_ct("", "a"));
}
END_TEST

START_TEST(test_quote_escapes_and_caps)
{
	char out[64];
	ck_assert_str_eq(mrtc_quote(out, sizeof(out), "a\"b\\c\n\x01\xff", 100),
			 "\"a\\\"b\\\\c\\x0a\\x01\\xff\"");
	ck_assert_str_eq(mrtc_quote(out, sizeof(out), "abcdefgh", 3), "\"abc\"...");
	ck_assert_str_eq(mrtc_quote(out, sizeof(out), NULL, 3), "(null)");
	char small[12];
	mrtc_quote(small, sizeof(small), "0123456789abcdef", 100);
	ck_assert_uint_lt(strlen(small), sizeof(small));
	ck_assert(mrtc_has_control("a\tb", 3));
	ck_assert(mrtc_has_control("a\x7f", 2));
	ck_assert(!mrtc_has_control("abc\xc3\xa9", 5));
}
END_TEST

START_TEST(test_clocks_move_forward)
{
	uint64_t a = mrtc_monotonic_ms();
	ck_assert_uint_gt(mrtc_now_ms(), UINT64_C(1600000000000));
	ck_assert_uint_ge(mrtc_monotonic_ms(), a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("util");
	const TTest *tests[] = {
		test_parse_u64_accepts_and_rejects,
		test_str_equal_ct_cases,
		test_quote_escapes_and_caps,
		test_clocks_move_forward,
	};
	vectors_add_tests(s, "util", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
