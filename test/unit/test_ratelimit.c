/* SPDX-License-Identifier: Apache-2.0 */
/* Token buckets: burst, refill, retry hints, independence of keys and bounded memory. */
#include <check.h>
#include <stdio.h>

#include "mrtc/core/ratelimit.h"
#include "vectors.h"

START_TEST(test_ratelimit_burst_then_refill)
{
	struct mrtc_ratelimit *rl = mrtc_ratelimit_create(5, 20, 1000);
	uint64_t retry = 0, now = 1000000;
	for (int i = 0; i < 20; i++)
		ck_assert(mrtc_ratelimit_take(rl, "@a:x", now, &retry));
	ck_assert(!mrtc_ratelimit_take(rl, "@a:x", now, &retry));
	ck_assert_uint_eq(retry, 200); /* 5 per second: one token every 200 ms */
	ck_assert(mrtc_ratelimit_take(rl, "@b:x", now, &retry)); /* other keys unaffected */
	ck_assert(!mrtc_ratelimit_take(rl, "@a:x", now + 199, &retry));
	ck_assert_uint_eq(retry, 1);
	ck_assert(mrtc_ratelimit_take(rl, "@a:x", now + 200, &retry));
	ck_assert(!mrtc_ratelimit_take(rl, "@a:x", now + 200, &retry));
	/* After a long pause the bucket is full again, not more. */
	now += 3600 * 1000;
	for (int i = 0; i < 20; i++)
		ck_assert(mrtc_ratelimit_take(rl, "@a:x", now, &retry));
	ck_assert(!mrtc_ratelimit_take(rl, "@a:x", now, &retry));
	mrtc_ratelimit_destroy(rl);
}
END_TEST

START_TEST(test_ratelimit_memory_bounded_100k_users)
{
	struct mrtc_ratelimit *rl = mrtc_ratelimit_create(5, 20, 10000);
	char key[64];
	uint64_t retry;
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "@user%d:example.org", i);
		ck_assert(mrtc_ratelimit_take(rl, key, 5000, &retry));
		ck_assert_uint_le(mrtc_ratelimit_size(rl), 10000);
	}
	ck_assert_uint_eq(mrtc_ratelimit_size(rl), 10000);
	/* Idle buckets are dropped once they would be full again (one token taken at 5 per
	 * second: after 200 ms), two for each new one, not only when the bound evicts them. */
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "@late%d:example.org", i);
		ck_assert(mrtc_ratelimit_take(rl, key, 5000 + 4001, &retry));
	}
	ck_assert_uint_eq(mrtc_ratelimit_size(rl), 5000);
	/* A dropped bucket was full: its key has the whole burst again. */
	for (int i = 0; i < 20; i++)
		ck_assert(mrtc_ratelimit_take(rl, "@user99999:example.org", 5000 + 4001, &retry));
	ck_assert(!mrtc_ratelimit_take(rl, "@user99999:example.org", 5000 + 4001, &retry));
	mrtc_ratelimit_destroy(rl);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ratelimit");
	const TTest *tests[] = { test_ratelimit_burst_then_refill,
				 test_ratelimit_memory_bounded_100k_users };
	vectors_add_tests(s, "ratelimit", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
