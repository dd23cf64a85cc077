/* SPDX-License-Identifier: Apache-2.0 */
/* Strict JSON parser and canonical writer against vectors/canonical_json.json. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "vectors.h"

static enum mrtc_err parse(const char *text, struct json_object **ret)
{
	return mrtc_json_parse(text, strlen(text), MRTC_JSON_MAX_DEPTH, ret);
}

static void assert_rejected(const char *text, size_t len)
{
	struct json_object *v = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, len, MRTC_JSON_MAX_DEPTH, &v), MRTC_ERR_NOT_JSON);
	ck_assert_ptr_null(v);
}

START_TEST(test_json_canonical_vectors)
{
	struct json_object *vec = vectors_load("canonical_json.json");
	struct json_object *cases = vectors_get(vec, "cases");
	ck_assert_int_gt(json_object_array_length(cases), 10);
	for (size_t i = 0; i < json_object_array_length(cases); i++) {
		struct json_object *c = json_object_array_get_idx(cases, i);
		struct json_object *in = vectors_get(c, "input"),
				   *want = vectors_get(c, "canonical");
		struct json_object *v = NULL;
		ck_assert_int_eq(mrtc_json_parse(json_object_get_string(in),
						 (size_t)json_object_get_string_len(in),
						 MRTC_JSON_MAX_DEPTH, &v),
				 MRTC_OK);
		char *out = NULL;
		size_t len = 0;
		ck_assert_int_eq(mrtc_json_canonical(v, &out, &len), MRTC_OK);
		ck_assert_uint_eq(len, (size_t)json_object_get_string_len(want));
		ck_assert_msg(memcmp(out, json_object_get_string(want), len) == 0,
			      "case %zu: got %s", i, out);
		free(out);
		json_object_put(v);
	}
	json_object_put(vec);
}
END_TEST

START_TEST(test_json_parse_reject_vectors)
{
	struct json_object *vec = vectors_load("canonical_json.json");
	struct json_object *rej = vectors_get(vec, "reject");
	ck_assert_int_ge(json_object_array_length(rej), 13);
	for (size_t i = 0; i < json_object_array_length(rej); i++) {
		struct json_object *r = json_object_array_get_idx(rej, i);
		assert_rejected(json_object_get_string(r), (size_t)json_object_get_string_len(r));
	}
	json_object_put(vec);
}
END_TEST

START_TEST(test_json_parse_reject_other)
{
	static const char *const bad[] = {
		"",
		" ",
		"null",
		"tru",
		"[1,]",
		"{\"a\":1,}",
		"{,}",
		"[01]",
		"-",
		"--1",
		"+1",
		"1.",
		"[1 2]",
		"{\"a\" 1}",
		"{a:1}",
		"\"\\x41\"",
		"\"\\u12\"",
		"\"abc",
		"[\"\\ud800x\"]",
		"[\"\\udc00\"]",
		"[\"\\ud800\\u0041\"]",
		"Infinity",
		"-Infinity",
		"[1]]",
		"{\"a\":1}}",
		"\"\t\"",
		"[true false]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejected(bad[i], strlen(bad[i]));
	/* Invalid UTF-8: a lone continuation byte, an overlong '/', an encoded surrogate,
	 * >U+10FFFF. */
	assert_rejected("\"\x80\"", 3);
	assert_rejected("\"\xc0\xaf\"", 4);
	assert_rejected("\"\xed\xa0\x80\"", 5);
	assert_rejected("\"\xf4\x90\x80\x80\"", 6);
	assert_rejected("\"\xe6\x97\"", 4);
	/* A NUL byte in the text itself. */
	assert_rejected("[1]\0", 4);
	assert_rejected("\"a\0b\"", 5);
}
END_TEST

START_TEST(test_json_parse_accepts_limits)
{
	struct json_object *v = NULL;
	ck_assert_int_eq(parse("[9007199254740991,-9007199254740991,0,-0]", &v), MRTC_OK);
	ck_assert_int_eq(json_object_get_int64(json_object_array_get_idx(v, 0)),
			 INT64_C(9007199254740991));
	ck_assert_int_eq(json_object_get_int64(json_object_array_get_idx(v, 3)), 0);
	json_object_put(v);
	ck_assert_int_eq(parse("\"\\u0000 in a value\"", &v), MRTC_OK);
	ck_assert_int_eq(json_object_get_string_len(v), 12); /* NUL + 11 */
	json_object_put(v);
	ck_assert_int_eq(parse(" true ", &v), MRTC_OK);
	ck_assert(json_object_get_boolean(v));
	json_object_put(v);
	ck_assert_int_eq(parse("\"\xf0\x9f\x98\x80\"", &v), MRTC_OK);
	json_object_put(v);
}
END_TEST

static char *nested(int depth)
{
	char *s = malloc((size_t)depth * 2 + 1);
	for (int i = 0; i < depth; i++) {
		s[i] = '[';
		s[depth + i] = ']';
	}
	s[depth * 2] = '\0';
	return s;
}

START_TEST(test_json_parse_depth_limit)
{
	struct json_object *v = NULL;
	char *ok = nested(MRTC_JSON_MAX_DEPTH + 1); /* depth 0..64 */
	ck_assert_int_eq(parse(ok, &v), MRTC_OK);
	json_object_put(v);
	free(ok);
	char *deep = nested(MRTC_JSON_MAX_DEPTH + 2);
	assert_rejected(deep, strlen(deep));
	free(deep);
	char *huge = nested(100000);
	assert_rejected(huge, strlen(huge));
	free(huge);
}
END_TEST

START_TEST(test_json_parse_duplicate_keys_after_unescape)
{
	/* "a" and "\u0061" are the same key once unescaped. */
	assert_rejected("{\"a\":1,\"\\u0061\":2}", 18);
}
END_TEST

START_TEST(test_json_canonical_refuses_non_canonical_values)
{
	char *out = NULL;
	struct json_object *d = json_object_new_double(1.5);
	ck_assert_int_eq(mrtc_json_canonical(d, &out, NULL), MRTC_ERR_INVALID_PARAM);
	json_object_put(d);
	struct json_object *big = json_object_new_int64(INT64_C(9007199254740992));
	ck_assert_int_eq(mrtc_json_canonical(big, &out, NULL), MRTC_ERR_INVALID_PARAM);
	json_object_put(big);
	struct json_object *u = json_object_new_uint64(UINT64_MAX);
	ck_assert_int_eq(mrtc_json_canonical(u, &out, NULL), MRTC_ERR_INVALID_PARAM);
	json_object_put(u);
	struct json_object *bad_utf8 = json_object_new_string("\xff");
	ck_assert_int_eq(mrtc_json_canonical(bad_utf8, &out, NULL), MRTC_ERR_INVALID_PARAM);
	json_object_put(bad_utf8);
	ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_json_canonical_escapes_and_null)
{
	char *out = NULL;
	ck_assert_int_eq(mrtc_json_canonical(NULL, &out, NULL), MRTC_OK);
	ck_assert_str_eq(out, "null");
	free(out);
	struct json_object *s = json_object_new_string("\b\f\n\r\t\x01\x7f/\"\\");
	ck_assert_int_eq(mrtc_json_canonical(s, &out, NULL), MRTC_OK);
	ck_assert_str_eq(out, "\"\\b\\f\\n\\r\\t\\u0001\x7f/\\\"\\\\\"");
	free(out);
	json_object_put(s);
}
END_TEST

START_TEST(test_json_get_string_types)
{
	struct json_object *v = NULL;
	ck_assert_int_eq(parse("{\"s\":\"x\",\"n\":1,\"z\":null}", &v), MRTC_OK);
	ck_assert_str_eq(mrtc_json_get_string(v, "s"), "x");
	ck_assert_ptr_null(mrtc_json_get_string(v, "n"));
	ck_assert_ptr_null(mrtc_json_get_string(v, "z"));
	ck_assert_ptr_null(mrtc_json_get_string(v, "missing"));
	ck_assert_ptr_null(mrtc_json_get_string(NULL, "s"));
	json_object_put(v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json");
	const TTest *tests[] = {
		test_json_canonical_vectors,
		test_json_parse_reject_vectors,
		test_json_parse_reject_other,
		test_json_parse_accepts_limits,
		test_json_parse_depth_limit,
		test_json_parse_duplicate_keys_after_unescape,
		test_json_canonical_refuses_non_canonical_values,
		test_json_canonical_escapes_and_null,
		test_json_get_string_types,
	};
	vectors_add_tests(s, "json", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
