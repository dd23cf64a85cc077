/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Finding a Matrix server (PROTOCOL §5.5): server name -> where to connect, the TLS name and the
 * Host header, through IP literals, explicit ports, /.well-known/matrix/server (cached),
 * SRV _matrix-fed._tcp then _matrix._tcp, then port 8448. One resolution per name is in flight
 * at a time; later askers wait for it.
 */
#ifndef MRTC_RESOLVER_H
#define MRTC_RESOLVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/net/dns.h"
#include "mrtc/base/err.h"
#include "mrtc/matrix/guard.h"
#include "mrtc/net/httpclient.h"
#include "mrtc/matrix/servername.h"

#define MRTC_WELLKNOWN_MAX (50 * 1024)
#define MRTC_WELLKNOWN_TTL_DEFAULT_MS (24ull * 3600 * 1000)
#define MRTC_WELLKNOWN_TTL_MIN_MS (5ull * 60 * 1000)
#define MRTC_WELLKNOWN_TTL_MAX_MS (48ull * 3600 * 1000)
#define MRTC_WELLKNOWN_FAILURE_TTL_MS (3600ull * 1000)
#define MRTC_WELLKNOWN_MAX_REDIRECTS 5

struct mrtc_resolver;
struct mrtc_resolve_op;

struct mrtc_resolved {
	char host[MRTC_SERVER_NAME_MAX + 1]; /* to look up / connect to; IPv6 without brackets */
	uint16_t port;
	char tls_name[MRTC_SERVER_NAME_MAX + 1]; /* "" for an IP literal: verify the IP, no SNI */
	char host_header[MRTC_SERVER_NAME_MAX + 8];
	bool via_wellknown;
	bool via_srv;
};

struct mrtc_resolver_config {
	struct mrtc_dns *dns;
	struct mrtc_http_client *http;
	const struct mrtc_cidr *allow; /* outbound guard exemptions (borrowed) */
	size_t n_allow;
	size_t cache_max;    /* names remembered of each kind, delegated by a well-known or
			      * not (0: 1024 each) */
	uint64_t timeout_ms; /* per well-known fetch */
};

struct mrtc_resolver_stats {
	uint64_t hits, misses, wellknown_fetches;
	size_t size;
};

/* @err is MRTC_OK or MRTC_ERR_DNS/TIMEOUT (SRV lookup failed) / MRTC_ERR_INVALID_PARAM. */
typedef void (*mrtc_resolve_fn)(void *ctx, enum mrtc_err err, const struct mrtc_resolved *r);

enum mrtc_err mrtc_resolver_create(struct event_base *base,
				   const struct mrtc_resolver_config *config,
				   struct mrtc_resolver **ret_resolver);
void mrtc_resolver_destroy(struct mrtc_resolver *resolver);

/* Resolves @server_name (validated here). The callback runs from the loop. */
struct mrtc_resolve_op *mrtc_resolver_resolve(struct mrtc_resolver *resolver,
					      const char *server_name, mrtc_resolve_fn cb,
					      void *ctx);
void mrtc_resolve_cancel(struct mrtc_resolve_op *op);

void mrtc_resolver_get_stats(const struct mrtc_resolver *resolver,
			     struct mrtc_resolver_stats *ret_stats);

/*
 * Pure helpers, exposed for tests and fuzzing: the delegated server name of a well-known body
 * (strict JSON object with a valid "m.server"), and the max-age of a Cache-Control value
 * (no-store/no-cache count as 0).
 */
bool mrtc_wellknown_parse(const char *body, size_t len, char ret_server[MRTC_SERVER_NAME_MAX + 1]);
bool mrtc_cache_control_max_age(const char *value, uint64_t *ret_seconds);

#endif
