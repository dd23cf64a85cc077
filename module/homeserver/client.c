/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The calls asked with a user's own access token: whoami (cached by the token's SHA-256, never
 * the token) and our user's membership of a room from its m.room.member state (a 401 forgets
 * the token); in application-service mode that membership is MSC4502 is_joined?mxid= with the
 * as_token instead. And the refusal a client gets when the homeserver refuses its token.
 */
#include <stdlib.h>
#include <string.h>

#include "homeserver_private.h"
#include "mrtc/matrix/json.h"
#include "mrtc/base/util.h"

/* ---- whoami ---- */

static void whoami_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			struct json_object *doc)
{
	if (resp->status == 401 || resp->status == 403 || resp->status == 429) {
		/* Passed on as the homeserver sent it (errcode, soft_logout, retry hint). */
		op->err = resp->status == 401	? MRTC_ERR_UNKNOWN_TOKEN
			  : resp->status == 403 ? MRTC_ERR_FORBIDDEN
						: MRTC_ERR_LIMIT_EXCEEDED;
		const char *code = mrtc_json_get_string(doc, "errcode");
		const char *msg = mrtc_json_get_string(doc, "error");
		if (code && strlen(code) < sizeof(op->who.errcode))
			memcpy(op->who.errcode, code, strlen(code) + 1);
		if (msg)
			mrtc_format_shown(op->who.error, sizeof(op->who.error), "%s", msg);
		struct json_object *v;
		op->who.soft_logout = -1;
		if (doc && json_object_object_get_ex(doc, "soft_logout", &v) &&
		    json_object_is_type(v, json_type_boolean))
			op->who.soft_logout = json_object_get_boolean(v);
		uint64_t ms = 0;
		if (doc && json_object_object_get_ex(doc, "retry_after_ms", &v) &&
		    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
			ms = (uint64_t)json_object_get_int64(v);
		if (!ms && resp->retry_after && mrtc_parse_u64(resp->retry_after, 0, 86400, &ms))
			ms *= 1000;
		op->who.retry_after_ms = ms;
		return;
	}
	const char *user = mrtc_json_get_string(doc, "user_id");
	const char *device = mrtc_json_get_string(doc, "device_id");
	if (resp->status != 200 || !user || !mrtc_user_id_server(user) ||
	    (device && strlen(device) > MRTC_ID_MAX)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	size_t ul = strlen(user), dl = device ? strlen(device) : 0;
	memcpy(op->who.user_id, user, ul + 1);
	if (device)
		memcpy(op->who.device_id, device, dl + 1);
	/* Cached as "user\0device\0", sized to the content (not the ~850-byte struct). */
	char packed[sizeof(op->who.user_id) + sizeof(op->who.device_id)];
	memcpy(packed, op->who.user_id, ul + 1);
	memcpy(packed + ul + 1, op->who.device_id, dl + 1);
	mrtc_hs_remember(op->hs->auth, op->token_digest, sizeof(op->token_digest), packed,
			 ul + dl + 2, op->hs->cfg.auth_ttl_ms);
}

/* GET @path as the user of @token ("Authorization: Bearer", wiped after use); the op is freed
 * and NULL returned if the call cannot start. */
static struct mrtc_hs_op *get_as_user(struct mrtc_hs_op *op, const char *path, const char *token,
				      mrtc_hs_step_fn step)
{
	size_t al = strlen(token) + 8;
	char *auth = malloc(al);
	bool ok =
	    auth && mrtc_format(auth, al, "Bearer %s", token) && mrtc_hs_get(op, path, auth, step);
	if (auth)
		sodium_memzero(auth, al);
	free(auth);
	if (!ok) {
		mrtc_hs_op_free(op);
		return NULL;
	}
	return op;
}

struct mrtc_hs_op *mrtc_hs_whoami(struct mrtc_homeserver *hs, const char *token, mrtc_whoami_fn cb,
				  void *ctx)
{
	struct mrtc_hs_op *op = mrtc_hs_op_new(hs, OP_WHOAMI, ctx);
	if (!op)
		return NULL;
	op->whoami_cb = cb;
	crypto_hash_sha256(op->token_digest, (const uint8_t *)token, strlen(token));
	const char *hit = mrtc_cache_get(hs->auth, op->token_digest, sizeof(op->token_digest),
					 mrtc_monotonic_ms());
	if (hit) { /* "user\0device\0", each at most MRTC_ID_MAX bytes (see whoami_step) */
		size_t ul = strlen(hit);
		memcpy(op->who.user_id, hit, ul + 1);
		memcpy(op->who.device_id, hit + ul + 1, strlen(hit + ul + 1) + 1);
		return mrtc_hs_answer_later(op);
	}
	return get_as_user(op, "/_matrix/client/v3/account/whoami", token, whoami_step);
}

/* ---- our user's membership ---- */

static void is_joined_local_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				 struct json_object *doc);

static void local_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
		       struct json_object *doc)
{
	if (resp->status == 401) {
		/* Revoked since it was cached: forget it, the caller answers M_UNKNOWN_TOKEN. */
		mrtc_cache_remove(op->hs->auth, op->token_digest, sizeof(op->token_digest));
		op->err = MRTC_ERR_UNKNOWN_TOKEN;
		return;
	}
	if (resp->status == 403 || resp->status == 404) {
		op->joined = false;
	} else if (resp->status == 200 && doc) {
		const char *m = mrtc_json_get_string(doc, "membership");
		op->joined = m && strcmp(m, "join") == 0;
	} else {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	mrtc_hs_remember(op->hs->membership, op->cache_key, op->cache_key_len, &op->joined,
			 sizeof(op->joined), op->hs->cfg.membership_ttl_ms);
}

struct mrtc_hs_op *mrtc_hs_local_membership(struct mrtc_homeserver *hs, const char *token,
					    const char *room_id, const char *user_id,
					    mrtc_joined_fn cb, void *ctx)
{
	struct mrtc_hs_op *op = mrtc_hs_op_new(hs, OP_LOCAL, ctx);
	if (!op)
		return NULL;
	op->joined_cb = cb;
	bool keyed = mrtc_format(op->cache_key, sizeof(op->cache_key), "L|%s|%s", room_id, user_id);
	op->cache_key_len = keyed ? strlen(op->cache_key) : 0;
	const bool *hit = keyed ? mrtc_cache_get(hs->membership, op->cache_key, op->cache_key_len,
						 mrtc_monotonic_ms())
				: NULL;
	if (hit) {
		op->joined = *hit;
		return mrtc_hs_answer_later(op);
	}
	char room_e[3 * MRTC_ID_MAX + 1], user_e[3 * MRTC_ID_MAX + 1], path[7 * MRTC_ID_MAX];
	if (!token) {
		bool ok = hs->as_auth && mrtc_hs_encode_segment(room_id, room_e, sizeof(room_e)) &&
			  mrtc_hs_encode_segment(user_id, user_e, sizeof(user_e));
		ok = ok && mrtc_format(path, sizeof(path), "%s%s/is_joined?mxid=%s",
				       mrtc_hs_is_joined_prefix(hs), room_e, user_e);
		if (!ok || !mrtc_hs_get(op, path, hs->as_auth, is_joined_local_step)) {
			mrtc_hs_op_free(op);
			return NULL;
		}
		return op;
	}
	/* Only an answer from the homeserver (a 401) needs it: not hashed on a cache hit. */
	crypto_hash_sha256(op->token_digest, (const uint8_t *)token, strlen(token));
	if (!mrtc_hs_encode_segment(room_id, room_e, sizeof(room_e)) ||
	    !mrtc_hs_encode_segment(user_id, user_e, sizeof(user_e)) ||
	    !mrtc_format(path, sizeof(path), "/_matrix/client/v3/rooms/%s/state/m.room.member/%s",
			 room_e, user_e)) {
		mrtc_hs_op_free(op);
		return NULL;
	}
	return get_as_user(op, path, token, local_step);
}

static void is_joined_local_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				 struct json_object *doc)
{
	mrtc_hs_joined_step(op, resp, doc, &op->joined);
	if (op->err == MRTC_OK)
		mrtc_hs_remember(op->hs->membership, op->cache_key, op->cache_key_len, &op->joined,
				 sizeof(op->joined), op->hs->cfg.membership_ttl_ms);
}

bool mrtc_whoami_refusal(enum mrtc_err err, const struct mrtc_whoami *who, int *ret_status,
			 struct json_object **ret_body, uint64_t *ret_retry_ms)
{
	*ret_body = NULL;
	*ret_retry_ms = 0;
	if (!who || (err != MRTC_ERR_UNKNOWN_TOKEN && err != MRTC_ERR_FORBIDDEN &&
		     err != MRTC_ERR_LIMIT_EXCEEDED))
		return false;
	if (err == MRTC_ERR_LIMIT_EXCEEDED) {
		*ret_status = 429;
		*ret_retry_ms = who->retry_after_ms;
		return true;
	}
	*ret_status = err == MRTC_ERR_UNKNOWN_TOKEN ? 401 : 403;
	struct json_object *body = json_object_new_object();
	if (body) {
		json_object_object_add(
		    body, "errcode",
		    json_object_new_string(who->errcode[0] ? who->errcode : "M_UNKNOWN"));
		json_object_object_add(
		    body, "error",
		    json_object_new_string(
			who->error[0] ? who->error : "The homeserver refused the access token"));
		if (who->soft_logout >= 0)
			json_object_object_add(body, "soft_logout",
					       json_object_new_boolean(who->soft_logout));
	}
	*ret_body = body;
	return true;
}
