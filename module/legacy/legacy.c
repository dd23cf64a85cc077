/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lk-jwt-service drop-in: the OpenID flow. Validation messages and statuses are lk-jwt-
 * service's; unknown body keys are ignored rather than refused.
 */
#include "mrtc/legacy/legacy.h"

#include <event2/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/delayed/delayed.h"
#include "mrtc/net/dns.h"
#include "mrtc/matrix/guard.h"
#include "mrtc/matrix/json.h"
#include "mrtc/store/store.h"
#include "mrtc/livekit/livekit.h"
#include "mrtc/core/log.h"
#include "mrtc/services/services.h"
#include "mrtc/base/util.h"

#define USERINFO_MAX (16 * 1024)
#define OPENID_TOKEN_MAX 1024
#define OPENID_CACHE_TTL_MS 60000

static const char unauthorised[] = "The request could not be authorised.";
static const char delay_missing[] =
    "The request body is missing `delay_id`, `delay_timeout` or `delay_cs_api_url`";

struct legacy_req {
	struct mrtc_request *r;
	struct mrtc_services *s;
	size_t sfu; /* index in config->sfus: /<n>/... serves SFU n, the bare paths SFU 1 */
	bool sfu_get;
	bool delegate_only; /* POST /delegate_delayed_leave: no token, a job */
	bool delegation;    /* delay_* parameters given */
	char delay_id[256];
	char delay_url[2049];
	uint64_t delay_ms;
	char room_id[256], slot_id[256], member_id[256];
	char claimed_user[256], device[256];
	char server_name[MRTC_SERVER_NAME_MAX + 1];
	char *access_token;
	uint8_t cache_key[crypto_hash_sha256_BYTES];
	char user_id[MRTC_ID_MAX + 1];
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_NAME_MAX + 1];
	bool full_access;
	struct mrtc_fed_call *fed_call;
	struct mrtc_rs_call *rs_call;
	struct mrtc_hs_op *hs_op;
	struct mrtc_dns_query *dns_q; /* delay_cs_api_url's host, before the 200 */
	struct mrtc_limits_take *limit_op;
	bool delay_url_checked;
};

bool mrtc_legacy_is_full_access(const struct mrtc_config *c, const char *server_name)
{
	if (c->full_access_all)
		return true;
	for (size_t i = 0; i < c->n_full_access; i++)
		if (strcmp(c->full_access[i], server_name) == 0)
			return true;
	return false;
}

static void lr_dispose(void *state)
{
	struct legacy_req *l = state;
	sodium_memzero(l->delay_id, sizeof(l->delay_id));
	if (l->access_token) {
		sodium_memzero(l->access_token, strlen(l->access_token));
		free(l->access_token);
	}
}

static void lr_cancel(void *state)
{
	struct legacy_req *l = state;
	mrtc_fed_call_cancel(l->fed_call);
	mrtc_rs_call_cancel(l->rs_call);
	mrtc_hs_op_cancel(l->hs_op);
	mrtc_dns_cancel(l->dns_q);
	mrtc_limits_take_cancel(l->limit_op);
}

static const struct mrtc_request_state_ops lr_ops = { lr_cancel, lr_dispose };

/* Answers @err with @msg; @detail (may be NULL) says why, for the access line only. */
static void lr_fail(struct legacy_req *l, enum mrtc_err err, const char *msg, const char *detail)
{
	char who[300], line[MRTC_REQUEST_DETAIL_MAX];
	mrtc_quote(who, sizeof(who), l->user_id[0] ? l->user_id : l->server_name, 255);
	mrtc_format_shown(line, sizeof(line), "%s%s%s", who, detail ? ": " : "",
			  detail ? detail : "");
	mrtc_request_fail(l->r, err, msg, line);
}

/* A string member; MRTC_ERR_NOT_JSON when of the wrong type (lk-jwt-service's decoder). */
static bool str_member(struct json_object *obj, const char *key, char *out, size_t size)
{
	struct json_object *v = NULL;
	out[0] = '\0';
	if (!obj || !json_object_object_get_ex(obj, key, &v) || !v)
		return true;
	if (!json_object_is_type(v, json_type_string))
		return false;
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (n >= size || strlen(s) != n)
		return false;
	memcpy(out, s, n + 1);
	return true;
}

static bool int_member(struct json_object *obj, const char *key, int64_t *out)
{
	struct json_object *v = NULL;
	*out = 0;
	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return true;
	if (!json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

static bool obj_member(struct json_object *obj, const char *key, struct json_object **out)
{
	*out = NULL;
	if (!json_object_object_get_ex(obj, key, out) || !*out)
		return true;
	return json_object_is_type(*out, json_type_object);
}

static void reply_url_jwt(struct legacy_req *l, const char *jwt)
{
	struct mrtc_request *r = l->r;
	struct json_object *body = json_object_new_object();
	if (body) {
		json_object_object_add(body, "url",
				       json_object_new_string(l->s->config->sfus[l->sfu].url));
		json_object_object_add(body, "jwt", json_object_new_string(jwt));
	}
	mrtc_log(LOG_INFO, "legacy", r->id, "token for %s (%s access)", l->user_id,
		 l->full_access ? "full" : "restricted");
	mrtc_http_reply_json(r, 200, body);
	json_object_put(body);
}

/* Hands the delayed leave event over to a job (full-access users only; checked before). */
static bool start_delegation(struct legacy_req *l)
{
	struct mrtc_job_record rec = { .delay_ms = l->delay_ms,
				       .created_ms = mrtc_now_ms(),
				       .guarded = true };
	const char *parts[] = { l->room_id, l->slot_id, l->member_id, l->user_id };
	bool ok = mrtc_livekit_hash(parts, 4, rec.key) == MRTC_OK;
	memcpy(rec.room_name, l->room_name, sizeof(rec.room_name));
	ok = ok && mrtc_copy(rec.identity, sizeof(rec.identity), l->identity) &&
	     mrtc_copy(rec.user_id, sizeof(rec.user_id), l->user_id) &&
	     mrtc_copy(rec.room_id, sizeof(rec.room_id), l->room_id) &&
	     mrtc_copy(rec.delay_id, sizeof(rec.delay_id), l->delay_id);
	size_t n = strlen(l->delay_url);
	while (n && l->delay_url[n - 1] == '/')
		n--;
	ok = ok &&
	     mrtc_format(rec.cs_api_url, sizeof(rec.cs_api_url), "%.*s", (int)n, l->delay_url) &&
	     mrtc_copy(rec.sfu_url, sizeof(rec.sfu_url), l->s->config->sfus[l->sfu].url);
	ok = ok && mrtc_delayed_start_job(l->s->delayed, &rec) == MRTC_OK;
	sodium_memzero(&rec, sizeof(rec));
	if (!ok)
		lr_fail(l, MRTC_ERR_INTERNAL, "Unable to schedule the delayed event delegation",
			NULL);
	return ok;
}

static void mint(struct legacy_req *l)
{
	const struct mrtc_config *c = l->s->config;
	struct mrtc_livekit_creds creds = { c->sfus[l->sfu].key, c->sfus[l->sfu].secret };
	char *jwt = NULL;
	enum mrtc_err err = mrtc_livekit_mint_participant(
	    &creds, l->full_access ? MRTC_GRANT_LEGACY_FULL : MRTC_GRANT_LEGACY_RESTRICTED,
	    l->identity, l->room_name, mrtc_now_ms() / 1000, c->token_ttl_s, &jwt);
	if (err != MRTC_OK) {
		lr_fail(l, MRTC_ERR_INTERNAL, "Internal Server Error", NULL);
		return;
	}
	l->s->counters.tokens_legacy++;
	if (l->delegation && !start_delegation(l)) {
		sodium_memzero(jwt, strlen(jwt));
		free(jwt);
		return;
	}
	reply_url_jwt(l, jwt);
	sodium_memzero(jwt, strlen(jwt));
	free(jwt);
}

static void on_room(void *arg, enum mrtc_err err, const char *detail)
{
	struct legacy_req *l = arg;
	l->rs_call = NULL;
	if (err != MRTC_OK) {
		char why[MRTC_REQUEST_DETAIL_MAX];
		mrtc_format_shown(why, sizeof(why), "CreateRoom failed: %s", detail ? detail : "");
		lr_fail(l, MRTC_ERR_INTERNAL, "Unable to create room on SFU", why);
		return;
	}
	mint(l);
}

static void admitted(struct legacy_req *l);
static void on_membership(void *arg, enum mrtc_err err, const struct mrtc_remote_membership *m);

static void limit_checked(void *arg, bool allowed, uint64_t retry);

/* The user is known: rate limit, names, membership (homeserver mode), then the token. */
static void authorised(struct legacy_req *l)
{
	l->limit_op =
	    mrtc_limits_take(l->s->limits, l->s->user_limit, "user", l->user_id, limit_checked, l);
	if (!l->limit_op)
		lr_fail(l, MRTC_ERR_NOMEM, "Out of memory", NULL);
}

static void limit_checked(void *arg, bool allowed, uint64_t retry)
{
	struct legacy_req *l = arg;
	l->limit_op = NULL;
	const struct mrtc_config *c = l->s->config;
	if (!allowed) {
		l->s->counters.rate_limited++;
		mrtc_http_reply_limited(l->r, retry);
		return;
	}
	l->full_access = mrtc_legacy_is_full_access(c, l->server_name);
	if (l->delegation && !l->full_access) {
		lr_fail(l, l->delegate_only ? MRTC_ERR_FORBIDDEN : MRTC_ERR_BAD_JSON,
			"Delegation of delayed events is only supported for full access users",
			NULL);
		return;
	}
	enum mrtc_err err = mrtc_livekit_room_name(l->room_id, l->slot_id, l->room_name);
	if (err == MRTC_OK && l->sfu_get)
		err = mrtc_livekit_legacy_identity(l->user_id, l->device, l->identity);
	else if (err == MRTC_OK)
		err = mrtc_livekit_identity(c->identity == MRTC_IDENTITY_USER_MEMBER
						? MRTC_IDENTITY_KIND_USER_MEMBER
						: MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER,
					    l->user_id, l->device, l->member_id, l->identity);
	if (err != MRTC_OK) {
		lr_fail(l, MRTC_ERR_BAD_JSON, "The participant identity is too long", NULL);
		return;
	}
	if (!l->s->homeserver) {
		admitted(l); /* lk-jwt-service drop-in mode: no membership source */
		return;
	}
	/*
	 * Homeserver mode: every user, ours or another server's, must be joined to the room as
	 * our homeserver sees it, as on the client-server endpoint (an unknown room reads as not
	 * joined, so it is not told apart); a remote user's server must pass the room's ACL.
	 */
	l->hs_op = mrtc_hs_remote_membership(l->s->homeserver, l->room_id, l->user_id,
					     l->server_name, on_membership, l);
	if (!l->hs_op)
		lr_fail(l, MRTC_ERR_UPSTREAM, "Unable to check the room membership", NULL);
}

static void on_membership(void *arg, enum mrtc_err err, const struct mrtc_remote_membership *m)
{
	struct legacy_req *l = arg;
	l->hs_op = NULL;
	if (err != MRTC_OK)
		lr_fail(l, MRTC_ERR_UPSTREAM, "Unable to check the room membership", m->detail);
	else if (!m->acl_allows)
		lr_fail(l, MRTC_ERR_FORBIDDEN, "Server ACLs deny the requesting server", NULL);
	else if (!m->user_joined)
		lr_fail(l, MRTC_ERR_FORBIDDEN, "The requesting user is not a member of the room",
			NULL);
	else
		admitted(l);
}

static void on_delay_url_resolved(void *arg, enum mrtc_err err,
				  const struct sockaddr_storage *addrs, size_t n)
{
	struct legacy_req *l = arg;
	l->dns_q = NULL;
	if (err != MRTC_OK) {
		lr_fail(l, MRTC_ERR_INVALID_PARAM,
			err == MRTC_ERR_NOT_FOUND
			    ? "`delay_cs_api_url`'s host does not resolve"
			    : "`delay_cs_api_url`'s host could not be resolved",
			NULL);
		return;
	}
	const struct mrtc_config *c = l->s->config;
	bool usable = false;
	for (size_t i = 0; i < n && !usable; i++)
		usable = !mrtc_guard_is_blocked((const struct sockaddr *)&addrs[i], c->allow_cidrs,
						c->n_allow_cidrs);
	if (!usable) {
		lr_fail(l, MRTC_ERR_INVALID_PARAM,
			"`delay_cs_api_url` points at an address this service does not call", NULL);
		return;
	}
	l->delay_url_checked = true;
	admitted(l);
}

/*
 * A job will call the client's delay_cs_api_url for as long as the delay runs: its host must
 * resolve, to an address the outbound guard lets through, before the 200 (each call resolves
 * and checks again). False when the answer is on its way (a refusal or admitted() again).
 */
static bool delay_url_ready(struct legacy_req *l)
{
	if (!l->delegation || l->delay_url_checked)
		return true;
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(l->delay_url, 0);
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	char bare[256] = "";
	size_t hl = host ? strlen(host) : 0;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(bare)) {
		memcpy(bare, host + 1, hl - 2);
		bare[hl - 2] = '\0';
	} else if (hl && hl < sizeof(bare)) {
		memcpy(bare, host, hl + 1);
	}
	int port = u ? evhttp_uri_get_port(u) : -1;
	evhttp_uri_free(u);
	if (!bare[0]) {
		lr_fail(l, MRTC_ERR_INVALID_PARAM, "`delay_cs_api_url` is not a usable URL", NULL);
		return false;
	}
	l->dns_q = mrtc_dns_resolve(l->s->dns, bare, (uint16_t)(port > 0 ? port : 443),
				    on_delay_url_resolved, l);
	if (!l->dns_q)
		lr_fail(l, MRTC_ERR_INTERNAL, "Internal Server Error", NULL);
	return false;
}

/* The user may be in the call: a delegation job, or a token (creating the room if allowed). */
static void admitted(struct legacy_req *l)
{
	if (!delay_url_ready(l))
		return;
	if (l->delegate_only) {
		/* The client is on the SFU already: no token, no room creation. */
		if (!start_delegation(l))
			return;
		struct json_object *empty = json_object_new_object();
		mrtc_http_reply_json(l->r, 200, empty);
		json_object_put(empty);
		return;
	}
	if (!l->full_access) {
		mint(l); /* restricted: may join a room that exists, never create one */
		return;
	}
	l->rs_call =
	    mrtc_roomservice_create_room(l->s->sfu_rooms[l->sfu], l->room_name, on_room, l);
	if (!l->rs_call)
		lr_fail(l, MRTC_ERR_INTERNAL, "Unable to create room on SFU", NULL);
}

static void on_userinfo(void *arg, const struct mrtc_http_response *resp)
{
	struct legacy_req *l = arg;
	l->fed_call = NULL;
	struct json_object *doc = NULL;
	const char *sub = NULL;
	if (resp->err == MRTC_OK && resp->status == 200 &&
	    mrtc_json_parse(resp->body, resp->body_len, 8, &doc) == MRTC_OK)
		sub = mrtc_json_get_string(doc, "sub");
	const char *server = sub ? mrtc_user_id_server(sub) : NULL;
	char why[200];
	if (!server || strcmp(server, l->server_name) != 0) {
		if (resp->err != MRTC_OK)
			mrtc_format_shown(why, sizeof(why), "OpenID token not accepted: %s (%s)",
					  mrtc_err_str(resp->err),
					  resp->detail ? resp->detail : "");
		else
			mrtc_format_shown(why, sizeof(why),
					  "OpenID token not accepted: HTTP %d, %s", resp->status,
					  sub ? "sub of another server" : "no valid sub");
		json_object_put(doc);
		lr_fail(l, MRTC_ERR_UNAUTHORIZED, unauthorised, why);
		return;
	}
	memcpy(l->user_id, sub, strlen(sub) + 1);
	json_object_put(doc);
	char *cached = strdup(l->user_id);
	if (cached)
		mrtc_cache_put(l->s->openid_cache, l->cache_key, sizeof(l->cache_key), cached,
			       mrtc_monotonic_ms() + OPENID_CACHE_TTL_MS);
	if (l->claimed_user[0] && strcmp(l->claimed_user, l->user_id) != 0) {
		lr_fail(l, MRTC_ERR_UNAUTHORIZED, unauthorised, NULL);
		return;
	}
	authorised(l);
}

static void verify_openid(struct legacy_req *l)
{
	if (!mrtc_server_name_is_valid(l->server_name) ||
	    strlen(l->access_token) > OPENID_TOKEN_MAX) {
		lr_fail(l, MRTC_ERR_UNAUTHORIZED, unauthorised, NULL);
		return;
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)l->access_token, strlen(l->access_token));
	crypto_hash_sha256_update(&st, (const uint8_t *)"", 1);
	crypto_hash_sha256_update(&st, (const uint8_t *)l->server_name, strlen(l->server_name));
	crypto_hash_sha256_final(&st, l->cache_key);
	const char *hit = mrtc_cache_get(l->s->openid_cache, l->cache_key, sizeof(l->cache_key),
					 mrtc_monotonic_ms());
	if (hit) {
		memcpy(l->user_id, hit, strlen(hit) + 1);
		if (l->claimed_user[0] && strcmp(l->claimed_user, l->user_id) != 0) {
			lr_fail(l, MRTC_ERR_UNAUTHORIZED, unauthorised, NULL);
			return;
		}
		authorised(l);
		return;
	}
	char *enc = evhttp_uriencode(l->access_token, -1, 0);
	if (!enc) {
		lr_fail(l, MRTC_ERR_NOMEM, "Internal Server Error", NULL);
		return;
	}
	size_t n = strlen(enc) + 64;
	char *target = malloc(n);
	if (target && !mrtc_format(target, n,
				   "/_matrix/federation/v1/openid/userinfo?access_token=%s", enc)) {
		free(target);
		target = NULL;
	}
	sodium_memzero(enc, strlen(enc));
	free(enc);
	if (target)
		l->fed_call = mrtc_fed_request(l->s->fed, l->server_name, "GET", target, NULL,
					       false, l->s->config->federation_timeout_s * 1000,
					       USERINFO_MAX, on_userinfo, l);
	if (target)
		sodium_memzero(target, strlen(target));
	free(target);
	if (!l->fed_call)
		lr_fail(l, MRTC_ERR_UNAUTHORIZED, unauthorised, NULL);
}

/*
 * Parses the common parts. Returns false after replying. Delayed-event delegation (issue of
 * a later release) is refused explicitly rather than silently ignored: a client that believes
 * it delegated would stop refreshing its own delayed leave event.
 */
static bool parse(struct legacy_req *l)
{
	const char *body;
	size_t len;
	if (mrtc_http_body(l->r, &body, &len) != MRTC_OK) {
		lr_fail(l, MRTC_ERR_TOO_LARGE, "Request body too large", NULL);
		return false;
	}
	struct json_object *doc = NULL, *openid = NULL, *member = NULL;
	char token[OPENID_TOKEN_MAX + 2];
	int64_t delay_timeout;
	char delay_id[256], delay_url[2049];
	bool ok =
	    mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &doc) == MRTC_OK &&
	    json_object_is_type(doc, json_type_object) &&
	    obj_member(doc, "openid_token", &openid) && obj_member(doc, "member", &member) &&
	    str_member(openid, "access_token", token, sizeof(token)) &&
	    str_member(openid, "matrix_server_name", l->server_name, sizeof(l->server_name)) &&
	    str_member(doc, "delay_id", delay_id, sizeof(delay_id)) &&
	    str_member(doc, "delay_cs_api_url", delay_url, sizeof(delay_url)) &&
	    int_member(doc, "delay_timeout", &delay_timeout);
	if (ok && l->sfu_get) {
		ok = str_member(doc, "room", l->room_id, sizeof(l->room_id)) &&
		     str_member(doc, "device_id", l->device, sizeof(l->device));
		mrtc_copy(l->slot_id, sizeof(l->slot_id), "m.call#ROOM"); /* fits */
	} else if (ok) {
		ok = str_member(doc, "room_id", l->room_id, sizeof(l->room_id)) &&
		     str_member(doc, "slot_id", l->slot_id, sizeof(l->slot_id)) &&
		     str_member(member, "id", l->member_id, sizeof(l->member_id)) &&
		     str_member(member, "claimed_user_id", l->claimed_user,
				sizeof(l->claimed_user)) &&
		     str_member(member, "claimed_device_id", l->device, sizeof(l->device));
	}
	if (!ok) {
		json_object_put(doc);
		lr_fail(l, MRTC_ERR_NOT_JSON, "Error reading request", NULL);
		return false;
	}
	json_object_put(doc); /* everything needed has been copied out */
	const char *msg = NULL;
	if (l->sfu_get && !l->room_id[0])
		msg = "Missing room parameter";
	else if (l->sfu_get && (!token[0] || !l->server_name[0]))
		msg = "Missing OpenID token parameters";
	else if (!l->sfu_get && (!l->room_id[0] || !l->slot_id[0]))
		msg = "The request body is missing `room_id` or `slot_id`";
	else if (!l->sfu_get && (!l->member_id[0] || !l->claimed_user[0] || !l->device[0]))
		msg = l->delegate_only ? "The request body `member` is missing `id`, "
					 "`claimed_user_id` or `claimed_device_id`"
				       : "The request body `member` is missing a `id`, "
					 "`claimed_user_id` or `claimed_device_id`";
	else if (!l->sfu_get && (!token[0] || !l->server_name[0]))
		msg = l->delegate_only
			  ? "The request body `openid_token` is missing `access_token` "
			    "or `matrix_server_name`"
			  : "The request body `openid_token` is missing a "
			    "`access_token` or `matrix_server_name`";
	bool any_delay = delay_id[0] || delay_timeout > 0 || delay_url[0];
	bool all_delay = delay_id[0] && delay_timeout > 0 && delay_url[0];
	if (!msg && (any_delay || l->delegate_only) && !all_delay)
		msg = delay_missing;
	else if (!msg && all_delay && !mrtc_delayed_enabled(l->s->delayed))
		msg = "Delegation of delayed events is not supported by this service";
	else if (!msg && all_delay && strncmp(delay_url, "https://", 8) != 0)
		msg = "`delay_cs_api_url` must be an https:// URL";
	if (!msg && all_delay) {
		l->delegation = true;
		l->delay_ms = (uint64_t)delay_timeout;
		/* Same sizes as the buffers they were read into: they fit. */
		mrtc_copy(l->delay_id, sizeof(l->delay_id), delay_id);
		mrtc_copy(l->delay_url, sizeof(l->delay_url), delay_url);
	}
	sodium_memzero(delay_id, sizeof(delay_id));
	if (msg) {
		lr_fail(l, MRTC_ERR_BAD_JSON, msg, NULL);
		return false;
	}
	if (l->delegation && l->delay_ms < l->s->config->delayed_min_delay_ms) {
		lr_fail(l, MRTC_ERR_INVALID_PARAM,
			"`delay_timeout` is below this service's minimum", NULL);
		return false;
	}
	l->access_token = strdup(token);
	sodium_memzero(token, sizeof(token));
	if (!l->access_token) {
		lr_fail(l, MRTC_ERR_NOMEM, "Internal Server Error", NULL);
		return false;
	}
	return true;
}

static void start(struct mrtc_request *r, bool sfu_get, bool delegate_only)
{
	struct legacy_req *l = mrtc_request_state(r, sizeof(*l), &lr_ops);
	if (!l) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Internal Server Error");
		return;
	}
	l->r = r;
	l->s = r->services;
	/* "/<n>/get_token": the routes exist only for the configured n (2 ... n_sfus). */
	const char *path = r->route ? r->route->path : "";
	if (path[0] == '/' && path[1] >= '2' && path[1] <= '9' && path[2] == '/')
		l->sfu = (size_t)(path[1] - '1');
	if (l->sfu >= l->s->config->n_sfus)
		l->sfu = 0;
	l->sfu_get = sfu_get;
	l->delegate_only = delegate_only;
	if (!parse(l))
		return;
	verify_openid(l);
}

void mrtc_legacy_get_token(struct mrtc_request *r)
{
	start(r, false, false);
}

void mrtc_legacy_sfu_get(struct mrtc_request *r)
{
	start(r, true, false);
}

void mrtc_legacy_delegate(struct mrtc_request *r)
{
	start(r, false, true);
}
