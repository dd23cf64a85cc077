/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listeners, dispatch through the route tables, per-request context and graceful shutdown.
 * Endpoint logic lives in its own files and is reached through the route tables here.
 */
#include "mrtc/server.h"

#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/admin.h"
#include "mrtc/delayed.h"
#include "mrtc/legacy.h"
#include "mrtc/log.h"
#include "mrtc/rtc.h"
#include "mrtc/services.h"
#include "mrtc/util.h"

#define HARD_BODY_MAX (256 * 1024)

struct listener {
	struct mrtc_server *server;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	const struct mrtc_route *routes;
	size_t n_routes;
	bool cors;
	const char *name;
};

#define MAX_ROUTES 32

struct mrtc_server {
	struct event_base *base;
	const struct mrtc_config *config;
	struct mrtc_services *services;
	struct mrtc_route routes[MAX_ROUTES];
	size_t n_routes;
	struct listener main;
	struct listener admin;
	size_t inflight;
	bool draining;
	uint64_t drain_deadline_ms;
	struct event *drain_timer;
};

static void handle_healthz(struct mrtc_request *r)
{
	struct json_object *body = json_object_new_object();
	if (body)
		json_object_object_add(body, "status", json_object_new_string("ok"));
	mrtc_http_reply_json(r, 200, body);
	json_object_put(body);
}

#define GET_HEAD (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

/* Routes of the main listener; homeserver_only ones are not mounted in drop-in mode. */
static const struct {
	struct mrtc_route route;
	bool homeserver_only;
} main_routes[] = {
	{ { "/healthz", GET_HEAD, handle_healthz, "healthz" }, false },
	{ { "/get_token", EVHTTP_REQ_POST, mrtc_legacy_get_token, "legacy_get_token" }, false },
	{ { "/sfu/get", EVHTTP_REQ_POST, mrtc_legacy_sfu_get, "legacy_sfu_get" }, false },
	{ { "/sfu_webhook", EVHTTP_REQ_POST, mrtc_delayed_webhook, "sfu_webhook" }, false },
	{ { "/_matrix/client/v1/rtc/transports", EVHTTP_REQ_GET, mrtc_rtc_transports,
	    "transports" },
	  true },
	{ { "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", EVHTTP_REQ_GET,
	    mrtc_rtc_transports, "transports" },
	  true },
	{ { "/_matrix/client/v1/rtc/livekit/get_token", EVHTTP_REQ_POST, mrtc_rtc_client_get_token,
	    "client_get_token" },
	  true },
	{ { "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/get_token", EVHTTP_REQ_POST,
	    mrtc_rtc_client_get_token, "client_get_token" },
	  true },
	{ { "/_matrix/federation/v1/rtc/livekit/get_token", EVHTTP_REQ_POST,
	    mrtc_rtc_federation_get_token, "federation_get_token" },
	  true },
	{ { "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
	    EVHTTP_REQ_POST, mrtc_rtc_federation_get_token, "federation_get_token" },
	  true },
};

static const struct mrtc_route admin_routes[] = {
	{ "/healthz", GET_HEAD, handle_healthz, "healthz" },
	{ "/readyz", GET_HEAD, mrtc_admin_readyz, "readyz" },
	{ "/metrics", EVHTTP_REQ_GET, mrtc_admin_metrics, "metrics" },
};

void mrtc_server_request_done(struct mrtc_request *r, int status)
{
	struct mrtc_server *s = r->server;
	char path[160];
	uint64_t elapsed = mrtc_monotonic_ms() - r->start_ms;
	mrtc_metrics_observe(&s->services->metrics, r->route ? r->route->name : "unmatched", status,
			     elapsed);
	s->services->metrics.in_flight = s->inflight - 1;
	if (!r->req) {
		mrtc_log(LOG_INFO, "http", r->id, "client went away after %llums",
			 (unsigned long long)elapsed);
		s->inflight--;
		free(r);
		return;
	}
	const char *uri = evhttp_request_get_uri(r->req);
	char *raw = uri ? mrtc_http_path_of(uri) : NULL;
	/* Only the path is logged: query strings can carry access tokens. */
	mrtc_quote(path, sizeof(path), raw, 120);
	free(raw);
	mrtc_log(status >= 500 ? LOG_WARNING : LOG_INFO, "http", r->id, "%s %s %d %llums",
		 mrtc_http_method_name(evhttp_request_get_command(r->req)), path, status,
		 (unsigned long long)(mrtc_monotonic_ms() - r->start_ms));
	s->inflight--;
	free(r);
}

/* The client closed its connection while its request was being worked on. */
static void client_gone(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct mrtc_request *r = arg;
	r->req = NULL;
	if (r->on_abort)
		r->on_abort(r);
	mrtc_server_request_done(r, 499);
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct listener *l = arg;
	struct mrtc_server *s = l->server;
	struct mrtc_request *r = calloc(1, sizeof(*r));
	if (!r) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->req = req;
	r->server = s;
	r->services = s->services;
	r->cors = l->cors;
	r->start_ms = mrtc_monotonic_ms();
	uint8_t rnd[MRTC_REQUEST_ID_LEN / 2];
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(r->id, sizeof(r->id), rnd, sizeof(rnd));
	s->inflight++;
	s->services->metrics.in_flight = s->inflight;
	if (s->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");

	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);
	char *path = uri ? mrtc_http_path_of(uri) : NULL;
	if (!path) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	if (method == EVHTTP_REQ_OPTIONS && l->cors) {
		free(path);
		mrtc_http_reply_json(r, 204, NULL);
		return;
	}
	const struct mrtc_route *route = NULL;
	enum mrtc_route_match m = mrtc_route_find(l->routes, l->n_routes, path, method, &route);
	free(path);
	switch (m) {
	case MRTC_ROUTE_FOUND:
		r->route = route;
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), client_gone, r);
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
	const char *host = where->host[0] ? where->host : "::";
	l->bound = evhttp_bind_socket_with_handle(l->http, host, where->port);
	if (!l->bound && !where->host[0])
		l->bound = evhttp_bind_socket_with_handle(l->http, "0.0.0.0", where->port);
	if (!l->bound) {
		mrtc_log(LOG_ERR, "server", NULL, "cannot listen on %s port %u for the %s listener",
			 host, where->port, name);
		return MRTC_ERR_IO;
	}
	mrtc_log(LOG_INFO, "server", NULL, "%s listener on %s port %u", name, host, where->port);
	return MRTC_OK;
}

enum mrtc_err mrtc_server_create(struct event_base *base, const struct mrtc_config *config,
				 struct mrtc_server **ret_server)
{
	struct mrtc_server *s = calloc(1, sizeof(*s));
	if (!s)
		return MRTC_ERR_NOMEM;
	s->base = base;
	s->config = config;
	for (size_t i = 0; i < sizeof(main_routes) / sizeof(main_routes[0]); i++)
		if (!main_routes[i].homeserver_only || !config->legacy_only)
			s->routes[s->n_routes++] = main_routes[i].route;
	/* Delegated delayed leave needs a store; without one the paths stay unknown (404). */
	static const struct mrtc_route delegate[] = {
		{ "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave", EVHTTP_REQ_POST,
		  mrtc_delayed_delegate, "delegate_delayed_leave" },
		{ "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave",
		  EVHTTP_REQ_POST, mrtc_delayed_delegate, "delegate_delayed_leave" },
	};
	if (config->store && !config->legacy_only)
		for (size_t i = 0; i < 2; i++)
			s->routes[s->n_routes++] = delegate[i];
	static const struct mrtc_route legacy_delegate = { "/delegate_delayed_leave",
							   EVHTTP_REQ_POST, mrtc_legacy_delegate,
							   "legacy_delegate_delayed_leave" };
	if (config->store)
		s->routes[s->n_routes++] = legacy_delegate;
	enum mrtc_err err = mrtc_services_create(base, config, &s->services);
	if (err != MRTC_OK) {
		free(s);
		return err;
	}
	err = listener_open(s, &s->main, "main", &config->bind, s->routes, s->n_routes, true);
	if (err == MRTC_OK)
		err = listener_open(s, &s->admin, "admin", &config->admin_bind, admin_routes,
				    sizeof(admin_routes) / sizeof(admin_routes[0]), false);
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

void mrtc_server_quiesce(struct mrtc_server *s, uint64_t deadline_ms)
{
	mrtc_delayed_quiesce(s->services->delayed);
	mrtc_readiness_quiesce(s->services->readiness);
	/* Outbound calls still running (re-checks, key fetches) end by their own timeouts. */
	uint64_t end = mrtc_monotonic_ms() + deadline_ms;
	while (mrtc_http_client_live_calls(s->services->http) > 0 && mrtc_monotonic_ms() < end)
		event_base_loop(s->base, EVLOOP_ONCE);
	size_t left = mrtc_http_client_live_calls(s->services->http);
	if (left)
		mrtc_log(LOG_WARNING, "server", NULL, "%zu outbound calls abandoned at exit", left);
}

void mrtc_server_reload(struct mrtc_server *s)
{
	const struct mrtc_config *c = s->config;
	if (c->ca_file) {
		enum mrtc_err err = mrtc_http_client_reload_ca(s->services->http, c->ca_file);
		mrtc_log(err == MRTC_OK ? LOG_INFO : LOG_ERR, "server", NULL,
			 "SIGHUP: %s the CA file %s",
			 err == MRTC_OK ? "reloaded" : "could not reload", c->ca_file);
	} else {
		mrtc_log(LOG_INFO, "server", NULL, "SIGHUP: no CA file to reload");
	}
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
	mrtc_services_destroy(s->services);
	free(s);
}
