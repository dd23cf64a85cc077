/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACL globs and events. Input: pattern, a NUL byte, a name (glob check); the whole input is also
 * tried as m.room.server_acl content.
 */
#include "fuzz.h"
#include "mrtc/matrix/acl.h"
#include "mrtc/matrix/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	size_t plen = strlen(s);
	const char *name = plen < size ? s + plen + 1 : "";
	bool m = mrtc_acl_glob_match(s, name);
	/* A pattern always matches itself when it has no wildcards. */
	if (!strpbrk(s, "*?") && strcmp(s, name) == 0 && !m)
		abort();
	struct json_object *acl = NULL;
	if (mrtc_json_parse((const char *)data, size, 8, &acl) == MRTC_OK) {
		mrtc_acl_allows(acl, "example.org");
		mrtc_acl_allows(acl, "1.2.3.4:8448");
		json_object_put(acl);
	}
	free(s);
	return 0;
}
