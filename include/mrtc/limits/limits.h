/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate-limit decisions, optionally shared by every daemon on one Redis (MRTC_RATE_LIMIT_SHARED).
 * Shared, each decision is one atomic Lua script (GCRA with the local bucket's per_second and
 * burst) over an asynchronous hiredis connection on the loop, answered within a short timeout;
 * while Redis is unreachable, slow or erring, the local token bucket decides instead (one
 * warning per outage, one line when Redis is back). Not shared, the local bucket decides.
 * Either way the answer comes through the callback, never inside the start call.
 */
#ifndef MRTC_LIMITS_H
#define MRTC_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "mrtc/base/buf.h"
#include "mrtc/base/err.h"
#include "mrtc/core/config.h"
#include "mrtc/core/ratelimit.h"
#include "mrtc/core/storespec.h"

struct event_base;
struct mrtc_limits;
struct mrtc_limits_take;

#define MRTC_LIMITS_TIMEOUT_MS 100 /* per shared decision */

struct mrtc_limits_config {
	struct event_base *base;
	/* NULL: every decision is local. Else the Redis of MRTC_STORE (copied). */
	const struct mrtc_redis_spec *redis;
	const char *password;	       /* overrides none in the spec; NULL: the spec's */
	const char *sentinel_user;     /* NULL: the default user */
	const char *sentinel_password; /* NULL: sentinels without AUTH */
	uint64_t timeout_ms;	       /* per decision; 0: MRTC_LIMITS_TIMEOUT_MS */
	const char *key_prefix;	       /* NULL: "mrtc:rl:" */
};

enum mrtc_err mrtc_limits_create(const struct mrtc_limits_config *config,
				 struct mrtc_limits **ret_limits);
/* The limiter MRTC_RATE_LIMIT_SHARED asks for: on the Redis of MRTC_STORE, or local. */
enum mrtc_err mrtc_limits_create_from_config(struct event_base *base,
					     const struct mrtc_config *config,
					     struct mrtc_limits **ret_limits);
/* Frees outstanding decisions without calling their callbacks (their owners cancel first). */
void mrtc_limits_destroy(struct mrtc_limits *limits);

/* @allowed: a token was taken; else @retry_after_ms until the next one. */
typedef void (*mrtc_limits_cb)(void *arg, bool allowed, uint64_t retry_after_ms);

/*
 * Starts one decision: a token for @key (copied) in the limit @scope ("user", "origin": the
 * shared key's namespace), whose local bucket is @local (borrowed; its per_second and burst
 * are the shared limit's too). NULL on OOM (no callback). The callback runs once, later.
 */
struct mrtc_limits_take *mrtc_limits_take(struct mrtc_limits *limits, struct mrtc_ratelimit *local,
					  const char *scope, const char *key, mrtc_limits_cb cb,
					  void *arg);
/* No callback after this; accepts NULL. */
void mrtc_limits_take_cancel(struct mrtc_limits_take *take);

struct mrtc_limits_stats {
	bool shared;		 /* configured */
	bool up;		 /* decisions go to Redis now */
	uint64_t shared_allowed; /* decided by Redis */
	uint64_t shared_refused; /* decided by Redis */
	uint64_t fallbacks;	 /* shared configured, decided locally */
	uint64_t outages;	 /* times Redis became unusable */
};

void mrtc_limits_get_stats(const struct mrtc_limits *limits, struct mrtc_limits_stats *ret);
/* Appends the limiter's Prometheus lines to @out. */
void mrtc_limits_write_metrics(const struct mrtc_limits *limits, struct mrtc_buf *out);

#endif
