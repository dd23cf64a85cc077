/* SPDX-License-Identifier: Apache-2.0 */
/* JWT and webhook verification: first line is the token, the rest the webhook body. */
#include "fuzz.h"
#include "mrtc/livekit/livekit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	char *nl = strchr(s, '\n');
	const char *body = "";
	if (nl) {
		*nl = '\0';
		body = nl + 1;
	}
	/* The secret is known to the fuzzer corpus, so valid signatures can be reached. */
	const struct mrtc_livekit_creds c = { "APIdevkey", "devsecret-0123456789abcdef0123456789" };
	struct json_object *claims = NULL;
	if (mrtc_livekit_verify(&c, s, 1767225600, &claims) == MRTC_OK) {
		if (!json_object_is_type(claims, json_type_object))
			abort();
		json_object_put(claims);
	}
	struct mrtc_webhook hook;
	if (mrtc_livekit_webhook_verify(&c, s, body, strlen(body), 1767225600, &hook) == MRTC_OK &&
	    (strlen(hook.room) > MRTC_LIVEKIT_NAME_MAX ||
	     strlen(hook.identity) > MRTC_LIVEKIT_NAME_MAX))
		abort();
	free(s);
	return 0;
}
