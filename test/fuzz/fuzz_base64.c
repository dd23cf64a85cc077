/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 decoding: anything decoded re-encodes to a string that decodes to the same bytes. */
#include "fuzz.h"
#include "mrtc/base/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	uint8_t out[3072], again[3072];
	size_t len, len2;
	if (!mrtc_base64_decode((const char *)data, size, out, sizeof(out), &len))
		return 0;
	char *enc = mrtc_base64_encode_alloc(out, len, false);
	if (!enc)
		return 0;
	if (!mrtc_base64_decode(enc, strlen(enc), again, sizeof(again), &len2) || len2 != len ||
	    memcmp(out, again, len) != 0)
		abort();
	free(enc);
	return 0;
}
