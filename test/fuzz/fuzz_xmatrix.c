/* SPDX-License-Identifier: Apache-2.0 */
/* X-Matrix header parser: accepted headers always carry valid, bounded fields. */
#include "fuzz.h"
#include "mrtc/matrix/xmatrix.h"

static enum mrtc_err no_keys(void *ctx, const char *origin, const char *key_id, uint8_t *pk)
{
	(void)ctx;
	(void)origin;
	(void)key_id;
	(void)pk;
	return MRTC_ERR_UNKNOWN_KEY;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = fuzz_strndup(data, size);
	if (!h)
		return 0;
	struct mrtc_xmatrix_auth a;
	if (mrtc_xmatrix_parse(h, &a) == MRTC_OK) {
		if (!mrtc_server_name_is_valid(a.origin) || !a.key[0] || !a.sig[0] ||
		    (a.destination[0] && !mrtc_server_name_is_valid(a.destination)))
			abort();
	}
	const char *headers[] = { h, h };
	char origin[MRTC_SERVER_NAME_MAX + 1];
	if (mrtc_xmatrix_verify("POST", "/x", NULL, "dest.example", headers, 2, no_keys, NULL,
				origin) == MRTC_OK)
		abort(); /* no key is known: nothing may verify */
	free(h);
	return 0;
}
