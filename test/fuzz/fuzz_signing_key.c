/* SPDX-License-Identifier: Apache-2.0 */
/* Signing-key file parsing: an accepted key has a valid id and signs verifiably. */
#include <sodium.h>

#include "fuzz.h"
#include "mrtc/matrix/signing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mrtc_signing_key *key = NULL;
	if (mrtc_signing_key_parse((const char *)data, size, &key) != MRTC_OK)
		return 0;
	if (!mrtc_key_id_is_valid(key->key_id))
		abort();
	uint8_t sig[MRTC_ED25519_SIG_LEN];
	mrtc_signing_key_sign(key, data, size, sig);
	if (crypto_sign_verify_detached(sig, data, size, key->public_key) != 0)
		abort();
	mrtc_signing_key_destroy(key);
	return 0;
}
