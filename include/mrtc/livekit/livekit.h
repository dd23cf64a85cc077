/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LiveKit room names, participant identities, access tokens and webhook verification
 * (PROTOCOL §4). Pure: no I/O. The RoomService client is in mrtc/roomservice.h.
 */
#ifndef MRTC_LIVEKIT_H
#define MRTC_LIVEKIT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"

#define MRTC_LIVEKIT_NAME_MAX 256
/* Unpadded base64 of a SHA-256 digest: 43 characters. */
#define MRTC_LIVEKIT_HASH_LEN 43
#define MRTC_LIVEKIT_LEEWAY_S 60
#define MRTC_LIVEKIT_SERVICE_TTL_S 300

enum mrtc_identity_kind {
	MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER, /* [user_id, device_id, member_id] (matrix-js-sdk 43)
						*/
	MRTC_IDENTITY_KIND_USER_MEMBER,	       /* [user_id, member_id] (newest MSC draft) */
};

/* Who a token is for: decides canPublish (PROTOCOL §4.3, §7). */
enum mrtc_grant_kind {
	MRTC_GRANT_LOCAL_USER,
	MRTC_GRANT_FEDERATED_USER,
	MRTC_GRANT_LEGACY_FULL,
	MRTC_GRANT_LEGACY_RESTRICTED,
};

/*
 * Unpadded standard base64 of SHA-256 of the canonical JSON array of the @n strings @parts
 * (PROTOCOL §4.1) into @ret_hash (MRTC_LIVEKIT_HASH_LEN + 1 bytes).
 */
enum mrtc_err mrtc_livekit_hash(const char *const *parts, size_t n,
				char ret_hash[MRTC_LIVEKIT_HASH_LEN + 1]);

/* Room name of (room_id, slot_id). */
enum mrtc_err mrtc_livekit_room_name(const char *room_id, const char *slot_id,
				     char ret_name[MRTC_LIVEKIT_HASH_LEN + 1]);

/*
 * Participant identity. @device_id is required (non-NULL, non-empty) for
 * MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER and ignored otherwise (MRTC_ERR_BAD_JSON if missing).
 */
enum mrtc_err mrtc_livekit_identity(enum mrtc_identity_kind kind, const char *user_id,
				    const char *device_id, const char *member_id,
				    char ret_identity[MRTC_LIVEKIT_HASH_LEN + 1]);

/*
 * The legacy /sfu/get identity "user_id:device_id", unhashed. MRTC_ERR_INVALID_PARAM if it
 * would exceed MRTC_LIVEKIT_NAME_MAX bytes.
 */
enum mrtc_err mrtc_livekit_legacy_identity(const char *user_id, const char *device_id,
					   char ret_identity[MRTC_LIVEKIT_NAME_MAX + 1]);

struct mrtc_livekit_creds {
	const char *key;    /* API key: the "iss" claim */
	const char *secret; /* API secret: HMAC key, raw bytes */
};

/*
 * A participant access token for @identity in @room (each at most 256 bytes), valid from
 * @now_s for @ttl_s seconds, with the grants of @kind. Caller frees *ret_jwt with free().
 */
enum mrtc_err mrtc_livekit_mint_participant(const struct mrtc_livekit_creds *creds,
					    enum mrtc_grant_kind kind, const char *identity,
					    const char *room, uint64_t now_s, uint64_t ttl_s,
					    char **ret_jwt);

/*
 * A short-lived (MRTC_LIVEKIT_SERVICE_TTL_S) service token for RoomService calls carrying only
 * @video (borrowed, e.g. {"roomCreate":true} or {"roomAdmin":true,"room":…}).
 */
enum mrtc_err mrtc_livekit_mint_service(const struct mrtc_livekit_creds *creds,
					const struct json_object *video, uint64_t now_s,
					char **ret_jwt);

/*
 * Signs @claims (borrowed) as an HS256 JWT: header {"alg":"HS256","typ":"JWT"}, base64url
 * without padding, payload the compact JSON of @claims. Caller frees *ret_jwt.
 */
enum mrtc_err mrtc_livekit_sign_claims(const struct mrtc_livekit_creds *creds,
				       const struct json_object *claims, char **ret_jwt);

/*
 * Verifies a LiveKit-style HS256 JWT: header alg HS256, base64url without padding, HMAC with
 * @creds->secret (constant-time), "iss" equal to @creds->key, integer "exp" not past and "nbf"
 * (if any) not in the future beyond MRTC_LIVEKIT_LEEWAY_S. On success *ret_claims is the parsed
 * payload (caller frees with json_object_put()).
 * Errors: MRTC_ERR_AUTH_MALFORMED (shape), MRTC_ERR_BAD_SIGNATURE, MRTC_ERR_KEY_EXPIRED (time),
 * MRTC_ERR_FORBIDDEN (issuer).
 */
enum mrtc_err mrtc_livekit_verify(const struct mrtc_livekit_creds *creds, const char *jwt,
				  uint64_t now_s, struct json_object **ret_claims);

enum mrtc_webhook_event {
	MRTC_WEBHOOK_OTHER,
	MRTC_WEBHOOK_PARTICIPANT_JOINED,
	MRTC_WEBHOOK_PARTICIPANT_LEFT,
	MRTC_WEBHOOK_PARTICIPANT_CONNECTION_ABORTED,
	MRTC_WEBHOOK_ROOM_FINISHED,
};

struct mrtc_webhook {
	enum mrtc_webhook_event event;
	char room[MRTC_LIVEKIT_NAME_MAX + 1];	  /* room.name, "" if absent */
	char identity[MRTC_LIVEKIT_NAME_MAX + 1]; /* participant.identity, "" if absent */
};

/*
 * Verifies a LiveKit webhook: @authorization is the JWT (no "Bearer"), whose "sha256" claim
 * must equal the padded standard base64 of SHA-256 of the exact @len bytes of @body; then
 * parses the body (camelCase fields). Errors as mrtc_livekit_verify(), plus
 * MRTC_ERR_BAD_SIGNATURE for a body that does not match, MRTC_ERR_NOT_JSON/BAD_JSON for a body
 * that is not a webhook event.
 */
enum mrtc_err mrtc_livekit_webhook_verify(const struct mrtc_livekit_creds *creds,
					  const char *authorization, const char *body, size_t len,
					  uint64_t now_s, struct mrtc_webhook *ret_hook);

#endif
