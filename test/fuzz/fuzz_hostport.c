/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration value parsers: host:port and CIDR ranges. */
#include <sys/socket.h>

#include "fuzz.h"
#include "mrtc/core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	struct mrtc_hostport hp;
	if (mrtc_hostport_parse(s, false, &hp) && hp.port == 0)
		abort();
	struct mrtc_cidr c;
	if (mrtc_cidr_parse(s, &c)) {
		if ((c.family == AF_INET && c.prefix > 32) || c.prefix > 128)
			abort();
		if (!mrtc_cidr_contains(&c, c.family, c.addr))
			abort();
	}
	free(s);
	return 0;
}
