/* SPDX-License-Identifier: Apache-2.0 */
/* Well-known bodies and Cache-Control values: accepted delegations are valid server names. */
#include "fuzz.h"
#include "mrtc/net/resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[MRTC_SERVER_NAME_MAX + 1];
	if (mrtc_wellknown_parse((const char *)data, size, out) && !mrtc_server_name_is_valid(out))
		abort();
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	uint64_t age;
	mrtc_cache_control_max_age(s, &age);
	free(s);
	return 0;
}
