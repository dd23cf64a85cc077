/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MRTC_STORE spec as a value, parsed without I/O (the store in module/store/ opens it; the
 * configuration validates and redacts it):
 *
 *   sqlite:<path>
 *   redis://[[user]:password@]host[:port][/db]
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db]
 *
 * The user and password (percent-decoded as in URLs) are those of the Redis server, or with
 * Sentinel those of the master (and its replicas). "user@" alone names an ACL user whose
 * password comes from elsewhere (MRTC_REDIS_PASSWORD[_FILE]). Pure: no I/O, no logging.
 */
#ifndef MRTC_STORESPEC_H
#define MRTC_STORESPEC_H

#include <stdbool.h>
#include <stddef.h>

#define MRTC_REDIS_NODES_MAX 8
#define MRTC_REDIS_SECRET_MAX 512

struct mrtc_redis_node {
	char host[256]; /* a name, an IPv4 address or an IPv6 address without brackets */
	int port;
};

struct mrtc_redis_spec {
	bool sentinel;
	struct mrtc_redis_node nodes[MRTC_REDIS_NODES_MAX]; /* the server, or the sentinels */
	size_t n_nodes;
	char master[128];		      /* Sentinel: the master's name */
	char user[128];			      /* ACL user, "" for the default user */
	char password[MRTC_REDIS_SECRET_MAX]; /* a secret: wipe with mrtc_redis_spec_wipe() */
	bool has_password;
	int db;
};

/* True if @spec is a "redis://" or "redis+sentinel://" spec; fills @ret_spec then. */
bool mrtc_redis_spec_parse(const char *spec, struct mrtc_redis_spec *ret_spec);
void mrtc_redis_spec_wipe(struct mrtc_redis_spec *spec);

/* Writes @spec (any string) to @out with the password of its userinfo replaced by "***". */
void mrtc_redis_spec_redact(const char *spec, char *out, size_t size);

/* True if @spec has one of the accepted forms (configuration validation). */
bool mrtc_store_spec_is_valid(const char *spec);
/* Whether a valid Redis @spec carries a password / names an ACL user in its userinfo. */
bool mrtc_store_spec_has_password(const char *spec);
bool mrtc_store_spec_has_user(const char *spec);
/* Writes @spec to @out with any password in it replaced by "***" (for logs, --help, /readyz). */
void mrtc_store_spec_redact(const char *spec, char *out, size_t size);

#endif
