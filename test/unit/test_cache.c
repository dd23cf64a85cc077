/* SPDX-License-Identifier: Apache-2.0 */
/* The bounded cache: owned and copied values, expiry, eviction order and refresh. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/cache.h"
#include "vectors.h"

static int freed;

static void count_free(void *v)
{
	freed++;
	free(v);
}

START_TEST(test_cache_put_copy_holds_its_own_bytes)
{
	struct mrtc_cache *c = mrtc_cache_create(4, count_free);
	char value[] = "@a:hs\0DEV";
	ck_assert(mrtc_cache_put_copy(c, "k", 1, value, sizeof(value), 100));
	memset(value, 0, sizeof(value));
	const char *got = mrtc_cache_get(c, "k", 1, 50);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, "@a:hs");
	ck_assert_str_eq(got + 6, "DEV");
	ck_assert_ptr_null(mrtc_cache_get(c, "k", 1, 100)); /* expired */
	ck_assert_ptr_null(mrtc_cache_get(c, "k", 1, 50));
	mrtc_cache_destroy(c);
	ck_assert_int_eq(freed, 0); /* copies never reach the free function */
}
END_TEST

START_TEST(test_cache_mixed_values_evict_oldest)
{
	freed = 0;
	struct mrtc_cache *c = mrtc_cache_create(2, count_free);
	ck_assert(mrtc_cache_put(c, "a", 1, strdup("A"), 100));
	ck_assert(mrtc_cache_put_copy(c, "b", 1, "B", 2, 100));
	ck_assert(mrtc_cache_put_copy(c, "c", 1, "C", 2, 100)); /* evicts a, freed */
	ck_assert_int_eq(freed, 1);
	ck_assert_ptr_null(mrtc_cache_get(c, "a", 1, 0));
	ck_assert_str_eq(mrtc_cache_get(c, "b", 1, 0), "B");
	ck_assert(mrtc_cache_put(c, "b", 1, strdup("B2"), 100)); /* replaces the copy */
	ck_assert_int_eq(freed, 1);
	ck_assert_str_eq(mrtc_cache_get(c, "b", 1, 0), "B2");
	mrtc_cache_destroy(c);
	ck_assert_int_eq(freed, 2);
}
END_TEST

START_TEST(test_cache_refresh_extends_and_defers_eviction)
{
	struct mrtc_cache *c = mrtc_cache_create(2, NULL);
	ck_assert(mrtc_cache_put_copy(c, "a", 1, "A", 2, 100));
	ck_assert(mrtc_cache_put_copy(c, "b", 1, "B", 2, 100));
	ck_assert(!mrtc_cache_refresh(c, "x", 1, 0, 500));   /* absent */
	ck_assert(!mrtc_cache_refresh(c, "a", 1, 100, 500)); /* expired */
	ck_assert(mrtc_cache_refresh(c, "a", 1, 50, 500));
	ck_assert_ptr_nonnull(mrtc_cache_get(c, "a", 1, 200));
	ck_assert(mrtc_cache_put_copy(c, "c", 1, "C", 2, 600)); /* b is now the oldest */
	ck_assert_ptr_null(mrtc_cache_get(c, "b", 1, 0));
	ck_assert_ptr_nonnull(mrtc_cache_get(c, "a", 1, 0));
	ck_assert(mrtc_cache_refresh(c, "c", 1, 0, 700)); /* already the newest */
	struct mrtc_cache_stats st;
	mrtc_cache_get_stats(c, &st);
	ck_assert_uint_eq(st.size, 2);
	ck_assert_uint_eq(st.evictions, 1);
	mrtc_cache_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	const TTest *tests[] = {
		test_cache_put_copy_holds_its_own_bytes,
		test_cache_mixed_values_evict_oldest,
		test_cache_refresh_extends_and_defers_eviction,
	};
	vectors_add_tests(s, "cache", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
