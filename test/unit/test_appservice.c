/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Application-service mode's pure parts: fed_proxy answers (every Synapse error shape, both
 * spellings of the unstable prefix), /versions features, and the registration file.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/appservice/appservice.h"
#include "vectors.h"

static enum mrtc_fedproxy_refusal parse(int status, const char *body, int *ret_status,
					struct json_object **ret_content)
{
	return mrtc_fedproxy_parse(status, body, strlen(body), ret_status, ret_content);
}

START_TEST(test_fedproxy_relayed)
{
	int st = 0;
	struct json_object *content = NULL;
	ck_assert_int_eq(
	    parse(200, "{\"status\":200,\"content\":{\"jwt\":\"a.b.c\"}}", &st, &content),
	    MRTC_FEDPROXY_RELAYED);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(content, "jwt")), "a.b.c");
	json_object_put(content);
	/* The destination's refusal is relayed, not a fed_proxy error. */
	ck_assert_int_eq(parse(200,
			       "{\"status\":403,\"content\":{\"errcode\":\"M_FORBIDDEN\","
			       "\"error\":\"no\"}}",
			       &st, &content),
			 MRTC_FEDPROXY_RELAYED);
	ck_assert_int_eq(st, 403);
	json_object_put(content);
	/* content null (not JSON at the destination) or absent. */
	ck_assert_int_eq(parse(200, "{\"status\":502,\"content\":null}", &st, &content),
			 MRTC_FEDPROXY_RELAYED);
	ck_assert_int_eq(st, 502);
	ck_assert_ptr_null(content);
	ck_assert_int_eq(parse(200, "{\"status\":404}", &st, &content), MRTC_FEDPROXY_RELAYED);
	ck_assert_ptr_null(content);
	/* No usable status: failed. */
	ck_assert_int_eq(parse(200, "{\"content\":{}}", &st, &content), MRTC_FEDPROXY_FAILED);
	ck_assert_int_eq(parse(200, "{\"status\":\"200\"}", &st, &content), MRTC_FEDPROXY_FAILED);
	ck_assert_int_eq(parse(200, "{\"status\":99}", &st, &content), MRTC_FEDPROXY_FAILED);
	ck_assert_int_eq(parse(200, "{\"status\":600}", &st, &content), MRTC_FEDPROXY_FAILED);
	ck_assert_int_eq(parse(200, "[]", &st, &content), MRTC_FEDPROXY_FAILED);
	ck_assert_int_eq(parse(200, "not json", &st, &content), MRTC_FEDPROXY_FAILED);
}
END_TEST

START_TEST(test_fedproxy_errors)
{
	static const struct {
		int status;
		const char *errcode;
		enum mrtc_fedproxy_refusal want;
	} cases[] = {
		{ 403, "M_FORBIDDEN", MRTC_FEDPROXY_NOT_APPSERVICE },
		{ 401, "M_UNKNOWN_TOKEN", MRTC_FEDPROXY_NOT_APPSERVICE },
		{ 401, "M_MISSING_TOKEN", MRTC_FEDPROXY_NOT_APPSERVICE },
		{ 403, "IO.ELEMENT.MSC4512.M_FEDPROXY_DESTINATION_DENIED",
		  MRTC_FEDPROXY_DESTINATION_DENIED },
		{ 403, "IO.ELEMENT.MSC4512_FEDPROXY_DESTINATION_DENIED",
		  MRTC_FEDPROXY_DESTINATION_DENIED },
		{ 403, "M_FEDPROXY_DESTINATION_DENIED", MRTC_FEDPROXY_DESTINATION_DENIED },
		{ 403, "IO.ELEMENT.MSC4512.M_FEDPROXY_PATH_NOT_ALLOWED",
		  MRTC_FEDPROXY_PATH_NOT_ALLOWED },
		{ 403, "IO.ELEMENT.MSC4512_FEDPROXY_PATH_NOT_ALLOWED",
		  MRTC_FEDPROXY_PATH_NOT_ALLOWED },
		{ 400, "IO.ELEMENT.MSC4512.M_FEDPROXY_NO_PROXY_PREFIX",
		  MRTC_FEDPROXY_PATH_NOT_ALLOWED },
		{ 400, "M_MISSING_PARAM", MRTC_FEDPROXY_BAD_PARAM },
		{ 400, "M_INVALID_PARAM", MRTC_FEDPROXY_BAD_PARAM },
		{ 502, "IO.ELEMENT.MSC4512.M_FEDPROXY_CONNECTION_FAILED",
		  MRTC_FEDPROXY_CONNECTION_FAILED },
		{ 502, "IO.ELEMENT.MSC4512_FEDPROXY_CONNECTION_FAILED",
		  MRTC_FEDPROXY_CONNECTION_FAILED },
		{ 404, "M_UNRECOGNIZED", MRTC_FEDPROXY_UNSUPPORTED },
		{ 405, "M_UNRECOGNIZED", MRTC_FEDPROXY_UNSUPPORTED },
		/* Near misses are not taken for what they resemble. */
		{ 403, "IO.ELEMENT.MSC4512.M_FEDPROXY_DESTINATION_DENIEDX", MRTC_FEDPROXY_FAILED },
		{ 403, "XIO.ELEMENT.MSC4512.M_FEDPROXY_DESTINATION_DENIED", MRTC_FEDPROXY_FAILED },
		{ 500, "IO.ELEMENT.MSC4512.M_FEDPROXY_CONNECTION_FAILED", MRTC_FEDPROXY_FAILED },
		{ 500, "M_UNKNOWN", MRTC_FEDPROXY_FAILED },
		{ 429, "M_LIMIT_EXCEEDED", MRTC_FEDPROXY_FAILED },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[200];
		snprintf(body, sizeof(body), "{\"errcode\":\"%s\",\"error\":\"x\"}",
			 cases[i].errcode);
		int st = -1;
		struct json_object *content = NULL;
		enum mrtc_fedproxy_refusal got = parse(cases[i].status, body, &st, &content);
		ck_assert_msg(got == cases[i].want, "%d %s: got %s", cases[i].status,
			      cases[i].errcode, mrtc_fedproxy_refusal_str(got));
		ck_assert_int_eq(st, -1);
		ck_assert_ptr_null(content);
	}
	int st;
	struct json_object *content = NULL;
	/* A 404 without a JSON body (no MSC4512 at all, a plain web server). */
	ck_assert_int_eq(parse(404, "<html>", &st, &content), MRTC_FEDPROXY_UNSUPPORTED);
	ck_assert_int_eq(parse(502, "<html>", &st, &content), MRTC_FEDPROXY_FAILED);
	for (int r = MRTC_FEDPROXY_RELAYED; r <= MRTC_FEDPROXY_FAILED; r++)
		ck_assert_ptr_nonnull(mrtc_fedproxy_refusal_str((enum mrtc_fedproxy_refusal)r));
}
END_TEST

static bool features(const char *body, struct mrtc_appservice_features *f)
{
	return mrtc_appservice_features_parse(body, strlen(body), f);
}

START_TEST(test_features)
{
	struct mrtc_appservice_features f;
	ck_assert(features("{\"versions\":[\"v1.11\"],\"unstable_features\":{"
			   "\"io.element.msc4195\":true,\"io.element.msc4502\":true,"
			   "\"io.element.msc4512\":true}}",
			   &f));
	ck_assert(f.known && f.msc4195 && f.msc4502 && f.msc4512 && !f.msc4502_stable);
	ck_assert(features("{\"versions\":[],\"unstable_features\":{"
			   "\"io.element.msc4195\":false,\"io.element.msc4502\":\"true\","
			   "\"io.element.msc4502.stable\":true,\"io.element.msc4512\":1}}",
			   &f));
	ck_assert(f.known && !f.msc4195 && !f.msc4502 && !f.msc4512 && f.msc4502_stable);
	ck_assert(features("{\"versions\":[]}", &f));
	ck_assert(f.known && !f.msc4195 && !f.msc4502 && !f.msc4512);
	ck_assert(!features("{\"unstable_features\":{}}", &f));
	ck_assert(!features("[]", &f));
	ck_assert(!features("", &f));
}
END_TEST

START_TEST(test_registration)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(mrtc_appservice_write_registration(out, "hs1.example.org:8448",
							    "http://127.0.0.1:8080/"),
			 MRTC_OK);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(text, "io.element.msc4512.proxy_prefix: \"rtc/livekit\"\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "io.element.msc4512.proxy_url: \"http://127.0.0.1:8080\"\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "io.element.msc4502.scopes: "
			 "[\"urn:matrix:client:io.element.msc4502:rooms:is_joined\"]\n"));
	ck_assert_ptr_nonnull(strstr(text, "      regex: '@.*:hs1\\.example\\.org:8448'\n"));
	ck_assert_ptr_nonnull(strstr(text, "    - exclusive: false\n"));
	ck_assert_ptr_null(strstr(text, "\nproxy_url"));
	ck_assert_ptr_null(strstr(text, "urn:matrix:client:rooms:is_joined"));
	const char *as = strstr(text, "\nas_token: \"");
	const char *hs = strstr(text, "\nhs_token: \"");
	ck_assert_ptr_nonnull(as);
	ck_assert_ptr_nonnull(hs);
	ck_assert_int_eq(strspn(as + 12, "0123456789abcdef"), 64);
	ck_assert_int_eq(strspn(hs + 12, "0123456789abcdef"), 64);
	ck_assert(memcmp(as + 12, hs + 12, 64) != 0);
	free(text);

	out = open_memstream(&text, &len);
	ck_assert_int_eq(mrtc_appservice_write_registration(out, "bad name", "http://x"),
			 MRTC_ERR_INVALID_PARAM);
	ck_assert_int_eq(mrtc_appservice_write_registration(out, "hs1.test", "ftp://x"),
			 MRTC_ERR_INVALID_PARAM);
	ck_assert_int_eq(mrtc_appservice_write_registration(out, "hs1.test", "http://x\"y"),
			 MRTC_ERR_INVALID_PARAM);
	ck_assert_int_eq(mrtc_appservice_write_registration(out, "hs1.test", "http://x\ny"),
			 MRTC_ERR_INVALID_PARAM);
	fclose(out);
	ck_assert_uint_eq(len, 0);
	free(text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("appservice");
	const TTest *tests[] = {
		test_fedproxy_relayed,
		test_fedproxy_errors,
		test_features,
		test_registration,
	};
	vectors_add_tests(s, "appservice", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
