/* SPDX-License-Identifier: Apache-2.0 */
/* m.room.server_acl evaluation with a non-backtracking glob matcher. */
#include "mrtc/matrix/acl.h"

#include <string.h>

#include "mrtc/matrix/servername.h"

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool mrtc_acl_glob_match(const char *pattern, const char *text)
{
	/*
	 * Greedy matching that remembers only the last '*': a later star can absorb anything an
	 * earlier one could, so no other backtracking point is ever needed.
	 */
	const char *p = pattern, *t = text;
	const char *star = NULL, *star_t = NULL;
	while (*t) {
		if (*p == '*') {
			star = ++p;
			star_t = t;
		} else if (*p && (*p == '?' || lower(*p) == lower(*t))) {
			p++;
			t++;
		} else if (star) {
			p = star;
			t = ++star_t;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

static bool list_matches(const struct json_object *acl, const char *key, const char *host)
{
	struct json_object *list = NULL;
	if (!json_object_object_get_ex(acl, key, &list) ||
	    !json_object_is_type(list, json_type_array))
		return false;
	size_t n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		if (json_object_is_type(e, json_type_string) &&
		    mrtc_acl_glob_match(json_object_get_string(e), host))
			return true;
	}
	return false;
}

bool mrtc_acl_allows(const struct json_object *acl, const char *server_name)
{
	if (!acl)
		return true;
	struct mrtc_server_name sn;
	if (!mrtc_server_name_parse(server_name, &sn))
		return false;
	if (!json_object_is_type(acl, json_type_object))
		return false;
	struct json_object *ip = NULL;
	bool allow_ip = true;
	if (json_object_object_get_ex(acl, "allow_ip_literals", &ip) &&
	    json_object_is_type(ip, json_type_boolean))
		allow_ip = json_object_get_boolean(ip);
	if (sn.kind != MRTC_HOST_DNS && !allow_ip)
		return false;
	if (list_matches(acl, "deny", sn.host))
		return false;
	return list_matches(acl, "allow", sn.host);
}
