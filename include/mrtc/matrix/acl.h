/* SPDX-License-Identifier: Apache-2.0 */
/* Server ACL evaluation (PROTOCOL §5.6, m.room.server_acl). Pure. */
#ifndef MRTC_ACL_H
#define MRTC_ACL_H

#include <json-c/json.h>
#include <stdbool.h>

/*
 * Whole-string, ASCII case-insensitive glob match with '*' (any run) and '?' (one byte).
 * Runs in O(len(pattern) * len(text)) at worst, without exponential backtracking.
 */
bool mrtc_acl_glob_match(const char *pattern, const char *text);

/*
 * Whether the m.room.server_acl content @acl (NULL: the room has no ACL event) allows
 * @server_name: IP literals are denied when allow_ip_literals is false; a match in "deny"
 * denies; a match in "allow" allows; anything else is denied. The port is ignored. Entries that
 * are not strings are skipped; a non-list allow/deny counts as empty.
 */
bool mrtc_acl_allows(const struct json_object *acl, const char *server_name);

#endif
