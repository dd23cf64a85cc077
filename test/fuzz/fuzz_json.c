/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parser + canonical writer: whatever parses canonicalises, and the round trip is stable. */
#include <stdio.h>

#include "fuzz.h"
#include "mrtc/matrix/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *v = NULL;
	if (mrtc_json_parse((const char *)data, size, MRTC_JSON_MAX_DEPTH, &v) != MRTC_OK)
		return 0;
	char *c1 = NULL, *c2 = NULL;
	size_t l1, l2;
	if (mrtc_json_canonical(v, &c1, &l1) != MRTC_OK)
		abort(); /* everything the strict parser accepts is canonicalisable */
	struct json_object *w = NULL;
	if (mrtc_json_parse(c1, l1, MRTC_JSON_MAX_DEPTH, &w) != MRTC_OK)
		abort();
	if (mrtc_json_canonical(w, &c2, &l2) != MRTC_OK || l1 != l2 || memcmp(c1, c2, l1) != 0)
		abort();
	free(c1);
	free(c2);
	json_object_put(v);
	json_object_put(w);
	return 0;
}
