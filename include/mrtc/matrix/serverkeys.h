/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /_matrix/key/v2/server responses (PROTOCOL §5.4): building our own, and verifying one fetched
 * from another server. Pure.
 */
#ifndef MRTC_SERVERKEYS_H
#define MRTC_SERVERKEYS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/matrix/servername.h"
#include "mrtc/matrix/signing.h"

#define MRTC_KEY_MAX_LIFETIME_MS (7ull * 24 * 3600 * 1000)
#define MRTC_SERVER_KEYS_MAX 16

struct mrtc_verify_key {
	char key_id[MRTC_KEY_ID_MAX + 1];
	uint8_t public_key[MRTC_ED25519_PK_LEN];
	uint64_t expires_ms; /* min(valid_until_ts, fetched + 7 days) */
};

/*
 * Builds our key response for @server_name: @key as the one verify key, no old keys,
 * valid until @valid_until_ms, self-signed. Caller frees *ret_obj with json_object_put().
 */
enum mrtc_err mrtc_server_keys_build(const struct mrtc_signing_key *key, const char *server_name,
				     uint64_t valid_until_ms, struct json_object **ret_obj);

/*
 * Verifies a key response fetched from @server_name at @now_ms: "server_name" must equal it,
 * "verify_keys" must hold 1..max_keys well-formed ed25519 keys, "valid_until_ts" must be a
 * non-negative integer, and at least one signature by @server_name with a key listed in the
 * same response must verify. On success fills @ret_keys with the current keys (old keys are
 * never returned) and their capped expiry, and *ret_n with their number.
 * Errors: MRTC_ERR_BAD_JSON (shape), MRTC_ERR_FORBIDDEN (other server name),
 * MRTC_ERR_TOO_LARGE (too many keys), MRTC_ERR_BAD_SIGNATURE (no self-signature verifies).
 */
enum mrtc_err mrtc_server_keys_verify(const struct json_object *resp, const char *server_name,
				      uint64_t now_ms, struct mrtc_verify_key *ret_keys,
				      size_t max_keys, size_t *ret_n);

/*
 * Verifies a notary's /_matrix/key/v2/query/{@server_name} response: "server_keys" is an
 * array of at most MRTC_NOTARY_ENTRIES_MAX key responses; the first one that passes
 * mrtc_server_keys_verify() for @server_name AND carries a signature by @notary with the pinned
 * key @notary_key wins. The keys' expiry is that entry's own valid_until_ts, capped as above.
 * Errors: MRTC_ERR_BAD_JSON (shape), MRTC_ERR_TOO_LARGE (too many entries), MRTC_ERR_UNKNOWN_KEY
 * (no entry for @server_name), else the error of the last entry tried (MRTC_ERR_BAD_SIGNATURE
 * when the notary's signature is missing or does not verify).
 */
#define MRTC_NOTARY_ENTRIES_MAX 8
enum mrtc_err mrtc_server_keys_verify_notarised(const struct json_object *resp,
						const char *server_name, const char *notary,
						const struct mrtc_verify_key *notary_key,
						uint64_t now_ms, struct mrtc_verify_key *ret_keys,
						size_t max_keys, size_t *ret_n);

/*
 * Parses a pinned notary "<server_name> ed25519:<version> <unpadded base64 public key>" (three
 * fields separated by whitespace, nothing after) into @ret_name (MRTC_SERVER_NAME_MAX + 1
 * bytes) and @ret_key (never expires). False when malformed.
 */
bool mrtc_notary_spec_parse(const char *spec, char *ret_name, struct mrtc_verify_key *ret_key);

#endif
