/* SPDX-License-Identifier: Apache-2.0 */
/* The resolver's pure parts: well-known bodies and Cache-Control lifetimes. */
#include <check.h>
#include <string.h>

#include "mrtc/net/resolver.h"
#include "vectors.h"

static bool wk(const char *body, char *out)
{
	return mrtc_wellknown_parse(body, strlen(body), out);
}

START_TEST(test_wellknown_parse_cases)
{
	char out[MRTC_SERVER_NAME_MAX + 1];
	ck_assert(wk("{\"m.server\":\"matrix.example.org:443\"}", out));
	ck_assert_str_eq(out, "matrix.example.org:443");
	ck_assert(wk("{\"m.server\":\"[::1]\",\"other\":1}", out));
	static const char *const bad[] = {
		"",
		"[]",
		"{}",
		"{\"m.server\":5}",
		"{\"m.server\":\"bad name\"}",
		"{\"m.server\":\"x.org\\r\\nHost: y\"}",
		"{\"m.server\":\"x.org:0\"}",
		"{\"m.server\":\"x.org\",\"m.server\":\"y.org\"}",
		"{'m.server':'x.org'}",
		"{\"m.server\":\"x.org\"} trailing",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!wk(bad[i], out), "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_cache_control_max_age_cases)
{
	uint64_t v = 0;
	ck_assert(mrtc_cache_control_max_age("max-age=3600", &v) && v == 3600);
	ck_assert(mrtc_cache_control_max_age("public, max-age=60", &v) && v == 60);
	ck_assert(mrtc_cache_control_max_age("no-store", &v) && v == 0);
	ck_assert(mrtc_cache_control_max_age("Max-Age=5 ", &v) && v == 5);
	ck_assert(!mrtc_cache_control_max_age("max-age=", &v));
	ck_assert(!mrtc_cache_control_max_age("max-age=-1", &v));
	ck_assert(!mrtc_cache_control_max_age("public", &v));
	ck_assert(!mrtc_cache_control_max_age(NULL, &v));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resolver");
	const TTest *tests[] = { test_wellknown_parse_cases, test_cache_control_max_age_cases };
	vectors_add_tests(s, "resolver", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
