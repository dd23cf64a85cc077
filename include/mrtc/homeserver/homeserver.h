/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's own homeserver (PROTOCOL §2.1, §6.1): who an access token belongs to (cached by
 * its SHA-256, never the token), whether our user is joined to a room (asked with the user's
 * own token), and for federated requests whether a remote user and any local user are joined
 * and what the room's server ACL is (through a membership backend, mrtc/homeserver/membership.h).
 * Answers are cached briefly and bounded; failures are errors, never allows.
 */
#ifndef MRTC_HOMESERVER_H
#define MRTC_HOMESERVER_H

#include <json-c/json.h>

#include "mrtc/core/config.h"
#include "mrtc/homeserver/membership.h"
#include "mrtc/net/httpclient.h"
#include "mrtc/matrix/servername.h"

struct mrtc_homeserver;
struct mrtc_hs_op;

struct mrtc_homeserver_config {
	struct mrtc_http_client *http;
	struct mrtc_dns *dns;
	const char *base_url; /* MRTC_HOMESERVER_URL */
	const char *server_name;
	const struct mrtc_membership_backend *backend; /* remote users' membership */
	const char *membership_token;		       /* the backend's token */
	const char
	    *appservice_token; /* as_token: our users' is_joined in application-service mode */
	uint64_t timeout_ms;
	uint64_t auth_ttl_ms;
	uint64_t membership_ttl_ms;
	size_t cache_max; /* entries per cache (0: 100000) */
};

struct mrtc_whoami {
	char user_id[MRTC_ID_MAX + 1];
	char device_id[MRTC_ID_MAX + 1]; /* "" when the homeserver gave none */
	/* When whoami was refused (MRTC_ERR_UNKNOWN_TOKEN for a 401, MRTC_ERR_FORBIDDEN for a
	 * 403, MRTC_ERR_LIMIT_EXCEEDED for a 429): the homeserver's own answer, to pass on. */
	char errcode[64]; /* "" when the homeserver gave none */
	char error[256];
	int soft_logout;	 /* -1 absent, else 0 or 1 */
	uint64_t retry_after_ms; /* 429 only */
	/* In a callback with an error: what went wrong, for the request's log line (no secret);
	 * NULL otherwise. Borrowed, valid during the callback. */
	const char *detail;
};

struct mrtc_remote_membership {
	bool user_joined;   /* the remote user is joined, as we see the room */
	bool local_joined;  /* at least one of our users is still joined */
	bool acl_allows;    /* the room's server ACL allows the origin (true without ACL source) */
	const char *detail; /* as in struct mrtc_whoami */
};

struct mrtc_homeserver_stats {
	uint64_t calls, failures;
	uint64_t last_ok_ms;	  /* monotonic time of the last good answer, 0 if none */
	bool admin_misconfigured; /* the admin/appservice token was refused */
	struct {
		uint64_t hits, misses;
		size_t size;
	} auth, membership;
};

/* MRTC_OK, MRTC_ERR_UNKNOWN_TOKEN (401), MRTC_ERR_FORBIDDEN (403), MRTC_ERR_LIMIT_EXCEEDED
 * (429) -- these three with the homeserver's answer in @who -- or MRTC_ERR_UPSTREAM
 * (homeserver unreachable/5xx/bad, with who->detail). @who is never NULL. Only MRTC_OK answers
 * are cached. The component logs no failure of a call: its caller does, with the detail. */
typedef void (*mrtc_whoami_fn)(void *ctx, enum mrtc_err err, const struct mrtc_whoami *who);
/* MRTC_OK (with @joined), MRTC_ERR_UNKNOWN_TOKEN, or MRTC_ERR_UPSTREAM; @detail as
 * who->detail above. */
typedef void (*mrtc_joined_fn)(void *ctx, enum mrtc_err err, bool joined, const char *detail);
/* MRTC_OK, or MRTC_ERR_UPSTREAM (including a refused admin token) with m->detail; @m is never
 * NULL. */
typedef void (*mrtc_remote_fn)(void *ctx, enum mrtc_err err,
			       const struct mrtc_remote_membership *m);

/* A new client (caller frees with mrtc_homeserver_destroy()); MRTC_ERR_CONFIG without a
 * backend, MRTC_ERR_NOMEM. @config's strings are borrowed for its life. */
enum mrtc_err mrtc_homeserver_create(struct event_base *base,
				     const struct mrtc_homeserver_config *config,
				     struct mrtc_homeserver **ret_hs);
void mrtc_homeserver_destroy(struct mrtc_homeserver *hs);
void mrtc_homeserver_get_stats(const struct mrtc_homeserver *hs,
			       struct mrtc_homeserver_stats *ret_stats);

struct mrtc_hs_op *mrtc_hs_whoami(struct mrtc_homeserver *hs, const char *token, mrtc_whoami_fn cb,
				  void *ctx);
/* Our own user's membership, asked with their token; a 401 also forgets the token. With
 * @token NULL (application-service mode) it is asked with MSC4502 is_joined?mxid= and the
 * application-service token instead. */
struct mrtc_hs_op *mrtc_hs_local_membership(struct mrtc_homeserver *hs, const char *token,
					    const char *room_id, const char *user_id,
					    mrtc_joined_fn cb, void *ctx);
struct mrtc_hs_op *mrtc_hs_remote_membership(struct mrtc_homeserver *hs, const char *room_id,
					     const char *user_id, const char *origin,
					     mrtc_remote_fn cb, void *ctx);
/* MSC4502: use the stable /_matrix/client/v3/rooms/{id}/is_joined (true) or the unstable
 * io.element.msc4502 path (false, the default). */
void mrtc_homeserver_set_is_joined_stable(struct mrtc_homeserver *hs, bool stable);

/* Every start call follows mrtc/base/async.h. Cancel: no callback, and the homeserver calls
 * stop (their connections closed). Accepts NULL. */
void mrtc_hs_op_cancel(struct mrtc_hs_op *op);

struct json_object;
/*
 * A whoami failure that is the homeserver refusing the token (MRTC_ERR_UNKNOWN_TOKEN,
 * MRTC_ERR_FORBIDDEN, MRTC_ERR_LIMIT_EXCEEDED, with @who) as the client must get it: returns
 * true with *ret_status 401/403 and *ret_body (the homeserver's errcode, error, soft_logout;
 * caller puts; NULL when out of memory), or 429 and *ret_retry_ms. False for anything else
 * (the caller answers 502).
 */
bool mrtc_whoami_refusal(enum mrtc_err err, const struct mrtc_whoami *who, int *ret_status,
			 struct json_object **ret_body, uint64_t *ret_retry_ms);

#endif
