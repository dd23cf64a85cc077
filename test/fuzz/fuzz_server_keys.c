/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key responses, fetched directly or from a notary, and notary pins: whatever is accepted
 * has well-formed keys. The input is split at the first newline: a pin, then a JSON body.
 */
#include "fuzz.h"
#include "mrtc/matrix/json.h"
#include "mrtc/matrix/serverkeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t pin_len = nl ? (size_t)(nl - data) : size;
	char *pin = fuzz_strndup(data, pin_len);
	if (!pin)
		return 0;
	char notary[MRTC_SERVER_NAME_MAX + 1] = "notary.example";
	struct mrtc_verify_key pinned = { .key_id = "ed25519:n" };
	if (mrtc_notary_spec_parse(pin, notary, &pinned) &&
	    (!mrtc_server_name_is_valid(notary) || !mrtc_key_id_is_valid(pinned.key_id)))
		abort();
	free(pin);
	if (!nl)
		return 0;
	const char *body = (const char *)nl + 1;
	size_t body_len = size - pin_len - 1;
	struct json_object *doc = NULL;
	if (mrtc_json_parse(body, body_len, 16, &doc) != MRTC_OK)
		return 0;
	struct mrtc_verify_key keys[MRTC_SERVER_KEYS_MAX];
	size_t n = 0;
	const uint64_t now = UINT64_C(1800000000000);
	if (mrtc_server_keys_verify(doc, "origin.example", now, keys, MRTC_SERVER_KEYS_MAX, &n) ==
		MRTC_OK &&
	    (n == 0 || n > MRTC_SERVER_KEYS_MAX || !mrtc_key_id_is_valid(keys[0].key_id) ||
	     keys[0].expires_ms > now + MRTC_KEY_MAX_LIFETIME_MS))
		abort();
	if (mrtc_server_keys_verify_notarised(doc, "origin.example", notary, &pinned, now, keys,
					      MRTC_SERVER_KEYS_MAX, &n) == MRTC_OK &&
	    (n == 0 || n > MRTC_SERVER_KEYS_MAX || !mrtc_key_id_is_valid(keys[0].key_id)))
		abort();
	json_object_put(doc);
	return 0;
}
