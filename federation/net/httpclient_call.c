/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pooled outbound HTTP(S) on evhttp connections. Each connection carries one request at a
 * time and is never reconnected: a connection that closes or fails is discarded (libevent 2.1
 * cannot reuse an OpenSSL bufferevent after a disconnect), and an idle one goes back to its
 * destination's pool. Everything a caller passes is copied before mrtc_http_send() returns.
 */
#include "mrtc/net/httpclient.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/servername.h"
#include "mrtc/base/util.h"

#define DEST_KEY_MAX 600
#define USER_AGENT "mrtc-transport"

struct dest;

struct conn {
	struct mrtc_http_client *client;
	struct dest *dest; /* NULL once its destination was evicted */
	struct evhttp_connection *evcon;
	struct bufferevent *bev; /* the TLS bufferevent, or NULL */
	struct event *free_ev;
	bool dead;
	bool idle;
	bool nodelay;
	struct conn *idle_next;
	struct conn *prev, *next; /* every open connection */
};

struct dest {
	char key[DEST_KEY_MAX];
	struct conn *idle;
	size_t n_idle;
	uint64_t used; /* for eviction: the least recently used goes first */
	struct dest *next;
};

struct mrtc_http_client {
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	size_t max_idle;
	size_t max_dests;
	size_t max_open;
	size_t n_dests;
	uint64_t tick;
	struct dest *dests;
	struct conn *conns;
	struct mrtc_http_call *fetches; /* fetches waiting for DNS, for destroy */
	struct mrtc_http_client_stats stats;
	size_t live_calls;
};

struct mrtc_http_call {
	struct mrtc_http_client *client;
	struct conn *conn;
	struct evhttp_request *req;
	struct event *timer;
	mrtc_http_done_fn done;
	void *ctx;
	bool cancelled;
	bool in_start;	       /* inside start(): failures are parked, not delivered */
	enum mrtc_err pending; /* a parked failure, delivered from the timer event */
	const char *pending_detail;
	bool have_error;
	enum evhttp_request_error error;
	/* fetch: what is needed once DNS answers */
	struct mrtc_dns_query *dnsq;
	struct mrtc_http_call *fetch_next, *fetch_prev;
	bool in_fetch_list;
	struct mrtc_http_request freq;
	char *f_method, *f_target, *f_ctype, *f_auth, *f_body, *f_host, *f_host_header;
	bool f_tls, f_guard, f_ip_literal;
	struct mrtc_cidr *f_allow;
	size_t f_n_allow;
	/* a request sent on a pooled connection is kept (in f_*, freq) to be retried once */
	bool reused, retried;
	struct sockaddr_storage r_addr;
};

/* ---- SSL context ---- */

static SSL_CTX *make_ssl_ctx(const char *ca_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1 ||
	    (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

enum mrtc_err mrtc_http_client_create(struct event_base *base,
				      const struct mrtc_http_client_config *config,
				      struct mrtc_http_client **ret_client)
{
	struct mrtc_http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return MRTC_ERR_NOMEM;
	c->base = base;
	c->max_idle = config->max_idle_per_dest ? config->max_idle_per_dest : 32;
	c->max_dests = config->max_dests ? config->max_dests : 256;
	c->max_open = config->max_open;
	c->ssl_ctx = make_ssl_ctx(config->ca_file);
	if (!c->ssl_ctx) {
		free(c);
		return MRTC_ERR_TLS;
	}
	*ret_client = c;
	return MRTC_OK;
}

enum mrtc_err mrtc_http_client_reload_ca(struct mrtc_http_client *c, const char *ca_file)
{
	SSL_CTX *ctx = make_ssl_ctx(ca_file);
	if (!ctx)
		return MRTC_ERR_TLS;
	SSL_CTX_free(c->ssl_ctx); /* connections keep their own reference */
	c->ssl_ctx = ctx;
	return MRTC_OK;
}

size_t mrtc_http_client_live_calls(const struct mrtc_http_client *c)
{
	return c->live_calls;
}

void mrtc_http_client_get_stats(const struct mrtc_http_client *c,
				struct mrtc_http_client_stats *ret_stats)
{
	*ret_stats = c->stats;
}

/* ---- connections ---- */

static void dest_remove_idle(struct conn *k)
{
	struct dest *d = k->dest;
	if (!k->idle || !d)
		return;
	for (struct conn **p = &d->idle; *p; p = &(*p)->idle_next) {
		if (*p == k) {
			*p = k->idle_next;
			d->n_idle--;
			break;
		}
	}
	k->idle = false;
	k->idle_next = NULL;
}

static void conn_free_now(struct conn *k)
{
	struct mrtc_http_client *c = k->client;
	dest_remove_idle(k);
	if (k->prev)
		k->prev->next = k->next;
	else
		c->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	if (k->evcon) {
		evhttp_connection_set_closecb(k->evcon, NULL, NULL);
		evhttp_connection_free(k->evcon); /* frees the bufferevent and the SSL */
	}
	if (k->free_ev)
		event_free(k->free_ev);
	c->stats.open--;
	free(k);
}

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_free_now(arg);
}

/* Frees @k from the loop: never from inside one of its own callbacks. */
static void conn_discard(struct conn *k)
{
	k->dead = true;
	dest_remove_idle(k);
	event_active(k->free_ev, 0, 0);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct conn *k = arg;
	if (!k->dead)
		conn_discard(k);
}

static struct dest *dest_find(struct mrtc_http_client *c, const char *key, bool create)
{
	struct dest *lru = NULL;
	for (struct dest *d = c->dests; d; d = d->next) {
		if (strcmp(d->key, key) == 0) {
			d->used = ++c->tick;
			return d;
		}
		if (!lru || d->used < lru->used)
			lru = d;
	}
	if (!create)
		return NULL;
	if (c->n_dests >= c->max_dests && lru) {
		/* Evict the least recently used destination and its idle connections. */
		while (lru->idle)
			conn_discard(lru->idle);
		for (struct conn *k = c->conns; k; k = k->next)
			if (k->dest == lru)
				k->dest = NULL;
		for (struct dest **p = &c->dests; *p; p = &(*p)->next) {
			if (*p == lru) {
				*p = lru->next;
				break;
			}
		}
		free(lru);
		c->n_dests--;
	}
	struct dest *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	mrtc_copy(d->key, sizeof(d->key), key); /* same size as the caller's: fits */
	d->used = ++c->tick;
	d->next = c->dests;
	c->dests = d;
	c->n_dests++;
	return d;
}

void mrtc_sockaddr_ntop(const struct sockaddr_storage *sa, char *out, size_t size)
{
	const void *a =
	    sa->ss_family == AF_INET
		? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
		: (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (!inet_ntop(sa->ss_family, a, out, (socklen_t)size) && size)
		out[0] = '\0';
}

static uint16_t port_of(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

static struct conn *conn_open(struct mrtc_http_client *c, struct dest *d,
			      const struct mrtc_http_target *t, const char *ip)
{
	struct conn *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->client = c;
	k->dest = d;
	k->free_ev = event_new(c->base, -1, 0, conn_free_cb, k);
	SSL *ssl = NULL;
	if (!k->free_ev)
		goto fail;
	if (t->tls) {
		ssl = SSL_new(c->ssl_ctx);
		if (!ssl)
			goto fail;
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		if (t->tls_name) {
			X509_VERIFY_PARAM_set_hostflags(param,
							X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (X509_VERIFY_PARAM_set1_host(param, t->tls_name, 0) != 1 ||
			    SSL_set_tlsext_host_name(ssl, t->tls_name) != 1)
				goto fail;
		} else if (X509_VERIFY_PARAM_set1_ip_asc(param, ip) != 1) {
			goto fail;
		}
		k->bev =
		    bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!k->bev)
			goto fail;
		ssl = NULL; /* owned by the bufferevent */
		bufferevent_openssl_set_allow_dirty_shutdown(k->bev, 1);
	}
	k->evcon =
	    evhttp_connection_base_bufferevent_new(c->base, NULL, k->bev, ip, port_of(&t->addr));
	if (!k->evcon)
		goto fail;
	evhttp_connection_set_retries(k->evcon, 0);
	evhttp_connection_set_closecb(k->evcon, conn_closed, k);
	k->next = c->conns;
	if (c->conns)
		c->conns->prev = k;
	c->conns = k;
	c->stats.open++;
	c->stats.connections++;
	if (t->tls)
		c->stats.tls_handshakes++;
	return k;
fail:
	if (ssl)
		SSL_free(ssl);
	if (k->bev && !k->evcon)
		bufferevent_free(k->bev);
	if (k->free_ev)
		event_free(k->free_ev);
	free(k);
	return NULL;
}

/* Makes room for one more connection under max_open by closing an idle one (the first
 * found); false when every open connection is busy. */
static bool room_for_one_more(struct mrtc_http_client *c)
{
	if (!c->max_open || c->stats.open < c->max_open)
		return true;
	for (struct conn *k = c->conns; k; k = k->next)
		if (k->idle && !k->dead) {
			conn_free_now(k); /* idle: none of its callbacks is running */
			return true;
		}
	return false;
}

/* ---- calls ---- */

/* Takes @call off the list of fetches waiting for DNS (for destroy), if it is on it. */
static void fetch_list_remove(struct mrtc_http_call *call)
{
	struct mrtc_http_client *c = call->client;
	if (!call->in_fetch_list)
		return;
	if (call->fetch_prev)
		call->fetch_prev->fetch_next = call->fetch_next;
	else
		c->fetches = call->fetch_next;
	if (call->fetch_next)
		call->fetch_next->fetch_prev = call->fetch_prev;
	call->fetch_prev = call->fetch_next = NULL;
	call->in_fetch_list = false;
}

static void call_free(struct mrtc_http_call *call)
{
	call->client->live_calls--;
	fetch_list_remove(call);
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
	call_free(call);
}

static void deliver_error(struct mrtc_http_call *call, enum mrtc_err err, const char *detail)
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

static void start(struct mrtc_http_call *call, const struct mrtc_http_target *t,
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
	start(call, &t, &call->freq, true);
	return true;
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct mrtc_http_call *call = arg;
	struct conn *k = call->conn;
	struct mrtc_http_client *c = call->client;
	call->req = NULL;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	if (!req || status == 0) {
		const char *detail;
		enum mrtc_err err = classify(call, &detail);
		if (k && !k->dead)
			conn_discard(k);
		if (!call->in_start && retry_on_fresh_connection(call))
			return;
		if (call->in_start)
			fail_later(call, err, detail);
		else
			deliver_error(call, err, detail);
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	if (!body) {
		conn_discard(k);
		deliver_error(call, MRTC_ERR_NOMEM, "out of memory");
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
	if (!k->dead) {
		if (k->dest && k->dest->n_idle < c->max_idle) {
			k->idle = true;
			k->idle_next = k->dest->idle;
			k->dest->idle = k;
			k->dest->n_idle++;
		} else {
			conn_discard(k);
		}
	}
	deliver(call, &r);
	free(body);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_http_call *call = arg;
	if (call->pending != MRTC_OK) {
		deliver_error(call, call->pending, call->pending_detail);
		return;
	}
	if (call->dnsq) {
		mrtc_dns_cancel(call->dnsq);
		call->dnsq = NULL;
		deliver_error(call, MRTC_ERR_TIMEOUT, "timed out resolving");
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
		conn_discard(k);
	deliver_error(call, MRTC_ERR_TIMEOUT, "timed out");
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

/*
 * Copies @rq into the call (f_*, freq), the target too unless already set; false on OOM (what
 * was copied is freed with the call).
 */
static bool copy_request(struct mrtc_http_call *call, const struct mrtc_http_request *rq)
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
	return copy_request(call, rq) && (!t->tls_name || call->f_host) &&
	       (!t->host_header || call->f_host_header);
}

/*
 * Starts @call on a pooled (unless @fresh) or new connection; on failure delivers the error.
 * A call that goes out on a pooled connection keeps a copy of itself for one retry.
 */
static void start(struct mrtc_http_call *call, const struct mrtc_http_target *t,
		  const struct mrtc_http_request *rq, bool fresh)
{
	struct mrtc_http_client *c = call->client;
	char ip[INET6_ADDRSTRLEN];
	mrtc_sockaddr_ntop(&t->addr, ip, sizeof(ip));
	char key[DEST_KEY_MAX];
	/* A key that does not fit: no pooling for this call (a fresh connection, not kept). */
	struct dest *d =
	    mrtc_format(key, sizeof(key), "%d|%s|%s|%s|%u", t->tls, t->tls_name ? t->tls_name : "",
			t->host_header ? t->host_header : "", ip, port_of(&t->addr))
		? dest_find(c, key, true)
		: NULL;
	struct conn *k = d && !fresh ? d->idle : NULL;
	if (k && !call->retried && keep_for_retry(call, t, rq)) {
		dest_remove_idle(k);
		c->stats.reused++;
		call->reused = true;
	} else {
		k = NULL;
		if (!room_for_one_more(c)) {
			c->stats.refused++;
			fail_later(call, MRTC_ERR_LIMIT_EXCEEDED, "too many outbound connections");
			return;
		}
		k = conn_open(c, d, t, ip);
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
		conn_discard(k);
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
			conn_discard(k);
		fail_later(call, MRTC_ERR_CONNECT, "cannot send request");
	}
}

static struct mrtc_http_call *call_new(struct mrtc_http_client *c, uint64_t timeout_ms,
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
		call_free(call);
		return NULL;
	}
	return call;
}

struct mrtc_http_call *mrtc_http_send(struct mrtc_http_client *c,
				      const struct mrtc_http_target *target,
				      const struct mrtc_http_request *req, mrtc_http_done_fn done,
				      void *ctx)
{
	struct mrtc_http_call *call = call_new(c, req->timeout_ms, done, ctx);
	if (!call)
		return NULL;
	start(call, target, req, false);
	return call;
}

void mrtc_http_call_cancel(struct mrtc_http_call *call)
{
	if (!call)
		return;
	call->cancelled = true;
	if (call->pending != MRTC_OK) {
		call_free(call);
		return;
	}
	if (call->dnsq) {
		mrtc_dns_cancel(call->dnsq);
		call->dnsq = NULL;
		call_free(call);
		return;
	}
	if (call->req) {
		evhttp_request_set_error_cb(call->req, NULL);
		evhttp_cancel_request(call->req);
		call->req = NULL;
		if (call->conn && !call->conn->dead)
			conn_discard(call->conn);
		call_free(call);
	}
	/* Otherwise the call is finishing right now and frees itself without a callback. */
}

/* ---- fetch: URL + DNS + guard ---- */

static void fetch_resolved(void *arg, enum mrtc_err err, const struct sockaddr_storage *addrs,
			   size_t n)
{
	struct mrtc_http_call *call = arg;
	call->dnsq = NULL;
	if (err != MRTC_OK) {
		deliver_error(call, err == MRTC_ERR_TIMEOUT ? MRTC_ERR_TIMEOUT : MRTC_ERR_DNS,
			      "name did not resolve");
		return;
	}
	const struct sockaddr_storage *chosen = NULL;
	for (size_t i = 0; i < n && !chosen; i++)
		if (!call->f_guard || !mrtc_guard_is_blocked((const struct sockaddr *)&addrs[i],
							     call->f_allow, call->f_n_allow))
			chosen = &addrs[i];
	if (!chosen) {
		deliver_error(call, MRTC_ERR_BLOCKED, "every address is in a blocked range");
		return;
	}
	/* Leave the DNS list: from here the call is an ordinary request. */
	fetch_list_remove(call);
	struct mrtc_http_target t = {
		.addr = *chosen,
		.tls = call->f_tls,
		.tls_name = call->f_ip_literal ? NULL : call->f_host,
		.host_header = call->f_host_header,
	};
	start(call, &t, &call->freq, false);
}

struct mrtc_http_call *mrtc_http_fetch(struct mrtc_http_client *c, struct mrtc_dns *dns,
				       const char *url, const struct mrtc_http_request *req,
				       bool guard, const struct mrtc_cidr *allow, size_t n_allow,
				       mrtc_http_done_fn done, void *ctx)
{
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
	if (!u)
		return NULL;
	struct mrtc_http_call *call = NULL;
	const char *scheme = evhttp_uri_get_scheme(u), *host = evhttp_uri_get_host(u);
	const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
	int port = evhttp_uri_get_port(u);
	bool tls = scheme && strcmp(scheme, "https") == 0;
	if (!scheme || (!tls && strcmp(scheme, "http") != 0) || !host || !host[0])
		goto out;
	call = call_new(c, req->timeout_ms, done, ctx);
	if (!call)
		goto out;
	char bare[256];
	size_t hl = strlen(host);
	if (host[0] == '[' && hl >= 2 && hl - 2 < sizeof(bare)) {
		memcpy(bare, host + 1, hl - 2);
		bare[hl - 2] = '\0';
	} else if (hl < sizeof(bare)) {
		memcpy(bare, host, hl + 1);
	} else {
		call_free(call);
		call = NULL;
		goto out;
	}
	struct in6_addr tmp;
	call->f_ip_literal =
	    inet_pton(AF_INET, bare, &tmp) == 1 || inet_pton(AF_INET6, bare, &tmp) == 1;
	char host_header[300]; /* bare is under 256 bytes: it fits */
	bool v6 = strchr(bare, ':') != NULL;
	bool fits = port > 0
			? (v6 ? mrtc_format(host_header, sizeof(host_header), "[%s]:%d", bare, port)
			      : mrtc_format(host_header, sizeof(host_header), "%s:%d", bare, port))
			: (v6 ? mrtc_format(host_header, sizeof(host_header), "[%s]", bare)
			      : mrtc_copy(host_header, sizeof(host_header), bare));
	size_t tl = (path && path[0] ? strlen(path) : 1) + (query ? strlen(query) + 1 : 0) + 1;
	call->f_target = fits ? malloc(tl) : NULL;
	if (call->f_target &&
	    !mrtc_format(call->f_target, tl, "%s%s%s", path && path[0] ? path : "/",
			 query ? "?" : "", query ? query : "")) {
		free(call->f_target);
		call->f_target = NULL;
	}
	call->f_host = strdup(bare);
	call->f_host_header = strdup(host_header);
	call->f_tls = tls;
	call->f_guard = guard;
	if (n_allow) {
		call->f_allow = malloc(n_allow * sizeof(*allow));
		if (call->f_allow) {
			memcpy(call->f_allow, allow, n_allow * sizeof(*allow));
			call->f_n_allow = n_allow;
		}
	}
	if (!call->f_target || !copy_request(call, req) || !call->f_host || !call->f_host_header ||
	    (n_allow && !call->f_allow)) {
		call_free(call);
		call = NULL;
		goto out;
	}
	call->fetch_next = c->fetches;
	if (c->fetches)
		c->fetches->fetch_prev = call;
	c->fetches = call;
	call->in_fetch_list = true;
	call->dnsq = mrtc_dns_resolve(dns, bare,
				      (uint16_t)(port > 0 ? port
						 : tls	  ? 443
							  : 80),
				      fetch_resolved, call);
	if (!call->dnsq) {
		call_free(call);
		call = NULL;
	}
out:
	evhttp_uri_free(u);
	return call;
}

void mrtc_http_client_destroy(struct mrtc_http_client *c)
{
	if (!c)
		return;
	while (c->fetches) {
		struct mrtc_http_call *call = c->fetches;
		mrtc_dns_cancel(call->dnsq);
		call->dnsq = NULL;
		call_free(call);
	}
	/* Calls in flight are owned by their requests; freeing the connections drops them. */
	while (c->conns)
		conn_free_now(c->conns);
	while (c->dests) {
		struct dest *d = c->dests;
		c->dests = d->next;
		free(d);
	}
	SSL_CTX_free(c->ssl_ctx);
	free(c);
}
