/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's HTTP server: the main listener (client, federation and legacy endpoints, behind
 * the reverse proxy) and the admin listener, request dispatch, and graceful shutdown.
 */
#ifndef MRTC_SERVER_H
#define MRTC_SERVER_H

#include <event2/event.h>
#include <stdint.h>

#include "mrtc/core/config.h"
#include "mrtc/core/metrics.h"
#include "mrtc/base/err.h"
#include "mrtc/http/http.h"

/* What the server serves, given by its owner (module/main): the server names no feature. */
struct mrtc_server_setup {
	struct mrtc_metrics *metrics;	/* request metrics, written by the server */
	struct mrtc_services *services; /* opaque here: handed to every handler in r->services */
	const struct mrtc_route *main_routes, *admin_routes; /* besides /healthz, the server's */
	size_t n_main_routes, n_admin_routes;
};

#define MRTC_SERVER_ROUTES_MAX 64

/*
 * Creates the server on @base with @config and @setup (all borrowed; they and the route tables
 * must outlive the server) and binds both listeners. On success *ret_server is new (caller
 * frees with mrtc_server_destroy()). MRTC_ERR_IO if a listener cannot be bound (logged),
 * MRTC_ERR_INVALID_PARAM over MRTC_SERVER_ROUTES_MAX routes.
 */
enum mrtc_err mrtc_server_create(struct event_base *base, const struct mrtc_config *config,
				 const struct mrtc_server_setup *setup,
				 struct mrtc_server **ret_server);

/*
 * Starts a graceful shutdown: both listeners stop accepting, replies carry
 * "Connection: close", and the event loop is exited once no request is in flight or after
 * @deadline_ms, whichever comes first.
 */
void mrtc_server_shutdown(struct mrtc_server *server, uint64_t deadline_ms);

/* Number of requests received and not yet answered. */
size_t mrtc_server_inflight(const struct mrtc_server *server);

/* Closes every connection and frees @server; accepts NULL. */
void mrtc_server_destroy(struct mrtc_server *server);

/*
 * @size bytes for a request's state or the request itself, not zeroed: a block of that size
 * the server keeps from an earlier request, else a new one. NULL without memory. Give it back
 * with mrtc_server_block_free(). A NULL @server (a request made by a test) allocates afresh.
 */
void *mrtc_server_block_alloc(struct mrtc_server *server, size_t size);
/* Takes back @block (NULL accepted) of @size bytes from mrtc_server_block_alloc(): kept for a
 * later request up to a bound per size, else freed. */
void mrtc_server_block_free(struct mrtc_server *server, void *block, size_t size);

/* Called by the reply functions once a reply is sent: logs it and frees @r. */
void mrtc_server_request_done(struct mrtc_request *r, int status);

/* Called just before a reply is sent: stops watching for the client's hang-up and starts the
 * deadline of the connection's next request. */
void mrtc_server_request_replying(struct mrtc_request *r);

#endif
