/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listeners, dispatch through the route tables, per-request context and graceful shutdown.
 * The route tables come from the server's owner (module/main): the server knows no feature.
 */
#include "mrtc/http/server.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mrtc/core/log.h"
#include "mrtc/base/util.h"
#include "blocks.h"

#define HARD_BODY_MAX (256 * 1024)

struct listener {
	struct mrtc_server *server;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	const struct mrtc_route *routes;
	size_t n_routes;
	bool cors;
	const char *name;
	struct event *accept_pause; /* re-enables accepting after EMFILE/ENFILE */
	uint64_t accept_errors;	    /* since the last log line about them */
	uint64_t accept_logged_ms;
};

/*
 * Per-connection state, found by descriptor. libevent 2.1's evhttp has no hook at accept (no
 * evhttp_set_newreqcb before 2.2) and its timeouts restart at every byte, so:
 * - the whole-request deadline: the bufferevent callback (evhttp_set_bevcb) runs at accept; one
 *   loop turn later the connection is adopted (see adopt()) and its deadline armed. It covers
 *   accept (or the previous answer on a kept-alive connection) to the end of the body; when it
 *   runs out before dispatch the connection is closed, however steadily bytes arrive.
 * - hang-ups: evhttp stops reading a connection while its request is handled, so a closed
 *   connection is noticed only when the reply is written. While a handler runs we watch the
 *   socket ourselves for readability and peek: EOF or an error means the client is gone, and
 *   the connection is freed, which runs the close callback, which cancels the request's state and
 * frees the request. We chose a read watch over evhttp_connection_set_closecb alone because the
 *   close callback only fires when libevent itself notices the close, which it does not while
 *   reading is disabled. Bytes that arrive instead (a pipelined request) end the watch: they
 *   stay for evhttp to read after the reply. (A client that half-closes after its request is
 *   taken as gone; HTTP clients and nginx do not do that.)
 */
struct conn {
	struct listener *l;
	struct evhttp_connection *evcon;
	evutil_socket_t fd;
	struct event *deadline;
	struct event *hup;
	struct mrtc_request *r; /* while a handler runs */
};

#define ID_POOL_IDS 64

struct mrtc_server {
	struct event_base *base;
	const struct mrtc_config *config;
	struct mrtc_services *services;
	struct mrtc_metrics *metrics;
	struct mrtc_route routes[2][MRTC_SERVER_ROUTES_MAX]; /* main, admin */
	struct listener main;
	struct listener admin;
	size_t inflight;
	bool draining;
	uint64_t drain_deadline_ms;
	struct event *drain_timer;
	struct conn **conns; /* by descriptor */
	size_t n_conns;
	size_t open_conns;	/* on the main listener, against config->inbound_max */
	uint64_t conns_refused; /* since the last log line about them */
	uint64_t conns_refused_logged_ms;
	uint8_t id_pool[ID_POOL_IDS * MRTC_REQUEST_ID_LEN / 2]; /* random request ids to come */
	size_t id_pool_used;
	struct mrtc_blocks blocks; /* of requests and their states */
};

void *mrtc_server_block_alloc(struct mrtc_server *s, size_t size)
{
	return s ? mrtc_blocks_alloc(&s->blocks, size) : malloc(size);
}

void mrtc_server_block_free(struct mrtc_server *s, void *block, size_t size)
{
	if (s)
		mrtc_blocks_free(&s->blocks, block, size);
	else
		free(block);
}

static void handle_healthz(struct mrtc_request *r)
{
	struct json_object *body = json_object_new_object();
	if (body)
		json_object_object_add(body, "status", json_object_new_string("ok"));
	mrtc_http_reply_json(r, 200, body);
	json_object_put(body);
}

static const struct mrtc_route healthz = { "/healthz", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD,
					   handle_healthz, "healthz" };

void mrtc_server_request_done(struct mrtc_request *r, int status)
{
	struct mrtc_server *s = r->server;
	mrtc_metrics_observe(s->metrics, r->route ? r->route->name : "unmatched", status,
			     mrtc_monotonic_ms() - r->start_ms);
	s->metrics->in_flight = s->inflight - 1;
	if (r->conn)
		((struct conn *)r->conn)->r = NULL;
	mrtc_request_end(r, status);
	s->inflight--;
	mrtc_server_block_free(s, r, sizeof(*r));
}

static struct conn *conn_find(struct mrtc_server *s, struct evhttp_connection *evcon)
{
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0 || (size_t)fd >= s->n_conns || !s->conns[fd] || s->conns[fd]->evcon != evcon)
		return NULL;
	return s->conns[fd];
}

static void conn_free(struct conn *c)
{
	struct mrtc_server *s = c->l->server;
	if (c->fd >= 0 && (size_t)c->fd < s->n_conns && s->conns[c->fd] == c)
		s->conns[c->fd] = NULL;
	if (c->l == &s->main)
		s->open_conns--;
	if (c->deadline)
		event_free(c->deadline);
	if (c->hup)
		event_free(c->hup);
	free(c);
}

/* The connection is going away (client hang-up, deadline, error or shutdown). */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct conn *c = arg;
	struct mrtc_request *r = c->r;
	c->r = NULL;
	if (r) {
		/* The client closed its connection while its request was being worked on. When
		 * libevent noticed it itself (EOF or timeout), it has already detached the request
		 * from the connection and left freeing it to us. */
		struct evhttp_request *req = r->req;
		r->req = NULL;
		r->conn = NULL;
		if (req && !evhttp_request_get_connection(req))
			evhttp_request_free(req);
		mrtc_request_cancel(r);
		mrtc_server_request_done(r, 499);
	}
	conn_free(c);
}

static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->r)
		return;
	mrtc_log_refusal(LOG_INFO, "http", NULL,
			 "%s listener: request not complete within %us of the connection: closing",
			 c->l->name, (unsigned)c->l->server->config->client_timeout_s);
	evhttp_connection_free(c->evcon); /* runs conn_closed(), which frees c */
}

static void conn_arm(struct conn *c)
{
	struct timeval tv = { .tv_sec = (time_t)c->l->server->config->client_timeout_s };
	event_add(c->deadline, &tv);
}

static struct conn *conn_adopt(struct listener *l, struct evhttp_connection *evcon)
{
	struct mrtc_server *s = l->server;
	struct conn *c = conn_find(s, evcon);
	if (c)
		return c;
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0)
		return NULL;
	if ((size_t)fd >= s->n_conns) {
		size_t n = s->n_conns ? s->n_conns : 256;
		while (n <= (size_t)fd)
			n *= 2;
		struct conn **grown = realloc(s->conns, n * sizeof(*grown));
		if (!grown)
			return NULL;
		memset(grown + s->n_conns, 0, (n - s->n_conns) * sizeof(*grown));
		s->conns = grown;
		s->n_conns = n;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->l = l;
	c->evcon = evcon;
	c->fd = fd;
	c->deadline = event_new(s->base, -1, 0, conn_deadline, c);
	if (!c->deadline) {
		free(c);
		return NULL;
	}
	if (s->conns[fd]) /* a stale entry whose close we did not see */
		conn_free(s->conns[fd]);
	s->conns[fd] = c;
	if (l == &s->main)
		s->open_conns++;
	conn_arm(c);
	evhttp_connection_set_closecb(evcon, conn_closed, c);
	return c;
}

struct pending_accept {
	struct listener *l;
	struct bufferevent *bev;
};

/* One loop turn after accept: evhttp has wrapped the bufferevent in its connection, whose
 * callbacks carry it as their argument (evhttp's read callback is cleared if it is gone). */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pending_accept *p = arg;
	bufferevent_data_cb readcb = NULL;
	void *evcon = NULL;
	bufferevent_getcb(p->bev, &readcb, NULL, NULL, &evcon);
	struct mrtc_server *s = p->l->server;
	if (readcb && evcon && p->l == &s->main && s->config->inbound_max &&
	    s->open_conns >= s->config->inbound_max) {
		/* Over MRTC_INBOUND_MAX: closed before evhttp reads anything, so the descriptors
		 * left serve the connections already open and the outbound calls they need. */
		s->conns_refused++;
		uint64_t now = mrtc_monotonic_ms();
		if (now - s->conns_refused_logged_ms >= 1000) {
			mrtc_log(LOG_WARNING, "server", NULL,
				 "main listener: %zu connections open (MRTC_INBOUND_MAX): %llu "
				 "closed at accept since the last report",
				 s->open_conns, (unsigned long long)s->conns_refused);
			s->conns_refused = 0;
			s->conns_refused_logged_ms = now;
		}
		evhttp_connection_free(evcon);
	} else if (readcb && evcon) {
		conn_adopt(p->l, evcon);
	}
	bufferevent_decref(p->bev);
	free(p);
}

static struct bufferevent *make_bufferevent(struct event_base *base, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct pending_accept *p = bev ? malloc(sizeof(*p)) : NULL;
	if (!p)
		return bev;
	p->l = arg;
	p->bev = bev;
	bufferevent_incref(bev);
	struct timeval now = { 0, 0 };
	if (event_base_once(base, -1, EV_TIMEOUT, adopt, p, &now) != 0) {
		bufferevent_decref(bev);
		free(p);
	}
	return bev;
}

static void conn_hup(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct conn *c = arg;
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 || !c->r)
		return; /* a pipelined request: evhttp reads it after the reply */
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		event_add(c->hup, NULL);
		return;
	}
	evhttp_connection_free(c->evcon); /* runs conn_closed(): cancel, 499, frees c */
}

void mrtc_server_request_replying(struct mrtc_request *r)
{
	struct conn *c = r->conn;
	if (!c)
		return;
	r->conn = NULL;
	c->r = NULL;
	if (c->hup)
		event_del(c->hup);
	conn_arm(c);
}

/*
 * One pass over the request's headers: whether two different Content-Length headers, or
 * Content-Length with Transfer-Encoding, make the framing ambiguous (request smuggling,
 * whichever one evhttp used), and the first Authorization header (borrowed; NULL if none).
 * The first letter is compared before the whole name: most headers are none of these.
 */
static bool scan_headers(struct evhttp_request *req, const char **ret_authorization)
{
	const char *length = NULL, *authorization = NULL;
	bool te = false;
	struct evkeyval *h;
	for (h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next) {
		char first = h->key[0] | 0x20; /* ASCII lower case for letters */
		if (first == 't' && strcasecmp(h->key, "Transfer-Encoding") == 0) {
			te = true;
		} else if (first == 'c' && strcasecmp(h->key, "Content-Length") == 0) {
			if (length && strcmp(length, h->value) != 0)
				return true;
			length = h->value;
		} else if (first == 'a' && !authorization &&
			   strcasecmp(h->key, "Authorization") == 0) {
			authorization = h->value;
		}
	}
	*ret_authorization = authorization;
	return te && length;
}

/* A random request id from a pool refilled in blocks: one getrandom call per
 * ID_POOL_IDS requests rather than one per request. */
static void request_id(struct mrtc_server *s, char *out, size_t size)
{
	const size_t n = MRTC_REQUEST_ID_LEN / 2;
	if (s->id_pool_used + n > sizeof(s->id_pool)) {
		randombytes_buf(s->id_pool, sizeof(s->id_pool));
		s->id_pool_used = 0;
	}
	sodium_bin2hex(out, size, s->id_pool + s->id_pool_used, n);
	s->id_pool_used += n;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct listener *l = arg;
	struct mrtc_server *s = l->server;
	struct mrtc_request *r = mrtc_server_block_alloc(s, sizeof(*r));
	if (!r) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	*r = (struct mrtc_request){ .req = req,
				    .server = s,
				    .services = s->services,
				    .cors = l->cors,
				    .start_ms = mrtc_monotonic_ms() };
	request_id(s, r->id, sizeof(r->id));
	s->inflight++;
	s->metrics->in_flight = s->inflight;
	if (s->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct conn *c = conn_adopt(l, evcon);
	if (c) {
		event_del(c->deadline);
		c->r = r;
		r->conn = c;
	}
	if (scan_headers(req, &r->authorization)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		struct json_object *body = json_object_new_object();
		if (body) {
			json_object_object_add(body, "errcode",
					       json_object_new_string("M_UNKNOWN"));
			json_object_object_add(
			    body, "error",
			    json_object_new_string(
				"Conflicting Content-Length or Transfer-Encoding headers"));
		}
		mrtc_http_reply_json(r, 400, body);
		json_object_put(body);
		return;
	}

	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);
	/* The path on the stack when it fits (every route does), else on the heap. */
	char stack[256], *heap = NULL;
	const char *path = NULL;
	if (uri) {
		size_t n = strcspn(uri, "?#");
		if (n < sizeof(stack)) {
			memcpy(stack, uri, n);
			stack[n] = '\0';
			path = stack;
		} else {
			path = heap = mrtc_http_path_of(uri);
		}
	}
	if (!path) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	if (method == EVHTTP_REQ_OPTIONS && l->cors) {
		free(heap);
		mrtc_http_reply_json(r, 204, NULL);
		return;
	}
	const struct mrtc_route *route = NULL;
	enum mrtc_route_match m = mrtc_route_find(l->routes, l->n_routes, path, method, &route);
	free(heap);
	switch (m) {
	case MRTC_ROUTE_FOUND:
		r->route = route;
		if (c && !c->hup)
			c->hup = event_new(s->base, c->fd, EV_READ, conn_hup, c);
		if (c && c->hup)
			event_add(c->hup, NULL);
		route->handler(r);
		return;
	case MRTC_ROUTE_NO_METHOD:
		mrtc_http_reply_error(r, MRTC_ERR_METHOD, "Method not allowed");
		return;
	case MRTC_ROUTE_NO_PATH:
		mrtc_http_reply_error(r, MRTC_ERR_NOT_FOUND, "Unrecognized request");
		return;
	}
}

/* Listeners whose accept errors we handle (evconnlistener's error callback gets no argument of
 * ours): the main and admin listener of the one server. */
static struct listener *accepting[2];

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct listener *l = arg;
	if (l->bound)
		evconnlistener_enable(evhttp_bound_socket_get_listener(l->bound));
}

/* accept() failed for a reason other than a retriable one, typically EMFILE/ENFILE: libevent
 * would retry at once and spin; pause this listener for ACCEPT_PAUSE_MS instead, and log at
 * most once a second with the number of failures since the last line. */
#define ACCEPT_PAUSE_MS 100
static void accept_error(struct evconnlistener *lev, void *arg)
{
	(void)arg;
	int err = errno;
	struct listener *l = NULL;
	for (size_t i = 0; i < 2; i++)
		if (accepting[i] && accepting[i]->bound &&
		    evhttp_bound_socket_get_listener(accepting[i]->bound) == lev)
			l = accepting[i];
	evconnlistener_disable(lev);
	if (!l)
		return;
	l->accept_errors++;
	uint64_t now = mrtc_monotonic_ms();
	if (now - l->accept_logged_ms >= 1000) {
		mrtc_log(LOG_WARNING, "server", NULL,
			 "%s listener: accept failed (%s), %llu times since the last report: "
			 "pausing accepts for %d ms",
			 l->name, strerror(err), (unsigned long long)l->accept_errors,
			 ACCEPT_PAUSE_MS);
		l->accept_errors = 0;
		l->accept_logged_ms = now;
	}
	struct timeval tv = { .tv_usec = ACCEPT_PAUSE_MS * 1000 };
	if (!l->accept_pause || event_add(l->accept_pause, &tv) != 0)
		evconnlistener_enable(lev);
}

static enum mrtc_err listener_open(struct mrtc_server *s, struct listener *l, const char *name,
				   const struct mrtc_hostport *where,
				   const struct mrtc_route *routes, size_t n, bool cors)
{
	l->server = s;
	l->name = name;
	l->routes = routes;
	l->n_routes = n;
	l->cors = cors;
	l->http = evhttp_new(s->base);
	if (!l->http)
		return MRTC_ERR_NOMEM;
	evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(l->http, MRTC_HTTP_HEADERS_MAX);
	/* Bodies above MRTC_HTTP_BODY_MAX get a Matrix 413 from mrtc_http_body(); far larger
	 * ones are cut off by libevent before they are buffered. */
	evhttp_set_max_body_size(l->http, HARD_BODY_MAX);
	struct timeval tv = { .tv_sec = (time_t)s->config->client_timeout_s };
	evhttp_set_timeout_tv(l->http, &tv);
	evhttp_set_gencb(l->http, dispatch, l);
	evhttp_set_bevcb(l->http, make_bufferevent, l);
	const char *host = where->host[0] ? where->host : "::";
	l->bound = evhttp_bind_socket_with_handle(l->http, host, where->port);
	if (!l->bound && !where->host[0])
		l->bound = evhttp_bind_socket_with_handle(l->http, "0.0.0.0", where->port);
	if (!l->bound) {
		mrtc_log(LOG_ERR, "server", NULL, "cannot listen on %s port %u for the %s listener",
			 host, where->port, name);
		return MRTC_ERR_IO;
	}
	l->accept_pause = event_new(s->base, -1, 0, accept_resume, l);
	accepting[l == &s->main ? 0 : 1] = l;
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(l->bound), accept_error);
	mrtc_log(LOG_INFO, "server", NULL, "%s listener on %s port %u", name, host, where->port);
	return MRTC_OK;
}

/* @routes[0] is /healthz, then the @n of @given. */
static bool routes_copy(struct mrtc_route *routes, const struct mrtc_route *given, size_t n)
{
	if (n + 1 > MRTC_SERVER_ROUTES_MAX)
		return false;
	routes[0] = healthz;
	for (size_t i = 0; i < n; i++)
		routes[i + 1] = given[i];
	return true;
}

enum mrtc_err mrtc_server_create(struct event_base *base, const struct mrtc_config *config,
				 const struct mrtc_server_setup *setup,
				 struct mrtc_server **ret_server)
{
	struct mrtc_server *s = calloc(1, sizeof(*s));
	if (!s)
		return MRTC_ERR_NOMEM;
	s->base = base;
	s->config = config;
	s->services = setup->services;
	s->metrics = setup->metrics;
	s->id_pool_used = sizeof(s->id_pool); /* empty: filled at the first request */
	if (!routes_copy(s->routes[0], setup->main_routes, setup->n_main_routes) ||
	    !routes_copy(s->routes[1], setup->admin_routes, setup->n_admin_routes)) {
		free(s);
		return MRTC_ERR_INVALID_PARAM;
	}
	enum mrtc_err err = listener_open(s, &s->main, "main", &config->bind, s->routes[0],
					  setup->n_main_routes + 1, true);
	if (err == MRTC_OK)
		err = listener_open(s, &s->admin, "admin", &config->admin_bind, s->routes[1],
				    setup->n_admin_routes + 1, false);
	if (err != MRTC_OK) {
		mrtc_server_destroy(s);
		return err;
	}
	*ret_server = s;
	return MRTC_OK;
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_server *s = arg;
	if (s->inflight == 0 || mrtc_monotonic_ms() >= s->drain_deadline_ms) {
		if (s->inflight)
			mrtc_log(LOG_WARNING, "server", NULL,
				 "shutdown deadline reached with %zu requests in flight",
				 s->inflight);
		event_base_loopexit(s->base, NULL);
	}
}

void mrtc_server_shutdown(struct mrtc_server *s, uint64_t deadline_ms)
{
	if (s->draining)
		return;
	s->draining = true;
	s->drain_deadline_ms = mrtc_monotonic_ms() + deadline_ms;
	struct listener *ls[2] = { &s->main, &s->admin };
	for (int i = 0; i < 2; i++) {
		if (ls[i]->bound) {
			evhttp_del_accept_socket(ls[i]->http, ls[i]->bound);
			ls[i]->bound = NULL;
		}
	}
	mrtc_log(LOG_INFO, "server", NULL, "shutting down: %zu requests in flight", s->inflight);
	s->drain_timer = event_new(s->base, -1, EV_PERSIST, drain_check, s);
	struct timeval tv = { .tv_usec = 20 * 1000 };
	if (!s->drain_timer || event_add(s->drain_timer, &tv) != 0)
		event_base_loopexit(s->base, NULL);
	else
		drain_check(-1, 0, s);
}

size_t mrtc_server_inflight(const struct mrtc_server *s)
{
	return s->inflight;
}

void mrtc_server_destroy(struct mrtc_server *s)
{
	if (!s)
		return;
	if (s->drain_timer)
		event_free(s->drain_timer);
	if (s->main.http)
		evhttp_free(s->main.http);
	if (s->admin.http)
		evhttp_free(s->admin.http);
	struct listener *ls[2] = { &s->main, &s->admin };
	for (int i = 0; i < 2; i++) {
		if (ls[i]->accept_pause)
			event_free(ls[i]->accept_pause);
		if (accepting[i] == ls[i])
			accepting[i] = NULL;
	}
	free(s->conns);
	mrtc_blocks_finish(&s->blocks);
	free(s);
}
