/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Application-service mode (MSC4512 + MSC4502): the daemon sits behind Synapse, which
 * authenticates users and federation signatures itself and forwards the rtc/livekit paths with
 * the registration's hs_token. This is the other way in for the same endpoints: the
 * authentication steps (hs_token, X-Matrix-User-Identifier, X-Matrix-Origin), the way out for
 * federation (Synapse's fed_proxy with the as_token), /_matrix/app/v1/ping, the /versions
 * feature check and the registration file.
 */
#ifndef MRTC_APPSERVICE_H
#define MRTC_APPSERVICE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "mrtc/http/http.h"
#include "mrtc/net/httpclient.h"
#include "mrtc/matrix/servername.h"

struct mrtc_services;
struct mrtc_fedproxy_call;

#define MRTC_FEDPROXY_PATH "/_matrix/client/unstable/io.element.msc4512/appservice/fed_proxy"
#define MRTC_IS_JOINED_SCOPE "urn:matrix:client:io.element.msc4502:rooms:is_joined"

/*
 * Checks the "Authorization: Bearer <hs_token>" of a request the homeserver forwarded, in
 * constant time. On failure replies 401 M_MISSING_TOKEN or M_UNKNOWN_TOKEN (completing @r)
 * and returns false.
 */
bool mrtc_appservice_check_hs_token(struct mrtc_request *r);

/*
 * The user a client request was forwarded for: hs_token, then X-Matrix-User-Identifier, which
 * must be a valid user id of our server. On success writes it to @ret_user_id; otherwise
 * replies (401, or 403 for another server's user) and returns false.
 */
bool mrtc_appservice_client_user(struct mrtc_request *r, char ret_user_id[MRTC_ID_MAX + 1]);

/*
 * The origin of a federation request the homeserver verified: hs_token, then X-Matrix-Origin,
 * a valid server name. Replies and returns false when either is wrong.
 */
bool mrtc_appservice_origin(struct mrtc_request *r, char ret_origin[MRTC_SERVER_NAME_MAX + 1]);

/* POST|PUT /_matrix/app/v1/ping: {} for the right hs_token. */
void mrtc_appservice_ping(struct mrtc_request *r);

/* What fed_proxy said when it did not relay an answer. */
enum mrtc_fedproxy_refusal {
	MRTC_FEDPROXY_RELAYED,		  /* status and content are the destination's */
	MRTC_FEDPROXY_NOT_APPSERVICE,	  /* 401/403: the homeserver refused our as_token */
	MRTC_FEDPROXY_DESTINATION_DENIED, /* 403 …FEDPROXY_DESTINATION_DENIED */
	MRTC_FEDPROXY_PATH_NOT_ALLOWED,	  /* 403 …FEDPROXY_PATH_NOT_ALLOWED (or no prefix) */
	MRTC_FEDPROXY_BAD_PARAM,	  /* 400 M_MISSING_PARAM / M_INVALID_PARAM */
	MRTC_FEDPROXY_CONNECTION_FAILED,  /* 502 …FEDPROXY_CONNECTION_FAILED */
	MRTC_FEDPROXY_UNSUPPORTED,	  /* 404/405: no MSC4512 (msc4512_enabled off) */
	MRTC_FEDPROXY_FAILED,		  /* anything else: unreachable, 5xx, malformed */
};

/* A short name for logs. */
const char *mrtc_fedproxy_refusal_str(enum mrtc_fedproxy_refusal refusal);

/*
 * Parses fed_proxy's answer (@status, @body of @len bytes; pure). For a relayed answer returns
 * MRTC_FEDPROXY_RELAYED with *ret_status the destination's status and *ret_content its body
 * (caller puts; NULL when the destination sent none or no object). Otherwise the refusal.
 */
enum mrtc_fedproxy_refusal mrtc_fedproxy_parse(int status, const char *body, size_t len,
					       int *ret_status, struct json_object **ret_content);

/*
 * Called with the destination's answer as a direct federation call would give it (err
 * MRTC_OK, status, body as JSON text) when @refusal is MRTC_FEDPROXY_RELAYED; otherwise
 * @resp carries err MRTC_ERR_UPSTREAM and a detail for the log.
 */
typedef void (*mrtc_fedproxy_fn)(void *ctx, const struct mrtc_http_response *resp,
				 enum mrtc_fedproxy_refusal refusal);

/*
 * Asks the homeserver to sign and send @method @path (with @content, borrowed, or NULL) to
 * @destination. NULL if it could not start (no callback then).
 */
struct mrtc_fedproxy_call *mrtc_fedproxy_request(struct mrtc_services *s, const char *destination,
						 const char *method, const char *path,
						 const struct json_object *content,
						 uint64_t timeout_ms, mrtc_fedproxy_fn done,
						 void *ctx);
/* No callback afterwards. Accepts NULL. */
void mrtc_fedproxy_cancel(struct mrtc_fedproxy_call *call);

/* The unstable features the application-service mode relies on, from /versions. */
struct mrtc_appservice_features {
	bool known; /* a /versions answer was parsed */
	bool msc4195, msc4502, msc4502_stable, msc4512;
};

/* Reads /versions' unstable_features (pure); false if @body is no /versions answer. */
bool mrtc_appservice_features_parse(const char *body, size_t len,
				    struct mrtc_appservice_features *ret_features);

/*
 * Takes a new /versions answer: logs one line per feature that is missing (on change only),
 * tells the homeserver client which is_joined to use, and keeps it for /readyz.
 */
void mrtc_appservice_features_update(struct mrtc_services *s,
				     const struct mrtc_appservice_features *features);

/*
 * Writes a registration file for @server_name whose proxy_url is @proxy_url, with new random
 * tokens, followed (as comments) by the matching environment lines. MRTC_ERR_INVALID_PARAM for
 * a bad server name or URL.
 */
enum mrtc_err mrtc_appservice_write_registration(FILE *out, const char *server_name,
						 const char *proxy_url);

#endif
