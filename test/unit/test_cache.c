/* SPDX-License-Identifier: Apache-2.0 */
/* The bounded cache: owned and copied values, expiry, eviction order and refresh. */
#include <check.h>
#include <stdio.h>
#include <stdint.h>
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

static void sum_values(void *ctx, const void *key, size_t key_len, void *value)
{
	(void)key;
	(void)key_len;
	*(long *)ctx += strtol(value, NULL, 10);
}

START_TEST(test_cache_values_aligned_for_every_key_length)
{
	freed = 0;
	struct mrtc_cache *c = mrtc_cache_create(64, count_free);
	char key[40];
	memset(key, 'k', sizeof(key));
	for (size_t len = 1; len <= sizeof(key); len++) {
		key[0] = (char)('A' + len); /* a distinct key per length */
		uint64_t v = 0x0102030405060708ull + len;
		ck_assert(mrtc_cache_put_copy(c, key, len, &v, sizeof(v), 100));
		const uint64_t *got = mrtc_cache_get(c, key, len, 0);
		ck_assert_ptr_nonnull(got);
		ck_assert_uint_eq((uintptr_t)got % MRTC_CACHE_VALUE_ALIGN, 0);
		ck_assert_uint_eq(*got, v);
	}
	/* Owned values come back as the pointers given, in get and foreach alike. */
	char *one = strdup("1"), *two = strdup("20");
	ck_assert(mrtc_cache_put(c, "one", 3, one, 100));
	ck_assert(mrtc_cache_put(c, "two", 3, two, 100));
	ck_assert_ptr_eq(mrtc_cache_get(c, "one", 3, 0), one);
	ck_assert_ptr_eq(mrtc_cache_get(c, "two", 3, 0), two);
	mrtc_cache_remove(c, "one", 3);
	ck_assert_int_eq(freed, 1);
	struct mrtc_cache *owned = mrtc_cache_create(4, count_free);
	ck_assert(mrtc_cache_put(owned, "a", 1, strdup("300"), 100));
	ck_assert(mrtc_cache_put(owned, "bb", 2, strdup("4000"), 100));
	long sum = 0;
	mrtc_cache_foreach(owned, 0, sum_values, &sum);
	ck_assert_int_eq(sum, 4300);
	mrtc_cache_destroy(owned);
	mrtc_cache_destroy(c);
	ck_assert_int_eq(freed, 4);
}
END_TEST

START_TEST(test_cache_many_entries_of_every_size_stay_found)
{
	/* Past every growth of the bucket array, values from 0 bytes to past the slab classes
	 * (those from malloc), half removed again and replaced. */
	enum {
		N = 100000
	};
	struct mrtc_cache *c = mrtc_cache_create(N, NULL);
	unsigned char value[1500];
	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (unsigned char)(i * 13);
	char key[32];
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "@user%d:example.org", i);
		ck_assert(
		    mrtc_cache_put_copy(c, key, (size_t)n, value, (size_t)i % sizeof(value), 100));
	}
	for (int i = 0; i < N; i += 2) {
		int n = snprintf(key, sizeof(key), "@user%d:example.org", i);
		mrtc_cache_remove(c, key, (size_t)n);
	}
	for (int i = 0; i < N; i += 4) { /* back with other sizes */
		int n = snprintf(key, sizeof(key), "@user%d:example.org", i);
		ck_assert(mrtc_cache_put_copy(c, key, (size_t)n, value, (size_t)(i / 4) % 64, 100));
	}
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "@user%d:example.org", i);
		const unsigned char *got = mrtc_cache_get(c, key, (size_t)n, 0);
		if (i % 4 == 2) {
			ck_assert_ptr_null(got);
			continue;
		}
		ck_assert_ptr_nonnull(got);
		size_t len = i % 2 ? (size_t)i % sizeof(value) : (size_t)(i / 4) % 64;
		ck_assert_msg(memcmp(got, value, len) == 0, "entry %d", i);
	}
	struct mrtc_cache_stats st;
	mrtc_cache_get_stats(c, &st);
	ck_assert_uint_eq(st.size, N / 2 + N / 4);
	ck_assert_uint_eq(st.evictions, 0);
	mrtc_cache_destroy(c);
}
END_TEST

START_TEST(test_cache_expire_drops_only_expired_oldest)
{
	freed = 0;
	struct mrtc_cache *c = mrtc_cache_create(8, count_free);
	ck_assert(mrtc_cache_put(c, "a", 1, strdup("A"), 100));
	ck_assert(mrtc_cache_put_copy(c, "b", 1, "B", 2, 100));
	ck_assert(mrtc_cache_put_copy(c, "c", 1, "C", 2, 300));
	ck_assert(mrtc_cache_put_copy(c, "d", 1, "D", 2, 100)); /* behind an unexpired one */
	ck_assert_uint_eq(mrtc_cache_expire(c, 99, 8), 0);
	ck_assert_uint_eq(mrtc_cache_expire(c, 100, 1), 1); /* at most @max */
	ck_assert_int_eq(freed, 1);			    /* an owned value is freed */
	ck_assert_uint_eq(mrtc_cache_expire(c, 100, 8), 1); /* stops at c */
	ck_assert_ptr_nonnull(mrtc_cache_get(c, "c", 1, 100));
	struct mrtc_cache_stats st;
	mrtc_cache_get_stats(c, &st);
	ck_assert_uint_eq(st.size, 2); /* c, and d until c goes or d is asked for */
	ck_assert_uint_eq(st.expirations, 2);
	ck_assert(mrtc_cache_refresh(c, "c", 1, 100, 500)); /* d is the oldest now */
	ck_assert_uint_eq(mrtc_cache_expire(c, 100, 8), 1);
	ck_assert_ptr_null(mrtc_cache_get(c, "d", 1, 0));
	ck_assert_str_eq(mrtc_cache_get(c, "c", 1, 400), "C");
	mrtc_cache_destroy(c);
	ck_assert_int_eq(freed, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	const TTest *tests[] = {
		test_cache_put_copy_holds_its_own_bytes,
		test_cache_mixed_values_evict_oldest,
		test_cache_refresh_extends_and_defers_eviction,
		test_cache_values_aligned_for_every_key_length,
		test_cache_many_entries_of_every_size_stay_found,
		test_cache_expire_drops_only_expired_oldest,
	};
	vectors_add_tests(s, "cache", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
