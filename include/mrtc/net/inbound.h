/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inbound X-Matrix authentication as one asynchronous step, for every federation endpoint we
 * serve: collects the request's Authorization headers, parses the first X-Matrix one, checks
 * its destination, makes sure the origin's signing key is in the keyring (fetching it, under
 * the keyring's global and per-peer caps, when it is not), then verifies the signature on the
 * verifier's threads. The answer is the authenticated origin, or an error with the Matrix
 * message to send.
 *
 * The project's asynchronous convention: mrtc_inbound_start() returns a handle or NULL (NULL:
 * no callback, ever); the callback never runs inside the start call and runs exactly once
 * otherwise; mrtc_inbound_cancel() stops the key fetch (when nobody else waits for it) and the
 * verification, and no callback follows. The handle is freed once the callback returns.
 */
#ifndef MRTC_INBOUND_H
#define MRTC_INBOUND_H

#include <event2/event.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "mrtc/base/err.h"
#include "mrtc/net/keyring.h"
#include "mrtc/net/verifier.h"

/* Authorization headers looked at per request; more fail with MRTC_ERR_AUTH_MALFORMED. */
#define MRTC_INBOUND_AUTH_MAX 8

struct evkeyvalq;
struct mrtc_inbound;

/* What the step runs on, borrowed for the step's lifetime. */
struct mrtc_inbound_env {
	struct event_base *base;
	struct mrtc_keyring *keyring;
	struct mrtc_verifier *verifier;
};

/* The request to authenticate; everything is copied (the body referenced) by start. */
struct mrtc_inbound_request {
	const char *method;		 /* from the request line, e.g. "POST" */
	const char *uri;		 /* request target exactly as received */
	const struct evkeyvalq *headers; /* the request's headers, all of them */
	struct json_object *body;	 /* parsed JSON body, or NULL when there is none */
	const char *server_name;	 /* ours: the destination the request must name */
	const char *peer; /* client address for the per-peer key-fetch cap, or NULL */
};

struct mrtc_inbound_result {
	/* MRTC_OK: @origin signed the request. Otherwise MRTC_ERR_AUTH_MISSING,
	 * MRTC_ERR_AUTH_MALFORMED, MRTC_ERR_WRONG_DESTINATION, MRTC_ERR_UNKNOWN_KEY,
	 * MRTC_ERR_BAD_SIGNATURE, MRTC_ERR_LIMIT_EXCEEDED (too many key fetches in flight: retry
	 * after @retry_after_ms) or MRTC_ERR_NOMEM. */
	enum mrtc_err err;
	/* The verified origin; on failure the origin the header claimed, "" before one parsed.
	 * Borrowed for the callback. */
	const char *origin;
	const char *message;	 /* on failure: the Matrix error message for the reply */
	bool bad_signature;	 /* a signature check failed (for the metrics of bad signatures) */
	uint64_t retry_after_ms; /* with MRTC_ERR_LIMIT_EXCEEDED */
};

typedef void (*mrtc_inbound_fn)(void *ctx, const struct mrtc_inbound_result *result);

/* Starts authenticating @req. NULL when out of memory (no callback then). */
struct mrtc_inbound *mrtc_inbound_start(const struct mrtc_inbound_env *env,
					const struct mrtc_inbound_request *req, mrtc_inbound_fn cb,
					void *ctx);

/* No callback follows and the work stops; the handle is freed. Accepts NULL; not to be called
 * from or after the step's own callback. */
void mrtc_inbound_cancel(struct mrtc_inbound *step);

#endif
