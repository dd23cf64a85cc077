/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Application-service mode's parsers: a fed_proxy answer (the first byte picks the HTTP status
 * it came with) and a /versions answer (the rest of the input).
 */
#include "fuzz.h"
#include "mrtc/appservice/appservice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 400, 401, 403, 404, 405, 429, 500, 502 };
	if (size < 1)
		return 0;
	int status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	const char *body = (const char *)data + 1;
	int st = -1;
	struct json_object *content = NULL;
	enum mrtc_fedproxy_refusal r = mrtc_fedproxy_parse(status, body, size - 1, &st, &content);
	if (r == MRTC_FEDPROXY_RELAYED && (st < 100 || st > 599))
		abort();
	if (r != MRTC_FEDPROXY_RELAYED && (st != -1 || content))
		abort();
	if (content && !json_object_is_type(content, json_type_object))
		abort();
	json_object_put(content);
	struct mrtc_appservice_features f;
	if (mrtc_appservice_features_parse(body, size - 1, &f) && !f.known)
		abort();
	return 0;
}
