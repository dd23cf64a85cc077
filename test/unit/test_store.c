/* SPDX-License-Identifier: Apache-2.0 */
/* Store specs: Redis credentials and Sentinel, redaction, status, the connection's backoff. */
#include <check.h>
#include <sqlite3.h>
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

/* Removes the SQLite file @path and its WAL files. */
static void remove_db(const char *path)
{
	unlink(path);
	static const char *const suffixes[] = { "-wal", "-shm" };
	for (size_t i = 0; i < 2; i++) {
		char p[64];
		if (snprintf(p, sizeof(p), "%s%s", path, suffixes[i]) < (int)sizeof(p))
			unlink(p);
	}
}

START_TEST(test_store_status)
{
	struct mrtc_store_status st;
	mrtc_store_get_status(NULL, &st);
	ck_assert_str_eq(st.kind, "none");

	char path[] = "/tmp/mrtc-test-store-XXXXXX", spec[64];
	vectors_temp_store(path, spec, sizeof(spec));
	struct mrtc_store *store = NULL;
	ck_assert_int_eq(mrtc_store_open(spec, NULL, &store), MRTC_OK);
	mrtc_store_get_status(store, &st);
	ck_assert_str_eq(st.kind, "sqlite");
	ck_assert_str_eq(st.state, "open");
	ck_assert(!st.refused);
	mrtc_store_close(store);
	remove_db(path);
}
END_TEST

/* A store file as an older version left it: a new temporary file holding what @sql makes. */
static void old_store(char *path, char *spec, size_t spec_size, const char *sql)
{
	vectors_temp_store(path, spec, spec_size);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* A job keeps its SFU's URL; a store written before several SFUs gains the column, its jobs
 * reading "" (the first SFU). */
START_TEST(test_sqlite_sfu_url_and_old_store)
{
	char path[] = "/tmp/mrtc-test-store-XXXXXX", spec[64];
	old_store(path, spec, sizeof(spec),
		  "CREATE TABLE jobs (key TEXT PRIMARY KEY, user_id TEXT, room_id TEXT,"
		  " room_name TEXT, identity TEXT, delay_id TEXT, cs_api_url TEXT,"
		  " delay_ms INTEGER, created_ms INTEGER, state INTEGER, guarded INTEGER);"
		  "INSERT INTO jobs VALUES ('old','@a:hs','!r:hs','room','id','d1',"
		  "'https://hs',5000,1,0,1);");
	for (int round = 0; round < 2; round++) { /* the second open finds the column there */
		struct mrtc_store *store = NULL;
		ck_assert_int_eq(mrtc_store_open(spec, NULL, &store), MRTC_OK);
		struct mrtc_job_record rec;
		ck_assert_int_eq(store->ops->get(store->self, "old", &rec), MRTC_OK);
		ck_assert_str_eq(rec.cs_api_url, "https://hs");
		ck_assert_str_eq(rec.sfu_url, "");
		if (round == 0) {
			struct mrtc_job_record j = { .key = "new",
						     .delay_ms = 5000,
						     .guarded = true };
			snprintf(j.sfu_url, sizeof(j.sfu_url), "wss://sfu2.example.org");
			ck_assert_int_eq(store->ops->put(store->self, &j), MRTC_OK);
		}
		ck_assert_int_eq(store->ops->get(store->self, "new", &rec), MRTC_OK);
		ck_assert_str_eq(rec.sfu_url, "wss://sfu2.example.org");
		ck_assert(rec.guarded);
		mrtc_store_close(store);
	}
	remove_db(path);
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
	snprintf(w.sfu_url, sizeof(w.sfu_url), "wss://sfu.hs1.test");
	return w;
}

/* The watch's admitted set in SQLite (the Redis twin runs against a real Redis in
 * integration-delayed): written in one batch, read back after a reopen with every field,
 * expired records dropped, one replaced by a later expiry, one deleted; the same room and
 * identity on another SFU is another record, deleted on its own. */
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
		ck_assert_str_eq(seen.w[i].sfu_url, want.sfu_url);
	}
	struct mrtc_watch_record later[2] = { watch_rec("a", 9000), watch_rec("c", 9000) };
	snprintf(later[1].sfu_url, sizeof(later[1].sfu_url), "wss://sfu2.hs1.test");
	ck_assert_int_eq(store->ops->watch_put(store->self, later, 2), MRTC_OK);
	ck_assert_int_eq(store->ops->watch_del(store->self, "wss://sfu.hs1.test", "ROOMHASH", "c"),
			 MRTC_OK);
	ck_assert_int_eq(store->ops->watch_prune(store->self, 6000), MRTC_OK);
	seen.n = 0;
	ck_assert_int_eq(store->ops->watch_each(store->self, 6000, collect_watch, &seen), MRTC_OK);
	ck_assert_uint_eq(seen.n, 2); /* a on SFU 1, c on SFU 2 (its SFU 1 record deleted) */
	for (size_t i = 0; i < seen.n; i++) {
		bool a = strcmp(seen.w[i].identity, "a") == 0;
		ck_assert_str_eq(seen.w[i].sfu_url,
				 a ? "wss://sfu.hs1.test" : "wss://sfu2.hs1.test");
		ck_assert_str_eq(seen.w[i].identity, a ? "a" : "c");
		ck_assert_uint_eq(seen.w[i].expires_ms, 9000);
	}
	ck_assert_int_eq(store->ops->watch_del(store->self, "wss://sfu2.hs1.test", "ROOMHASH", "c"),
			 MRTC_OK);
	seen.n = 0;
	ck_assert_int_eq(store->ops->watch_each(store->self, 6000, collect_watch, &seen), MRTC_OK);
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_str_eq(seen.w[0].identity, "a");
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

/* A watch table made before several SFUs (no sfu_url, keyed by room and identity) is rebuilt:
 * its rows on the first SFU (""), then the same participant on two SFUs is two rows. */
START_TEST(test_sqlite_watch_old_table)
{
	char path[] = "/tmp/mrtc-test-store-XXXXXX", spec[64];
	old_store(path, spec, sizeof(spec),
		  "CREATE TABLE watch (room_name TEXT, identity TEXT, room_id TEXT,"
		  " user_id TEXT, expires_ms INTEGER, PRIMARY KEY (room_name, identity));"
		  "CREATE INDEX watch_expiry ON watch (expires_ms);"
		  "INSERT INTO watch VALUES ('ROOMHASH','a','!call:hs1.test',"
		  "'@a:hs1.test',5000);");
	for (int round = 0; round < 2; round++) { /* the second open finds the new table */
		struct mrtc_store *store = NULL;
		ck_assert_int_eq(mrtc_store_open(spec, NULL, &store), MRTC_OK);
		struct seen seen = { .n = 0 };
		ck_assert_int_eq(store->ops->watch_each(store->self, 2000, collect_watch, &seen),
				 MRTC_OK);
		ck_assert_uint_eq(seen.n, round == 0 ? 1 : 2);
		for (size_t i = 0; i < seen.n; i++) {
			ck_assert_str_eq(seen.w[i].identity, "a");
			ck_assert_str_eq(seen.w[i].user_id, "@a:hs1.test");
			ck_assert_uint_eq(seen.w[i].expires_ms, 5000);
		}
		if (round == 0) {
			ck_assert_str_eq(seen.w[0].sfu_url, "");
			const struct mrtc_watch_record a2 = watch_rec("a", 5000);
			ck_assert_int_eq(store->ops->watch_put(store->self, &a2, 1), MRTC_OK);
		} else {
			ck_assert(strcmp(seen.w[0].sfu_url, seen.w[1].sfu_url) != 0);
		}
		mrtc_store_close(store);
	}
	remove_db(path);
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
		test_sqlite_sfu_url_and_old_store, test_sqlite_watch_old_table,
	};
	vectors_add_tests(s, "store", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
