/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matrix server names, user ids and room ids (PROTOCOL §5.1). Validation here is what keeps
 * attacker-chosen names out of headers, URLs and DNS queries.
 */
#ifndef MRTC_SERVERNAME_H
#define MRTC_SERVERNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"

#define MRTC_SERVER_NAME_MAX 255
#define MRTC_ID_MAX 255

enum mrtc_host_kind {
	MRTC_HOST_DNS,
	MRTC_HOST_IPV4,
	MRTC_HOST_IPV6, /* written in brackets */
};

struct mrtc_server_name {
	char host[MRTC_SERVER_NAME_MAX + 1]; /* as written, IPv6 with its brackets */
	enum mrtc_host_kind kind;
	uint16_t port; /* 0 when absent */
};

/*
 * Validates @name (hostname [":" port], at most 255 characters) and splits it.
 * *ret_name (may be NULL) is written only on success.
 */
bool mrtc_server_name_parse(const char *name, struct mrtc_server_name *ret_name);

/* mrtc_server_name_parse() without the split. */
bool mrtc_server_name_is_valid(const char *name);

/* True for an IPv4 dotted quad or a bracketed IPv6 literal (with or without port). */
bool mrtc_server_name_is_ip_literal(const char *name);

/*
 * Splits a user id "@localpart:server_name" (at most 255 bytes, no control characters, a
 * non-empty localpart without ':', a valid server name). On success returns a pointer to the
 * server-name part inside @user_id (borrowed).
 */
const char *mrtc_user_id_server(const char *user_id);

/* A room id: starts with '!', 2..255 bytes, no control characters (no ":server" required). */
bool mrtc_room_id_is_valid(const char *room_id);

#endif
