/* SPDX-License-Identifier: Apache-2.0 */
/* MRTC_STORE values and LiveKit Twirp error bodies. */
#include "fuzz.h"
#include "mrtc/livekit/roomservice.h"
#include "mrtc/store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	if (mrtc_store_spec_is_valid(s) && strncmp(s, "sqlite:", 7) != 0 &&
	    strncmp(s, "redis://", 8) != 0)
		abort();
	char detail[128];
	for (int status = 400; status <= 404; status++) {
		enum mrtc_err e = mrtc_roomservice_classify(status, (const char *)data, size,
							    "text/plain", detail, sizeof(detail));
		if (e == MRTC_OK || strlen(detail) >= sizeof(detail))
			abort();
	}
	free(s);
	return 0;
}
