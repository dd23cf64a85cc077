/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Requests to other homeservers: resolve the server name (PROTOCOL §5.5), look up the host,
 * refuse blocked addresses, connect over verified TLS, and (optionally) sign with X-Matrix,
 * the signed uri being exactly the request target sent.
 */
#ifndef MRTC_FEDCLIENT_H
#define MRTC_FEDCLIENT_H

#include <json-c/json.h>

#include "mrtc/net/httpclient.h"
#include "mrtc/net/resolver.h"
#include "mrtc/matrix/signing.h"

struct mrtc_fedclient;
struct mrtc_fed_call;

struct mrtc_fedclient_config {
	struct mrtc_dns *dns;
	struct mrtc_http_client *http;
	struct mrtc_resolver *resolver;
	const struct mrtc_signing_key *key; /* NULL: this client cannot sign */
	const char *origin;		    /* our server name, for signing */
	const struct mrtc_cidr *allow;	    /* outbound guard exemptions */
	size_t n_allow;
};

struct mrtc_fedclient_stats {
	uint64_t requests, signed_requests, blocked, failures;
};

enum mrtc_err mrtc_fedclient_create(struct event_base *base,
				    const struct mrtc_fedclient_config *config,
				    struct mrtc_fedclient **ret_client);
void mrtc_fedclient_destroy(struct mrtc_fedclient *client);
void mrtc_fedclient_get_stats(const struct mrtc_fedclient *client,
			      struct mrtc_fedclient_stats *ret_stats);

/*
 * Sends @method @target to @destination within @timeout_ms (resolution included). @content
 * (borrowed; NULL for no body) is sent as canonical JSON. With @sign, an X-Matrix
 * Authorization header signed by our key is added. The callback gets the response as
 * mrtc_http_send() gives it; resolution failures come as MRTC_ERR_DNS/TIMEOUT, blocked
 * addresses as MRTC_ERR_BLOCKED. NULL if the call could not start (bad name, OOM).
 */
struct mrtc_fed_call *mrtc_fed_request(struct mrtc_fedclient *client, const char *destination,
				       const char *method, const char *target,
				       const struct json_object *content, bool sign,
				       uint64_t timeout_ms, size_t max_body, mrtc_http_done_fn done,
				       void *ctx);
void mrtc_fed_call_cancel(struct mrtc_fed_call *call);

#endif
