/* SPDX-License-Identifier: Apache-2.0 */
/* Server ACL globs and the five-step rule. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/acl.h"
#include "mrtc/matrix/json.h"
#include "vectors.h"

static struct json_object *acl(const char *text)
{
	struct json_object *v = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, strlen(text), 8, &v), MRTC_OK);
	return v;
}

START_TEST(test_acl_glob_match_cases)
{
	static const struct {
		const char *p, *t;
		bool match;
	} cases[] = {
		{ "*", "example.org", true },
		{ "*", "", true },
		{ "", "", true },
		{ "", "a", false },
		{ "*.example.org", "a.example.org", true },
		{ "*.example.org", "example.org", false },
		{ "ex?mple.org", "example.org", true },
		{ "ex?mple.org", "exmple.org", false },
		{ "EXAMPLE.org", "example.ORG", true },
		{ "a*b*c", "aXXbYYc", true },
		{ "a*b*c", "aXXbYY", false },
		{ "**", "x", true },
		{ "a*", "a", true },
		{ "*a", "ba", true },
		{ "*a", "ab", false },
		{ "?", "", false },
		{ "a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(mrtc_acl_glob_match(cases[i].p, cases[i].t) == cases[i].match,
			      "'%s' vs '%s'", cases[i].p, cases[i].t);
}
END_TEST

START_TEST(test_acl_glob_match_pathological_terminates)
{
	/* A classic exponential case for backtracking matchers. */
	char pattern[4200], text[300];
	size_t o = 0;
	for (int i = 0; i < 2000; i++) {
		pattern[o++] = 'a';
		pattern[o++] = '*';
	}
	pattern[o++] = 'b';
	pattern[o] = '\0';
	memset(text, 'a', 255);
	text[255] = '\0';
	/* An exponential matcher would not finish before Check's per-test timeout. */
	ck_assert(!mrtc_acl_glob_match(pattern, text));
	text[254] = 'b';
	ck_assert(!mrtc_acl_glob_match(pattern, text));
}
END_TEST

START_TEST(test_acl_allows_rules)
{
	ck_assert(mrtc_acl_allows(NULL, "anything.example"));
	struct json_object *a = acl("{\"allow\":[\"*\"],\"deny\":[\"evil.example\",\"*.bad\"]}");
	ck_assert(mrtc_acl_allows(a, "good.example"));
	ck_assert(mrtc_acl_allows(a, "good.example:8448"));
	ck_assert(!mrtc_acl_allows(a, "evil.example"));
	ck_assert(!mrtc_acl_allows(a, "EVIL.example:443")); /* port ignored, case-insensitive */
	ck_assert(!mrtc_acl_allows(a, "x.bad"));
	ck_assert(mrtc_acl_allows(a, "1.2.3.4")); /* IP literals allowed by default */
	ck_assert(!mrtc_acl_allows(a, "bad name"));
	json_object_put(a);

	a = acl("{\"allow\":[\"*\"],\"allow_ip_literals\":false}");
	ck_assert(!mrtc_acl_allows(a, "1.2.3.4"));
	ck_assert(!mrtc_acl_allows(a, "[::1]:8448"));
	ck_assert(mrtc_acl_allows(a, "host.example"));
	json_object_put(a);

	a = acl("{\"allow\":[\"only.example\",5,null]}");
	ck_assert(mrtc_acl_allows(a, "only.example"));
	ck_assert(!mrtc_acl_allows(a, "other.example"));
	json_object_put(a);

	a = acl("{\"allow\":\"*\"}"); /* not a list: nothing allowed */
	ck_assert(!mrtc_acl_allows(a, "any.example"));
	json_object_put(a);

	a = acl("{}"); /* an event without allow: deny all */
	ck_assert(!mrtc_acl_allows(a, "any.example"));
	json_object_put(a);

	a = acl("{\"allow\":[\"*\"],\"allow_ip_literals\":\"no\"}"); /* non-bool: default true */
	ck_assert(mrtc_acl_allows(a, "1.2.3.4"));
	json_object_put(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("acl");
	const TTest *tests[] = {
		test_acl_glob_match_cases,
		test_acl_glob_match_pathological_terminates,
		test_acl_allows_rules,
	};
	vectors_add_tests(s, "acl", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
