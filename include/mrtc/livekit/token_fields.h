/* SPDX-License-Identifier: Apache-2.0 */
/* The fields of a get_token body, shared by the client and federation endpoints (rtc/) and the
 * delegation of delayed leave (delayed/). Pure. */
#ifndef MRTC_TOKEN_FIELDS_H
#define MRTC_TOKEN_FIELDS_H

#include <stdbool.h>
#include <json-c/json.h>

#include "mrtc/base/err.h"

/* The request fields shared by the client and federation bodies, validated (PROTOCOL §2.3). */
struct mrtc_token_fields {
	char url[2049];
	char room_id[256];
	char slot_id[256];
	char member_id[256];
	char claimed_device_id[256]; /* "" when absent */
	char claimed_user_id[256];   /* "" when absent */
	char server_name[256];	     /* "" when absent (client body only) */
	char user_id[256];	     /* federation body only */
};

/*
 * Validates @body (a parsed JSON value) as a get_token body: MRTC_ERR_NOT_JSON (not an
 * object), MRTC_ERR_BAD_JSON (missing fields, wrong types, member ids that differ),
 * MRTC_ERR_INVALID_PARAM (field syntax). @federation requires user_id instead of allowing
 * server_name. On failure *ret_message is a static human-readable reason.
 */
enum mrtc_err mrtc_token_fields_parse(const struct json_object *body, bool federation,
				      struct mrtc_token_fields *ret_fields,
				      const char **ret_message);

#endif
