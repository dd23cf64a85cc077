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
#include "mrtc/livekit/token_fields.h"

void mrtc_rtc_transports(struct mrtc_request *r);
void mrtc_rtc_client_get_token(struct mrtc_request *r);
void mrtc_rtc_federation_get_token(struct mrtc_request *r);

/* True if @jwt looks like a JWS compact token: three non-empty base64url parts. */
bool mrtc_jwt_is_well_formed(const char *jwt);

#endif
