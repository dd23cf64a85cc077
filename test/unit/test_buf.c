/* SPDX-License-Identifier: Apache-2.0 */
/* The growable buffer: appends, formatting, limits and sticky failure. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/buf.h"
#include "vectors.h"

START_TEST(test_buf_append_and_steal)
{
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	for (int i = 0; i < 1000; i++)
		ck_assert(mrtc_buf_printf(&b, "%d,", i % 10));
	ck_assert(mrtc_buf_append(&b, "\0x", 2));
	ck_assert_uint_eq(b.len, 2002);
	size_t len;
	char *s = mrtc_buf_steal(&b, &len);
	ck_assert_uint_eq(len, 2002);
	ck_assert(memcmp(s, "0,1,2,", 6) == 0);
	ck_assert_int_eq(s[len], '\0');
	free(s);
	ck_assert_ptr_null(b.data);
	s = mrtc_buf_steal(&b, &len);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(len, 0);
	free(s);
}
END_TEST

START_TEST(test_buf_max_is_sticky)
{
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	b.max = 4;
	ck_assert(mrtc_buf_puts(&b, "abcd"));
	ck_assert(!mrtc_buf_putc(&b, 'e'));
	ck_assert(b.failed);
	ck_assert(!mrtc_buf_puts(&b, ""));
	ck_assert_ptr_null(mrtc_buf_steal(&b, NULL));
	mrtc_buf_finish(&b);
}
END_TEST

START_TEST(test_buf_init_with_grows_to_heap)
{
	char stack[8];
	struct mrtc_buf b;
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	ck_assert(mrtc_buf_puts(&b, "abc"));
	ck_assert_ptr_eq(b.data, stack);
	char *small = mrtc_buf_steal(&b, NULL);
	ck_assert_ptr_ne(small, stack);
	ck_assert_str_eq(small, "abc");
	free(small);
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	ck_assert(mrtc_buf_puts(&b, "abc"));
	ck_assert(mrtc_buf_puts(&b, "0123456789"));
	ck_assert_ptr_ne(b.data, stack);
	ck_assert_str_eq(b.data, "abc0123456789");
	mrtc_buf_finish(&b);
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	mrtc_buf_puts(&b, "x");
	mrtc_buf_finish(&b); /* must not free the stack */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	const TTest *tests[] = { test_buf_append_and_steal, test_buf_max_is_sticky,
				 test_buf_init_with_grows_to_heap };
	vectors_add_tests(s, "buf", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
