/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP boundary: routing, the per-request context, JSON and Matrix error replies with CORS,
 * request-body limits. This is the only place an enum mrtc_err becomes a status and errcode.
 */
#ifndef MRTC_HTTP_H
#define MRTC_HTTP_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/base/err.h"

#define MRTC_HTTP_BODY_MAX (64 * 1024)
#define MRTC_HTTP_HEADERS_MAX (16 * 1024)
#define MRTC_REQUEST_ID_LEN 16

struct mrtc_request;
struct mrtc_server;
struct mrtc_services;

typedef void (*mrtc_handler_fn)(struct mrtc_request *r);

struct mrtc_route {
	const char *path; /* exact, undecoded request path */
	unsigned methods; /* bitmask of enum evhttp_cmd_type */
	mrtc_handler_fn handler;
	const char *name; /* short endpoint name for logs and metrics */
};

/*
 * State a handler keeps for as long as its request (nginx's ngx_http_cleanup_add, h2o's
 * h2o_mem_alloc_shared): the request owns it and frees it after the one finishing call (any
 * reply function or mrtc_request_fail()), once the reply is sent and logged, so a message built
 * in the state is still valid while it is sent. When the client hangs up first, @cancel runs
 * (stop every outbound call: no callback may reach the state afterwards), then @dispose.
 */
struct mrtc_request_state_ops {
	void (*cancel)(void *state);  /* may be NULL */
	void (*dispose)(void *state); /* frees what the state owns, not the state; may be NULL */
};

#define MRTC_REQUEST_DETAIL_MAX 320

struct mrtc_request {
	struct evhttp_request *req; /* NULL once the client has gone */
	struct mrtc_server *server;
	struct mrtc_services *services;
	const struct mrtc_route *route;
	char id[MRTC_REQUEST_ID_LEN + 1];
	uint64_t start_ms;
	bool cors;
	void *state; /* mrtc_request_state(), owned by the request */
	size_t state_size;
	const struct mrtc_request_state_ops *state_ops;
	/* For the access line of the finishing call: what the client was told and why (borrowed
	 * from the caller of the finishing call; NULL when none). */
	const char *message;
	const char *detail;
	void *conn; /* the server's per-connection state while the handler runs */
	/* The first Authorization header, found by the server's one pass over the headers before
	 * the handler runs (borrowed from the request's headers; NULL when none). */
	const char *authorization;
};

/*
 * Zeroed state of @size bytes owned by @r, with @ops (static, borrowed; may be NULL), or NULL
 * without memory (then nothing is registered: the handler answers with an error). One per
 * request. Borrowed: valid until the finishing call has returned, or until @ops->cancel.
 */
void *mrtc_request_state(struct mrtc_request *r, size_t size,
			 const struct mrtc_request_state_ops *ops);

/*
 * The finishing call for a failure: a Matrix error for @err with @message (sent to the client
 * and logged), and @detail (may be NULL: what went wrong underneath, for the log only; it
 * must hold no secret). Logs the one access line of the request, frees its state and @r.
 */
void mrtc_request_fail(struct mrtc_request *r, enum mrtc_err err, const char *message,
		       const char *detail);

/*
 * Sets what the access line of the next finishing call says about a failure answered with a
 * reply function instead of mrtc_request_fail() (a refusal passed on as the homeserver sent
 * it): both borrowed until that call, which must follow.
 */
void mrtc_request_note(struct mrtc_request *r, const char *message, const char *detail);

/*
 * For the server: the client went away before the finishing call. Runs the state's cancel.
 */
void mrtc_request_cancel(struct mrtc_request *r);

/*
 * For the server, inside the finishing call: logs the access line for @status and frees the
 * state (not @r).
 */
void mrtc_request_end(struct mrtc_request *r, int status);

enum mrtc_route_match {
	MRTC_ROUTE_FOUND,
	MRTC_ROUTE_NO_PATH,
	MRTC_ROUTE_NO_METHOD,
};

/*
 * Finds the route for (@path, @method) among @n @routes. *ret_route is written only for
 * MRTC_ROUTE_FOUND.
 */
enum mrtc_route_match mrtc_route_find(const struct mrtc_route *routes, size_t n, const char *path,
				      unsigned method, const struct mrtc_route **ret_route);

/* "GET", "POST", ... for @method. */
const char *mrtc_http_method_name(enum evhttp_cmd_type method);

/* HTTP status and Matrix errcode for @err. */
int mrtc_http_status(enum mrtc_err err, const char **ret_errcode);

/* The undecoded path of @uri (a request target): up to '?' or '#'. Caller frees. */
char *mrtc_http_path_of(const char *uri);

/*
 * Adds the CORS headers PROTOCOL §2 requires to @headers.
 */
void mrtc_http_add_cors(struct evkeyvalq *headers);

/*
 * Sends @status with @body (borrowed; NULL sends no body) as application/json, plus the
 * request id and (for CORS-enabled listeners) the CORS headers. Completes the request: @r is
 * freed and must not be used afterwards.
 */
void mrtc_http_reply_json(struct mrtc_request *r, int status, const struct json_object *body);
/* Answers with @len bytes of JSON @text as they are (the hot path writes its own). */
void mrtc_http_reply_json_text(struct mrtc_request *r, int status, const char *text, size_t len);

/*
 * Sends @status with @body (borrowed; may be NULL) as is: the handler has set Content-Type.
 * Adds the request id (and CORS where enabled) and frees @r.
 */
void mrtc_http_reply_raw(struct mrtc_request *r, int status, struct evbuffer *body);

/* mrtc_request_fail() without a detail. */
void mrtc_http_reply_error(struct mrtc_request *r, enum mrtc_err err, const char *message);

/* 429 M_LIMIT_EXCEEDED with Retry-After (seconds, rounded up) and retry_after_ms. */
void mrtc_http_reply_limited(struct mrtc_request *r, uint64_t retry_after_ms);

/* The token of an "Authorization: Bearer <token>" header (borrowed), or NULL. */
const char *mrtc_http_bearer(const struct mrtc_request *r);

/*
 * Borrowed view of the request body. MRTC_ERR_TOO_LARGE over MRTC_HTTP_BODY_MAX.
 * Valid until the request completes.
 */
enum mrtc_err mrtc_http_body(struct mrtc_request *r, const char **ret_body, size_t *ret_len);

#endif
