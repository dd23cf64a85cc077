/* SPDX-License-Identifier: Apache-2.0 */
/* Building and verifying /_matrix/key/v2/server responses. Pure. */
#include "mrtc/matrix/serverkeys.h"

#include <stdio.h>
#include <string.h>

#include "mrtc/base/base64.h"
#include "mrtc/matrix/json.h"

enum mrtc_err mrtc_server_keys_build(const struct mrtc_signing_key *key, const char *server_name,
				     uint64_t valid_until_ms, struct json_object **ret_obj)
{
	char pk_b64[MRTC_BASE64_ENCODED_SIZE(MRTC_ED25519_PK_LEN)];
	mrtc_base64_encode(key->public_key, sizeof(key->public_key), false, pk_b64);
	struct json_object *obj = json_object_new_object();
	struct json_object *vks = json_object_new_object();
	struct json_object *vk = json_object_new_object();
	enum mrtc_err err = MRTC_ERR_NOMEM;
	if (!obj || !vks || !vk) {
		json_object_put(vk);
		json_object_put(vks);
		goto out;
	}
	if (json_object_object_add(vk, "key", json_object_new_string(pk_b64)) != 0 ||
	    json_object_object_add(vks, key->key_id, vk) != 0) {
		json_object_put(vks);
		goto out;
	}
	if (json_object_object_add(obj, "verify_keys", vks) != 0 ||
	    json_object_object_add(obj, "server_name", json_object_new_string(server_name)) != 0 ||
	    json_object_object_add(obj, "old_verify_keys", json_object_new_object()) != 0 ||
	    json_object_object_add(obj, "valid_until_ts",
				   json_object_new_int64((int64_t)valid_until_ms)) != 0)
		goto out;
	err = mrtc_json_sign(obj, server_name, key);
	if (err != MRTC_OK)
		goto out;
	*ret_obj = obj;
	return MRTC_OK;
out:
	json_object_put(obj);
	return err;
}

enum mrtc_err mrtc_server_keys_verify(const struct json_object *resp, const char *server_name,
				      uint64_t now_ms, struct mrtc_verify_key *ret_keys,
				      size_t max_keys, size_t *ret_n)
{
	if (!json_object_is_type(resp, json_type_object))
		return MRTC_ERR_BAD_JSON;
	const char *name = mrtc_json_get_string(resp, "server_name");
	if (!name)
		return MRTC_ERR_BAD_JSON;
	if (strcmp(name, server_name) != 0)
		return MRTC_ERR_FORBIDDEN;
	struct json_object *vks = NULL, *vut = NULL;
	if (!json_object_object_get_ex(resp, "verify_keys", &vks) ||
	    !json_object_is_type(vks, json_type_object) ||
	    !json_object_object_get_ex(resp, "valid_until_ts", &vut) ||
	    !json_object_is_type(vut, json_type_int) || json_object_get_int64(vut) < 0)
		return MRTC_ERR_BAD_JSON;
	size_t count = (size_t)json_object_object_length(vks);
	if (count == 0)
		return MRTC_ERR_BAD_JSON;
	if (count > max_keys || count > MRTC_SERVER_KEYS_MAX)
		return MRTC_ERR_TOO_LARGE;
	uint64_t valid_until = (uint64_t)json_object_get_int64(vut);
	uint64_t cap = now_ms + MRTC_KEY_MAX_LIFETIME_MS;
	uint64_t expires = valid_until < cap ? valid_until : cap;

	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n = 0;
	json_object_object_foreach (vks, key_id, entry) {
		const char *b64 = mrtc_json_get_string(entry, "key");
		size_t out_len;
		if (!mrtc_key_id_is_valid(key_id) || !b64 ||
		    !mrtc_base64_decode(b64, strlen(b64), keys[n].public_key, MRTC_ED25519_PK_LEN,
					&out_len) ||
		    out_len != MRTC_ED25519_PK_LEN)
			return MRTC_ERR_BAD_JSON;
		memcpy(keys[n].key_id, key_id, strlen(key_id) + 1);
		keys[n].expires_ms = expires;
		n++;
	}
	bool verified = false;
	for (size_t i = 0; i < n && !verified; i++)
		verified = mrtc_json_verify(resp, server_name, keys[i].key_id,
					    keys[i].public_key) == MRTC_OK;
	if (!verified)
		return MRTC_ERR_BAD_SIGNATURE;
	memcpy(ret_keys, keys, n * sizeof(keys[0]));
	*ret_n = n;
	return MRTC_OK;
}

enum mrtc_err mrtc_server_keys_verify_notarised(const struct json_object *resp,
						const char *server_name, const char *notary,
						const struct mrtc_verify_key *notary_key,
						uint64_t now_ms, struct mrtc_verify_key *ret_keys,
						size_t max_keys, size_t *ret_n)
{
	struct json_object *list = NULL;
	if (!json_object_is_type(resp, json_type_object) ||
	    !json_object_object_get_ex(resp, "server_keys", &list) ||
	    !json_object_is_type(list, json_type_array))
		return MRTC_ERR_BAD_JSON;
	size_t n = json_object_array_length(list);
	if (n > MRTC_NOTARY_ENTRIES_MAX)
		return MRTC_ERR_TOO_LARGE;
	enum mrtc_err err = MRTC_ERR_UNKNOWN_KEY;
	for (size_t i = 0; i < n; i++) {
		const struct json_object *entry = json_object_array_get_idx(list, i);
		const char *name = mrtc_json_get_string(entry, "server_name");
		if (!name || strcmp(name, server_name) != 0)
			continue; /* a notary may answer for other servers too */
		err =
		    mrtc_server_keys_verify(entry, server_name, now_ms, ret_keys, max_keys, ret_n);
		if (err != MRTC_OK)
			continue;
		err = mrtc_json_verify(entry, notary, notary_key->key_id, notary_key->public_key);
		if (err == MRTC_OK)
			return MRTC_OK;
		err = MRTC_ERR_BAD_SIGNATURE;
	}
	return err;
}

bool mrtc_notary_spec_parse(const char *spec, char *ret_name, struct mrtc_verify_key *ret_key)
{
	char name[MRTC_SERVER_NAME_MAX + 1], key_id[MRTC_KEY_ID_MAX + 1], b64[64];
	char extra;
	size_t len;
	struct mrtc_verify_key key = { .expires_ms = UINT64_MAX };
	if (strlen(spec) > sizeof(name) + sizeof(key_id) + sizeof(b64) ||
	    sscanf(spec, "%255s %128s %63s %c", name, key_id, b64, &extra) != 3 ||
	    !mrtc_server_name_is_valid(name) || !mrtc_key_id_is_valid(key_id) ||
	    strncmp(key_id, "ed25519:", 8) != 0 ||
	    !mrtc_base64_decode(b64, strlen(b64), key.public_key, MRTC_ED25519_PK_LEN, &len) ||
	    len != MRTC_ED25519_PK_LEN)
		return false;
	memcpy(ret_name, name, strlen(name) + 1);
	memcpy(key.key_id, key_id, strlen(key_id) + 1);
	*ret_key = key;
	return true;
}
