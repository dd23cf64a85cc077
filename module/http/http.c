/* SPDX-License-Identifier: Apache-2.0 */
/* Routing, replies and the error-to-status mapping of the HTTP boundary. */
#include "mrtc/http/http.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrtc/core/log.h"
#include "mrtc/http/server.h"
#include "mrtc/base/util.h"

enum mrtc_route_match mrtc_route_find(const struct mrtc_route *routes, size_t n, const char *path,
				      unsigned method, const struct mrtc_route **ret_route)
{
	bool path_known = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(routes[i].path, path) != 0)
			continue;
		path_known = true;
		if (routes[i].methods & method) {
			*ret_route = &routes[i];
			return MRTC_ROUTE_FOUND;
		}
	}
	return path_known ? MRTC_ROUTE_NO_METHOD : MRTC_ROUTE_NO_PATH;
}

const char *mrtc_http_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "?";
}

int mrtc_http_status(enum mrtc_err err, const char **ret_errcode)
{
	const char *code = "M_UNKNOWN";
	int status = 500;
	switch (err) {
	case MRTC_OK:
		status = 200;
		break;
	case MRTC_ERR_NOT_JSON:
		status = 400;
		code = "M_NOT_JSON";
		break;
	case MRTC_ERR_BAD_JSON:
		status = 400;
		code = "M_BAD_JSON";
		break;
	case MRTC_ERR_INVALID_PARAM:
		status = 400;
		code = "M_INVALID_PARAM";
		break;
	case MRTC_ERR_TOO_LARGE:
		status = 413;
		code = "M_TOO_LARGE";
		break;
	case MRTC_ERR_MISSING_TOKEN:
		status = 401;
		code = "M_MISSING_TOKEN";
		break;
	case MRTC_ERR_UNKNOWN_TOKEN:
		status = 401;
		code = "M_UNKNOWN_TOKEN";
		break;
	case MRTC_ERR_FORBIDDEN:
		status = 403;
		code = "M_FORBIDDEN";
		break;
	case MRTC_ERR_AUTH_MALFORMED:
		status = 400;
		code = "M_UNAUTHORIZED";
		break;
	case MRTC_ERR_UNAUTHORIZED:
	case MRTC_ERR_AUTH_MISSING:
	case MRTC_ERR_BAD_SIGNATURE:
	case MRTC_ERR_UNKNOWN_KEY:
	case MRTC_ERR_KEY_EXPIRED:
	case MRTC_ERR_WRONG_DESTINATION:
	case MRTC_ERR_UNSUPPORTED:
		status = 401;
		code = "M_UNAUTHORIZED";
		break;
	case MRTC_ERR_NOT_FOUND:
		status = 404;
		code = "M_UNRECOGNIZED";
		break;
	case MRTC_ERR_METHOD:
		status = 405;
		code = "M_UNRECOGNIZED";
		break;
	case MRTC_ERR_LIMIT_EXCEEDED:
		status = 429;
		code = "M_LIMIT_EXCEEDED";
		break;
	case MRTC_ERR_UPSTREAM:
	case MRTC_ERR_TIMEOUT:
	case MRTC_ERR_DNS:
	case MRTC_ERR_BLOCKED:
	case MRTC_ERR_TLS:
	case MRTC_ERR_CONNECT:
		status = 502;
		break;
	case MRTC_ERR_NOMEM:
	case MRTC_ERR_IO:
	case MRTC_ERR_CONFIG:
	case MRTC_ERR_INTERNAL:
	case MRTC_ERR__COUNT:
		break;
	}
	if (ret_errcode)
		*ret_errcode = code;
	return status;
}

char *mrtc_http_path_of(const char *uri)
{
	size_t n = strcspn(uri, "?#");
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, uri, n);
		p[n] = '\0';
	}
	return p;
}

void mrtc_http_add_cors(struct evkeyvalq *headers)
{
	evhttp_add_header(headers, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(headers, "Access-Control-Allow-Methods",
			  "GET, POST, PUT, DELETE, OPTIONS");
	evhttp_add_header(headers, "Access-Control-Allow-Headers",
			  "X-Requested-With, Content-Type, Authorization");
}

static const char *reason_for(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return status < 400 ? "OK" : "Error";
	}
}

void mrtc_http_reply_raw(struct mrtc_request *r, int status, struct evbuffer *body)
{
	if (!r->req) {
		mrtc_server_request_done(r, status);
		return;
	}
	mrtc_server_request_replying(r);
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(out, "X-Request-Id", r->id);
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (r->cors)
		mrtc_http_add_cors(out);
	evhttp_send_reply(r->req, status, reason_for(status), body);
	mrtc_server_request_done(r, status);
}

void mrtc_http_reply_json_text(struct mrtc_request *r, int status, const char *text, size_t len)
{
	if (text && r->req) {
		/* Straight into the reply's own buffer, which evhttp sends when given no other. */
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
				  "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(r->req), text, len);
	}
	mrtc_http_reply_raw(r, status, NULL);
}

void mrtc_http_reply_json(struct mrtc_request *r, int status, const struct json_object *body)
{
	const char *text = body && r->req
			       ? json_object_to_json_string_ext((struct json_object *)body,
								JSON_C_TO_STRING_PLAIN |
								    JSON_C_TO_STRING_NOSLASHESCAPE)
			       : NULL;
	mrtc_http_reply_json_text(r, status, text, text ? strlen(text) : 0);
}

void *mrtc_request_state(struct mrtc_request *r, size_t size,
			 const struct mrtc_request_state_ops *ops)
{
	assert(!r->state);
	r->state = mrtc_server_block_alloc(r->server, size);
	if (r->state) {
		memset(r->state, 0, size);
		r->state_size = size;
		r->state_ops = ops;
	}
	return r->state;
}

void mrtc_request_note(struct mrtc_request *r, const char *message, const char *detail)
{
	r->message = message;
	r->detail = detail;
}

void mrtc_request_cancel(struct mrtc_request *r)
{
	if (r->state && r->state_ops && r->state_ops->cancel)
		r->state_ops->cancel(r->state);
}

/* @text for a log line: control characters and quotes replaced, at most @max characters. */
static const char *printable(char *out, size_t size, const char *text, size_t max)
{
	size_t n = 0;
	for (; text[n] && n < max && n + 4 < size; n++)
		out[n] = (unsigned char)text[n] < 0x20 || text[n] == 0x7f || text[n] == '"'
			     ? '?'
			     : text[n];
	if (text[n]) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

void mrtc_request_end(struct mrtc_request *r, int status)
{
	uint64_t elapsed = mrtc_monotonic_ms() - r->start_ms;
	int level = status >= 500 ? LOG_WARNING : LOG_INFO;
	if (!r->req) {
		mrtc_log_refusal(LOG_INFO, "http", r->id, "client went away after %llums",
				 (unsigned long long)elapsed);
	} else if (level <= mrtc_log_level()) { /* else not logged: nothing to format */
		char path[160], message[200], detail[MRTC_REQUEST_DETAIL_MAX];
		const char *uri = evhttp_request_get_uri(r->req);
		char *raw = uri ? mrtc_http_path_of(uri) : NULL;
		/* Only the path is logged: query strings can carry access tokens. */
		mrtc_quote(path, sizeof(path), raw, 120);
		free(raw);
		/* Any client can cause 4xx answers at will: their lines are rate-limited. */
		(status >= 400 && status < 500 ? mrtc_log_refusal : mrtc_log)(
		    level, "http", r->id, "%s %s %d %llums%s%s%s%s%s",
		    mrtc_http_method_name(evhttp_request_get_command(r->req)), path, status,
		    (unsigned long long)elapsed, r->message ? ": " : "",
		    r->message ? printable(message, sizeof(message), r->message, 160) : "",
		    r->detail ? " (" : "",
		    r->detail ? printable(detail, sizeof(detail), r->detail, 280) : "",
		    r->detail ? ")" : "");
	}
	if (r->state && r->state_ops && r->state_ops->dispose)
		r->state_ops->dispose(r->state);
	mrtc_server_block_free(r->server, r->state, r->state_size);
	r->state = NULL;
}

void mrtc_request_fail(struct mrtc_request *r, enum mrtc_err err, const char *message,
		       const char *detail)
{
	mrtc_request_note(r, message, detail);
	const char *code;
	int status = mrtc_http_status(err, &code);
	struct json_object *body = json_object_new_object();
	if (body) {
		json_object_object_add(body, "errcode", json_object_new_string(code));
		json_object_object_add(body, "error", json_object_new_string(message));
	}
	mrtc_http_reply_json(r, status, body);
	json_object_put(body);
}

void mrtc_http_reply_error(struct mrtc_request *r, enum mrtc_err err, const char *message)
{
	mrtc_request_fail(r, err, message, NULL);
}

void mrtc_http_reply_limited(struct mrtc_request *r, uint64_t retry_after_ms)
{
	struct json_object *body = json_object_new_object();
	if (body) {
		json_object_object_add(body, "errcode", json_object_new_string("M_LIMIT_EXCEEDED"));
		json_object_object_add(body, "error", json_object_new_string("Too many requests"));
		json_object_object_add(body, "retry_after_ms",
				       json_object_new_int64((int64_t)retry_after_ms));
	}
	if (!r->message)
		mrtc_request_note(r, "Too many requests", NULL);
	if (r->req) {
		char secs[24]; /* any 64-bit number fits */
		if (mrtc_format(secs, sizeof(secs), "%llu",
				(unsigned long long)((retry_after_ms + 999) / 1000)))
			evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After",
					  secs);
	}
	mrtc_http_reply_json(r, 429, body);
	json_object_put(body);
}

const char *mrtc_http_bearer(const struct mrtc_request *r)
{
	const char *h = r->req ? r->authorization : NULL;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

enum mrtc_err mrtc_http_body(struct mrtc_request *r, const char **ret_body, size_t *ret_len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	if (len > MRTC_HTTP_BODY_MAX)
		return MRTC_ERR_TOO_LARGE;
	const char *p = len ? (const char *)evbuffer_pullup(in, -1) : "";
	if (!p)
		return MRTC_ERR_NOMEM;
	*ret_body = p;
	*ret_len = len;
	return MRTC_OK;
}
