/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ed25519 signing keys in the homeserver's signing-key file format, and Matrix JSON signatures
 * (sign an object without its "signatures" and "unsigned", re-attach them). Pure apart from
 * mrtc_signing_key_load_file(), which reads the file.
 */
#ifndef MRTC_SIGNING_H
#define MRTC_SIGNING_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"

#define MRTC_KEY_ID_MAX 128
#define MRTC_ED25519_PK_LEN 32
#define MRTC_ED25519_SIG_LEN 64

struct mrtc_signing_key {
	char key_id[MRTC_KEY_ID_MAX + 1]; /* "ed25519:<version>" */
	uint8_t public_key[MRTC_ED25519_PK_LEN];
	uint8_t secret_key[64]; /* libsodium form: seed followed by the public key */
};

/* True for "ed25519:" followed by 1+ characters of [A-Za-z0-9_], at most 128 in all. */
bool mrtc_key_id_is_valid(const char *key_id);

/*
 * Parses the first line of a signing-key file ("ed25519 <version> <unpadded b64 32-byte seed>",
 * fields separated by spaces or tabs). On success *ret_key is a new key (caller frees with
 * mrtc_signing_key_destroy(), which wipes it). Errors: MRTC_ERR_INVALID_PARAM for bad
 * contents, MRTC_ERR_UNSUPPORTED for another algorithm, MRTC_ERR_NOMEM.
 */
enum mrtc_err mrtc_signing_key_parse(const char *text, size_t len,
				     struct mrtc_signing_key **ret_key);

/* Reads @path (at most 64 KiB) and parses it as mrtc_signing_key_parse(); MRTC_ERR_IO if
 * unreadable. */
enum mrtc_err mrtc_signing_key_load_file(const char *path, struct mrtc_signing_key **ret_key);

/* Wipes and frees @key; accepts NULL. */
void mrtc_signing_key_destroy(struct mrtc_signing_key *key);

/* Ed25519 signature of @len bytes of @msg. */
void mrtc_signing_key_sign(const struct mrtc_signing_key *key, const uint8_t *msg, size_t len,
			   uint8_t ret_sig[MRTC_ED25519_SIG_LEN]);

/*
 * Signs JSON object @obj as @server_name with @key: the canonical form of @obj without
 * "signatures" and "unsigned" is signed and the signature added under
 * signatures[@server_name][key id], keeping other signatures. @obj is modified in place.
 */
enum mrtc_err mrtc_json_sign(struct json_object *obj, const char *server_name,
			     const struct mrtc_signing_key *key);

/*
 * Verifies the signature of @server_name with key @key_id over @obj, using the Ed25519
 * public key @public_key. MRTC_OK if it verifies; MRTC_ERR_UNKNOWN_KEY if @obj has no such
 * signature; MRTC_ERR_BAD_SIGNATURE if it does not verify or is malformed;
 * MRTC_ERR_UNSUPPORTED for a key id that is not ed25519; MRTC_ERR_INVALID_PARAM if @obj cannot
 * be canonicalised.
 */
enum mrtc_err mrtc_json_verify(const struct json_object *obj, const char *server_name,
			       const char *key_id, const uint8_t public_key[MRTC_ED25519_PK_LEN]);

/*
 * Verifies an unpadded-base64 Ed25519 signature @sig_b64 over @len bytes of @msg.
 * MRTC_OK or MRTC_ERR_BAD_SIGNATURE.
 */
enum mrtc_err mrtc_ed25519_verify_b64(const char *sig_b64, const uint8_t *msg, size_t len,
				      const uint8_t public_key[MRTC_ED25519_PK_LEN]);

#endif
