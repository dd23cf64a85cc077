/* SPDX-License-Identifier: Apache-2.0 */
/* Store specs: Redis credentials and Sentinel, redaction, status, the connection's backoff. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mrtc/core/config.h"
#include "mrtc/store/redis_conn.h"
#include "mrtc/store/store.h"
#include "mrtc/base/util.h"
#include "vectors.h"

START_TEST(test_redis_spec_parse_credentials)
{
	struct mrtc_redis_spec s;
	ck_assert(mrtc_redis_spec_parse("redis://mrtc:s3cr%3At%2F%40%25x@127.0.0.1:6380/3", &s));
	ck_assert(!s.sentinel);
	ck_assert_str_eq(s.user, "mrtc");
	ck_assert(s.has_password);
	ck_assert_str_eq(s.password, "s3cr:t/@%x");
	ck_assert_uint_eq(s.n_nodes, 1);
	ck_assert_str_eq(s.nodes[0].host, "127.0.0.1");
	ck_assert_int_eq(s.nodes[0].port, 6380);
	ck_assert_int_eq(s.db, 3);

	/* A raw '@' in the password: the userinfo ends at the last '@'. */
	ck_assert(mrtc_redis_spec_parse("redis://u:p@ss@localhost", &s));
	ck_assert_str_eq(s.password, "p@ss");
	ck_assert_int_eq(s.nodes[0].port, 6379);
	ck_assert_int_eq(s.db, 0);

	ck_assert(mrtc_redis_spec_parse("redis://:only@redis.internal/1", &s));
	ck_assert_str_eq(s.user, "");
	ck_assert_str_eq(s.password, "only");

	ck_assert(mrtc_redis_spec_parse("redis://mrtc@[::1]:7000", &s));
	ck_assert_str_eq(s.user, "mrtc");
	ck_assert(!s.has_password);
	ck_assert_str_eq(s.nodes[0].host, "::1");
	ck_assert_int_eq(s.nodes[0].port, 7000);
	mrtc_redis_spec_wipe(&s);
	ck_assert_str_eq(s.password, "");
}
END_TEST

START_TEST(test_redis_spec_parse_sentinel)
{
	struct mrtc_redis_spec s;
	ck_assert(mrtc_redis_spec_parse(
	    "redis+sentinel://u:p@10.0.0.1,10.0.0.2:26380,[fd00::3]/my-master.1/2", &s));
	ck_assert(s.sentinel);
	ck_assert_uint_eq(s.n_nodes, 3);
	ck_assert_int_eq(s.nodes[0].port, 26379);
	ck_assert_int_eq(s.nodes[1].port, 26380);
	ck_assert_str_eq(s.nodes[2].host, "fd00::3");
	ck_assert_str_eq(s.master, "my-master.1");
	ck_assert_int_eq(s.db, 2);
	ck_assert(mrtc_redis_spec_parse("redis+sentinel://s1/m", &s));
	ck_assert_int_eq(s.db, 0);
}
END_TEST

START_TEST(test_redis_spec_parse_refused)
{
	static const char *const bad[] = {
		"redis://",
		"redis://u:p%zz@h",
		"redis://u:p%4@h",
		"redis://u:p%00@h",
		"redis://u:@h",
		"redis://@h",
		"redis://u:p\x01@h",
		"redis://h1,h2",
		"redis://h/",
		"redis://h/1001",
		"redis://h:0",
		"redis://h:65536",
		"redis://h:1x",
		"redis://bad_host!",
		"redis://[::1",
		"redis+sentinel://h",
		"redis+sentinel://h/",
		"redis+sentinel://h,/m",
		"redis+sentinel://h1,,h2/m",
		"redis+sentinel://h/m/x",
		"redis+sentinel://h/m a",
		"redis+sentinel://1,2,3,4,5,6,7,8,9/m",
		"rediss://h",
		"http://h",
	};
	struct mrtc_redis_spec s;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!mrtc_redis_spec_parse(bad[i], &s), "accepted %s", bad[i]);
		ck_assert_msg(!mrtc_store_spec_is_valid(bad[i]), "store accepted %s", bad[i]);
	}
	ck_assert(mrtc_store_spec_is_valid("sqlite:/var/lib/mrtc/jobs.db"));
	ck_assert(!mrtc_store_spec_is_valid("sqlite:"));
}
END_TEST

START_TEST(test_redis_spec_redact)
{
	char out[256];
	mrtc_store_spec_redact("redis://mrtc:s3cret@h:1/2", out, sizeof(out));
	ck_assert_str_eq(out, "redis://mrtc:***@h:1/2");
	mrtc_store_spec_redact("redis://:p@ss:w@h", out, sizeof(out));
	ck_assert_str_eq(out, "redis://:***@h");
	mrtc_store_spec_redact("redis+sentinel://u:x@a,b/m", out, sizeof(out));
	ck_assert_str_eq(out, "redis+sentinel://u:***@a,b/m");
	mrtc_store_spec_redact("redis://mrtc@h", out, sizeof(out));
	ck_assert_str_eq(out, "redis://mrtc@h");
	mrtc_store_spec_redact("sqlite:/x@y:z", out, sizeof(out));
	ck_assert_str_eq(out, "sqlite:/x@y:z");
	mrtc_store_spec_redact("redis://u:secretsecret@h", out, 12);
	ck_assert_ptr_null(strstr(out, "secret"));
	ck_assert(mrtc_store_spec_has_password("redis://:x@h"));
	ck_assert(!mrtc_store_spec_has_password("redis://u@h"));
	ck_assert(mrtc_store_spec_has_user("redis://u@h"));
	ck_assert(!mrtc_store_spec_has_user("sqlite:/tmp/x"));
}
END_TEST

static const char *help_env(void *ctx, const char *name)
{
	(void)ctx;
	if (strcmp(name, "MRTC_STORE") == 0)
		return "redis://mrtc:hunter2-secret@redis.internal:6379/1";
	if (strcmp(name, "MRTC_REDIS_SENTINEL_PASSWORD") == 0)
		return "sentinel-secret";
	return NULL;
}

START_TEST(test_help_redacts_the_store)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mrtc_config_print_help(f, "mrtc-transportd", help_env, NULL);
	fclose(f);
	ck_assert_ptr_null(strstr(buf, "hunter2"));
	ck_assert_ptr_null(strstr(buf, "sentinel-secret"));
	ck_assert_ptr_nonnull(strstr(buf, "redis://mrtc:***@redis.internal"));
	ck_assert_ptr_nonnull(strstr(buf, "MRTC_REDIS_PASSWORD"));
	free(buf);
}
END_TEST

START_TEST(test_store_status)
{
	struct mrtc_store_status st;
	mrtc_store_get_status(NULL, &st);
	ck_assert_str_eq(st.kind, "none");

	char path[] = "/tmp/mrtc-test-store-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char spec[64];
	ck_assert_int_lt(snprintf(spec, sizeof(spec), "sqlite:%s", path), (int)sizeof(spec));
	struct mrtc_store *store = NULL;
	ck_assert_int_eq(mrtc_store_open(spec, NULL, &store), MRTC_OK);
	mrtc_store_get_status(store, &st);
	ck_assert_str_eq(st.kind, "sqlite");
	ck_assert_str_eq(st.state, "open");
	ck_assert(!st.refused);
	mrtc_store_close(store);
	unlink(path);
	static const char *const suffixes[] = { "-wal", "-shm" };
	for (size_t i = 0; i < 2; i++) {
		char p[64];
		if (snprintf(p, sizeof(p), "%s%s", path, suffixes[i]) < (int)sizeof(p))
			unlink(p);
	}
}
END_TEST

struct seen {
	struct mrtc_watch_record w[4];
	size_t n;
};

static void collect_watch(void *ctx, const struct mrtc_watch_record *w)
{
	struct seen *s = ctx;
	ck_assert_uint_lt(s->n, 4);
	s->w[s->n++] = *w;
}

static struct mrtc_watch_record watch_rec(const char *identity, uint64_t expires_ms)
{
	struct mrtc_watch_record w = { .expires_ms = expires_ms };
	snprintf(w.room_id, sizeof(w.room_id), "!call:hs1.test");
	snprintf(w.room_name, sizeof(w.room_name), "ROOMHASH");
	snprintf(w.identity, sizeof(w.identity), "%s", identity);
	snprintf(w.user_id, sizeof(w.user_id), "@%s:hs1.test", identity);
	return w;
}

/* The watch's admitted set in SQLite (the Redis twin runs against a real Redis in
 * integration-delayed): written in one batch, read back after a reopen with every field,
 * expired records dropped, one replaced by a later expiry, one deleted. */
START_TEST(test_sqlite_watch_contract)
{
	char dir[] = "/tmp/mrtc-test-watch-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char sub[64], spec[96], why[160];
	ck_assert_int_lt(snprintf(sub, sizeof(sub), "%s/state", dir), (int)sizeof(sub));
	ck_assert(mrtc_store_dir_is_usable(sub, false, why, sizeof(why))); /* can be made */
	ck_assert(mrtc_store_dir_is_usable(sub, true, why, sizeof(why)));
	struct stat st;
	ck_assert_int_eq(stat(sub, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_lt(snprintf(spec, sizeof(spec), "sqlite:%s/store.db", sub),
			 (int)sizeof(spec));
	struct mrtc_store *store = NULL;
	ck_assert_int_eq(mrtc_store_open(spec, NULL, &store), MRTC_OK);
	const struct mrtc_watch_record batch[] = { watch_rec("a", 5000), watch_rec("b", 1000),
						   watch_rec("c", 5000) };
	ck_assert_int_eq(store->ops->watch_put(store->self, batch, 3), MRTC_OK);
	mrtc_store_close(store);
	ck_assert_int_eq(mrtc_store_open(spec, NULL, &store), MRTC_OK);
	struct seen seen = { .n = 0 };
	ck_assert_int_eq(store->ops->watch_each(store->self, 2000, collect_watch, &seen), MRTC_OK);
	ck_assert_uint_eq(seen.n, 2); /* b expired at 1000 */
	for (size_t i = 0; i < seen.n; i++) {
		struct mrtc_watch_record want = watch_rec(seen.w[i].identity, 5000);
		ck_assert(strcmp(seen.w[i].identity, "a") == 0 ||
			  strcmp(seen.w[i].identity, "c") == 0);
		ck_assert_str_eq(seen.w[i].room_id, want.room_id);
		ck_assert_str_eq(seen.w[i].room_name, want.room_name);
		ck_assert_str_eq(seen.w[i].user_id, want.user_id);
		ck_assert_uint_eq(seen.w[i].expires_ms, want.expires_ms);
	}
	const struct mrtc_watch_record later = watch_rec("a", 9000);
	ck_assert_int_eq(store->ops->watch_put(store->self, &later, 1), MRTC_OK);
	ck_assert_int_eq(store->ops->watch_del(store->self, "ROOMHASH", "c"), MRTC_OK);
	ck_assert_int_eq(store->ops->watch_prune(store->self, 6000), MRTC_OK);
	seen.n = 0;
	ck_assert_int_eq(store->ops->watch_each(store->self, 6000, collect_watch, &seen), MRTC_OK);
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_str_eq(seen.w[0].identity, "a");
	ck_assert_uint_eq(seen.w[0].expires_ms, 9000);
	mrtc_store_close(store);
	/* A file where the directory should be: refused, with the reason. */
	char bad[96];
	ck_assert_int_lt(snprintf(bad, sizeof(bad), "%s/store.db/x", sub), (int)sizeof(bad));
	ck_assert(!mrtc_store_dir_is_usable(bad, true, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "Not a directory"));
	static const char *const files[] = { "store.db", "store.db-wal", "store.db-shm" };
	for (size_t i = 0; i < 3; i++) {
		char p[96];
		if (snprintf(p, sizeof(p), "%s/%s", sub, files[i]) < (int)sizeof(p))
			unlink(p);
	}
	ck_assert_int_eq(rmdir(sub), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Nobody listens on port 1: the first call fails fast, and later ones fail at once while the
 * connection backs off (nothing waits on a Redis that is down). */
START_TEST(test_redis_unreachable_backs_off)
{
	struct mrtc_store *store = NULL;
	const struct mrtc_store_options opts = { .redis_password = "pw" };
	ck_assert_int_eq(mrtc_store_open("redis://u@127.0.0.1:1/0", &opts, &store), MRTC_OK);
	struct mrtc_store_status st;
	mrtc_store_get_status(store, &st);
	ck_assert_str_eq(st.kind, "redis");
	ck_assert_str_eq(st.state, "unreachable");
	ck_assert_str_eq(st.address, "127.0.0.1:1");
	ck_assert_ptr_nonnull(strstr(st.detail, "server 127.0.0.1:1"));
	ck_assert_str_eq(st.spec, "redis://u@127.0.0.1:1/0");
	uint64_t start = mrtc_monotonic_ms();
	struct mrtc_job_record rec;
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(store->ops->get(store->self, "k", &rec), MRTC_ERR_IO);
	ck_assert_uint_lt(mrtc_monotonic_ms() - start, 2000);
	ck_assert(!store->ops->lease(store->self, "k", "owner", 1000)); /* never held */
	mrtc_store_close(store);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	const TTest *tests[] = {
		test_redis_spec_parse_credentials, test_redis_spec_parse_sentinel,
		test_redis_spec_parse_refused,	   test_redis_spec_redact,
		test_help_redacts_the_store,	   test_store_status,
		test_redis_unreachable_backs_off,  test_sqlite_watch_contract,
	};
	vectors_add_tests(s, "store", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
