/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A line-oriented driver that exposes our canonical JSON, JSON signing and X-Matrix code to the
 * cross-implementation test (test/integration/test_signedjson.py), which compares every answer
 * with python3-signedjson and python3-canonicaljson.
 *
 * Usage: crosscheck <signing-key-file> <server-name>
 * Each input line is a JSON command; each output line a JSON answer:
 *   {"op":"canonical","text":T}                      -> {"ok":B,"canonical":S}
 *   {"op":"sign","text":T}                           -> {"ok":B,"signed":S}   (canonical)
 *   {"op":"verify","text":T,"server":S,"key_id":K,"public_key":P} -> {"ok":B,"err":E}
 *   {"op":"xsign","method":M,"uri":U,"destination":D,"content":T|null} -> {"ok":B,"header":H}
 *   {"op":"xverify","method":M,"uri":U,"our_name":N,"content":T|null,"header":H,
 *    "origin":O,"key_id":K,"public_key":P}          -> {"ok":B,"err":E}
 * T is JSON text, read with our strict parser.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/base64.h"
#include "mrtc/matrix/json.h"
#include "mrtc/matrix/signing.h"
#include "mrtc/matrix/xmatrix.h"

struct pinned {
	const char *origin, *key_id;
	uint8_t pk[MRTC_ED25519_PK_LEN];
};

static enum mrtc_err pinned_lookup(void *ctx, const char *origin, const char *key_id, uint8_t *pk)
{
	struct pinned *p = ctx;
	if (strcmp(origin, p->origin) != 0 || strcmp(key_id, p->key_id) != 0)
		return MRTC_ERR_UNKNOWN_KEY;
	memcpy(pk, p->pk, MRTC_ED25519_PK_LEN);
	return MRTC_OK;
}

static const char *str(struct json_object *cmd, const char *key)
{
	const char *s = mrtc_json_get_string(cmd, key);
	return s ? s : "";
}

static struct json_object *parse_text(struct json_object *cmd, const char *key)
{
	struct json_object *t = NULL, *v = NULL;
	if (!json_object_object_get_ex(cmd, key, &t) || !json_object_is_type(t, json_type_string))
		return NULL;
	if (mrtc_json_parse(json_object_get_string(t), (size_t)json_object_get_string_len(t),
			    MRTC_JSON_MAX_DEPTH, &v) != MRTC_OK)
		return NULL;
	return v;
}

static bool decode_pk(const char *b64, uint8_t *pk)
{
	size_t n;
	return mrtc_base64_decode(b64, strlen(b64), pk, MRTC_ED25519_PK_LEN, &n) &&
	       n == MRTC_ED25519_PK_LEN;
}

static void run(struct json_object *cmd, struct json_object *ans,
		const struct mrtc_signing_key *key, const char *server)
{
	const char *op = str(cmd, "op");
	enum mrtc_err err = MRTC_ERR_INVALID_PARAM;
	char *out = NULL;
	struct json_object *v = NULL;
	if (strcmp(op, "canonical") == 0) {
		v = parse_text(cmd, "text");
		err = v ? mrtc_json_canonical(v, &out, NULL) : MRTC_ERR_NOT_JSON;
		if (err == MRTC_OK)
			json_object_object_add(ans, "canonical", json_object_new_string(out));
	} else if (strcmp(op, "sign") == 0) {
		v = parse_text(cmd, "text");
		err = v ? mrtc_json_sign(v, server, key) : MRTC_ERR_NOT_JSON;
		if (err == MRTC_OK)
			err = mrtc_json_canonical(v, &out, NULL);
		if (err == MRTC_OK)
			json_object_object_add(ans, "signed", json_object_new_string(out));
	} else if (strcmp(op, "verify") == 0) {
		uint8_t pk[MRTC_ED25519_PK_LEN];
		v = parse_text(cmd, "text");
		if (v && decode_pk(str(cmd, "public_key"), pk))
			err = mrtc_json_verify(v, str(cmd, "server"), str(cmd, "key_id"), pk);
	} else if (strcmp(op, "xsign") == 0) {
		v = parse_text(cmd, "content");
		err = mrtc_xmatrix_sign(str(cmd, "method"), str(cmd, "uri"), server,
					str(cmd, "destination"), v, key, &out);
		if (err == MRTC_OK)
			json_object_object_add(ans, "header", json_object_new_string(out));
	} else if (strcmp(op, "xverify") == 0) {
		struct pinned p = { .origin = str(cmd, "origin"), .key_id = str(cmd, "key_id") };
		v = parse_text(cmd, "content");
		if (decode_pk(str(cmd, "public_key"), p.pk)) {
			const char *headers[] = { str(cmd, "header") };
			char origin[MRTC_SERVER_NAME_MAX + 1];
			err = mrtc_xmatrix_verify(str(cmd, "method"), str(cmd, "uri"), v,
						  str(cmd, "our_name"), headers, 1, pinned_lookup,
						  &p, origin);
		}
	}
	json_object_object_add(ans, "ok", json_object_new_boolean(err == MRTC_OK));
	json_object_object_add(ans, "err", json_object_new_string(mrtc_err_str(err)));
	free(out);
	json_object_put(v);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <signing-key-file> <server-name>\n", argv[0]);
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	struct mrtc_signing_key *key = NULL;
	if (mrtc_signing_key_load_file(argv[1], &key) != MRTC_OK) {
		fprintf(stderr, "cannot load %s\n", argv[1]);
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		struct json_object *cmd = json_tokener_parse(line);
		struct json_object *ans = json_object_new_object();
		if (cmd)
			run(cmd, ans, key, argv[2]);
		else
			json_object_object_add(ans, "ok", json_object_new_boolean(0));
		puts(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
		fflush(stdout);
		json_object_put(ans);
		json_object_put(cmd);
	}
	free(line);
	mrtc_signing_key_destroy(key);
	return 0;
}
