/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate-limit decisions: the asynchronous convention (never inside the start call, cancel means
 * no callback), the local buckets, and the GCRA script against a real redis-server started
 * here on a free loopback port: several limiters share one bucket, refill at the configured
 * rate, fall back within the timeout while Redis is stopped (SIGSTOP) and share again after
 * SIGCONT.
 */
#include <check.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrtc/base/util.h"
#include "mrtc/limits/limits.h"
#include "vectors.h"

struct tally {
	int allowed, refused, calls;
	uint64_t last_retry_ms;
};

static void count(void *arg, bool allowed, uint64_t retry_ms)
{
	struct tally *t = arg;
	t->calls++;
	if (allowed) {
		t->allowed++;
	} else {
		t->refused++;
		t->last_retry_ms = retry_ms;
	}
}

/* Runs @base until @t has @calls answers or @timeout_ms passed; true if it has them. */
static bool run_until(struct event_base *base, const struct tally *t, int calls,
		      uint64_t timeout_ms)
{
	uint64_t end = mrtc_monotonic_ms() + timeout_ms;
	while (t->calls < calls && mrtc_monotonic_ms() < end) {
		struct timeval tv = { .tv_usec = 5000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, 0);
	}
	return t->calls >= calls;
}

static void spin(struct event_base *base, uint64_t ms)
{
	struct tally none = { 0 };
	run_until(base, &none, 1, ms);
}

START_TEST(test_limits_local_never_inside_start)
{
	struct event_base *base = event_base_new();
	struct mrtc_limits *l = NULL;
	ck_assert_int_eq(mrtc_limits_create(&(struct mrtc_limits_config){ .base = base }, &l),
			 MRTC_OK);
	struct mrtc_ratelimit *rl = mrtc_ratelimit_create(1, 3, 100);
	struct tally t = { 0 };
	for (int i = 0; i < 5; i++)
		ck_assert_ptr_nonnull(mrtc_limits_take(l, rl, "user", "@a:x", count, &t));
	ck_assert_int_eq(t.calls, 0); /* never inside the start call */
	ck_assert(run_until(base, &t, 5, 2000));
	ck_assert_int_eq(t.allowed, 3);
	ck_assert_int_eq(t.refused, 2);
	ck_assert_uint_gt(t.last_retry_ms, 0);
	ck_assert_uint_le(t.last_retry_ms, 1000);
	/* Cancelled: no callback. */
	struct tally c = { 0 };
	mrtc_limits_take_cancel(mrtc_limits_take(l, rl, "user", "@b:x", count, &c));
	spin(base, 50);
	ck_assert_int_eq(c.calls, 0);
	struct mrtc_limits_stats st;
	mrtc_limits_get_stats(l, &st);
	ck_assert(!st.shared && !st.up);
	ck_assert_uint_eq(st.fallbacks, 0);
	/* Destroyed with a decision outstanding: no callback, nothing leaks. */
	ck_assert_ptr_nonnull(mrtc_limits_take(l, rl, "user", "@c:x", count, &c));
	mrtc_limits_destroy(l);
	spin(base, 20);
	ck_assert_int_eq(c.calls, 0);
	mrtc_ratelimit_destroy(rl);
	event_base_free(base);
}
END_TEST

/* A limiter on the test's Redis with its own key prefix; waits until it decides there. */
static struct mrtc_limits *shared(struct event_base *base, const char *prefix)
{
	struct mrtc_redis_spec spec;
	char url[64];
	ck_assert(mrtc_format(url, sizeof(url), "redis://127.0.0.1:%d", vectors_redis_port()));
	ck_assert(mrtc_redis_spec_parse(url, &spec));
	struct mrtc_limits *l = NULL;
	struct mrtc_limits_config c = { .base = base, .redis = &spec, .key_prefix = prefix };
	ck_assert_int_eq(mrtc_limits_create(&c, &l), MRTC_OK);
	struct mrtc_limits_stats st = { 0 };
	for (uint64_t end = mrtc_monotonic_ms() + 10000; mrtc_monotonic_ms() < end;) {
		spin(base, 20); /* redis-server may still be starting: the backoff retries */
		mrtc_limits_get_stats(l, &st);
		if (st.up)
			break;
	}
	ck_assert_msg(st.up, "never connected to redis-server");
	return l;
}

START_TEST(test_limits_shared_burst_refill_outage)
{
	ck_assert_msg(vectors_redis_start(), "redis-server is needed");
	struct event_base *base = event_base_new();
	char prefix[48];
	ck_assert(mrtc_format(prefix, sizeof(prefix), "test:%d:", (int)getpid()));
	struct mrtc_limits *ls[3];
	struct mrtc_ratelimit *rls[3];
	for (int i = 0; i < 3; i++) {
		ls[i] = shared(base, prefix);
		rls[i] = mrtc_ratelimit_create(2, 20, 100);
	}

	/* Three limiters, one bucket: 20 of 60 at once, not 60. */
	struct tally t = { 0 };
	uint64_t start = mrtc_monotonic_ms();
	for (int i = 0; i < 60; i++)
		ck_assert_ptr_nonnull(
		    mrtc_limits_take(ls[i % 3], rls[i % 3], "user", "@a:x", count, &t));
	ck_assert(run_until(base, &t, 60, 5000));
	uint64_t took = mrtc_monotonic_ms() - start;
	uint64_t fallbacks = 0, decided = 0;
	for (int i = 0; i < 3; i++) {
		struct mrtc_limits_stats st;
		mrtc_limits_get_stats(ls[i], &st);
		fallbacks += st.fallbacks;
		decided += st.shared_allowed + st.shared_refused;
	}
	ck_assert_uint_eq(decided + fallbacks, 60);
	/* A decision Redis answers later than its timeout (a loaded machine) is local: it may
	 * allow one more. Without one, exactly 20 and the refill. */
	ck_assert_uint_le(fallbacks, 10);
	ck_assert_int_ge(t.allowed, 20);
	ck_assert_int_le(t.allowed, 20 + (int)(took * 2 / 1000) + 1 + (int)fallbacks);
	ck_assert_uint_gt(t.last_retry_ms, 0);
	ck_assert_uint_le(t.last_retry_ms, 500);

	/* Refill at 2 per second: about 2 more after 1.1 s. */
	spin(base, 1100);
	struct tally r = { 0 };
	for (int i = 0; i < 6; i++)
		mrtc_limits_take(ls[i % 3], rls[i % 3], "user", "@a:x", count, &r);
	ck_assert(run_until(base, &r, 6, 5000));
	ck_assert_int_ge(r.allowed, 2);
	ck_assert_int_le(r.allowed, 3);

	/* Redis stopped: each decision falls back to the local bucket within the timeout. */
	struct mrtc_limits_stats st;
	mrtc_limits_get_stats(ls[0], &st);
	uint64_t outages = st.outages; /* one if it tried before redis-server listened */
	kill(vectors_redis_pid(), SIGSTOP);
	struct tally f = { 0 };
	start = mrtc_monotonic_ms();
	mrtc_limits_take(ls[0], rls[0], "user", "@b:x", count, &f);
	ck_assert(run_until(base, &f, 1, 5000));
	ck_assert_uint_lt(mrtc_monotonic_ms() - start, MRTC_LIMITS_TIMEOUT_MS + 400);
	ck_assert_int_eq(f.allowed, 1);
	for (int i = 0; i < 10; i++) {
		mrtc_limits_take(ls[0], rls[0], "user", "@b:x", count, &f);
		spin(base, 100);
	}
	ck_assert(run_until(base, &f, 11, 5000));
	mrtc_limits_get_stats(ls[0], &st);
	ck_assert(!st.up);
	ck_assert_uint_eq(st.outages, outages + 1); /* one warning for the whole outage */
	ck_assert_uint_ge(st.fallbacks, 11);

	/* Continued: shared again after at most the backoff cap. */
	kill(vectors_redis_pid(), SIGCONT);
	for (uint64_t end = mrtc_monotonic_ms() + 10000; mrtc_monotonic_ms() < end && !st.up;) {
		spin(base, 50);
		mrtc_limits_get_stats(ls[0], &st);
	}
	ck_assert(st.up);
	uint64_t before = st.shared_allowed + st.shared_refused;
	struct tally b = { 0 };
	mrtc_limits_take(ls[0], rls[0], "user", "@c:x", count, &b);
	ck_assert(run_until(base, &b, 1, 5000));
	mrtc_limits_get_stats(ls[0], &st);
	ck_assert_uint_eq(st.shared_allowed + st.shared_refused, before + 1);
	ck_assert_uint_eq(st.outages, outages + 1);

	/* Cancelled while Redis holds it, and destroyed with one outstanding: no callback. */
	struct tally c = { 0 };
	mrtc_limits_take_cancel(mrtc_limits_take(ls[1], rls[1], "user", "@d:x", count, &c));
	mrtc_limits_take(ls[2], rls[2], "user", "@d:x", count, &c);
	mrtc_limits_destroy(ls[2]);
	spin(base, 200);
	ck_assert_int_eq(c.calls, 0);
	for (int i = 0; i < 2; i++)
		mrtc_limits_destroy(ls[i]);
	for (int i = 0; i < 3; i++)
		mrtc_ratelimit_destroy(rls[i]);
	event_base_free(base);
	vectors_redis_stop();
}
END_TEST

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_limits_local_never_inside_start);
	tcase_add_test(tc, test_limits_shared_burst_refill_outage);
	suite_add_tcase(s, tc);
	return vectors_run_suite(s);
}
