/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The homeserver client's machinery: operations (reused, answered from the loop on a cache
 * hit), GET calls through net/'s HTTPS client with their JSON answers, the bounded caches, the
 * remote-membership question handed to the configured backend (membership.c), and the
 * client's life and statistics. The calls themselves are in client.c and membership*.c.
 */
#include "homeserver_private.h"

#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "mrtc/core/log.h"
#include "mrtc/base/util.h"

#define RESPONSE_MAX (1024 * 1024)

#define SPARE_OPS 64 /* finished ops kept for reuse */

#define IS_JOINED_UNSTABLE "/_matrix/client/unstable/io.element.msc4502/rooms/"
#define IS_JOINED_STABLE "/_matrix/client/v3/rooms/"

void mrtc_homeserver_set_is_joined_stable(struct mrtc_homeserver *hs, bool stable)
{
	if (hs)
		hs->is_joined_stable = stable;
}

const char *mrtc_hs_is_joined_prefix(const struct mrtc_homeserver *hs)
{
	return hs->is_joined_stable ? IS_JOINED_STABLE : IS_JOINED_UNSTABLE;
}

/* Stores a copy of @size bytes of @value in @cache for @ttl_ms (0: not at all), inside the
 * entry: one allocation per entry. */
void mrtc_hs_remember(struct mrtc_cache *cache, const void *key, size_t key_len, const void *value,
		      size_t size, uint64_t ttl_ms)
{
	if (ttl_ms)
		mrtc_cache_put_copy(cache, key, key_len, value, size, mrtc_monotonic_ms() + ttl_ms);
}

void mrtc_hs_op_free(struct mrtc_hs_op *op)
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
	mrtc_hs_op_free(op);
}

static void deliver_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deliver(arg);
}

/* Answers @op from the loop (used for cache hits). */
struct mrtc_hs_op *mrtc_hs_answer_later(struct mrtc_hs_op *op)
{
	if (!op->ev)
		op->ev = event_new(op->hs->base, -1, 0, deliver_ev, op);
	if (!op->ev) {
		mrtc_hs_op_free(op);
		return NULL;
	}
	event_active(op->ev, 0, 0);
	return op;
}

struct mrtc_hs_op *mrtc_hs_op_new(struct mrtc_homeserver *hs, enum op_kind kind, void *ctx)
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
bool mrtc_hs_encode_segment(const char *s, char *out, size_t size)
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

struct http_ctx {
	struct mrtc_hs_op *op;
	mrtc_hs_step_fn step;
	struct mrtc_http_call *call;
};

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
	mrtc_hs_finish_if_done(op);
}

bool mrtc_hs_get(struct mrtc_hs_op *op, const char *path, const char *auth, mrtc_hs_step_fn step)
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

void mrtc_hs_finish_if_done(struct mrtc_hs_op *op)
{
	if (op->pending > 0)
		return;
	if (op->kind == OP_REMOTE && op->err == MRTC_OK)
		mrtc_hs_remember(op->hs->membership, op->cache_key, op->cache_key_len, &op->remote,
				 sizeof(op->remote), op->hs->cfg.membership_ttl_ms);
	deliver(op);
}

struct mrtc_hs_op *mrtc_hs_remote_membership(struct mrtc_homeserver *hs, const char *room_id,
					     const char *user_id, const char *origin,
					     mrtc_remote_fn cb, void *ctx)
{
	struct mrtc_hs_op *op = mrtc_hs_op_new(hs, OP_REMOTE, ctx);
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
		return mrtc_hs_answer_later(op);
	}
	char room_e[3 * MRTC_ID_MAX + 1];
	bool ok = fits && mrtc_hs_encode_segment(room_id, room_e, sizeof(room_e));
	/* Every call starts; a failure to start a later one still lets the first complete. */
	op->pending++;
	ok = ok && hs->cfg.backend->start(op, room_e);
	op->pending--;
	if (!ok) {
		op->err = MRTC_ERR_UPSTREAM;
		if (op->pending == 0) {
			mrtc_hs_op_free(op);
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
	mrtc_hs_op_free(op);
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
	if (!config->backend)
		return MRTC_ERR_CONFIG;
	struct mrtc_homeserver *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return MRTC_ERR_NOMEM;
	hs->base = base;
	hs->cfg = *config;
	size_t max = config->cache_max ? config->cache_max : 100000;
	hs->base_url = strdup(config->base_url);
	hs->member_auth = bearer(config->membership_token);
	hs->as_auth = bearer(config->appservice_token);
	hs->auth = mrtc_cache_create(max, NULL); /* values copied into the entries */
	hs->membership = mrtc_cache_create(max, NULL);
	if (!hs->base_url || !hs->auth || !hs->membership ||
	    (config->membership_token && !hs->member_auth) ||
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
	free_secret(hs->member_auth);
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
