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
#include "mrtc/base/err.h"
#include "mrtc/http/http.h"

/*
 * Creates the server on @base with @config (both borrowed; they must outlive the server) and
 * binds both listeners. On success *ret_server is new (caller frees with
 * mrtc_server_destroy()). MRTC_ERR_IO if a listener cannot be bound (logged).
 */
enum mrtc_err mrtc_server_create(struct event_base *base, const struct mrtc_config *config,
				 struct mrtc_server **ret_server);

/*
 * Starts a graceful shutdown: both listeners stop accepting, replies carry
 * "Connection: close", and the event loop is exited once no request is in flight or after
 * @deadline_ms, whichever comes first.
 */
void mrtc_server_shutdown(struct mrtc_server *server, uint64_t deadline_ms);

/*
 * After the loop has exited: stops background work (delayed-leave jobs stay stored, probes)
 * and runs the loop until outbound calls have finished, at most @deadline_ms.
 */
void mrtc_server_quiesce(struct mrtc_server *server, uint64_t deadline_ms);

/* SIGHUP: reloads what can change safely (the trusted CA file for new connections). */
void mrtc_server_reload(struct mrtc_server *server);

/* Number of requests received and not yet answered. */
size_t mrtc_server_inflight(const struct mrtc_server *server);

/* Closes every connection and frees @server; accepts NULL. */
void mrtc_server_destroy(struct mrtc_server *server);

/* Called by the reply functions once a reply is sent: logs it and frees @r. */
void mrtc_server_request_done(struct mrtc_request *r, int status);

/* Called just before a reply is sent: stops watching for the client's hang-up and starts the
 * deadline of the connection's next request. */
void mrtc_server_request_replying(struct mrtc_request *r);

#endif
