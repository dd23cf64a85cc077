/* SPDX-License-Identifier: Apache-2.0 */
/* MRTC_STORE values (with Redis credentials and Sentinel) and LiveKit Twirp error bodies. */
#include "fuzz.h"
#include "mrtc/store/redis_conn.h"
#include "mrtc/livekit/roomservice.h"
#include "mrtc/core/storespec.h"

/* A valid Redis spec, redacted, parses to the same spec with the password "***". */
static void check_redaction(const char *s)
{
	static struct mrtc_redis_spec a, b;
	char redacted[4200];
	if (!mrtc_redis_spec_parse(s, &a))
		return;
	if (strlen(s) + 4 >= sizeof(redacted))
		return;
	mrtc_redis_spec_redact(s, redacted, sizeof(redacted));
	if (!mrtc_redis_spec_parse(redacted, &b))
		abort();
	if (a.has_password != b.has_password || (b.has_password && strcmp(b.password, "***")) ||
	    strcmp(a.user, b.user) || a.sentinel != b.sentinel || a.n_nodes != b.n_nodes ||
	    a.db != b.db || strcmp(a.master, b.master))
		abort();
	for (size_t i = 0; i < a.n_nodes; i++)
		if (strcmp(a.nodes[i].host, b.nodes[i].host) ||
		    a.nodes[i].port != b.nodes[i].port || a.nodes[i].port < 1 ||
		    a.nodes[i].port > 65535 || !a.nodes[i].host[0])
			abort();
	if (a.n_nodes == 0 || (!a.sentinel && a.n_nodes != 1) || (a.sentinel && !a.master[0]))
		abort();
	mrtc_redis_spec_wipe(&a);
	mrtc_redis_spec_wipe(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	if (mrtc_store_spec_is_valid(s) && strncmp(s, "sqlite:", 7) != 0 &&
	    strncmp(s, "redis://", 8) != 0 && strncmp(s, "redis+sentinel://", 17) != 0)
		abort();
	check_redaction(s);
	char any[64];
	mrtc_redis_spec_redact(s, any, sizeof(any)); /* any string, a short buffer */
	if (strlen(any) >= sizeof(any))
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
