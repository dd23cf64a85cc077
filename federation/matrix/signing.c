/* SPDX-License-Identifier: Apache-2.0 */
/* Signing-key files and Matrix JSON signatures over canonical JSON (libsodium Ed25519). */
#include "mrtc/matrix/signing.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mrtc/base/base64.h"
#include "mrtc/matrix/json.h"

#define KEY_FILE_MAX (64 * 1024)

bool mrtc_key_id_is_valid(const char *key_id)
{
	if (!key_id || strncmp(key_id, "ed25519:", 8) != 0)
		return false;
	size_t len = strlen(key_id);
	if (len == 8 || len > MRTC_KEY_ID_MAX)
		return false;
	for (size_t i = 8; i < len; i++) {
		char c = key_id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Next blank-separated field between *p and end: sets ret_start and ret_len. */
static bool next_field(const char **p, const char *end, const char **ret_start, size_t *ret_len)
{
	while (*p < end && is_blank(**p))
		(*p)++;
	const char *s = *p;
	while (*p < end && !is_blank(**p))
		(*p)++;
	if (*p == s)
		return false;
	*ret_start = s;
	*ret_len = (size_t)(*p - s);
	return true;
}

enum mrtc_err mrtc_signing_key_parse(const char *text, size_t len,
				     struct mrtc_signing_key **ret_key)
{
	const char *nl = memchr(text, '\n', len);
	const char *end = nl ? nl : text + len;
	if (end > text && end[-1] == '\r')
		end--;
	const char *p = text;
	const char *alg, *version, *seed_b64, *extra;
	size_t alg_len, version_len, seed_len, extra_len;
	if (!next_field(&p, end, &alg, &alg_len) || !next_field(&p, end, &version, &version_len) ||
	    !next_field(&p, end, &seed_b64, &seed_len) || next_field(&p, end, &extra, &extra_len))
		return MRTC_ERR_INVALID_PARAM;
	if (alg_len != 7 || memcmp(alg, "ed25519", 7) != 0)
		return MRTC_ERR_UNSUPPORTED;
	if (sodium_init() < 0)
		return MRTC_ERR_INTERNAL;
	struct mrtc_signing_key *key = sodium_malloc(sizeof(*key));
	if (!key)
		return MRTC_ERR_NOMEM;
	enum mrtc_err err = MRTC_ERR_INVALID_PARAM;
	if (8 + version_len > MRTC_KEY_ID_MAX)
		goto out;
	memcpy(key->key_id, "ed25519:", 8);
	memcpy(key->key_id + 8, version, version_len);
	key->key_id[8 + version_len] = '\0';
	if (!mrtc_key_id_is_valid(key->key_id))
		goto out;
	uint8_t seed[crypto_sign_SEEDBYTES];
	size_t seed_out;
	if (!mrtc_base64_decode(seed_b64, seed_len, seed, sizeof(seed), &seed_out) ||
	    seed_out != sizeof(seed)) {
		sodium_memzero(seed, sizeof(seed));
		goto out;
	}
	crypto_sign_seed_keypair(key->public_key, key->secret_key, seed);
	sodium_memzero(seed, sizeof(seed));
	*ret_key = key;
	return MRTC_OK;
out:
	mrtc_signing_key_destroy(key);
	return err;
}

enum mrtc_err mrtc_signing_key_load_file(const char *path, struct mrtc_signing_key **ret_key)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return MRTC_ERR_IO;
	if (sodium_init() < 0) {
		close(fd);
		return MRTC_ERR_INTERNAL;
	}
	char *buf = sodium_malloc(KEY_FILE_MAX);
	if (!buf) {
		close(fd);
		return MRTC_ERR_NOMEM;
	}
	size_t len = 0;
	enum mrtc_err err = MRTC_OK;
	for (;;) {
		ssize_t n = read(fd, buf + len, KEY_FILE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = MRTC_ERR_IO;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == KEY_FILE_MAX) {
			err = MRTC_ERR_TOO_LARGE;
			break;
		}
	}
	close(fd);
	if (err == MRTC_OK)
		err = mrtc_signing_key_parse(buf, len, ret_key);
	sodium_free(buf); /* wipes */
	return err;
}

void mrtc_signing_key_destroy(struct mrtc_signing_key *key)
{
	if (key)
		sodium_free(key); /* sodium_free zeroes the memory before releasing it */
}

void mrtc_signing_key_sign(const struct mrtc_signing_key *key, const uint8_t *msg, size_t len,
			   uint8_t ret_sig[MRTC_ED25519_SIG_LEN])
{
	crypto_sign_detached(ret_sig, NULL, msg, len, key->secret_key);
}

/* A shallow copy of @obj without "signatures" and "unsigned" (members shared, refcounted). */
static struct json_object *strip_for_signing(const struct json_object *obj)
{
	struct json_object *copy = json_object_new_object();
	if (!copy)
		return NULL;
	json_object_object_foreach ((struct json_object *)obj, k, v) {
		if (strcmp(k, "signatures") == 0 || strcmp(k, "unsigned") == 0)
			continue;
		if (json_object_object_add(copy, k, json_object_get(v)) != 0) {
			json_object_put(v);
			json_object_put(copy);
			return NULL;
		}
	}
	return copy;
}

static enum mrtc_err canonical_for_signing(const struct json_object *obj, char **ret_text,
					   size_t *ret_len)
{
	if (!json_object_is_type(obj, json_type_object))
		return MRTC_ERR_INVALID_PARAM;
	struct json_object *stripped = strip_for_signing(obj);
	if (!stripped)
		return MRTC_ERR_NOMEM;
	enum mrtc_err err = mrtc_json_canonical(stripped, ret_text, ret_len);
	json_object_put(stripped);
	return err;
}

enum mrtc_err mrtc_json_sign(struct json_object *obj, const char *server_name,
			     const struct mrtc_signing_key *key)
{
	char *text = NULL;
	size_t len;
	enum mrtc_err err = canonical_for_signing(obj, &text, &len);
	if (err != MRTC_OK)
		return err;
	uint8_t sig[MRTC_ED25519_SIG_LEN];
	mrtc_signing_key_sign(key, (const uint8_t *)text, len, sig);
	free(text);
	char sig_b64[MRTC_BASE64_ENCODED_SIZE(MRTC_ED25519_SIG_LEN)];
	mrtc_base64_encode(sig, sizeof(sig), false, sig_b64);

	struct json_object *sigs = NULL, *server = NULL;
	if (!json_object_object_get_ex(obj, "signatures", &sigs) ||
	    !json_object_is_type(sigs, json_type_object)) {
		sigs = json_object_new_object();
		if (!sigs || json_object_object_add(obj, "signatures", sigs) != 0)
			return MRTC_ERR_NOMEM;
	}
	if (!json_object_object_get_ex(sigs, server_name, &server) ||
	    !json_object_is_type(server, json_type_object)) {
		server = json_object_new_object();
		if (!server || json_object_object_add(sigs, server_name, server) != 0)
			return MRTC_ERR_NOMEM;
	}
	struct json_object *s = json_object_new_string(sig_b64);
	if (!s || json_object_object_add(server, key->key_id, s) != 0)
		return MRTC_ERR_NOMEM;
	return MRTC_OK;
}

enum mrtc_err mrtc_ed25519_verify_b64(const char *sig_b64, const uint8_t *msg, size_t len,
				      const uint8_t public_key[MRTC_ED25519_PK_LEN])
{
	uint8_t sig[MRTC_ED25519_SIG_LEN + 3];
	size_t sig_len;
	size_t b64_len = strlen(sig_b64);
	if (b64_len > 128 || !mrtc_base64_decode(sig_b64, b64_len, sig, sizeof(sig), &sig_len) ||
	    sig_len != MRTC_ED25519_SIG_LEN)
		return MRTC_ERR_BAD_SIGNATURE;
	if (crypto_sign_verify_detached(sig, msg, len, public_key) != 0)
		return MRTC_ERR_BAD_SIGNATURE;
	return MRTC_OK;
}

enum mrtc_err mrtc_json_verify(const struct json_object *obj, const char *server_name,
			       const char *key_id, const uint8_t public_key[MRTC_ED25519_PK_LEN])
{
	if (!key_id || strncmp(key_id, "ed25519:", 8) != 0)
		return MRTC_ERR_UNSUPPORTED;
	struct json_object *sigs, *server, *sig;
	if (!json_object_object_get_ex(obj, "signatures", &sigs) ||
	    !json_object_object_get_ex(sigs, server_name, &server) ||
	    !json_object_object_get_ex(server, key_id, &sig))
		return MRTC_ERR_UNKNOWN_KEY;
	if (!json_object_is_type(sig, json_type_string))
		return MRTC_ERR_BAD_SIGNATURE;
	char *text = NULL;
	size_t len;
	enum mrtc_err err = canonical_for_signing(obj, &text, &len);
	if (err != MRTC_OK)
		return err;
	err = mrtc_ed25519_verify_b64(json_object_get_string(sig), (const uint8_t *)text, len,
				      public_key);
	free(text);
	return err;
}
