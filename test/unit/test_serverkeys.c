/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key responses against vectors/server_keys.json, every reason to refuse one, and notary
 * answers checked against a pinned key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/base64.h"
#include "mrtc/matrix/json.h"
#include "mrtc/matrix/serverkeys.h"
#include "vectors.h"

#define VECTOR_VALID_UNTIL UINT64_C(1652262000000)

static struct json_object *vector_response(void)
{
	struct json_object *vec = vectors_load("server_keys.json");
	const char *text =
	    json_object_to_json_string_ext(vectors_get(vec, "response"), JSON_C_TO_STRING_PLAIN);
	struct json_object *resp = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, strlen(text), 16, &resp), MRTC_OK);
	json_object_put(vec);
	return resp;
}

static struct mrtc_signing_key *vector_key(void)
{
	const char *line = "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
	struct mrtc_signing_key *key = NULL;
	ck_assert_int_eq(mrtc_signing_key_parse(line, strlen(line), &key), MRTC_OK);
	return key;
}

static enum mrtc_err verify(struct json_object *resp, const char *name, uint64_t now,
			    struct mrtc_verify_key *keys, size_t *n)
{
	return mrtc_server_keys_verify(resp, name, now, keys, MRTC_SERVER_KEYS_MAX, n);
}

START_TEST(test_server_keys_vector_verifies)
{
	struct json_object *vec = vectors_load("server_keys.json");
	struct json_object *resp = vector_response();
	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n = 0;
	uint64_t now = VECTOR_VALID_UNTIL - 3600 * 1000;
	ck_assert_int_eq(verify(resp, "domain", now, keys, &n), MRTC_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(keys[0].key_id, "ed25519:1");
	ck_assert_uint_eq(keys[0].expires_ms, VECTOR_VALID_UNTIL);
	/* The bytes it signs are the vector's signed_bytes. */
	json_object_object_del(resp, "signatures");
	char *canon = NULL;
	ck_assert_int_eq(mrtc_json_canonical(resp, &canon, NULL), MRTC_OK);
	ck_assert_str_eq(canon, json_object_get_string(vectors_get(vec, "signed_bytes")));
	free(canon);
	json_object_put(resp);
	json_object_put(vec);
}
END_TEST

START_TEST(test_server_keys_build_roundtrip_and_cap)
{
	struct mrtc_signing_key *key = vector_key();
	uint64_t now = UINT64_C(1800000000000);
	struct json_object *ours = NULL;
	ck_assert_int_eq(mrtc_server_keys_build(key, "domain", now + 30ull * 86400 * 1000, &ours),
			 MRTC_OK);
	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n = 0;
	ck_assert_int_eq(verify(ours, "domain", now, keys, &n), MRTC_OK);
	ck_assert_uint_eq(keys[0].expires_ms, now + MRTC_KEY_MAX_LIFETIME_MS);
	ck_assert(memcmp(keys[0].public_key, key->public_key, 32) == 0);
	/* Same key, same validity as the vector: the same signature. */
	struct json_object *same = NULL;
	ck_assert_int_eq(mrtc_server_keys_build(key, "domain", VECTOR_VALID_UNTIL, &same), MRTC_OK);
	struct json_object *vec = vector_response();
	char *a = NULL, *b = NULL;
	ck_assert_int_eq(mrtc_json_canonical(same, &a, NULL), MRTC_OK);
	ck_assert_int_eq(mrtc_json_canonical(vec, &b, NULL), MRTC_OK);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	json_object_put(vec);
	json_object_put(same);
	json_object_put(ours);
	mrtc_signing_key_destroy(key);
}
END_TEST

START_TEST(test_server_keys_verify_rejects)
{
	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n = 0;
	uint64_t now = VECTOR_VALID_UNTIL - 1000;
	struct json_object *resp = vector_response();
	ck_assert_int_eq(verify(resp, "other", now, keys, &n), MRTC_ERR_FORBIDDEN);
	json_object_put(resp);

	/* Forged self-signature. */
	resp = vector_response();
	struct json_object *sigs, *dom;
	json_object_object_get_ex(resp, "signatures", &sigs);
	json_object_object_get_ex(sigs, "domain", &dom);
	json_object_object_add(
	    dom, "ed25519:1",
	    json_object_new_string("FGoX7oBz36Xr5gZoCR7HSq2FtzDErzcUj0qWuPVA6XtQjT7"
				   "TFP6ASqj4RJawsHF5EaV2tLUd6bBZ+yn4qYEIDA"));
	ck_assert_int_eq(verify(resp, "domain", now, keys, &n), MRTC_ERR_BAD_SIGNATURE);
	json_object_put(resp);

	/* Extended validity after signing. */
	resp = vector_response();
	json_object_object_add(resp, "valid_until_ts",
			       json_object_new_int64(INT64_C(1952262000000)));
	ck_assert_int_eq(verify(resp, "domain", now, keys, &n), MRTC_ERR_BAD_SIGNATURE);
	json_object_put(resp);

	/* Signed only by a key that the response does not list. */
	resp = vector_response();
	struct json_object *vks;
	json_object_object_get_ex(resp, "verify_keys", &vks);
	struct json_object *entry = json_object_new_object();
	json_object_object_add(
	    entry, "key", json_object_new_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	json_object_object_add(vks, "ed25519:2", json_object_get(entry));
	json_object_object_del(vks, "ed25519:1");
	ck_assert_int_eq(verify(resp, "domain", now, keys, &n), MRTC_ERR_BAD_SIGNATURE);
	json_object_put(entry);
	json_object_put(resp);

	/* Shapes. */
	static const char *const shapes[] = {
		"[]",
		"{\"server_name\":\"domain\"}",
		"{\"server_name\":\"domain\",\"verify_keys\":{},\"valid_until_ts\":1}",
		"{\"server_name\":\"domain\",\"verify_keys\":{\"ed25519:1\":{\"key\":\"AA\"}},"
		"\"valid_until_ts\":1}",
		"{\"server_name\":\"domain\",\"verify_keys\":{\"ed25519:1\":{}},\"valid_until_ts\":"
		"1}",
		"{\"server_name\":\"domain\",\"verify_keys\":{\"ed25519:a-b\":{\"key\":"
		"\"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI\"}},\"valid_until_ts\":1}",
		"{\"server_name\":\"domain\",\"verify_keys\":{\"ed25519:1\":{\"key\":"
		"\"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI\"}},\"valid_until_ts\":-1}",
		"{\"server_name\":\"domain\",\"verify_keys\":{\"ed25519:1\":{\"key\":"
		"\"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI\"}},\"valid_until_ts\":\"1\"}",
		"{\"server_name\":1}",
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct json_object *v = NULL;
		ck_assert_int_eq(mrtc_json_parse(shapes[i], strlen(shapes[i]), 8, &v), MRTC_OK);
		ck_assert_msg(verify(v, "domain", now, keys, &n) == MRTC_ERR_BAD_JSON, "shape %zu",
			      i);
		json_object_put(v);
	}

	/* Too many keys. */
	struct json_object *many = json_object_new_object();
	struct json_object *many_vks = json_object_new_object();
	json_object_object_add(many, "server_name", json_object_new_string("domain"));
	json_object_object_add(many, "valid_until_ts", json_object_new_int64(1));
	for (int i = 0; i < MRTC_SERVER_KEYS_MAX + 1; i++) {
		char id[32];
		snprintf(id, sizeof(id), "ed25519:%d", i);
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "key", json_object_new_string("AAAA"));
		json_object_object_add(many_vks, id, e);
	}
	json_object_object_add(many, "verify_keys", many_vks);
	ck_assert_int_eq(verify(many, "domain", now, keys, &n), MRTC_ERR_TOO_LARGE);
	json_object_put(many);
}
END_TEST

/* A notary's answer for "domain": the origin's own response, signed again by @notary. */
static struct json_object *notarised(const struct mrtc_signing_key *notary, uint64_t valid_until)
{
	struct mrtc_signing_key *origin = vector_key();
	struct json_object *entry = NULL;
	ck_assert_int_eq(mrtc_server_keys_build(origin, "domain", valid_until, &entry), MRTC_OK);
	ck_assert_int_eq(mrtc_json_sign(entry, "notary.example", notary), MRTC_OK);
	struct json_object *list = json_object_new_array();
	/* An answer about another server first: skipped. */
	struct json_object *other = NULL;
	ck_assert_int_eq(mrtc_server_keys_build(origin, "other.example", valid_until, &other),
			 MRTC_OK);
	json_object_array_add(list, other);
	json_object_array_add(list, entry);
	struct json_object *resp = json_object_new_object();
	json_object_object_add(resp, "server_keys", list);
	mrtc_signing_key_destroy(origin);
	return resp;
}

static enum mrtc_err verify_notarised(struct json_object *resp, const char *name,
				      const char *notary, const struct mrtc_verify_key *pinned,
				      uint64_t now, struct mrtc_verify_key *keys, size_t *n)
{
	return mrtc_server_keys_verify_notarised(resp, name, notary, pinned, now, keys,
						 MRTC_SERVER_KEYS_MAX, n);
}

START_TEST(test_server_keys_notarised)
{
	const char *line = "ed25519 n1 nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
	struct mrtc_signing_key *notary = NULL;
	ck_assert_int_eq(mrtc_signing_key_parse(line, strlen(line), &notary), MRTC_OK);
	char pk[MRTC_BASE64_ENCODED_SIZE(MRTC_ED25519_PK_LEN)];
	mrtc_base64_encode(notary->public_key, MRTC_ED25519_PK_LEN, false, pk);
	char spec[256], name[MRTC_SERVER_NAME_MAX + 1];
	struct mrtc_verify_key pinned, wrong;
	snprintf(spec, sizeof(spec), "notary.example ed25519:n1 %s", pk);
	ck_assert(mrtc_notary_spec_parse(spec, name, &pinned));
	ck_assert_str_eq(name, "notary.example");
	ck_assert_str_eq(pinned.key_id, "ed25519:n1");
	ck_assert(memcmp(pinned.public_key, notary->public_key, MRTC_ED25519_PK_LEN) == 0);
	wrong = pinned;
	wrong.public_key[0] ^= 1;

	uint64_t now = UINT64_C(1800000000000);
	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n = 0;
	struct json_object *resp = notarised(notary, now + 3600 * 1000);
	ck_assert_int_eq(verify_notarised(resp, "domain", "notary.example", &pinned, now, keys, &n),
			 MRTC_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(keys[0].key_id, "ed25519:1");
	ck_assert_uint_eq(keys[0].expires_ms, now + 3600 * 1000);
	/* Another pinned key, another notary name, a server it holds nothing for. */
	ck_assert_int_eq(verify_notarised(resp, "domain", "notary.example", &wrong, now, keys, &n),
			 MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(
	    verify_notarised(resp, "domain", "elsewhere.example", &pinned, now, keys, &n),
	    MRTC_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(
	    verify_notarised(resp, "absent.example", "notary.example", &pinned, now, keys, &n),
	    MRTC_ERR_UNKNOWN_KEY);
	/* The origin's key replaced after the notary signed: no self-signature verifies. */
	struct json_object *list = NULL, *vks = NULL;
	json_object_object_get_ex(resp, "server_keys", &list);
	json_object_object_get_ex(json_object_array_get_idx(list, 1), "verify_keys", &vks);
	struct json_object *forged = json_object_new_object();
	json_object_object_add(forged, "key", json_object_new_string(pk));
	json_object_object_add(vks, "ed25519:1", forged);
	ck_assert_int_eq(verify_notarised(resp, "domain", "notary.example", &pinned, now, keys, &n),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_put(resp);

	/* Shapes: not an array, too many entries. */
	resp = json_object_new_object();
	json_object_object_add(resp, "server_keys", json_object_new_object());
	ck_assert_int_eq(verify_notarised(resp, "domain", "notary.example", &pinned, now, keys, &n),
			 MRTC_ERR_BAD_JSON);
	list = json_object_new_array();
	for (int i = 0; i < MRTC_NOTARY_ENTRIES_MAX + 1; i++)
		json_object_array_add(list, json_object_new_object());
	json_object_object_add(resp, "server_keys", list);
	ck_assert_int_eq(verify_notarised(resp, "domain", "notary.example", &pinned, now, keys, &n),
			 MRTC_ERR_TOO_LARGE);
	json_object_put(resp);

	/* Malformed pins. */
	const char *bad[] = {
		"",
		"notary.example",
		"notary.example ed25519:n1",
		"notary.example curve25519:n1 AAAA",
		"notary.example ed25519:n1 AAAA",
		"bad_name! ed25519:n1 nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
		"notary.example ed25519:n1 nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A extra",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!mrtc_notary_spec_parse(bad[i], name, &wrong), "%s", bad[i]);
	mrtc_signing_key_destroy(notary);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("serverkeys");
	const TTest *tests[] = {
		test_server_keys_vector_verifies,
		test_server_keys_build_roundtrip_and_cap,
		test_server_keys_verify_rejects,
		test_server_keys_notarised,
	};
	vectors_add_tests(s, "serverkeys", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
