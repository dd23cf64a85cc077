/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One request and its response on a pooled or new connection: the call's deadline, the
 * classification of failures (timeout, TLS, connect, size, malformed), one retry on a fresh
 * connection when a reused one was closed under us, and the public send and cancel. Everything
 * a caller passes is copied before mrtc_http_send() returns.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "httpclient_int.h"
#include "mrtc/base/util.h"

void mrtc_http_call_free(struct mrtc_http_call *call)
{
	call->client->live_calls--;
	mrtc_http_fetch_unlist(call);
	if (call->timer)
		event_free(call->timer);
	free(call->f_method);
	free(call->f_target);
	free(call->f_ctype);
	free(call->f_auth);
	free(call->f_body);
	free(call->f_host);
	free(call->f_host_header);
	free(call->f_allow);
	free(call);
}

static void deliver(struct mrtc_http_call *call, const struct mrtc_http_response *resp)
{
	if (!call->cancelled)
		call->done(call->ctx, resp);
	mrtc_http_call_free(call);
}

void mrtc_http_call_fail(struct mrtc_http_call *call, enum mrtc_err err, const char *detail)
{
	struct mrtc_http_response r = { .err = err, .detail = detail };
	call->client->stats.failures++;
	deliver(call, &r);
}

/* Delivers @err from the loop (the caller may not hold the call handle yet). */
static void fail_later(struct mrtc_http_call *call, enum mrtc_err err, const char *detail)
{
	call->pending = err;
	call->pending_detail = detail;
	event_active(call->timer, EV_TIMEOUT, 0);
}

static enum mrtc_err classify(struct mrtc_http_call *call, const char **ret_detail)
{
	struct conn *k = call->conn;
	if (call->have_error && call->error == EVREQ_HTTP_TIMEOUT) {
		*ret_detail = "timed out";
		return MRTC_ERR_TIMEOUT;
	}
	if (call->have_error && call->error == EVREQ_HTTP_DATA_TOO_LONG) {
		*ret_detail = "response too large";
		return MRTC_ERR_TOO_LARGE;
	}
	if (call->have_error && call->error == EVREQ_HTTP_INVALID_HEADER) {
		*ret_detail = "malformed response";
		return MRTC_ERR_UPSTREAM;
	}
	if (k && k->bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(k->bev);
		long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		unsigned long e = bufferevent_get_openssl_error(k->bev);
		if (vr != X509_V_OK) {
			*ret_detail = X509_verify_cert_error_string(vr);
			return MRTC_ERR_TLS;
		}
		if (e) {
			*ret_detail =
			    ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "TLS error";
			return MRTC_ERR_TLS;
		}
		if (ssl && !SSL_in_before(ssl) && !SSL_is_init_finished(ssl)) {
			*ret_detail = "TLS handshake failed";
			return MRTC_ERR_TLS;
		}
	}
	*ret_detail = "connection failed or closed";
	return MRTC_ERR_CONNECT;
}

static void on_error(enum evhttp_request_error error, void *arg)
{
	struct mrtc_http_call *call = arg;
	call->have_error = true;
	call->error = error;
}

void mrtc_http_call_start(struct mrtc_http_call *call, const struct mrtc_http_target *t,
			  const struct mrtc_http_request *rq, bool fresh);

/*
 * A request that failed on a pooled connection without any response (the server closed the
 * idle connection as we reused it) is sent once more on a new connection, as curl and Go's
 * net/http do. Timeouts, oversized and malformed responses are not retried.
 */
static bool retry_on_fresh_connection(struct mrtc_http_call *call)
{
	if (!call->reused || call->retried || call->cancelled ||
	    (call->have_error && call->error != EVREQ_HTTP_EOF))
		return false;
	call->retried = true;
	call->have_error = false;
	call->client->stats.retried++;
	struct mrtc_http_target t = {
		.addr = call->r_addr,
		.tls = call->f_tls,
		.tls_name = call->f_ip_literal ? NULL : call->f_host,
		.host_header = call->f_host_header,
	};
	mrtc_http_call_start(call, &t, &call->freq, true);
	return true;
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct mrtc_http_call *call = arg;
	struct conn *k = call->conn;
	call->req = NULL;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	if (!req || status == 0) {
		const char *detail;
		enum mrtc_err err = classify(call, &detail);
		if (k && !k->dead)
			mrtc_http_pool_discard(k);
		if (!call->in_start && retry_on_fresh_connection(call))
			return;
		if (call->in_start)
			fail_later(call, err, detail);
		else
			mrtc_http_call_fail(call, err, detail);
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	if (!body) {
		mrtc_http_pool_discard(k);
		mrtc_http_call_fail(call, MRTC_ERR_NOMEM, "out of memory");
		return;
	}
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct mrtc_http_response r = {
		.err = MRTC_OK,
		.status = status,
		.body = body,
		.body_len = len,
		.content_type = evhttp_find_header(h, "Content-Type"),
		.retry_after = evhttp_find_header(h, "Retry-After"),
		.location = evhttp_find_header(h, "Location"),
		.cache_control = evhttp_find_header(h, "Cache-Control"),
	};
	/* Back to the pool while the response is delivered, unless it was closed. */
	if (!k->dead)
		mrtc_http_pool_release(k);
	deliver(call, &r);
	free(body);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_http_call *call = arg;
	if (call->pending != MRTC_OK) {
		mrtc_http_call_fail(call, call->pending, call->pending_detail);
		return;
	}
	if (call->dnsq) {
		mrtc_dns_cancel(call->dnsq);
		call->dnsq = NULL;
		mrtc_http_call_fail(call, MRTC_ERR_TIMEOUT, "timed out resolving");
		return;
	}
	struct conn *k = call->conn;
	if (call->req) {
		/* Cancelling fails the connection: no further callback for this request. */
		evhttp_request_set_error_cb(call->req, NULL);
		evhttp_cancel_request(call->req);
		call->req = NULL;
	}
	if (k && !k->dead)
		mrtc_http_pool_discard(k);
	mrtc_http_call_fail(call, MRTC_ERR_TIMEOUT, "timed out");
}

static enum evhttp_cmd_type method_of(const char *m)
{
	if (strcmp(m, "POST") == 0)
		return EVHTTP_REQ_POST;
	if (strcmp(m, "PUT") == 0)
		return EVHTTP_REQ_PUT;
	if (strcmp(m, "DELETE") == 0)
		return EVHTTP_REQ_DELETE;
	return EVHTTP_REQ_GET;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

bool mrtc_http_call_copy_request(struct mrtc_http_call *call, const struct mrtc_http_request *rq)
{
	if (!call->f_target && rq->target)
		call->f_target = strdup(rq->target);
	call->f_method = strdup(rq->method);
	call->f_ctype = dup_or_null(rq->content_type);
	call->f_auth = dup_or_null(rq->authorization);
	call->f_body = rq->body_len ? malloc(rq->body_len) : NULL;
	if (call->f_body)
		memcpy(call->f_body, rq->body, rq->body_len);
	call->freq = *rq;
	call->freq.method = call->f_method;
	call->freq.target = call->f_target;
	call->freq.content_type = call->f_ctype;
	call->freq.authorization = call->f_auth;
	call->freq.body = call->f_body;
	return call->f_method && call->f_target && (!rq->content_type || call->f_ctype) &&
	       (!rq->authorization || call->f_auth) && (!rq->body_len || call->f_body);
}

/* Copies what a retry needs (fetches already hold their copy); false on OOM. */
static bool keep_for_retry(struct mrtc_http_call *call, const struct mrtc_http_target *t,
			   const struct mrtc_http_request *rq)
{
	call->r_addr = t->addr;
	if (call->f_method)
		return true;
	call->f_host = dup_or_null(t->tls_name);
	call->f_host_header = dup_or_null(t->host_header);
	call->f_tls = t->tls;
	call->f_ip_literal = t->tls_name == NULL;
	return mrtc_http_call_copy_request(call, rq) && (!t->tls_name || call->f_host) &&
	       (!t->host_header || call->f_host_header);
}

/* A call that goes out on a pooled connection keeps a copy of itself for one retry. */
void mrtc_http_call_start(struct mrtc_http_call *call, const struct mrtc_http_target *t,
			  const struct mrtc_http_request *rq, bool fresh)
{
	struct mrtc_http_client *c = call->client;
	char ip[INET6_ADDRSTRLEN];
	mrtc_sockaddr_ntop(&t->addr, ip, sizeof(ip));
	char key[DEST_KEY_MAX];
	/* A key that does not fit: no pooling for this call (a fresh connection, not kept). */
	struct dest *d =
	    mrtc_format(key, sizeof(key), "%d|%s|%s|%s|%u", t->tls, t->tls_name ? t->tls_name : "",
			t->host_header ? t->host_header : "", ip, mrtc_http_port_of(&t->addr))
		? mrtc_http_pool_dest(c, key, true)
		: NULL;
	struct conn *k = d && !fresh ? d->idle : NULL;
	if (k && !call->retried && keep_for_retry(call, t, rq)) {
		mrtc_http_pool_unidle(k);
		c->stats.reused++;
		call->reused = true;
	} else {
		k = NULL;
		if (!mrtc_http_pool_make_room(c)) {
			c->stats.refused++;
			fail_later(call, MRTC_ERR_LIMIT_EXCEEDED, "too many outbound connections");
			return;
		}
		k = mrtc_http_pool_open(c, d, t, ip);
	}
	if (!k) {
		fail_later(call, MRTC_ERR_NOMEM, "cannot open connection");
		return;
	}
	call->conn = k;
	/* libevent's own timeouts sit behind the call's deadline, as a backstop. */
	struct timeval io = { .tv_sec = (time_t)(rq->timeout_ms / 1000 + 1) };
	evhttp_connection_set_timeout_tv(k->evcon, &io);
	evhttp_connection_set_max_body_size(k->evcon, (ev_ssize_t)rq->max_body);
	struct evhttp_request *req = evhttp_request_new(on_done, call);
	if (!req) {
		mrtc_http_pool_discard(k);
		fail_later(call, MRTC_ERR_NOMEM, "out of memory");
		return;
	}
	evhttp_request_set_error_cb(req, on_error);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", t->host_header ? t->host_header : ip);
	evhttp_add_header(h, "User-Agent", USER_AGENT);
	if (rq->content_type)
		evhttp_add_header(h, "Content-Type", rq->content_type);
	if (rq->authorization)
		evhttp_add_header(h, "Authorization", rq->authorization);
	if (rq->body_len)
		evbuffer_add(evhttp_request_get_output_buffer(req), rq->body, rq->body_len);
	call->req = req;
	c->stats.requests++;
	/* A local connect failure can complete the request inside evhttp_make_request(). */
	call->in_start = true;
	int rc = evhttp_make_request(k->evcon, req, method_of(rq->method), rq->target);
	call->in_start = false;
	if (rc == 0 && !k->nodelay) {
		/*
		 * The socket exists once the connect has started. TLS writes headers and body as
		 * separate records: without TCP_NODELAY the second waits for the peer's delayed
		 * ACK (40 ms on Linux).
		 */
		evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(k->evcon));
		int one = 1;
		if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
			k->nodelay = true;
	}
	if (call->pending != MRTC_OK) {
		call->req = NULL; /* completed and freed by libevent */
	} else if (rc != 0) {
		call->req = NULL;
		if (!k->dead)
			mrtc_http_pool_discard(k);
		fail_later(call, MRTC_ERR_CONNECT, "cannot send request");
	}
}

struct mrtc_http_call *mrtc_http_call_new(struct mrtc_http_client *c, uint64_t timeout_ms,
					  mrtc_http_done_fn done, void *ctx)
{
	struct mrtc_http_call *call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	call->client = c;
	call->done = done;
	call->ctx = ctx;
	c->live_calls++;
	call->timer = evtimer_new(c->base, on_timeout, call);
	struct timeval tv = { .tv_sec = (time_t)(timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
	if (!call->timer || evtimer_add(call->timer, &tv) != 0) {
		mrtc_http_call_free(call);
		return NULL;
	}
	return call;
}

struct mrtc_http_call *mrtc_http_send(struct mrtc_http_client *c,
				      const struct mrtc_http_target *target,
				      const struct mrtc_http_request *req, mrtc_http_done_fn done,
				      void *ctx)
{
	struct mrtc_http_call *call = mrtc_http_call_new(c, req->timeout_ms, done, ctx);
	if (!call)
		return NULL;
	mrtc_http_call_start(call, target, req, false);
	return call;
}

void mrtc_http_call_cancel(struct mrtc_http_call *call)
{
	if (!call)
		return;
	call->cancelled = true;
	if (call->pending != MRTC_OK) {
		mrtc_http_call_free(call);
		return;
	}
	if (call->dnsq) {
		mrtc_dns_cancel(call->dnsq);
		call->dnsq = NULL;
		mrtc_http_call_free(call);
		return;
	}
	if (call->req) {
		evhttp_request_set_error_cb(call->req, NULL);
		evhttp_cancel_request(call->req);
		call->req = NULL;
		if (call->conn && !call->conn->dead)
			mrtc_http_pool_discard(call->conn);
		mrtc_http_call_free(call);
	}
	/* Otherwise the call is finishing right now and frees itself without a callback. */
}
