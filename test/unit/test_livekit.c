/* SPDX-License-Identifier: Apache-2.0 */
/* Room names, identities, tokens and webhooks against vectors/hashes.json and livekit_jwt.json. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/base64.h"
#include "mrtc/matrix/json.h"
#include "mrtc/livekit/livekit.h"
#include "vectors.h"

static const struct mrtc_livekit_creds creds = { "APIdevkey",
						 "devsecret-0123456789abcdef0123456789" };
#define NOW UINT64_C(1767225600)

static struct json_object *claims_of(const char *jwt, uint64_t now)
{
	struct json_object *c = NULL;
	ck_assert_int_eq(mrtc_livekit_verify(&creds, jwt, now, &c), MRTC_OK);
	return c;
}

static struct json_object *member(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(o, k, &v), "no %s", k);
	return v;
}

START_TEST(test_livekit_hash_vectors)
{
	struct json_object *vec = vectors_load("hashes.json");
	struct json_object *cases = vectors_get(vec, "cases");
	for (size_t i = 0; i < json_object_array_length(cases); i++) {
		struct json_object *c = json_object_array_get_idx(cases, i);
		struct json_object *arr = vectors_get(c, "array");
		const char *parts[4];
		size_t n = json_object_array_length(arr);
		for (size_t j = 0; j < n; j++)
			parts[j] = json_object_get_string(json_object_array_get_idx(arr, j));
		char hash[MRTC_LIVEKIT_HASH_LEN + 1];
		ck_assert_int_eq(mrtc_livekit_hash(parts, n, hash), MRTC_OK);
		ck_assert_str_eq(hash, json_object_get_string(vectors_get(c, "hash")));
		const char *kind = json_object_get_string(vectors_get(c, "kind"));
		if (strcmp(kind, "room") == 0 && n == 2) {
			ck_assert_int_eq(mrtc_livekit_room_name(parts[0], parts[1], hash), MRTC_OK);
		} else if (strcmp(kind, "identity") == 0 && n == 3) {
			ck_assert_int_eq(
			    mrtc_livekit_identity(MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER, parts[0],
						  parts[1], parts[2], hash),
			    MRTC_OK);
		} else if (strcmp(kind, "identity") == 0) {
			ck_assert_int_eq(mrtc_livekit_identity(MRTC_IDENTITY_KIND_USER_MEMBER,
							       parts[0], NULL, parts[1], hash),
					 MRTC_OK);
		}
		ck_assert_str_eq(hash, json_object_get_string(vectors_get(c, "hash")));
	}
	struct json_object *leg = vectors_get(vec, "legacy_sfu_get_identity");
	char id[MRTC_LIVEKIT_NAME_MAX + 1];
	ck_assert_int_eq(
	    mrtc_livekit_legacy_identity(json_object_get_string(vectors_get(leg, "user_id")),
					 json_object_get_string(vectors_get(leg, "device_id")), id),
	    MRTC_OK);
	ck_assert_str_eq(id, json_object_get_string(vectors_get(leg, "identity")));
	json_object_put(vec);
}
END_TEST

START_TEST(test_livekit_identity_needs_device)
{
	char h[MRTC_LIVEKIT_HASH_LEN + 1];
	ck_assert_int_eq(
	    mrtc_livekit_identity(MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER, "@a:b", NULL, "m", h),
	    MRTC_ERR_BAD_JSON);
	ck_assert_int_eq(
	    mrtc_livekit_identity(MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER, "@a:b", "", "m", h),
	    MRTC_ERR_BAD_JSON);
	char long_user[300];
	memset(long_user, 'u', 250);
	long_user[250] = '\0';
	char id[MRTC_LIVEKIT_NAME_MAX + 1];
	ck_assert_int_eq(mrtc_livekit_legacy_identity(long_user, "DEVICE", id),
			 MRTC_ERR_INVALID_PARAM);
}
END_TEST

START_TEST(test_livekit_vector_token_verifies)
{
	struct json_object *vec = vectors_load("livekit_jwt.json");
	const char *token = json_object_get_string(vectors_get(vec, "token"));
	struct mrtc_livekit_creds c = {
		json_object_get_string(vectors_get(vec, "api_key")),
		json_object_get_string(vectors_get(vec, "api_secret")),
	};
	struct json_object *claims = NULL;
	ck_assert_int_eq(mrtc_livekit_verify(&c, token, NOW + 10, &claims), MRTC_OK);
	ck_assert_str_eq(mrtc_json_get_string(claims, "sub"),
			 "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU");
	json_object_put(claims);
	/* Our own token for the same claims carries the same claim names and JSON types. */
	char *ours = NULL;
	ck_assert_int_eq(mrtc_livekit_mint_participant(
			     &c, MRTC_GRANT_LOCAL_USER,
			     "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU",
			     "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc", NOW, 3600, &ours),
			 MRTC_OK);
	struct json_object *got = claims_of(ours, NOW);
	char *a = NULL, *b = NULL;
	ck_assert_int_eq(mrtc_json_canonical(got, &a, NULL), MRTC_OK);
	const char *want_text =
	    json_object_to_json_string_ext(vectors_get(vec, "claims"), JSON_C_TO_STRING_PLAIN);
	struct json_object *want = NULL;
	ck_assert_int_eq(mrtc_json_parse(want_text, strlen(want_text), 8, &want), MRTC_OK);
	ck_assert_int_eq(mrtc_json_canonical(want, &b, NULL), MRTC_OK);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	free(ours);
	json_object_put(got);
	json_object_put(want);
	json_object_put(vec);
}
END_TEST

START_TEST(test_livekit_mint_grants_per_kind)
{
	static const struct {
		enum mrtc_grant_kind kind;
		bool publish;
	} kinds[] = {
		{ MRTC_GRANT_LOCAL_USER, true },
		{ MRTC_GRANT_FEDERATED_USER, false },
		{ MRTC_GRANT_LEGACY_FULL, true },
		{ MRTC_GRANT_LEGACY_RESTRICTED, false },
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char *jwt = NULL;
		ck_assert_int_eq(mrtc_livekit_mint_participant(&creds, kinds[i].kind, "ident",
							       "room", NOW, 600, &jwt),
				 MRTC_OK);
		ck_assert_ptr_null(strchr(jwt, '='));
		ck_assert(strncmp(jwt, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
		struct json_object *c = claims_of(jwt, NOW);
		struct json_object *video = member(c, "video");
		ck_assert_int_eq(json_object_get_boolean(member(video, "canPublish")),
				 kinds[i].publish);
		ck_assert(json_object_is_type(member(video, "roomJoin"), json_type_boolean));
		ck_assert(json_object_get_boolean(member(video, "roomJoin")));
		ck_assert(json_object_get_boolean(member(video, "canSubscribe")));
		ck_assert(!json_object_get_boolean(member(video, "roomCreate")));
		ck_assert(!json_object_get_boolean(member(video, "hidden")));
		ck_assert(!json_object_get_boolean(member(video, "canUpdateOwnMetadata")));
		ck_assert(!json_object_object_get_ex(video, "canPublishData", NULL));
		ck_assert(!json_object_object_get_ex(video, "roomAdmin", NULL));
		ck_assert_int_eq(json_object_get_int64(member(c, "nbf")), (int64_t)NOW);
		ck_assert_int_eq(json_object_get_int64(member(c, "exp")), (int64_t)NOW + 600);
		ck_assert_str_eq(mrtc_json_get_string(c, "iss"), "APIdevkey");
		ck_assert_str_eq(mrtc_json_get_string(c, "sub"), "ident");
		json_object_put(c);
		free(jwt);
	}
	char big[300];
	memset(big, 'r', 257);
	big[257] = '\0';
	char *jwt = NULL;
	ck_assert_int_eq(
	    mrtc_livekit_mint_participant(&creds, MRTC_GRANT_LOCAL_USER, "id", big, NOW, 60, &jwt),
	    MRTC_ERR_INVALID_PARAM);
	ck_assert_int_eq(
	    mrtc_livekit_mint_participant(&creds, MRTC_GRANT_LOCAL_USER, big, "r", NOW, 60, &jwt),
	    MRTC_ERR_INVALID_PARAM);
	big[256] = '\0';
	ck_assert_int_eq(
	    mrtc_livekit_mint_participant(&creds, MRTC_GRANT_LOCAL_USER, big, big, NOW, 60, &jwt),
	    MRTC_OK);
	free(jwt);
}
END_TEST

START_TEST(test_livekit_service_token_is_short_lived)
{
	struct json_object *video = json_object_new_object();
	json_object_object_add(video, "roomAdmin", json_object_new_boolean(1));
	json_object_object_add(video, "room", json_object_new_string("R"));
	char *jwt = NULL;
	ck_assert_int_eq(mrtc_livekit_mint_service(&creds, video, NOW, &jwt), MRTC_OK);
	struct json_object *c = claims_of(jwt, NOW);
	ck_assert_int_le(json_object_get_int64(member(c, "exp")), (int64_t)NOW + 600);
	ck_assert(!json_object_object_get_ex(c, "sub", NULL));
	ck_assert_str_eq(mrtc_json_get_string(member(c, "video"), "room"), "R");
	json_object_put(c);
	json_object_put(video);
	free(jwt);
}
END_TEST

static char *sign_raw(const char *header_json, const char *payload_json, const char *secret)
{
	char *h = mrtc_base64_encode_alloc((const uint8_t *)header_json, strlen(header_json), true);
	char *p =
	    mrtc_base64_encode_alloc((const uint8_t *)payload_json, strlen(payload_json), true);
	size_t n = strlen(h) + strlen(p) + 2 + 64;
	char *out = malloc(n);
	snprintf(out, n, "%s.%s", h, p);
	uint8_t mac[32];
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, (const uint8_t *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)out, strlen(out));
	crypto_auth_hmacsha256_final(&st, mac);
	char m[64];
	mrtc_base64_encode(mac, 32, true, m);
	strcat(out, ".");
	strcat(out, m);
	free(h);
	free(p);
	return out;
}

START_TEST(test_livekit_verify_rejects)
{
	const char *hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	const char *ok = "{\"iss\":\"APIdevkey\",\"exp\":1767229200,\"nbf\":1767225600}";
	char *t = sign_raw(hs, ok, creds.secret);
	struct json_object *c = NULL;
	ck_assert_int_eq(mrtc_livekit_verify(&creds, t, NOW, &c), MRTC_OK);
	json_object_put(c);
	/* Time: 60 s of leeway each way, then refused. */
	ck_assert_int_eq(mrtc_livekit_verify(&creds, t, 1767229200 + 60, &c), MRTC_OK);
	json_object_put(c);
	ck_assert_int_eq(mrtc_livekit_verify(&creds, t, 1767229200 + 61, &c), MRTC_ERR_KEY_EXPIRED);
	ck_assert_int_eq(mrtc_livekit_verify(&creds, t, NOW - 61, &c), MRTC_ERR_KEY_EXPIRED);
	/* Another secret; a flipped payload byte; padding; the standard alphabet. */
	struct mrtc_livekit_creds other = { "APIdevkey", "another-secret" };
	ck_assert_int_eq(mrtc_livekit_verify(&other, t, NOW, &c), MRTC_ERR_BAD_SIGNATURE);
	char *bad = strdup(t);
	char *dot = strchr(bad, '.');
	dot[3] = dot[3] == 'A' ? 'B' : 'A';
	ck_assert_int_ne(mrtc_livekit_verify(&creds, bad, NOW, &c), MRTC_OK);
	free(bad);
	size_t n = strlen(t);
	bad = malloc(n + 2);
	snprintf(bad, n + 2, "%s=", t);
	ck_assert_int_eq(mrtc_livekit_verify(&creds, bad, NOW, &c), MRTC_ERR_AUTH_MALFORMED);
	free(bad);
	bad = strdup(t);
	*strrchr(bad, '.') = '\0';
	ck_assert_int_eq(mrtc_livekit_verify(&creds, bad, NOW, &c), MRTC_ERR_AUTH_MALFORMED);
	free(bad);
	free(t);
	struct {
		const char *header, *payload;
		enum mrtc_err err;
	} cases[] = {
		{ "{\"alg\":\"none\"}", ok, MRTC_ERR_AUTH_MALFORMED },
		{ "{\"alg\":\"HS512\"}", ok, MRTC_ERR_AUTH_MALFORMED },
		{ "{\"typ\":\"JWT\"}", ok, MRTC_ERR_AUTH_MALFORMED },
		{ "not json", ok, MRTC_ERR_AUTH_MALFORMED },
		{ hs, "{\"iss\":\"other\",\"exp\":1767229200}", MRTC_ERR_FORBIDDEN },
		{ hs, "{\"exp\":1767229200}", MRTC_ERR_FORBIDDEN },
		{ hs, "{\"iss\":\"APIdevkey\"}", MRTC_ERR_AUTH_MALFORMED },
		{ hs, "{\"iss\":\"APIdevkey\",\"exp\":\"1767229200\"}", MRTC_ERR_AUTH_MALFORMED },
		{ hs, "{\"iss\":\"APIdevkey\",\"exp\":1767229200,\"nbf\":1.5}",
		  MRTC_ERR_AUTH_MALFORMED },
		{ hs, "[1]", MRTC_ERR_AUTH_MALFORMED },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *jwt = sign_raw(cases[i].header, cases[i].payload, creds.secret);
		ck_assert_msg(mrtc_livekit_verify(&creds, jwt, NOW, &c) == cases[i].err, "case %zu",
			      i);
		free(jwt);
	}
	ck_assert_int_eq(mrtc_livekit_verify(&creds, "", NOW, &c), MRTC_ERR_AUTH_MALFORMED);
	ck_assert_int_eq(mrtc_livekit_verify(&creds, "a.b.c.d", NOW, &c), MRTC_ERR_AUTH_MALFORMED);
	ck_assert_int_eq(mrtc_livekit_verify(&creds, "a+b.c.d", NOW, &c), MRTC_ERR_AUTH_MALFORMED);
}
END_TEST

static char *webhook_token(const char *body, const char *secret, bool tamper)
{
	uint8_t d[32];
	crypto_hash_sha256(d, (const uint8_t *)body, strlen(body));
	char b64[64];
	mrtc_base64_encode(d, 32, false, b64);
	strcat(b64, "=");
	if (tamper)
		b64[0] = b64[0] == 'A' ? 'B' : 'A';
	char payload[256];
	snprintf(payload, sizeof(payload),
		 "{\"iss\":\"APIdevkey\",\"exp\":1767229200,\"nbf\":1767225600,\"sha256\":\"%s\"}",
		 b64);
	return sign_raw("{\"alg\":\"HS256\"}", payload, secret);
}

START_TEST(test_livekit_webhook_verify_cases)
{
	const char *body = "{\"event\":\"participant_left\",\"room\":{\"name\":\"ROOM\"},"
			   "\"participant\":{\"identity\":\"ID1\"},\"id\":\"EV_1\"}";
	char *tok = webhook_token(body, creds.secret, false);
	struct mrtc_webhook hook;
	ck_assert_int_eq(mrtc_livekit_webhook_verify(&creds, tok, body, strlen(body), NOW, &hook),
			 MRTC_OK);
	ck_assert_int_eq(hook.event, MRTC_WEBHOOK_PARTICIPANT_LEFT);
	ck_assert_str_eq(hook.room, "ROOM");
	ck_assert_str_eq(hook.identity, "ID1");
	/* The same token with another body, a wrong secret, a bad hash, expired. */
	const char *other = "{\"event\":\"participant_left\",\"room\":{\"name\":\"OTHER\"}}";
	ck_assert_int_eq(mrtc_livekit_webhook_verify(&creds, tok, other, strlen(other), NOW, &hook),
			 MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(
	    mrtc_livekit_webhook_verify(&creds, tok, body, strlen(body) - 1, NOW, &hook),
	    MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(
	    mrtc_livekit_webhook_verify(&creds, tok, body, strlen(body), 1767229200 + 3600, &hook),
	    MRTC_ERR_KEY_EXPIRED);
	free(tok);
	tok = webhook_token(body, "wrong", false);
	ck_assert_int_eq(mrtc_livekit_webhook_verify(&creds, tok, body, strlen(body), NOW, &hook),
			 MRTC_ERR_BAD_SIGNATURE);
	free(tok);
	tok = webhook_token(body, creds.secret, true);
	ck_assert_int_eq(mrtc_livekit_webhook_verify(&creds, tok, body, strlen(body), NOW, &hook),
			 MRTC_ERR_BAD_SIGNATURE);
	free(tok);
	const char *events[][2] = {
		{ "{\"event\":\"participant_joined\"}", "" },
		{ "{\"event\":\"participant_connection_aborted\"}", "" },
		{ "{\"event\":\"room_finished\",\"room\":{\"name\":5}}", "" },
		{ "{\"event\":\"track_published\"}", "" },
	};
	enum mrtc_webhook_event want[] = { MRTC_WEBHOOK_PARTICIPANT_JOINED,
					   MRTC_WEBHOOK_PARTICIPANT_CONNECTION_ABORTED,
					   MRTC_WEBHOOK_ROOM_FINISHED, MRTC_WEBHOOK_OTHER };
	for (size_t i = 0; i < 4; i++) {
		tok = webhook_token(events[i][0], creds.secret, false);
		ck_assert_int_eq(mrtc_livekit_webhook_verify(&creds, tok, events[i][0],
							     strlen(events[i][0]), NOW, &hook),
				 MRTC_OK);
		ck_assert_int_eq(hook.event, want[i]);
		ck_assert_str_eq(hook.room, "");
		free(tok);
	}
	const char *not_event = "{\"room\":{}}";
	tok = webhook_token(not_event, creds.secret, false);
	ck_assert_int_eq(
	    mrtc_livekit_webhook_verify(&creds, tok, not_event, strlen(not_event), NOW, &hook),
	    MRTC_ERR_BAD_JSON);
	free(tok);
}
END_TEST

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	Suite *s = suite_create("livekit");
	const TTest *tests[] = {
		test_livekit_hash_vectors,
		test_livekit_identity_needs_device,
		test_livekit_vector_token_verifies,
		test_livekit_mint_grants_per_kind,
		test_livekit_service_token_is_short_lived,
		test_livekit_verify_rejects,
		test_livekit_webhook_verify_cases,
	};
	vectors_add_tests(s, "livekit", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
