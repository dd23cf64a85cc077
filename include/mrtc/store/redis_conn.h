/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Redis connection of the shared job store: the MRTC_STORE spec (mrtc/core/storespec.h)
 * with credentials, and one synchronous hiredis connection that authenticates, follows a Sentinel
 * failover and backs off.
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db]
 *
 * The user and password (percent-decoded as in URLs) are those of the Redis server, or with
 * Sentinel those of the master (and its replicas); the sentinels themselves are asked with the
 * separate sentinel credentials, if any. "user@" alone names an ACL user whose password comes
 * from elsewhere (MRTC_REDIS_PASSWORD[_FILE]).
 *
 * Every call blocks for at most the configured timeout per step; a reconnection attempt (ask a
 * sentinel, connect, AUTH, SELECT, ROLE) shares one such budget, and after a failed attempt
 * the next waits with an exponential backoff, failing at once meanwhile.
 */
#ifndef MRTC_REDIS_CONN_H
#define MRTC_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/core/storespec.h"

enum mrtc_redis_state {
	MRTC_REDIS_CONNECTING,	 /* never connected yet */
	MRTC_REDIS_CONNECTED,	 /* the last call reached a master */
	MRTC_REDIS_UNREACHABLE,	 /* the last attempt failed; retrying with backoff */
	MRTC_REDIS_AUTH_REFUSED, /* the server refused our credentials */
	MRTC_REDIS_NO_MASTER,	 /* Sentinel: no sentinel names a master that says it is one */
};

const char *mrtc_redis_state_str(enum mrtc_redis_state state);

struct mrtc_redis_options {
	const char *password;	       /* overrides none in the spec; NULL: the spec's */
	const char *sentinel_user;     /* NULL: the default user */
	const char *sentinel_password; /* NULL: sentinels without AUTH */
	uint64_t timeout_ms;	       /* per command, and per reconnection attempt */
};

struct mrtc_redis;

/* Copies @spec and @opts (the strings too). Does not connect yet. NULL on OOM. */
struct mrtc_redis *mrtc_redis_create(const struct mrtc_redis_spec *spec,
				     const struct mrtc_redis_options *opts);
void mrtc_redis_destroy(struct mrtc_redis *redis);

/* Connects now unless connected or backing off; true if connected afterwards. */
bool mrtc_redis_connect(struct mrtc_redis *redis);

/* One command, after (re)connecting if needed. NULL on failure (a Redis error reply too);
 * caller frees the reply with freeReplyObject(). */
redisReply *mrtc_redis_command(struct mrtc_redis *redis, const char *fmt, ...);
/* The same with @argc arguments (binary safe: @argvlen their lengths). */
redisReply *mrtc_redis_command_argv(struct mrtc_redis *redis, int argc, const char **argv,
				    const size_t *argvlen);

struct mrtc_redis_status {
	enum mrtc_redis_state state;
	char address[300]; /* the server, or the master last found: "host:port" ("" if none) */
	char detail[128];  /* why the last attempt failed, without secrets ("" if it did not) */
};

void mrtc_redis_get_status(const struct mrtc_redis *redis, struct mrtc_redis_status *ret);

#endif
