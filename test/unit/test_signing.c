/* SPDX-License-Identifier: Apache-2.0 */
/* Signing-key files and JSON signatures against vectors/signing.json. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrtc/base/base64.h"
#include "mrtc/matrix/json.h"
#include "mrtc/matrix/signing.h"
#include "vectors.h"

static struct mrtc_signing_key *vector_key(struct json_object *vec)
{
	const char *line = json_object_get_string(vectors_get(vec, "signing_key_file_line"));
	struct mrtc_signing_key *key = NULL;
	ck_assert_int_eq(mrtc_signing_key_parse(line, strlen(line), &key), MRTC_OK);
	return key;
}

static char *canonical(const struct json_object *v)
{
	char *out = NULL;
	ck_assert_int_eq(mrtc_json_canonical(v, &out, NULL), MRTC_OK);
	return out;
}

/* Re-parses a json-c object with our strict parser so both sides hold the same types. */
static struct json_object *reparse(struct json_object *v)
{
	const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	struct json_object *out = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, strlen(text), MRTC_JSON_MAX_DEPTH, &out), MRTC_OK);
	return out;
}

START_TEST(test_signing_key_parse_vector)
{
	struct json_object *vec = vectors_load("signing.json");
	struct mrtc_signing_key *key = vector_key(vec);
	ck_assert_str_eq(key->key_id, json_object_get_string(vectors_get(vec, "key_id")));
	char pk[MRTC_BASE64_ENCODED_SIZE(32)];
	mrtc_base64_encode(key->public_key, 32, false, pk);
	ck_assert_str_eq(pk, json_object_get_string(vectors_get(vec, "public_key_b64")));
	mrtc_signing_key_destroy(key);
	json_object_put(vec);
}
END_TEST

START_TEST(test_json_sign_vectors)
{
	struct json_object *vec = vectors_load("signing.json");
	struct mrtc_signing_key *key = vector_key(vec);
	const char *server = json_object_get_string(vectors_get(vec, "server_name"));
	struct json_object *cases = vectors_get(vec, "cases");
	for (size_t i = 0; i < json_object_array_length(cases); i++) {
		struct json_object *c = json_object_array_get_idx(cases, i);
		struct json_object *obj = reparse(vectors_get(c, "object"));
		struct json_object *want = reparse(vectors_get(c, "signed"));
		ck_assert_int_eq(mrtc_json_sign(obj, server, key), MRTC_OK);
		char *got = canonical(obj), *exp = canonical(want);
		ck_assert_str_eq(got, exp);
		ck_assert_int_eq(mrtc_json_verify(want, server, key->key_id, key->public_key),
				 MRTC_OK);
		free(got);
		free(exp);
		json_object_put(obj);
		json_object_put(want);
	}
	mrtc_signing_key_destroy(key);
	json_object_put(vec);
}
END_TEST

START_TEST(test_json_verify_rejects)
{
	struct json_object *vec = vectors_load("signing.json");
	struct mrtc_signing_key *key = vector_key(vec);
	struct json_object *c = json_object_array_get_idx(vectors_get(vec, "cases"), 1);
	struct json_object *signed_obj = reparse(vectors_get(c, "signed"));
	/* Tampered content. */
	struct json_object *t = reparse(signed_obj);
	json_object_object_add(t, "one", json_object_new_int(2));
	ck_assert_int_eq(mrtc_json_verify(t, "domain", "ed25519:1", key->public_key),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_put(t);
	/* Added "unsigned" does not matter; an added member does. */
	t = reparse(signed_obj);
	json_object_object_add(t, "unsigned", json_object_new_int(2));
	ck_assert_int_eq(mrtc_json_verify(t, "domain", "ed25519:1", key->public_key), MRTC_OK);
	json_object_object_add(t, "extra", json_object_new_int(2));
	ck_assert_int_eq(mrtc_json_verify(t, "domain", "ed25519:1", key->public_key),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_put(t);
	/* Other server, other key id, unknown algorithm, wrong public key. */
	ck_assert_int_eq(mrtc_json_verify(signed_obj, "other", "ed25519:1", key->public_key),
			 MRTC_ERR_UNKNOWN_KEY);
	ck_assert_int_eq(mrtc_json_verify(signed_obj, "domain", "ed25519:2", key->public_key),
			 MRTC_ERR_UNKNOWN_KEY);
	ck_assert_int_eq(mrtc_json_verify(signed_obj, "domain", "curve25519:1", key->public_key),
			 MRTC_ERR_UNSUPPORTED);
	uint8_t other_pk[32];
	memcpy(other_pk, key->public_key, 32);
	other_pk[0] ^= 1;
	ck_assert_int_eq(mrtc_json_verify(signed_obj, "domain", "ed25519:1", other_pk),
			 MRTC_ERR_BAD_SIGNATURE);
	/* A signature that is not base64 or not 64 bytes. */
	t = reparse(signed_obj);
	struct json_object *sigs = NULL, *dom = NULL;
	json_object_object_get_ex(t, "signatures", &sigs);
	json_object_object_get_ex(sigs, "domain", &dom);
	json_object_object_add(dom, "ed25519:1", json_object_new_string("!!!"));
	ck_assert_int_eq(mrtc_json_verify(t, "domain", "ed25519:1", key->public_key),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_object_add(dom, "ed25519:1", json_object_new_string("AAAA"));
	ck_assert_int_eq(mrtc_json_verify(t, "domain", "ed25519:1", key->public_key),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_object_add(dom, "ed25519:1", json_object_new_int(1));
	ck_assert_int_eq(mrtc_json_verify(t, "domain", "ed25519:1", key->public_key),
			 MRTC_ERR_BAD_SIGNATURE);
	json_object_put(t);
	json_object_put(signed_obj);
	mrtc_signing_key_destroy(key);
	json_object_put(vec);
}
END_TEST

START_TEST(test_json_sign_keeps_other_signatures)
{
	struct json_object *vec = vectors_load("signing.json");
	struct mrtc_signing_key *key = vector_key(vec);
	const char *text = "{\"a\":1,\"signatures\":{\"other\":{\"ed25519:x\":\"abc\"}}}";
	struct json_object *obj = NULL;
	ck_assert_int_eq(mrtc_json_parse(text, strlen(text), 8, &obj), MRTC_OK);
	ck_assert_int_eq(mrtc_json_sign(obj, "domain", key), MRTC_OK);
	struct json_object *sigs = NULL, *other = NULL;
	ck_assert(json_object_object_get_ex(obj, "signatures", &sigs));
	ck_assert(json_object_object_get_ex(sigs, "other", &other));
	ck_assert_int_eq(mrtc_json_verify(obj, "domain", "ed25519:1", key->public_key), MRTC_OK);
	json_object_put(obj);
	mrtc_signing_key_destroy(key);
	json_object_put(vec);
}
END_TEST

START_TEST(test_signing_key_parse_rejects)
{
	static const struct {
		const char *line;
		enum mrtc_err err;
	} bad[] = {
		{ "", MRTC_ERR_INVALID_PARAM },
		{ "ed25519 1", MRTC_ERR_INVALID_PARAM },
		{ "ed448 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1", MRTC_ERR_UNSUPPORTED },
		{ "ed25519 a-b YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1",
		  MRTC_ERR_INVALID_PARAM },
		{ "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA", MRTC_ERR_INVALID_PARAM },
		{ "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1AA",
		  MRTC_ERR_INVALID_PARAM },
		{ "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA! ",
		  MRTC_ERR_INVALID_PARAM },
		{ "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1 extra",
		  MRTC_ERR_INVALID_PARAM },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mrtc_signing_key *key = NULL;
		ck_assert_int_eq(mrtc_signing_key_parse(bad[i].line, strlen(bad[i].line), &key),
				 bad[i].err);
		ck_assert_ptr_null(key);
	}
}
END_TEST

START_TEST(test_signing_key_load_file_first_line)
{
	char *path =
	    vectors_temp_file("ed25519 a_1\tYJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\r\n"
			      "ed25519 2 garbage\n");
	struct mrtc_signing_key *key = NULL;
	ck_assert_int_eq(mrtc_signing_key_load_file(path, &key), MRTC_OK);
	ck_assert_str_eq(key->key_id, "ed25519:a_1");
	mrtc_signing_key_destroy(key);
	unlink(path);
	free(path);
	key = NULL;
	ck_assert_int_eq(mrtc_signing_key_load_file("/nonexistent/key", &key), MRTC_ERR_IO);
	ck_assert_ptr_null(key);
	mrtc_signing_key_destroy(NULL);
}
END_TEST

START_TEST(test_key_id_is_valid_rules)
{
	ck_assert(mrtc_key_id_is_valid("ed25519:1"));
	ck_assert(mrtc_key_id_is_valid("ed25519:abc_DEF_9"));
	ck_assert(!mrtc_key_id_is_valid("ed25519:"));
	ck_assert(!mrtc_key_id_is_valid("ed25519:a-b"));
	ck_assert(!mrtc_key_id_is_valid("ed25519:a:b"));
	ck_assert(!mrtc_key_id_is_valid("curve25519:1"));
	ck_assert(!mrtc_key_id_is_valid(NULL));
	char long_id[200] = "ed25519:";
	memset(long_id + 8, 'a', 121);
	long_id[129] = '\0';
	ck_assert(!mrtc_key_id_is_valid(long_id));
	long_id[128] = '\0';
	ck_assert(mrtc_key_id_is_valid(long_id));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("signing");
	const TTest *tests[] = {
		test_signing_key_parse_vector,	test_json_sign_vectors,
		test_json_verify_rejects,	test_json_sign_keeps_other_signatures,
		test_signing_key_parse_rejects, test_signing_key_load_file_first_line,
		test_key_id_is_valid_rules,
	};
	vectors_add_tests(s, "signing", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
