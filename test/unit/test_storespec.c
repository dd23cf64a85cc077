/* SPDX-License-Identifier: Apache-2.0 */
/* The MRTC_STORE spec as a value (core/storespec.c): what configuration validation asks of it
 * and the contracts of the parser (its known-answer cases are in test_store.c). */
#include <check.h>
#include <string.h>

#include "mrtc/core/storespec.h"
#include "vectors.h"

START_TEST(test_store_spec_is_valid_forms)
{
	static const char *const good[] = {
		"sqlite:/var/lib/mrtc-transport/store.db",
		"sqlite:relative.db", /* the configuration's default is absolute; the form is not */
		"redis://h",
		"redis://u:p@h:6380/15",
		"redis://u@h",
		"redis+sentinel://a,b:26380,[::1]/master",
		"redis+sentinel://:p@a/m/1000",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(mrtc_store_spec_is_valid(good[i]), "refused %s", good[i]);
	static const char *const bad[] = {
		"",
		"none",
		"sqlite",
		"sqlite:",
		"SQLITE:/x",
		"redis:/h",
		"redis//h",
		"redis://h/1000 ",
		"redis+sentinel://a/m/1001",
		"postgres://h/db",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!mrtc_store_spec_is_valid(bad[i]), "accepted %s", bad[i]);
}
END_TEST

/* has_password / has_user answer for valid Redis specs only: never for an invalid one, never for
 * SQLite (whose path may hold '@' and ':'). */
START_TEST(test_store_spec_credentials_only_of_valid_redis_specs)
{
	ck_assert(mrtc_store_spec_has_password("redis://u:p@h"));
	ck_assert(mrtc_store_spec_has_password("redis+sentinel://:p@a/m"));
	ck_assert(!mrtc_store_spec_has_password("redis://u@h"));
	ck_assert(!mrtc_store_spec_has_password("redis://u:p@h/9999")); /* invalid db */
	ck_assert(!mrtc_store_spec_has_password("sqlite:/u:p@h"));
	ck_assert(mrtc_store_spec_has_user("redis://u:p@h"));
	ck_assert(!mrtc_store_spec_has_user("redis://:p@h"));
	ck_assert(!mrtc_store_spec_has_user("redis://u@h,x")); /* two nodes without Sentinel */
	ck_assert(!mrtc_store_spec_has_user("sqlite:/u@h"));
}
END_TEST

/* Out-parameters are written only on success: a refused spec leaves *ret as it was. */
START_TEST(test_redis_spec_parse_refused_leaves_ret)
{
	struct mrtc_redis_spec s;
	memset(&s, 0x5a, sizeof(s));
	struct mrtc_redis_spec before = s;
	ck_assert(!mrtc_redis_spec_parse("redis://u:secret@h/1001", &s));
	ck_assert_int_eq(memcmp(&s, &before, sizeof(s)), 0);
	ck_assert(!mrtc_redis_spec_parse("sqlite:/x", &s));
	ck_assert_int_eq(memcmp(&s, &before, sizeof(s)), 0);
}
END_TEST

/* Redaction into any buffer: always terminated, never a byte of the password. */
START_TEST(test_store_spec_redact_small_buffers)
{
	const char *spec = "redis://user:hunter2@redis.internal:6379/1";
	char out[64];
	for (size_t size = 1; size <= sizeof(out); size++) {
		memset(out, 'x', sizeof(out));
		mrtc_store_spec_redact(spec, out, size);
		ck_assert_msg(memchr(out, '\0', size) != NULL, "not terminated at size %zu", size);
		ck_assert_msg(strstr(out, "hunter2") == NULL && strstr(out, "hunter") == NULL,
			      "password shown at size %zu: %s", size, out);
	}
	mrtc_store_spec_redact(spec, out, sizeof(out));
	ck_assert_str_eq(out, "redis://user:***@redis.internal:6379/1");
	out[0] = 'x';
	mrtc_store_spec_redact(spec, out, 0); /* nothing written */
	ck_assert_int_eq(out[0], 'x');
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storespec");
	const TTest *tests[] = {
		test_store_spec_is_valid_forms,
		test_store_spec_credentials_only_of_valid_redis_specs,
		test_redis_spec_parse_refused_leaves_ret,
		test_store_spec_redact_small_buffers,
	};
	vectors_add_tests(s, "storespec", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
