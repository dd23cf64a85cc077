/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to module/homeserver: the client's operation and state, shared by the client's calls
 * (client.c), the machinery that runs them (homeserver.c) and the membership backends
 * (membership*.c). An operation is one answer to one caller: its HTTP calls count in pending,
 * and it is delivered when the last one ends; cancelling it stops its calls.
 */
#ifndef MRTC_HOMESERVER_PRIVATE_H
#define MRTC_HOMESERVER_PRIVATE_H

#include <sodium.h>

#include "mrtc/homeserver/homeserver.h"
#include "mrtc/homeserver/membership.h"
#include "mrtc/base/cache.h"

struct http_ctx;

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

struct mrtc_homeserver {
	struct event_base *base;
	struct mrtc_homeserver_config cfg;
	char *base_url;
	char *member_auth; /* "Bearer <the backend's token>" */
	char *as_auth; /* "Bearer <as_token>": is_joined of our users in application-service mode */
	struct mrtc_cache *auth;       /* token digest -> "user_id\0device_id\0" */
	struct mrtc_cache *membership; /* "L|room|user" -> bool, "R|room|user|origin" -> remote */
	struct mrtc_homeserver_stats stats;
	bool is_joined_stable;	  /* MSC4502's stable path */
	struct mrtc_hs_op *spare; /* finished ops for reuse, at most SPARE_OPS */
	size_t n_spare;
};

/* One step of an operation: handles a homeserver answer below 500 (@doc its JSON object, or
 * NULL), setting op->err or the result. */
typedef void (*mrtc_hs_step_fn)(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				struct json_object *doc);

/* A new operation of @kind for @ctx (zeroed, possibly reused); NULL on OOM. */
struct mrtc_hs_op *mrtc_hs_op_new(struct mrtc_homeserver *hs, enum op_kind kind, void *ctx);
/* Frees @op (keeping some for reuse) without delivering it. */
void mrtc_hs_op_free(struct mrtc_hs_op *op);
/* Delivers @op from the loop (a cache hit); NULL (and @op freed) if that cannot be arranged. */
struct mrtc_hs_op *mrtc_hs_answer_later(struct mrtc_hs_op *op);
/* Delivers @op once no call of it is pending, caching a remote answer. */
void mrtc_hs_finish_if_done(struct mrtc_hs_op *op);
/* Starts GET <base_url>@path with the Authorization @auth, answered through @step; counts it in
 * op->pending. False if it could not start. */
bool mrtc_hs_get(struct mrtc_hs_op *op, const char *path, const char *auth, mrtc_hs_step_fn step);

/* Stores a copy of @size bytes of @value in @cache for @ttl_ms (0: not at all). */
void mrtc_hs_remember(struct mrtc_cache *cache, const void *key, size_t key_len, const void *value,
		      size_t size, uint64_t ttl_ms);
/* Percent-encodes @s as one path segment into @out. */
bool mrtc_hs_encode_segment(const char *s, char *out, size_t size);
/* The MSC4502 is_joined path prefix in use (stable or unstable). */
const char *mrtc_hs_is_joined_prefix(const struct mrtc_homeserver *hs);

/* The homeserver refused the backend's token (HTTP @status): flagged for /readyz, logged once,
 * and the cause kept for the request's line. */
void mrtc_hs_admin_refused(struct mrtc_hs_op *op, int status);
/* An MSC4502 is_joined answer into *@out (a 404 leaves it false). */
void mrtc_hs_joined_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			 struct json_object *doc, bool *out);

#endif
