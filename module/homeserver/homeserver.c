/* SPDX-License-Identifier: Apache-2.0 */
/* Homeserver client: whoami, memberships, server ACLs, with bounded caches. */
#include "mrtc/homeserver/homeserver.h"

#include <event2/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/acl.h"
#include "mrtc/base/cache.h"
#include "mrtc/matrix/json.h"
#include "mrtc/core/log.h"
#include "mrtc/base/util.h"

#define RESPONSE_MAX (1024 * 1024)

enum op_kind {
	OP_WHOAMI,
	OP_LOCAL,
	OP_REMOTE,
};

struct mrtc_hs_op {
	struct mrtc_homeserver *hs;
	enum op_kind kind;
	int pending; /* outstanding HTTP calls */
	enum mrtc_err err;
	uint8_t token_digest[crypto_hash_sha256_BYTES];
	char cache_key[3 * MRTC_ID_MAX + 8];
	size_t cache_key_len;
	struct mrtc_whoami who;
	bool joined;
	struct mrtc_remote_membership remote;
	char origin[MRTC_SERVER_NAME_MAX + 1];
	char user_id[MRTC_ID_MAX + 1];
	char detail[256];	   /* the first failure, for the caller's log line */
	struct http_ctx *calls[2]; /* outbound calls in flight, cancelled with the op */
	mrtc_whoami_fn whoami_cb;
	mrtc_joined_fn joined_cb;
	mrtc_remote_fn remote_cb;
	void *ctx;
	struct event *ev; /* cached answers */
	struct mrtc_hs_op *spare_next;
};

#define SPARE_OPS 64 /* finished ops kept for reuse */

struct mrtc_homeserver {
	struct event_base *base;
	struct mrtc_homeserver_config cfg;
	char *base_url, *admin_auth, *as_auth;
	struct mrtc_cache *auth;       /* token digest -> "user_id\0device_id\0" */
	struct mrtc_cache *membership; /* "L|room|user" -> bool, "R|room|user|origin" -> remote */
	struct mrtc_homeserver_stats stats;
	bool is_joined_stable;	  /* MSC4502's stable path */
	struct mrtc_hs_op *spare; /* finished ops for reuse, at most SPARE_OPS */
	size_t n_spare;
};

#define IS_JOINED_UNSTABLE "/_matrix/client/unstable/io.element.msc4502/rooms/"
#define IS_JOINED_STABLE "/_matrix/client/v3/rooms/"

void mrtc_homeserver_set_is_joined_stable(struct mrtc_homeserver *hs, bool stable)
{
	if (hs)
		hs->is_joined_stable = stable;
}

static const char *is_joined_prefix(const struct mrtc_homeserver *hs)
{
	return hs->is_joined_stable ? IS_JOINED_STABLE : IS_JOINED_UNSTABLE;
}

/* Stores a copy of @size bytes of @value in @cache for @ttl_ms (0: not at all), inside the
 * entry: one allocation per entry. */
static void remember(struct mrtc_cache *cache, const void *key, size_t key_len, const void *value,
		     size_t size, uint64_t ttl_ms)
{
	if (ttl_ms)
		mrtc_cache_put_copy(cache, key, key_len, value, size, mrtc_monotonic_ms() + ttl_ms);
}

static void op_free(struct mrtc_hs_op *op)
{
	sodium_memzero(op->token_digest, sizeof(op->token_digest));
	struct mrtc_homeserver *hs = op->hs;
	if (hs->n_spare < SPARE_OPS) {
		/* Kept for op_new, with its event (bound to this op): an op is over 2 KiB, and
		 * allocating that per request costs malloc more than the answer from the cache. */
		if (op->ev)
			event_del(op->ev);
		op->spare_next = hs->spare;
		hs->spare = op;
		hs->n_spare++;
		return;
	}
	if (op->ev)
		event_free(op->ev);
	free(op);
}

static void deliver(struct mrtc_hs_op *op)
{
	const char *detail = op->err != MRTC_OK && op->detail[0] ? op->detail : NULL;
	switch (op->kind) {
	case OP_WHOAMI:
		op->who.detail = detail;
		op->whoami_cb(op->ctx, op->err, &op->who);
		break;
	case OP_LOCAL:
		op->joined_cb(op->ctx, op->err, op->joined, detail);
		break;
	case OP_REMOTE:
		op->remote.detail = detail;
		op->remote_cb(op->ctx, op->err, &op->remote);
		break;
	}
	op_free(op);
}

static void deliver_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deliver(arg);
}

/* Answers @op from the loop (used for cache hits). */
static struct mrtc_hs_op *answer_later(struct mrtc_hs_op *op)
{
	if (!op->ev)
		op->ev = event_new(op->hs->base, -1, 0, deliver_ev, op);
	if (!op->ev) {
		op_free(op);
		return NULL;
	}
	event_active(op->ev, 0, 0);
	return op;
}

static struct mrtc_hs_op *op_new(struct mrtc_homeserver *hs, enum op_kind kind, void *ctx)
{
	struct mrtc_hs_op *op = hs->spare;
	if (op) {
		hs->spare = op->spare_next;
		hs->n_spare--;
		struct event *ev = op->ev;
		memset(op, 0, sizeof(*op));
		op->ev = ev;
	} else {
		op = calloc(1, sizeof(*op));
	}
	if (op) {
		op->hs = hs;
		op->kind = kind;
		op->ctx = ctx;
	}
	return op;
}

/* Percent-encodes @s as one path segment into @out. */
static bool encode_segment(const char *s, char *out, size_t size)
{
	char *e = evhttp_uriencode(s, -1, 0);
	if (!e)
		return false;
	bool ok = strlen(e) < size;
	if (ok)
		memcpy(out, e, strlen(e) + 1);
	free(e);
	return ok;
}

typedef void (*step_fn)(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			struct json_object *doc);

struct http_ctx {
	struct mrtc_hs_op *op;
	step_fn step;
	struct mrtc_http_call *call;
};

static void finish_if_done(struct mrtc_hs_op *op);

static void on_http(void *arg, const struct mrtc_http_response *resp)
{
	struct http_ctx *hc = arg;
	struct mrtc_hs_op *op = hc->op;
	struct mrtc_homeserver *hs = op->hs;
	struct json_object *doc = NULL;
	if (resp->err == MRTC_OK && resp->status < 500) {
		hs->stats.last_ok_ms = mrtc_monotonic_ms();
		if (mrtc_json_parse(resp->body, resp->body_len, 32, &doc) != MRTC_OK ||
		    !json_object_is_type(doc, json_type_object)) {
			json_object_put(doc);
			doc = NULL;
		}
	}
	if (resp->err != MRTC_OK || resp->status >= 500) {
		hs->stats.failures++;
		const char *call = op->kind == OP_WHOAMI ? "whoami" : "membership";
		if (op->detail[0])
			; /* the first failure of the op says it */
		else if (resp->err == MRTC_OK)
			mrtc_format_shown(op->detail, sizeof(op->detail),
					  "homeserver %s call answered HTTP %d", call,
					  resp->status);
		else
			mrtc_format_shown(op->detail, sizeof(op->detail),
					  "homeserver %s call failed: %s%s%s", call,
					  mrtc_err_str(resp->err), resp->detail ? ": " : "",
					  resp->detail ? resp->detail : "");
		if (op->err == MRTC_OK)
			op->err = MRTC_ERR_UPSTREAM;
	} else {
		hc->step(op, resp, doc);
	}
	json_object_put(doc);
	for (size_t i = 0; i < 2; i++)
		if (op->calls[i] == hc)
			op->calls[i] = NULL;
	free(hc);
	op->pending--;
	finish_if_done(op);
}

static bool get(struct mrtc_hs_op *op, const char *path, const char *auth, step_fn step)
{
	struct mrtc_homeserver *hs = op->hs;
	size_t n = strlen(hs->base_url) + strlen(path) + 1;
	char *url = malloc(n);
	struct http_ctx *hc = calloc(1, sizeof(*hc));
	if (!url || !hc || !mrtc_format(url, n, "%s%s", hs->base_url, path)) {
		free(url);
		free(hc);
		return false;
	}
	hc->op = op;
	hc->step = step;
	struct mrtc_http_request req = {
		.method = "GET",
		.authorization = auth,
		.timeout_ms = hs->cfg.timeout_ms,
		.max_body = RESPONSE_MAX,
	};
	hs->stats.calls++;
	/* The homeserver is the operator's own: no outbound guard. */
	struct mrtc_http_call *call =
	    mrtc_http_fetch(hs->cfg.http, hs->cfg.dns, url, &req, false, NULL, 0, on_http, hc);
	free(url);
	if (!call) {
		free(hc);
		return false;
	}
	hc->call = call;
	op->calls[op->calls[0] ? 1 : 0] = hc; /* an op makes at most two calls */
	op->pending++;
	return true;
}

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
	remember(op->hs->auth, op->token_digest, sizeof(op->token_digest), packed, ul + dl + 2,
		 op->hs->cfg.auth_ttl_ms);
}

struct mrtc_hs_op *mrtc_hs_whoami(struct mrtc_homeserver *hs, const char *token, mrtc_whoami_fn cb,
				  void *ctx)
{
	struct mrtc_hs_op *op = op_new(hs, OP_WHOAMI, ctx);
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
		return answer_later(op);
	}
	size_t al = strlen(token) + 8;
	char *auth = malloc(al);
	if (!auth || !mrtc_format(auth, al, "Bearer %s", token)) {
		free(auth);
		op_free(op);
		return NULL;
	}
	bool ok = get(op, "/_matrix/client/v3/account/whoami", auth, whoami_step);
	sodium_memzero(auth, al);
	free(auth);
	if (!ok) {
		op_free(op);
		return NULL;
	}
	return op;
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
	remember(op->hs->membership, op->cache_key, op->cache_key_len, &op->joined,
		 sizeof(op->joined), op->hs->cfg.membership_ttl_ms);
}

struct mrtc_hs_op *mrtc_hs_local_membership(struct mrtc_homeserver *hs, const char *token,
					    const char *room_id, const char *user_id,
					    mrtc_joined_fn cb, void *ctx)
{
	struct mrtc_hs_op *op = op_new(hs, OP_LOCAL, ctx);
	if (!op)
		return NULL;
	op->joined_cb = cb;
	if (token)
		crypto_hash_sha256(op->token_digest, (const uint8_t *)token, strlen(token));
	bool keyed = mrtc_format(op->cache_key, sizeof(op->cache_key), "L|%s|%s", room_id, user_id);
	op->cache_key_len = keyed ? strlen(op->cache_key) : 0;
	const bool *hit = keyed ? mrtc_cache_get(hs->membership, op->cache_key, op->cache_key_len,
						 mrtc_monotonic_ms())
				: NULL;
	if (hit) {
		op->joined = *hit;
		return answer_later(op);
	}
	char room_e[3 * MRTC_ID_MAX + 1], user_e[3 * MRTC_ID_MAX + 1], path[7 * MRTC_ID_MAX];
	if (!token) {
		bool ok = hs->as_auth && encode_segment(room_id, room_e, sizeof(room_e)) &&
			  encode_segment(user_id, user_e, sizeof(user_e));
		ok = ok && mrtc_format(path, sizeof(path), "%s%s/is_joined?mxid=%s",
				       is_joined_prefix(hs), room_e, user_e);
		if (!ok || !get(op, path, hs->as_auth, is_joined_local_step)) {
			op_free(op);
			return NULL;
		}
		return op;
	}
	size_t al = strlen(token) + 8;
	char *auth = malloc(al);
	bool ok = auth && encode_segment(room_id, room_e, sizeof(room_e)) &&
		  encode_segment(user_id, user_e, sizeof(user_e));
	ok = ok && mrtc_format(auth, al, "Bearer %s", token) &&
	     mrtc_format(path, sizeof(path), "/_matrix/client/v3/rooms/%s/state/m.room.member/%s",
			 room_e, user_e) &&
	     get(op, path, auth, local_step);
	if (auth)
		sodium_memzero(auth, al);
	free(auth);
	if (!ok) {
		op_free(op);
		return NULL;
	}
	return op;
}

/* ---- remote users: synapse-admin or msc4502 ---- */

static void admin_refused(struct mrtc_hs_op *op, int status)
{
	/* A configuration problem, logged once when it is found (and on /readyz); each request
	 * it fails says so in its own line. */
	const char *which =
	    op->hs->cfg.backend == MRTC_MEMBERSHIP_SYNAPSE_ADMIN ? "admin" : "appservice";
	if (!op->hs->stats.admin_misconfigured)
		mrtc_log(LOG_ERR, "homeserver", NULL,
			 "the homeserver refused our %s token (HTTP %d): check the configuration",
			 which, status);
	op->hs->stats.admin_misconfigured = true;
	if (!op->detail[0])
		mrtc_format_shown(op->detail, sizeof(op->detail),
				  "the homeserver refused our %s token (HTTP %d)", which, status);
	op->err = MRTC_ERR_UPSTREAM;
}

static bool is_local(const struct mrtc_homeserver *hs, const char *user)
{
	const char *server = mrtc_user_id_server(user);
	return server && strcmp(server, hs->cfg.server_name) == 0;
}

static void members_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			 struct json_object *doc)
{
	if (resp->status == 401 || resp->status == 403) {
		admin_refused(op, resp->status);
		return;
	}
	if (resp->status == 404)
		return; /* unknown room: nobody is joined */
	struct json_object *members = NULL;
	if (resp->status != 200 || !json_object_object_get_ex(doc, "members", &members) ||
	    !json_object_is_type(members, json_type_array)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	op->hs->stats.admin_misconfigured = false;
	size_t n = json_object_array_length(members);
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(members, i);
		if (!json_object_is_type(m, json_type_string))
			continue;
		const char *u = json_object_get_string(m);
		if (strcmp(u, op->user_id) == 0)
			op->remote.user_joined = true;
		if (is_local(op->hs, u))
			op->remote.local_joined = true;
	}
}

static void acl_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
		     struct json_object *doc)
{
	if (resp->status == 401 || resp->status == 403) {
		admin_refused(op, resp->status);
		return;
	}
	if (resp->status == 404)
		return;
	struct json_object *state = NULL;
	if (resp->status != 200 || !json_object_object_get_ex(doc, "state", &state) ||
	    !json_object_is_type(state, json_type_array)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	size_t n = json_object_array_length(state);
	for (size_t i = 0; i < n; i++) {
		struct json_object *ev = json_object_array_get_idx(state, i), *content = NULL;
		const char *type = mrtc_json_get_string(ev, "type");
		const char *key = mrtc_json_get_string(ev, "state_key");
		if (type && strcmp(type, "m.room.server_acl") == 0 && key && !key[0] &&
		    json_object_object_get_ex(ev, "content", &content))
			op->remote.acl_allows = mrtc_acl_allows(content, op->origin);
	}
}

static void joined_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			struct json_object *doc, bool *out)
{
	if (resp->status == 401 || resp->status == 403) {
		admin_refused(op, resp->status);
		return;
	}
	struct json_object *j = NULL;
	if (resp->status == 404)
		return;
	if (resp->status != 200 || !json_object_object_get_ex(doc, "joined", &j) ||
	    !json_object_is_type(j, json_type_boolean)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	op->hs->stats.admin_misconfigured = false;
	*out = json_object_get_boolean(j);
}

static void is_joined_local_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				 struct json_object *doc)
{
	joined_step(op, resp, doc, &op->joined);
	if (op->err == MRTC_OK)
		remember(op->hs->membership, op->cache_key, op->cache_key_len, &op->joined,
			 sizeof(op->joined), op->hs->cfg.membership_ttl_ms);
}

static void is_joined_user_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				struct json_object *doc)
{
	joined_step(op, resp, doc, &op->remote.user_joined);
}

static void is_joined_server_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				  struct json_object *doc)
{
	joined_step(op, resp, doc, &op->remote.local_joined);
}

static void finish_if_done(struct mrtc_hs_op *op)
{
	if (op->pending > 0)
		return;
	if (op->kind == OP_REMOTE && op->err == MRTC_OK)
		remember(op->hs->membership, op->cache_key, op->cache_key_len, &op->remote,
			 sizeof(op->remote), op->hs->cfg.membership_ttl_ms);
	deliver(op);
}

struct mrtc_hs_op *mrtc_hs_remote_membership(struct mrtc_homeserver *hs, const char *room_id,
					     const char *user_id, const char *origin,
					     mrtc_remote_fn cb, void *ctx)
{
	struct mrtc_hs_op *op = op_new(hs, OP_REMOTE, ctx);
	if (!op)
		return NULL;
	op->remote_cb = cb;
	op->remote.acl_allows = true;
	bool fits = mrtc_copy(op->origin, sizeof(op->origin), origin) &&
		    mrtc_copy(op->user_id, sizeof(op->user_id), user_id) &&
		    mrtc_format(op->cache_key, sizeof(op->cache_key), "R|%s|%s|%s", room_id,
				user_id, origin);
	op->cache_key_len = fits ? strlen(op->cache_key) : 0;
	const struct mrtc_remote_membership *hit =
	    fits ? mrtc_cache_get(hs->membership, op->cache_key, op->cache_key_len,
				  mrtc_monotonic_ms())
		 : NULL;
	if (hit) {
		op->remote = *hit;
		return answer_later(op);
	}
	char room_e[3 * MRTC_ID_MAX + 1], q_e[3 * MRTC_ID_MAX + 1], path[8 * MRTC_ID_MAX];
	bool ok = fits && encode_segment(room_id, room_e, sizeof(room_e));
	/* Both calls start; a failure to start the second still lets the first complete. */
	op->pending++;
	if (ok && hs->cfg.backend == MRTC_MEMBERSHIP_SYNAPSE_ADMIN) {
		ok = mrtc_format(path, sizeof(path), "/_synapse/admin/v1/rooms/%s/members",
				 room_e) &&
		     get(op, path, hs->admin_auth, members_step);
		ok = ok &&
		     mrtc_format(path, sizeof(path),
				 "/_synapse/admin/v1/rooms/%s/state?type=m.room.server_acl",
				 room_e) &&
		     get(op, path, hs->admin_auth, acl_step);
	} else if (ok) {
		/* msc4502 has no ACL source: the ACL step is skipped (documented). */
		ok = encode_segment(user_id, q_e, sizeof(q_e)) &&
		     mrtc_format(path, sizeof(path), "%s%s/is_joined?mxid=%s", is_joined_prefix(hs),
				 room_e, q_e) &&
		     get(op, path, hs->as_auth, is_joined_user_step);
		ok = ok && encode_segment(hs->cfg.server_name, q_e, sizeof(q_e)) &&
		     mrtc_format(path, sizeof(path), "%s%s/is_joined?server_name=%s",
				 is_joined_prefix(hs), room_e, q_e) &&
		     get(op, path, hs->as_auth, is_joined_server_step);
	}
	op->pending--;
	if (!ok) {
		op->err = MRTC_ERR_UPSTREAM;
		if (op->pending == 0) {
			op_free(op);
			return NULL;
		}
	}
	return op;
}

void mrtc_hs_op_cancel(struct mrtc_hs_op *op)
{
	if (!op)
		return;
	/* No callback, and the calls stop: their connections are closed, their answers never
	 * read (and so never cached). A cached answer waiting for the loop is dropped. */
	for (size_t i = 0; i < 2; i++) {
		if (op->calls[i]) {
			mrtc_http_call_cancel(op->calls[i]->call);
			free(op->calls[i]);
		}
	}
	op_free(op);
}

static char *bearer(const char *token)
{
	if (!token)
		return NULL;
	size_t n = strlen(token) + 8;
	char *s = malloc(n);
	if (s && !mrtc_format(s, n, "Bearer %s", token)) {
		free(s);
		s = NULL;
	}
	return s;
}

enum mrtc_err mrtc_homeserver_create(struct event_base *base,
				     const struct mrtc_homeserver_config *config,
				     struct mrtc_homeserver **ret_hs)
{
	struct mrtc_homeserver *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return MRTC_ERR_NOMEM;
	hs->base = base;
	hs->cfg = *config;
	size_t max = config->cache_max ? config->cache_max : 100000;
	hs->base_url = strdup(config->base_url);
	hs->admin_auth = bearer(config->admin_token);
	hs->as_auth = bearer(config->appservice_token);
	hs->auth = mrtc_cache_create(max, NULL); /* values copied into the entries */
	hs->membership = mrtc_cache_create(max, NULL);
	if (!hs->base_url || !hs->auth || !hs->membership ||
	    (config->admin_token && !hs->admin_auth) ||
	    (config->appservice_token && !hs->as_auth)) {
		mrtc_homeserver_destroy(hs);
		return MRTC_ERR_NOMEM;
	}
	size_t n = strlen(hs->base_url);
	while (n && hs->base_url[n - 1] == '/')
		hs->base_url[--n] = '\0';
	hs->cfg.server_name = config->server_name;
	*ret_hs = hs;
	return MRTC_OK;
}

static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void mrtc_homeserver_destroy(struct mrtc_homeserver *hs)
{
	if (!hs)
		return;
	while (hs->spare) {
		struct mrtc_hs_op *op = hs->spare;
		hs->spare = op->spare_next;
		if (op->ev)
			event_free(op->ev);
		free(op);
	}
	mrtc_cache_destroy(hs->auth);
	mrtc_cache_destroy(hs->membership);
	free(hs->base_url);
	free_secret(hs->admin_auth);
	free_secret(hs->as_auth);
	free(hs);
}

void mrtc_homeserver_get_stats(const struct mrtc_homeserver *hs, struct mrtc_homeserver_stats *ret)
{
	*ret = hs->stats;
	struct mrtc_cache_stats a, m;
	mrtc_cache_get_stats(hs->auth, &a);
	mrtc_cache_get_stats(hs->membership, &m);
	ret->auth.hits = a.hits;
	ret->auth.misses = a.misses;
	ret->auth.size = a.size;
	ret->membership.hits = m.hits;
	ret->membership.misses = m.misses;
	ret->membership.size = m.size;
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
