/* SPDX-License-Identifier: Apache-2.0 */
/* Unpadded base64 against vectors/unpadded_base64.json, plus decoder rejections. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/base64.h"
#include "vectors.h"

static bool decode(const char *s, uint8_t *out, size_t size, size_t *len)
{
	return mrtc_base64_decode(s, strlen(s), out, size, len);
}

START_TEST(test_base64_vectors)
{
	struct json_object *vec = vectors_load("unpadded_base64.json");
	struct json_object *cases = vectors_get(vec, "cases");
	for (size_t i = 0; i < json_object_array_length(cases); i++) {
		struct json_object *c = json_object_array_get_idx(cases, i);
		const char *bytes = json_object_get_string(vectors_get(c, "bytes_utf8"));
		const char *b64 = json_object_get_string(vectors_get(c, "b64"));
		char *enc = mrtc_base64_encode_alloc((const uint8_t *)bytes, strlen(bytes), false);
		ck_assert_str_eq(enc, b64);
		free(enc);
		uint8_t out[64];
		size_t len;
		ck_assert(decode(b64, out, sizeof(out), &len));
		ck_assert_uint_eq(len, strlen(bytes));
		ck_assert(memcmp(out, bytes, len) == 0);
	}
	json_object_put(vec);
}
END_TEST

START_TEST(test_base64_decode_padding_and_urlsafe)
{
	uint8_t out[16];
	size_t len;
	ck_assert(decode("Zg==", out, sizeof(out), &len) && len == 1 && out[0] == 'f');
	ck_assert(decode("Zm8=", out, sizeof(out), &len) && len == 2);
	const uint8_t raw[] = { 0xfb, 0xff, 0xbf };
	char std[8], url[8];
	mrtc_base64_encode(raw, 3, false, std);
	mrtc_base64_encode(raw, 3, true, url);
	ck_assert_str_eq(std, "+/+/");
	ck_assert_str_eq(url, "-_-_");
	ck_assert(decode(url, out, sizeof(out), &len) && len == 3 && memcmp(out, raw, 3) == 0);
}
END_TEST

START_TEST(test_base64_decode_rejects_garbage)
{
	static const char *const bad[] = {
		"Z",	"Zm9vY",  "Zm9v!", "Zm 9v",  "Zg=", "Zm9v=",
		"Z===", "Zg==Zg", "+-",	   "Zm\n9v", "=",
	};
	uint8_t out[16];
	size_t len;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!decode(bad[i], out, sizeof(out), &len), "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(test_base64_decode_rejects_small_output)
{
	uint8_t out[2];
	size_t len;
	ck_assert(!decode("Zm9v", out, sizeof(out), &len));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("base64");
	const TTest *tests[] = {
		test_base64_vectors,
		test_base64_decode_padding_and_urlsafe,
		test_base64_decode_rejects_garbage,
		test_base64_decode_rejects_small_output,
	};
	vectors_add_tests(s, "base64", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
