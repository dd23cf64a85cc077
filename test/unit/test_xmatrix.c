/* SPDX-License-Identifier: Apache-2.0 */
/* X-Matrix building, parsing and verification against vectors/xmatrix.json. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "mrtc/matrix/xmatrix.h"
#include "vectors.h"

struct lookup_ctx {
	const struct mrtc_signing_key *key;
	const char *origin;
	enum mrtc_err answer; /* what to answer for the right key, to simulate expiry */
	int calls;
};

static enum mrtc_err lookup(void *arg, const char *origin, const char *key_id, uint8_t *ret_pk)
{
	struct lookup_ctx *c = arg;
	c->calls++;
	if (strcmp(origin, c->origin) != 0 || strcmp(key_id, c->key->key_id) != 0)
		return MRTC_ERR_UNKNOWN_KEY;
	if (c->answer != MRTC_OK)
		return c->answer;
	memcpy(ret_pk, c->key->public_key, MRTC_ED25519_PK_LEN);
	return MRTC_OK;
}

static struct mrtc_signing_key *vector_key(void)
{
	struct json_object *vec = vectors_load("signing.json");
	const char *line = json_object_get_string(vectors_get(vec, "signing_key_file_line"));
	struct mrtc_signing_key *key = NULL;
	ck_assert_int_eq(mrtc_signing_key_parse(line, strlen(line), &key), MRTC_OK);
	json_object_put(vec);
	return key;
}

static struct json_object *content_of(struct json_object *req)
{
	struct json_object *c = vectors_get(req, "content");
	if (!c)
		return NULL;
	const char *text = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
	struct json_object *out = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, strlen(text), MRTC_JSON_MAX_DEPTH, &out), MRTC_OK);
	return out;
}

static enum mrtc_err verify1(const char *method, const char *uri, struct json_object *content,
			     const char *our_name, const char *header, struct lookup_ctx *ctx)
{
	const char *headers[] = { header };
	char origin[MRTC_SERVER_NAME_MAX + 1] = "";
	return mrtc_xmatrix_verify(method, uri, content, our_name, headers, 1, lookup, ctx, origin);
}

START_TEST(test_xmatrix_request_vectors)
{
	struct mrtc_signing_key *key = vector_key();
	struct json_object *vec = vectors_load("xmatrix.json");
	struct json_object *reqs = vectors_get(vec, "requests");
	ck_assert_int_eq(json_object_array_length(reqs), 4);
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		struct json_object *r = json_object_array_get_idx(reqs, i);
		const char *method = json_object_get_string(vectors_get(r, "method"));
		const char *uri = json_object_get_string(vectors_get(r, "uri"));
		struct json_object *content = content_of(r);
		char *bytes = NULL;
		size_t len;
		ck_assert_int_eq(mrtc_xmatrix_signed_bytes(method, uri, "origin.example",
							   "dest.example", content, &bytes, &len),
				 MRTC_OK);
		ck_assert_str_eq(bytes, json_object_get_string(vectors_get(r, "signed_bytes")));
		free(bytes);
		char *header = NULL;
		ck_assert_int_eq(mrtc_xmatrix_sign(method, uri, "origin.example", "dest.example",
						   content, key, &header),
				 MRTC_OK);
		ck_assert_str_eq(header, json_object_get_string(vectors_get(r, "authorization")));
		struct lookup_ctx ctx = { .key = key, .origin = "origin.example" };
		const char *headers[] = { "Bearer x", header };
		char origin[MRTC_SERVER_NAME_MAX + 1];
		ck_assert_int_eq(mrtc_xmatrix_verify(method, uri, content, "dest.example", headers,
						     2, lookup, &ctx, origin),
				 MRTC_OK);
		ck_assert_str_eq(origin, "origin.example");
		free(header);
		json_object_put(content);
	}
	json_object_put(vec);
	mrtc_signing_key_destroy(key);
}
END_TEST

START_TEST(test_xmatrix_parse_ok_vectors)
{
	struct json_object *vec = vectors_load("xmatrix.json");
	struct json_object *oks = vectors_get(vec, "parse_ok");
	for (size_t i = 0; i < json_object_array_length(oks); i++) {
		struct json_object *pair = json_object_array_get_idx(oks, i);
		const char *header = json_object_get_string(json_object_array_get_idx(pair, 0));
		struct json_object *want = json_object_array_get_idx(pair, 1);
		struct mrtc_xmatrix_auth a;
		ck_assert_msg(mrtc_xmatrix_parse(header, &a) == MRTC_OK, "rejected %s", header);
		ck_assert_str_eq(a.origin, json_object_get_string(vectors_get(want, "origin")));
		ck_assert_str_eq(a.key, json_object_get_string(vectors_get(want, "key")));
		ck_assert_str_eq(a.sig, json_object_get_string(vectors_get(want, "sig")));
		struct json_object *dest = vectors_get(want, "destination");
		ck_assert_str_eq(a.destination, dest ? json_object_get_string(dest) : "");
	}
	json_object_put(vec);
}
END_TEST

START_TEST(test_xmatrix_parse_bad_vectors)
{
	struct json_object *vec = vectors_load("xmatrix.json");
	struct json_object *bads = vectors_get(vec, "parse_bad");
	ck_assert_int_ge(json_object_array_length(bads), 11);
	for (size_t i = 0; i < json_object_array_length(bads); i++) {
		const char *header = json_object_get_string(json_object_array_get_idx(bads, i));
		struct mrtc_xmatrix_auth a;
		ck_assert_msg(mrtc_xmatrix_parse(header, &a) != MRTC_OK, "accepted %s", header);
	}
	json_object_put(vec);
}
END_TEST

START_TEST(test_xmatrix_parse_limits_and_forms)
{
	struct mrtc_xmatrix_auth a;
	ck_assert_int_eq(mrtc_xmatrix_parse("x-matrix origin=a,key=ed25519:1,sig=s+/", &a),
			 MRTC_OK);
	ck_assert_str_eq(a.sig, "s+/");
	ck_assert_int_eq(mrtc_xmatrix_parse("Bearer abc", &a), MRTC_ERR_AUTH_MISSING);
	ck_assert_int_eq(mrtc_xmatrix_parse(NULL, &a), MRTC_ERR_AUTH_MISSING);
	static const char *const bad[] = {
		"X-Matrix origin=a,key=ed25519:1,sig=s,",
		"X-Matrix origin=a,,key=ed25519:1,sig=s",
		"X-Matrix origin=a key=ed25519:1,sig=s",
		"X-Matrix origin=,key=ed25519:1,sig=s",
		"X-Matrix origin=a,key=\"\",sig=s",
		"X-Matrix origin=a,key=ed25519:1,sig=s,destination=\"bad name\"",
		"X-Matrix origin=a,key=ed25519:1,sig=s,KEY=ed25519:2",
		"X-Matrix origin=a,key=ed25519:1,sig=s,sig=t",
		"X-Matrix origin=a,key=ed25519:1,sig=s,destination=b,Destination=b",
		"X-Matrix =a,key=ed25519:1,sig=s",
		"X-Matrix origin=a,key=ed25519:1,sig=\"s\\",
		"X-Matrix origin=a,key=ed25519:1,sig=s\x7f",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mrtc_xmatrix_parse(bad[i], &a) == MRTC_ERR_AUTH_MALFORMED,
			      "accepted %s", bad[i]);
	/* The scheme must be followed by a space: with a tab it is some other scheme. */
	ck_assert_int_eq(mrtc_xmatrix_parse("X-Matrix\torigin=a,key=ed25519:1,sig=s", &a),
			 MRTC_ERR_AUTH_MISSING);
	/* Length limits: sig 128, key 128, origin 255, header 8 KiB. */
	char h[10000];
	snprintf(h, sizeof(h), "X-Matrix origin=a,key=ed25519:1,sig=%0129d", 0);
	ck_assert_int_eq(mrtc_xmatrix_parse(h, &a), MRTC_ERR_AUTH_MALFORMED);
	snprintf(h, sizeof(h), "X-Matrix origin=a,key=ed25519:1,sig=%0128d", 0);
	ck_assert_int_eq(mrtc_xmatrix_parse(h, &a), MRTC_OK);
	snprintf(h, sizeof(h), "X-Matrix origin=a,key=ed25519:%0121d,sig=s", 0);
	ck_assert_int_eq(mrtc_xmatrix_parse(h, &a), MRTC_ERR_AUTH_MALFORMED);
	int n = snprintf(h, sizeof(h), "X-Matrix origin=a,key=ed25519:1,sig=s,x=");
	memset(h + n, 'y', 8200);
	h[n + 8200] = '\0';
	ck_assert_int_eq(mrtc_xmatrix_parse(h, &a), MRTC_ERR_AUTH_MALFORMED);
}
END_TEST

START_TEST(test_xmatrix_verify_rejects)
{
	struct mrtc_signing_key *key = vector_key();
	struct lookup_ctx ctx = { .key = key, .origin = "origin.example" };
	const char *uri = "/_matrix/federation/v1/rtc/livekit/get_token";
	const char *body = "{\"user_id\":\"@a:origin.example\",\"room_id\":\"!r\"}";
	struct json_object *content = NULL;
	ck_assert_int_eq(mrtc_json_parse(body, strlen(body), 8, &content), MRTC_OK);
	char *h = NULL;
	ck_assert_int_eq(
	    mrtc_xmatrix_sign("POST", uri, "origin.example", "dest.example", content, key, &h),
	    MRTC_OK);
	ck_assert_int_eq(verify1("POST", uri, content, "dest.example", h, &ctx), MRTC_OK);

	/* Tampered body. */
	struct json_object *tampered = NULL;
	const char *body2 = "{\"user_id\":\"@b:origin.example\",\"room_id\":\"!r\"}";
	ck_assert_int_eq(mrtc_json_parse(body2, strlen(body2), 8, &tampered), MRTC_OK);
	ck_assert_int_eq(verify1("POST", uri, tampered, "dest.example", h, &ctx),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_put(tampered);
	/* Body dropped, method changed, uri changed (incl. a query added, and re-encoding). */
	ck_assert_int_eq(verify1("POST", uri, NULL, "dest.example", h, &ctx),
			 MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(verify1("PUT", uri, content, "dest.example", h, &ctx),
			 MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(verify1("POST", "/_matrix/federation/v1/rtc/livekit/get_token?x=1",
				 content, "dest.example", h, &ctx),
			 MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(
	    verify1("POST", "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
		    content, "dest.example", h, &ctx),
	    MRTC_ERR_BAD_SIGNATURE);
	/* Header names another destination; or none, and we are another server. */
	ck_assert_int_eq(verify1("POST", uri, content, "other.example", h, &ctx),
			 MRTC_ERR_WRONG_DESTINATION);
	char no_dest[512];
	const char *sig = strstr(h, "sig=");
	snprintf(no_dest, sizeof(no_dest), "X-Matrix origin=origin.example,key=\"ed25519:1\",%s",
		 sig);
	ck_assert_int_eq(verify1("POST", uri, content, "dest.example", no_dest, &ctx), MRTC_OK);
	ck_assert_int_eq(verify1("POST", uri, content, "other.example", no_dest, &ctx),
			 MRTC_ERR_BAD_SIGNATURE);
	/* Unknown key, expired key, another server's key, unknown algorithm. */
	ctx.answer = MRTC_ERR_KEY_EXPIRED;
	ck_assert_int_eq(verify1("POST", uri, content, "dest.example", h, &ctx),
			 MRTC_ERR_KEY_EXPIRED);
	ctx.answer = MRTC_OK;
	ctx.origin = "elsewhere.example";
	ck_assert_int_eq(verify1("POST", uri, content, "dest.example", h, &ctx),
			 MRTC_ERR_UNKNOWN_KEY);
	ctx.origin = "origin.example";
	char alg[512];
	snprintf(alg, sizeof(alg), "X-Matrix origin=origin.example,key=\"curve25519:1\",%s", sig);
	int calls = ctx.calls;
	ck_assert_int_eq(verify1("POST", uri, content, "dest.example", alg, &ctx),
			 MRTC_ERR_UNSUPPORTED);
	ck_assert_int_eq(ctx.calls, calls);
	/* Signed by a different key under the same id. */
	struct mrtc_signing_key *other = NULL;
	const char *line = "ed25519 1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	ck_assert_int_eq(mrtc_signing_key_parse(line, strlen(line), &other), MRTC_OK);
	char *h2 = NULL;
	ck_assert_int_eq(
	    mrtc_xmatrix_sign("POST", uri, "origin.example", "dest.example", content, other, &h2),
	    MRTC_OK);
	ck_assert_int_eq(verify1("POST", uri, content, "dest.example", h2, &ctx),
			 MRTC_ERR_BAD_SIGNATURE);
	/* Two X-Matrix headers naming different origins; one good plus one bad sig. */
	char other_origin[512];
	snprintf(other_origin, sizeof(other_origin),
		 "X-Matrix origin=evil.example,key=\"ed25519:1\",%s", sig);
	const char *two[] = { h, other_origin };
	char origin[MRTC_SERVER_NAME_MAX + 1];
	ck_assert_int_eq(
	    mrtc_xmatrix_verify("POST", uri, content, "dest.example", two, 2, lookup, &ctx, origin),
	    MRTC_ERR_FORBIDDEN);
	const char *good_and_bad[] = { h2, h };
	ck_assert_int_eq(mrtc_xmatrix_verify("POST", uri, content, "dest.example", good_and_bad, 2,
					     lookup, &ctx, origin),
			 MRTC_OK);
	/* Nothing, or only Bearer. */
	ck_assert_int_eq(mrtc_xmatrix_verify("POST", uri, content, "dest.example", NULL, 0, lookup,
					     &ctx, origin),
			 MRTC_ERR_AUTH_MISSING);
	const char *bearer[] = { "Bearer abc" };
	ck_assert_int_eq(mrtc_xmatrix_verify("POST", uri, content, "dest.example", bearer, 1,
					     lookup, &ctx, origin),
			 MRTC_ERR_AUTH_MISSING);
	const char *malformed[] = { "X-Matrix origin=\"bad name\",key=\"ed25519:1\",sig=\"s\"" };
	ck_assert_int_eq(mrtc_xmatrix_verify("POST", uri, content, "dest.example", malformed, 1,
					     lookup, &ctx, origin),
			 MRTC_ERR_AUTH_MALFORMED);
	/* Signing refuses invalid names (header injection). */
	char *h3 = NULL;
	ck_assert_int_eq(mrtc_xmatrix_sign("POST", uri, "origin.example\r\nX: y", "dest.example",
					   content, key, &h3),
			 MRTC_ERR_INVALID_PARAM);
	ck_assert_ptr_null(h3);
	free(h);
	free(h2);
	mrtc_signing_key_destroy(other);
	json_object_put(content);
	mrtc_signing_key_destroy(key);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xmatrix");
	const TTest *tests[] = {
		test_xmatrix_request_vectors,	test_xmatrix_parse_ok_vectors,
		test_xmatrix_parse_bad_vectors, test_xmatrix_parse_limits_and_forms,
		test_xmatrix_verify_rejects,
	};
	vectors_add_tests(s, "xmatrix", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
