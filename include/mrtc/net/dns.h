/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asynchronous DNS on c-ares, driven by the libevent loop: address lookups (A and AAAA, also
 * /etc/hosts) and SRV lookups. Nothing blocks the loop. Callbacks always run from the loop,
 * never inside the call that started the query.
 */
#ifndef MRTC_DNS_H
#define MRTC_DNS_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mrtc/base/err.h"

#define MRTC_DNS_MAX_ADDRS 8
#define MRTC_DNS_MAX_SRV 16

struct mrtc_dns;
struct mrtc_dns_query;

struct mrtc_srv {
	char target[256];
	uint16_t port;
	uint16_t priority;
	uint16_t weight;
};

/* @err: MRTC_OK (n >= 1), MRTC_ERR_NOT_FOUND (no such name/no address), MRTC_ERR_TIMEOUT,
 * MRTC_ERR_UPSTREAM (server failure). Addresses carry @port. */
typedef void (*mrtc_dns_addrs_fn)(void *ctx, enum mrtc_err err,
				  const struct sockaddr_storage *addrs, size_t n);
/* @err: MRTC_OK with n >= 0 records sorted by priority then weight (n == 0: no SRV record),
 * MRTC_ERR_TIMEOUT or MRTC_ERR_UPSTREAM. */
typedef void (*mrtc_dns_srv_fn)(void *ctx, enum mrtc_err err, const struct mrtc_srv *recs,
				size_t n);

/*
 * Creates a resolver on @base. @server ("ip" or "ip:port" / "[v6]:port"; NULL = the system's
 * resolv.conf) is the only server asked. Each query attempt times out after @timeout_ms (two
 * tries). Caller frees with mrtc_dns_destroy().
 */
enum mrtc_err mrtc_dns_create(struct event_base *base, const char *server, uint64_t timeout_ms,
			      struct mrtc_dns **ret_dns);

/* Cancels every outstanding query without calling back, and frees @dns; accepts NULL. */
void mrtc_dns_destroy(struct mrtc_dns *dns);

/* Looks up the addresses of @host (a name or an IP literal without brackets). */
struct mrtc_dns_query *mrtc_dns_resolve(struct mrtc_dns *dns, const char *host, uint16_t port,
					mrtc_dns_addrs_fn cb, void *ctx);

/* Looks up the SRV records of @name (e.g. "_matrix-fed._tcp.example.org"). */
struct mrtc_dns_query *mrtc_dns_srv(struct mrtc_dns *dns, const char *name, mrtc_dns_srv_fn cb,
				    void *ctx);

/* The callback of @q will not be called; @q is freed by the resolver. Accepts NULL. */
void mrtc_dns_cancel(struct mrtc_dns_query *q);

#endif
