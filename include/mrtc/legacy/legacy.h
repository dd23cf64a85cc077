/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lk-jwt-service compatible OpenID endpoints (PROTOCOL §7): POST /get_token and
 * POST /sfu/get, with its request shapes, responses ({"url","jwt"}), statuses, errcodes and
 * error strings, in its order of checks. The OpenID token is checked with the user's
 * homeserver, found by federation resolution over verified TLS behind the outbound guard.
 */
#ifndef MRTC_LEGACY_H
#define MRTC_LEGACY_H

#include "mrtc/http/http.h"

void mrtc_legacy_get_token(struct mrtc_request *r);
void mrtc_legacy_sfu_get(struct mrtc_request *r);
/* POST /delegate_delayed_leave (full-access users; needs MRTC_STORE). */
void mrtc_legacy_delegate(struct mrtc_request *r);

/* True if users of @server_name get full access under LIVEKIT_FULL_ACCESS_HOMESERVERS. */
struct mrtc_config;
bool mrtc_legacy_is_full_access(const struct mrtc_config *config, const char *server_name);

#endif
