/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store contract through the asynchronous API, against both backends: SQLite in a
 * temporary file and a real redis-server started on a free loopback port (skipped with a note
 * when redis-server is not installed). Then the asynchronous convention itself: no callback
 * inside the start call, cancel means no callback, and a stalled Redis (SIGSTOP) neither
 * blocks the caller nor lets the queue grow past its bound. On Redis, two homeservers' stores on
 * one database see nothing of each other's, and the keys of a previous version are moved into
 * the namespace of the server whose users they are.
 */
#include <check.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mrtc/base/util.h"
#include "mrtc/store/async.h"
#include "vectors.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- running the loop until the answers came ---- */

struct waiter {
	struct event_base *base;
	int pending;   /* callbacks still expected */
	bool in_start; /* set around each start call: a callback must never see it */
	bool called_in_start;
	enum mrtc_err err;
	struct mrtc_job_record jobs[8];
	size_t n_jobs;
	struct mrtc_watch_record w[8];
	size_t n_w;
	bool held[8];
	size_t n_held;
};

static void got(struct waiter *wt)
{
	if (wt->in_start)
		wt->called_in_start = true;
	if (--wt->pending == 0)
		event_base_loopbreak(wt->base);
}

static void on_done(void *arg, enum mrtc_err err)
{
	struct waiter *wt = arg;
	wt->err = err;
	got(wt);
}

static void on_jobs(void *arg, enum mrtc_err err, const struct mrtc_job_record *jobs, size_t n)
{
	struct waiter *wt = arg;
	wt->err = err;
	wt->n_jobs = n < 8 ? n : 8;
	if (wt->n_jobs) /* jobs may be NULL when there are none */
		memcpy(wt->jobs, jobs, wt->n_jobs * sizeof(*jobs));
	got(wt);
}

static void on_leases(void *arg, const bool *held, size_t n)
{
	struct waiter *wt = arg;
	wt->n_held = n < 8 ? n : 8;
	if (wt->n_held)
		memcpy(wt->held, held, wt->n_held * sizeof(*held));
	got(wt);
}

static void on_watches(void *arg, enum mrtc_err err, const struct mrtc_watch_record *w, size_t n)
{
	struct waiter *wt = arg;
	wt->err = err;
	wt->n_w = n < 8 ? n : 8;
	if (wt->n_w)
		memcpy(wt->w, w, wt->n_w * sizeof(*w));
	got(wt);
}

static void on_never(void *arg, enum mrtc_err err)
{
	(void)err;
	*(bool *)arg = true;
}

/* Runs the loop until every expected callback came (at most 10 s). */
static void wait_all(struct waiter *wt)
{
	struct timeval tv = { .tv_sec = 10 };
	event_base_loopexit(wt->base, &tv);
	event_base_dispatch(wt->base);
	ck_assert_int_eq(wt->pending, 0);
	ck_assert(!wt->called_in_start);
}

#define START(wt, call)                                                                            \
	do {                                                                                       \
		(wt)->in_start = true;                                                             \
		ck_assert_ptr_nonnull(call);                                                       \
		(wt)->in_start = false;                                                            \
		(wt)->pending++;                                                                   \
		wait_all(wt);                                                                      \
	} while (0)

static struct mrtc_job_record job(const char *key, const char *user)
{
	struct mrtc_job_record j = { .delay_ms = 10000, .created_ms = 1234, .state = 1 };
	snprintf(j.key, sizeof(j.key), "%s", key);
	snprintf(j.user_id, sizeof(j.user_id), "%s", user);
	snprintf(j.room_id, sizeof(j.room_id), "!room:hs1.test");
	snprintf(j.room_name, sizeof(j.room_name), "ROOMHASH");
	snprintf(j.identity, sizeof(j.identity), "%s:DEV", user);
	snprintf(j.delay_id, sizeof(j.delay_id), "syd_%s", key);
	snprintf(j.cs_api_url, sizeof(j.cs_api_url), "https://hs1.test");
	snprintf(j.sfu_url, sizeof(j.sfu_url), "wss://sfu.hs1.test");
	return j;
}

static struct mrtc_watch_record watch(const char *identity, uint64_t expires_ms)
{
	struct mrtc_watch_record w = { .expires_ms = expires_ms };
	snprintf(w.room_id, sizeof(w.room_id), "!room:hs1.test");
	snprintf(w.room_name, sizeof(w.room_name), "ROOMHASH");
	snprintf(w.identity, sizeof(w.identity), "%s", identity);
	snprintf(w.user_id, sizeof(w.user_id), "@%s:hs1.test", identity);
	snprintf(w.sfu_url, sizeof(w.sfu_url), "wss://sfu.hs1.test");
	return w;
}

/* The contract every backend keeps, through the asynchronous API. */
static void contract(const char *spec, bool shared)
{
	struct waiter wt = { .base = event_base_new() };
	ck_assert_ptr_nonnull(wt.base);
	struct mrtc_store_async *st = NULL;
	ck_assert_int_eq(mrtc_store_async_open(wt.base, spec, NULL, 0, &st), MRTC_OK);
	ck_assert(mrtc_store_async_is_shared(st) == shared);

	/* put, get, each, replace, del */
	struct mrtc_job_record a = job("KA", "@a:hs1.test"), b = job("KB", "@b:hs1.test");
	START(&wt, mrtc_store_put(st, &a, on_done, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	START(&wt, mrtc_store_put(st, &b, on_done, &wt));
	START(&wt, mrtc_store_get(st, "KA", on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_uint_eq(wt.n_jobs, 1);
	ck_assert_str_eq(wt.jobs[0].user_id, "@a:hs1.test");
	ck_assert_str_eq(wt.jobs[0].delay_id, "syd_KA");
	ck_assert_str_eq(wt.jobs[0].sfu_url, "wss://sfu.hs1.test");
	ck_assert_uint_eq(wt.jobs[0].delay_ms, 10000);
	ck_assert_int_eq(wt.jobs[0].state, 1);
	START(&wt, mrtc_store_get(st, "NONE", on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_ERR_NOT_FOUND);
	ck_assert_uint_eq(wt.n_jobs, 0);
	a.state = 0;
	START(&wt, mrtc_store_put(st, &a, on_done, &wt));
	START(&wt, mrtc_store_each(st, on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_uint_eq(wt.n_jobs, 2);
	for (size_t i = 0; i < 2; i++)
		if (strcmp(wt.jobs[i].key, "KA") == 0)
			ck_assert_int_eq(wt.jobs[i].state, 0);
	START(&wt, mrtc_store_del(st, "KB", "owner-1", on_done, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	START(&wt, mrtc_store_each(st, on_jobs, &wt));
	ck_assert_uint_eq(wt.n_jobs, 1);
	ck_assert_str_eq(wt.jobs[0].key, "KA");

	/* leases: many keys in one call; another owner is refused while one holds it */
	struct mrtc_store_key keys[2] = { { "KA" }, { "KB" } };
	START(&wt, mrtc_store_lease(st, keys, 2, "owner-1", 5000, on_leases, &wt));
	ck_assert_uint_eq(wt.n_held, 2);
	ck_assert(wt.held[0] && wt.held[1]);
	START(&wt, mrtc_store_lease(st, keys, 1, "owner-2", 5000, on_leases, &wt));
	ck_assert_uint_eq(wt.n_held, 1);
	ck_assert(wt.held[0] == !shared); /* SQLite has one daemon: every lease is its own */
	START(&wt, mrtc_store_release(st, "KA", "owner-1", on_done, &wt));
	START(&wt, mrtc_store_lease(st, keys, 1, "owner-2", 5000, on_leases, &wt));
	ck_assert(wt.held[0]);

	/* the watch's admitted set */
	struct mrtc_watch_record ws[3] = { watch("x", 5000), watch("y", 1000), watch("z", 5000) };
	START(&wt, mrtc_store_watch_put(st, ws, 3, on_done, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	START(&wt, mrtc_store_watch_each(st, 2000, on_watches, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_uint_eq(wt.n_w, 2); /* y expired at 1000 */
	START(&wt, mrtc_store_watch_del(st, "wss://sfu.hs1.test", "ROOMHASH", "z", on_done, &wt));
	START(&wt, mrtc_store_watch_prune(st, 6000, on_done, &wt));
	START(&wt, mrtc_store_watch_each(st, 2000, on_watches, &wt));
	ck_assert_uint_eq(wt.n_w, 0);

	/* cancel: no callback, and a fire-and-forget write still lands */
	bool called = false;
	struct mrtc_store_call *c = mrtc_store_put(st, &b, on_never, &called);
	ck_assert_ptr_nonnull(c);
	mrtc_store_call_cancel(c);
	ck_assert_ptr_nonnull(mrtc_store_put(st, &b, NULL, NULL));
	START(&wt, mrtc_store_get(st, "KB", on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert(!called);

	struct mrtc_store_status status;
	mrtc_store_async_get_status(st, &status);
	ck_assert_str_eq(status.kind, shared ? "redis" : "sqlite");
	ck_assert_str_eq(status.state, shared ? "connected" : "open");
	START(&wt, mrtc_store_del(st, "KA", NULL, on_done, &wt));
	START(&wt, mrtc_store_del(st, "KB", NULL, on_done, &wt));
	mrtc_store_async_close(st);
	event_base_free(wt.base);
}

START_TEST(test_contract_sqlite)
{
	char path[] = "/tmp/mrtc-test-async-XXXXXX", spec[64];
	vectors_temp_store(path, spec, sizeof(spec));
	contract(spec, false);
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char p[64];
		if (snprintf(p, sizeof(p), "%s%s", path, suffixes[i]) < (int)sizeof(p))
			unlink(p);
	}
}
END_TEST

/* Starts the test's redis-server and writes its MRTC_STORE spec; false when not installed. */
static bool redis_spec(char *spec, size_t size)
{
	if (!vectors_redis_start())
		return false;
	ck_assert_int_lt(snprintf(spec, size, "redis://127.0.0.1:%d/0", vectors_redis_port()),
			 (int)size);
	return true;
}

START_TEST(test_contract_redis)
{
	char spec[64];
	if (!redis_spec(spec, sizeof(spec)))
		return;
	contract(spec, true);
	vectors_redis_stop();
}
END_TEST

/* redis-cli on the test server; the command goes through sh (printf makes the 0x1f byte). */
static void redis_cli(const char *args)
{
	char cmd[1024];
	ck_assert_int_lt(
	    snprintf(cmd, sizeof(cmd), "redis-cli -p %d %s >/dev/null", vectors_redis_port(), args),
	    (int)sizeof(cmd));
	ck_assert_int_eq(system(cmd), 0);
}

static struct mrtc_store_async *open_named(struct waiter *wt, const char *spec, const char *name)
{
	struct mrtc_store_options so = { .server_name = name };
	struct mrtc_store_async *st = NULL;
	ck_assert_int_eq(mrtc_store_async_open(wt->base, spec, &so, 0, &st), MRTC_OK);
	return st;
}

/* Two homeservers on one Redis database: jobs, the admitted set and leases apart, even under
 * the same job key, watch field and lease key; and the keys of a previous version go to the
 * homeserver of their user. */
START_TEST(test_redis_namespaces)
{
	char spec[64];
	if (!redis_spec(spec, sizeof(spec)))
		return;
	/* written by a previous version: a job and an admitted participant of each server */
	redis_cli("HSET mrtc:job:OLD1 user_id @o:hs1.test room_id '!r:hs1.test' delay_id syd_o "
		  "state 1 guarded 1");
	redis_cli("HSET mrtc:job:OLD2 user_id @p:hs2.test room_id '!r:hs2.test' delay_id syd_p "
		  "state 1 guarded 1");
	redis_cli("SADD mrtc:jobs OLD1 OLD2");
	redis_cli("HSET mrtc:watch \"$(printf 'ROOMHASH|wss://sfu.hs1.test\\037old1')\" "
		  "\"$(printf '!r:hs1.test\\037@old1:hs1.test')\"");
	redis_cli(
	    "ZADD mrtc:watch:expiry 5000 \"$(printf 'ROOMHASH|wss://sfu.hs1.test\\037old1')\"");
	redis_cli("SET mrtc:lease:OLD1 old-owner PX 60000");

	struct waiter wt = { .base = event_base_new() };
	ck_assert_ptr_nonnull(wt.base);
	struct mrtc_store_async *one = open_named(&wt, spec, "hs1.test");
	struct mrtc_store_async *two = open_named(&wt, spec, "hs2.test:8448");
	struct mrtc_job_record a = job("SAME", "@a:hs1.test"), b = job("SAME", "@b:hs2.test:8448");
	START(&wt, mrtc_store_put(one, &a, on_done, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	START(&wt, mrtc_store_put(two, &b, on_done, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);

	/* each sees its own job under the shared key, plus the old one of its users */
	START(&wt, mrtc_store_each(one, on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_uint_eq(wt.n_jobs, 2);
	for (size_t i = 0; i < 2; i++)
		ck_assert_str_eq(wt.jobs[i].user_id, strcmp(wt.jobs[i].key, "SAME") == 0
							 ? "@a:hs1.test"
							 : "@o:hs1.test");
	START(&wt, mrtc_store_get(one, "OLD1", on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_str_eq(wt.jobs[0].delay_id, "syd_o");
	START(&wt, mrtc_store_each(two, on_jobs, &wt));
	ck_assert_uint_eq(wt.n_jobs, 1); /* OLD2 is @p:hs2.test's, not hs2.test:8448's */
	ck_assert_str_eq(wt.jobs[0].user_id, "@b:hs2.test:8448");
	START(&wt, mrtc_store_get(two, "OLD1", on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_ERR_NOT_FOUND);

	/* deleting one's job leaves the other's */
	START(&wt, mrtc_store_del(one, "SAME", NULL, on_done, &wt));
	START(&wt, mrtc_store_get(two, "SAME", on_jobs, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_str_eq(wt.jobs[0].user_id, "@b:hs2.test:8448");

	/* leases: the same key held by each at once; an old-version lease is respected */
	struct mrtc_store_key same[1] = { { "SAME" } }, old[1] = { { "OLD1" } };
	START(&wt, mrtc_store_lease(one, same, 1, "owner-1", 5000, on_leases, &wt));
	ck_assert(wt.held[0]);
	START(&wt, mrtc_store_lease(two, same, 1, "owner-2", 5000, on_leases, &wt));
	ck_assert(wt.held[0]);
	START(&wt, mrtc_store_lease(one, same, 1, "owner-3", 5000, on_leases, &wt));
	ck_assert(!wt.held[0]);
	START(&wt, mrtc_store_lease(one, old, 1, "owner-1", 5000, on_leases, &wt));
	ck_assert(!wt.held[0]);
	redis_cli("DEL mrtc:lease:OLD1");
	START(&wt, mrtc_store_lease(one, old, 1, "owner-1", 5000, on_leases, &wt));
	ck_assert(wt.held[0]);

	/* the admitted set: the same participant key in both, each its own */
	struct mrtc_watch_record w1 = watch("p", 5000), w2 = watch("p", 5000);
	snprintf(w2.user_id, sizeof(w2.user_id), "@p:hs2.test:8448");
	START(&wt, mrtc_store_watch_put(one, &w1, 1, on_done, &wt));
	START(&wt, mrtc_store_watch_put(two, &w2, 1, on_done, &wt));
	START(&wt, mrtc_store_watch_each(one, 2000, on_watches, &wt));
	ck_assert_uint_eq(wt.n_w, 2); /* and old1, moved */
	for (size_t i = 0; i < 2; i++)
		ck_assert_str_eq(wt.w[i].user_id, strcmp(wt.w[i].identity, "p") == 0
						      ? "@p:hs1.test"
						      : "@old1:hs1.test");
	START(&wt, mrtc_store_watch_del(one, "wss://sfu.hs1.test", "ROOMHASH", "p", on_done, &wt));
	START(&wt, mrtc_store_watch_each(two, 2000, on_watches, &wt));
	ck_assert_uint_eq(wt.n_w, 1);
	ck_assert_str_eq(wt.w[0].user_id, "@p:hs2.test:8448");
	START(&wt, mrtc_store_watch_prune(two, 6000, on_done, &wt));
	START(&wt, mrtc_store_watch_each(one, 2000, on_watches, &wt));
	ck_assert_uint_eq(wt.n_w, 1); /* two's prune did not touch one's old1 */
	mrtc_store_async_close(one);
	mrtc_store_async_close(two);

	/* the old keys hold only what belongs to neither */
	char cmd[256];
	ck_assert_int_lt(snprintf(cmd, sizeof(cmd),
				  "test \"$(redis-cli -p %d SMEMBERS mrtc:jobs)\" = OLD2 && "
				  "test \"$(redis-cli -p %d HLEN mrtc:watch)\" = 0",
				  vectors_redis_port(), vectors_redis_port()),
			 (int)sizeof(cmd));
	ck_assert_int_eq(system(cmd), 0);
	event_base_free(wt.base);
	vectors_redis_stop();
}
END_TEST

/* Redis stalled (SIGSTOP): start calls return at once, the queue stops at its bound (new calls
 * fail fast), /readyz's status is answered without waiting, and after SIGCONT the calls
 * complete. */
START_TEST(test_stalled_redis_never_blocks)
{
	char spec[64];
	if (!redis_spec(spec, sizeof(spec)))
		return;
	struct waiter wt = { .base = event_base_new() };
	struct mrtc_store_async *st = NULL;
	ck_assert_int_eq(mrtc_store_async_open(wt.base, spec, NULL, 16, &st), MRTC_OK);
	struct mrtc_job_record a = job("KS", "@s:hs1.test");
	START(&wt, mrtc_store_put(st, &a, on_done, &wt));
	ck_assert_int_eq(wt.err, MRTC_OK);
	ck_assert_int_eq(kill(vectors_redis_pid(), SIGSTOP), 0);
	uint64_t t0 = mrtc_monotonic_ms();
	size_t accepted = 0;
	for (int i = 0; i < 100; i++) {
		if (mrtc_store_get(st, "KS", on_jobs, &wt)) {
			accepted++;
			wt.pending++;
		}
	}
	struct mrtc_store_status status;
	mrtc_store_async_get_status(st, &status);
	uint64_t took = mrtc_monotonic_ms() - t0;
	ck_assert_uint_lt(took, 200);	 /* one command times out at 250 ms: nothing waited on it */
	ck_assert_uint_eq(accepted, 16); /* the bound */
	ck_assert_uint_le(mrtc_store_async_pending(st), 16);
	sleep_ms(300);
	ck_assert_int_eq(kill(vectors_redis_pid(), SIGCONT), 0);
	wait_all(&wt); /* every accepted call is answered (failed or not) */
	/* Redis is back: after the connection's backoff the job reads again. */
	bool read_back = false;
	for (int i = 0; i < 80 && !read_back; i++) {
		START(&wt, mrtc_store_get(st, "KS", on_jobs, &wt));
		read_back = wt.err == MRTC_OK;
		if (!read_back)
			sleep_ms(100);
	}
	ck_assert(read_back);
	mrtc_store_async_close(st);
	event_base_free(wt.base);
	vectors_redis_stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_async");
	const TTest *tests[] = {
		test_contract_sqlite,
		test_contract_redis,
		test_redis_namespaces,
		test_stalled_redis_never_blocks,
	};
	vectors_add_tests(s, "store_async", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
