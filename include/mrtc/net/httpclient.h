/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbound HTTP/1.1 and HTTPS on libevent + OpenSSL: certificate verification against the
 * system store plus an optional CA file, host name or IP checks, SNI, TLS 1.2+, keep-alive
 * connection pooling per destination (bounded), a deadline on every call and a cap on every
 * response. Requests go to an already resolved address; mrtc_http_fetch() adds URL parsing,
 * DNS and the outbound guard.
 */
#ifndef MRTC_HTTPCLIENT_H
#define MRTC_HTTPCLIENT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mrtc/net/dns.h"
#include "mrtc/base/err.h"
#include "mrtc/matrix/guard.h"

struct mrtc_http_client;
struct mrtc_http_call;

struct mrtc_http_client_config {
	const char *ca_file;	  /* extra PEM bundle, or NULL */
	size_t max_idle_per_dest; /* idle keep-alive connections kept per destination (0: 32) */
	size_t max_dests;	  /* destinations with idle connections (0: 256) */
	size_t max_open; /* connections open at once, idle ones included (0: no cap); a call that
			  * needs one more closes an idle one or fails with
			  * MRTC_ERR_LIMIT_EXCEEDED */
};

struct mrtc_http_client_stats {
	uint64_t requests;
	uint64_t connections;	 /* connections opened */
	uint64_t tls_handshakes; /* TLS connections opened */
	uint64_t reused;	 /* requests sent on a pooled connection */
	uint64_t failures;	 /* requests that got no HTTP response */
	uint64_t retried;	 /* requests sent again after a pooled connection failed */
	uint64_t open;		 /* connections open now */
	uint64_t refused;	 /* calls failed because max_open connections were open */
};

struct mrtc_http_target {
	struct sockaddr_storage addr; /* where to connect, with the port */
	bool tls;
	const char *tls_name;	 /* name to verify and send as SNI; NULL: verify the IP, no SNI */
	const char *host_header; /* Host: value */
};

struct mrtc_http_request {
	const char *method;	   /* GET, POST, PUT or DELETE */
	const char *target;	   /* request target, sent exactly as given */
	const char *content_type;  /* or NULL */
	const char *authorization; /* Authorization header value, or NULL */
	const char *body;
	size_t body_len;
	uint64_t timeout_ms; /* whole call: connect, TLS, request, response */
	size_t max_body;     /* response body cap */
};

struct mrtc_http_response {
	/* MRTC_OK when a response arrived (any status); else MRTC_ERR_TIMEOUT, MRTC_ERR_TLS,
	 * MRTC_ERR_CONNECT, MRTC_ERR_TOO_LARGE, MRTC_ERR_UPSTREAM (malformed response),
	 * MRTC_ERR_DNS, MRTC_ERR_BLOCKED (mrtc_http_fetch). */
	enum mrtc_err err;
	int status;
	const char *body; /* borrowed for the callback; NUL-terminated */
	size_t body_len;
	const char *content_type; /* these three may be NULL */
	const char *retry_after;
	const char *location;
	const char *cache_control;
	const char *detail; /* short reason for logs when err != MRTC_OK */
};

/* Called exactly once per call unless it was cancelled; the call is freed afterwards. */
typedef void (*mrtc_http_done_fn)(void *ctx, const struct mrtc_http_response *resp);

enum mrtc_err mrtc_http_client_create(struct event_base *base,
				      const struct mrtc_http_client_config *config,
				      struct mrtc_http_client **ret_client);

/* Closes every connection (pending calls are dropped without callback) and frees; NULL ok. */
void mrtc_http_client_destroy(struct mrtc_http_client *client);

/* Reloads the trusted CA file for new connections (SIGHUP). */
enum mrtc_err mrtc_http_client_reload_ca(struct mrtc_http_client *client, const char *ca_file);

void mrtc_http_client_get_stats(const struct mrtc_http_client *client,
				struct mrtc_http_client_stats *ret_stats);

/* Calls started and not yet finished or cancelled (shutdown waits for them). */
size_t mrtc_http_client_live_calls(const struct mrtc_http_client *client);

/* Sends @req to @target (both borrowed for the duration of this call only). */
struct mrtc_http_call *mrtc_http_send(struct mrtc_http_client *client,
				      const struct mrtc_http_target *target,
				      const struct mrtc_http_request *req, mrtc_http_done_fn done,
				      void *ctx);

/*
 * Parses @url (http:// or https://, host, optional port, path and query), resolves the host
 * with @dns and sends @req (whose target is ignored: the URL's path is used). With @guard set,
 * every resolved address is checked against the blocked ranges unless in @allow; the
 * connection goes to the first address that passed.
 */
struct mrtc_http_call *mrtc_http_fetch(struct mrtc_http_client *client, struct mrtc_dns *dns,
				       const char *url, const struct mrtc_http_request *req,
				       bool guard, const struct mrtc_cidr *allow, size_t n_allow,
				       mrtc_http_done_fn done, void *ctx);

/* The callback of @call will not be called. Accepts NULL. */
void mrtc_http_call_cancel(struct mrtc_http_call *call);

/* Formats the address of @sa (without port) into @out (INET6_ADDRSTRLEN bytes). */
void mrtc_sockaddr_ntop(const struct sockaddr_storage *sa, char *out, size_t size);

#endif
