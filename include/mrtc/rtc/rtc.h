/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MSC4195 endpoints (PROTOCOL §2.2, §2.3, §3): GET rtc/transports, the client-server
 * rtc/livekit/get_token (local mint or signed federation relay), and the federation
 * rtc/livekit/get_token answered for other homeservers. Each request runs asynchronously on
 * the event loop with its own outbound calls and timeouts.
 */
#ifndef MRTC_RTC_H
#define MRTC_RTC_H

#include "mrtc/http/http.h"

void mrtc_rtc_transports(struct mrtc_request *r);
void mrtc_rtc_client_get_token(struct mrtc_request *r);
void mrtc_rtc_federation_get_token(struct mrtc_request *r);

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

/* True if @jwt looks like a JWS compact token: three non-empty base64url parts. */
bool mrtc_jwt_is_well_formed(const char *jwt);

#endif
