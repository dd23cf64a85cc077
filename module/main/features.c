/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The static list of features (Tor's subsystem list, nginx's module list): each with its level,
 * its routes, and its create/quiesce/destroy hooks. Created low to high, quiesced and destroyed
 * high to low. The one file that names every feature; the server only gets route tables.
 */
#include "features.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/delayed/delayed.h"
#include "mrtc/legacy/legacy.h"
#include "mrtc/services/services.h"
#include "mrtc/ops/admin.h"
#include "mrtc/rtc/rtc.h"

/* When a route is mounted. */
enum {
	HOMESERVER = 1 << 0, /* not in lk-jwt-service drop-in mode */
	STORE = 1 << 1,	     /* only with a job store (delegated delayed leave) */
	APPSERVICE = 1 << 2, /* only in application-service mode */
	PER_SFU = 1 << 3,    /* also under /<n> for SFU n > 1 (its service URL) */
	ADMIN = 1 << 4,	     /* on the admin listener */
};

struct feature_route {
	struct mrtc_route route;
	unsigned when;
};

#define GET_HEAD (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)
#define POST EVHTTP_REQ_POST

static const struct feature_route rtc_routes[] = {
	{ { "/_matrix/client/v1/rtc/transports", EVHTTP_REQ_GET, mrtc_rtc_transports,
	    "transports" },
	  HOMESERVER },
	{ { "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", EVHTTP_REQ_GET,
	    mrtc_rtc_transports, "transports" },
	  HOMESERVER },
	{ { "/_matrix/client/v1/rtc/livekit/get_token", POST, mrtc_rtc_client_get_token,
	    "client_get_token" },
	  HOMESERVER },
	{ { "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/get_token", POST,
	    mrtc_rtc_client_get_token, "client_get_token" },
	  HOMESERVER },
	{ { "/_matrix/federation/v1/rtc/livekit/get_token", POST, mrtc_rtc_federation_get_token,
	    "federation_get_token" },
	  HOMESERVER },
	{ { "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token", POST,
	    mrtc_rtc_federation_get_token, "federation_get_token" },
	  HOMESERVER },
};

static const struct feature_route legacy_routes[] = {
	{ { "/get_token", POST, mrtc_legacy_get_token, "legacy_get_token" }, PER_SFU },
	{ { "/sfu/get", POST, mrtc_legacy_sfu_get, "legacy_sfu_get" }, PER_SFU },
	{ { "/delegate_delayed_leave", POST, mrtc_legacy_delegate,
	    "legacy_delegate_delayed_leave" },
	  PER_SFU | STORE },
};

static const struct feature_route delayed_routes[] = {
	{ { "/sfu_webhook", POST, mrtc_delayed_webhook, "sfu_webhook" }, 0 },
	{ { "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave", POST, mrtc_delayed_delegate,
	    "delegate_delayed_leave" },
	  HOMESERVER | STORE },
	{ { "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave", POST,
	    mrtc_delayed_delegate, "delegate_delayed_leave" },
	  HOMESERVER | STORE },
};

static const struct feature_route appservice_routes[] = {
	/* The homeserver's ping (Matrix AS API v1.7). */
	{ { "/_matrix/app/v1/ping", POST, mrtc_appservice_ping, "appservice_ping" }, APPSERVICE },
};

static const struct feature_route ops_routes[] = {
	{ { "/readyz", GET_HEAD, mrtc_admin_readyz, "readyz" }, ADMIN },
	{ { "/metrics", EVHTTP_REQ_GET, mrtc_admin_metrics, "metrics" }, ADMIN },
};

static enum mrtc_err ops_create(struct mrtc_services *s)
{
	return mrtc_readiness_create(s, &s->readiness);
}

static void ops_quiesce(struct mrtc_services *s)
{
	mrtc_readiness_quiesce(s->readiness);
}

static void ops_destroy(struct mrtc_services *s)
{
	mrtc_readiness_destroy(s->readiness);
	s->readiness = NULL;
}

static enum mrtc_err delayed_create(struct mrtc_services *s)
{
	return mrtc_delayed_create(s, &s->delayed);
}

static void delayed_quiesce(struct mrtc_services *s)
{
	mrtc_delayed_quiesce(s->delayed);
}

static void delayed_destroy(struct mrtc_services *s)
{
	mrtc_delayed_destroy(s->delayed);
	s->delayed = NULL;
}

struct feature {
	const char *name;
	unsigned level; /* created in ascending order, stopped in descending order */
	const struct feature_route *routes;
	size_t n_routes;
	enum mrtc_err (*create)(struct mrtc_services *s); /* each hook may be NULL */
	void (*quiesce)(struct mrtc_services *s);
	void (*destroy)(struct mrtc_services *s);
};

#define ROUTES(a) a, sizeof(a) / sizeof((a)[0])

/* In level order. The order of the routes is the order of the listeners' tables. */
static const struct feature features[] = {
	{ "ops", 10, ROUTES(ops_routes), ops_create, ops_quiesce, ops_destroy },
	{ "delayed", 20, ROUTES(delayed_routes), delayed_create, delayed_quiesce, delayed_destroy },
	{ "legacy", 30, ROUTES(legacy_routes), NULL, NULL, NULL },
	{ "rtc", 30, ROUTES(rtc_routes), NULL, NULL, NULL },
	{ "appservice", 30, ROUTES(appservice_routes), NULL, NULL, NULL },
};

#define N_FEATURES (sizeof(features) / sizeof(features[0]))

struct mrtc_daemon {
	struct event_base *base;
	const struct mrtc_config *config;
	struct mrtc_services *services;
	size_t n_created; /* features[0 .. n_created) are up */
	struct mrtc_server *server;
	struct mrtc_route routes[2][MRTC_SERVER_ROUTES_MAX]; /* main, admin */
	size_t n_routes[2];
	char sfu_paths[MRTC_SERVER_ROUTES_MAX][40]; /* "/<n>/get_token", ... */
	size_t n_sfu_paths;
};

static bool mounted(const struct mrtc_config *c, unsigned when)
{
	return !((when & HOMESERVER) && c->legacy_only) && !((when & STORE) && !c->store) &&
	       !((when & APPSERVICE) && !c->appservice);
}

static bool route_add(struct mrtc_daemon *d, size_t listener, struct mrtc_route route)
{
	/* One place is the server's own /healthz. */
	if (d->n_routes[listener] + 1 >= MRTC_SERVER_ROUTES_MAX)
		return false;
	d->routes[listener][d->n_routes[listener]++] = route;
	return true;
}

/* The route tables of both listeners, from the features' routes and the configuration. */
static bool routes_build(struct mrtc_daemon *d)
{
	const struct mrtc_config *c = d->config;
	for (size_t f = 0; f < N_FEATURES; f++) {
		for (size_t i = 0; i < features[f].n_routes; i++) {
			const struct feature_route *fr = &features[f].routes[i];
			if (mounted(c, fr->when) &&
			    !route_add(d, (fr->when & ADMIN) ? 1 : 0, fr->route))
				return false;
		}
	}
	/* SFU n > 1 has the OpenID endpoints under its service URL, <service>/<n>. */
	for (size_t n = 2; n <= c->n_sfus; n++) {
		for (size_t f = 0; f < N_FEATURES; f++) {
			for (size_t i = 0; i < features[f].n_routes; i++) {
				const struct feature_route *fr = &features[f].routes[i];
				if (!(fr->when & PER_SFU) || !mounted(c, fr->when))
					continue;
				if (d->n_sfu_paths == MRTC_SERVER_ROUTES_MAX)
					return false;
				char *p = d->sfu_paths[d->n_sfu_paths++];
				struct mrtc_route r = fr->route;
				if (!mrtc_format(p, sizeof(d->sfu_paths[0]), "/%zu%s", n, r.path))
					return false;
				r.path = p;
				if (!route_add(d, 0, r))
					return false;
			}
		}
	}
	return true;
}

enum mrtc_err mrtc_daemon_create(struct event_base *base, const struct mrtc_config *config,
				 struct mrtc_daemon **ret_daemon)
{
	struct mrtc_daemon *d = calloc(1, sizeof(*d));
	if (!d)
		return MRTC_ERR_NOMEM;
	d->base = base;
	d->config = config;
	for (size_t i = 1; i < N_FEATURES; i++)
		assert(features[i - 1].level <= features[i].level); /* the list is in level order */
	enum mrtc_err err = mrtc_services_create(base, config, &d->services);
	for (; err == MRTC_OK && d->n_created < N_FEATURES; d->n_created++) {
		const struct feature *f = &features[d->n_created];
		err = f->create ? f->create(d->services) : MRTC_OK;
		if (err != MRTC_OK) {
			mrtc_log(LOG_ERR, "main", NULL, "cannot set up %s: %s", f->name,
				 mrtc_err_str(err));
			break;
		}
	}
	if (err == MRTC_OK && !routes_build(d)) {
		mrtc_log(LOG_ERR, "main", NULL, "more routes than the server takes");
		err = MRTC_ERR_INTERNAL;
	}
	if (err == MRTC_OK) {
		struct mrtc_server_setup setup = {
			.metrics = &d->services->metrics,
			.services = d->services,
			.main_routes = d->routes[0],
			.n_main_routes = d->n_routes[0],
			.admin_routes = d->routes[1],
			.n_admin_routes = d->n_routes[1],
		};
		err = mrtc_server_create(base, config, &setup, &d->server);
	}
	if (err != MRTC_OK) {
		mrtc_daemon_destroy(d);
		return err;
	}
	*ret_daemon = d;
	return MRTC_OK;
}

struct mrtc_server *mrtc_daemon_server(struct mrtc_daemon *d)
{
	return d->server;
}

void mrtc_daemon_quiesce(struct mrtc_daemon *d, uint64_t deadline_ms)
{
	for (size_t i = d->n_created; i-- > 0;)
		if (features[i].quiesce)
			features[i].quiesce(d->services);
	/* Outbound calls still running (re-checks, key fetches) end by their own timeouts. */
	struct mrtc_http_client *http = d->services->http;
	uint64_t end = mrtc_monotonic_ms() + deadline_ms;
	while (mrtc_http_client_live_calls(http) > 0 && mrtc_monotonic_ms() < end)
		event_base_loop(d->base, EVLOOP_ONCE);
	size_t left = mrtc_http_client_live_calls(http);
	if (left)
		mrtc_log(LOG_WARNING, "server", NULL, "%zu outbound calls abandoned at exit", left);
}

void mrtc_daemon_reload(struct mrtc_daemon *d)
{
	const struct mrtc_config *c = d->config;
	if (c->ca_file) {
		enum mrtc_err err = mrtc_http_client_reload_ca(d->services->http, c->ca_file);
		mrtc_log(err == MRTC_OK ? LOG_INFO : LOG_ERR, "server", NULL,
			 "SIGHUP: %s the CA file %s",
			 err == MRTC_OK ? "reloaded" : "could not reload", c->ca_file);
	} else {
		mrtc_log(LOG_INFO, "server", NULL, "SIGHUP: no CA file to reload");
	}
}

void mrtc_daemon_destroy(struct mrtc_daemon *d)
{
	if (!d)
		return;
	mrtc_server_destroy(d->server);
	for (size_t i = d->n_created; i-- > 0;)
		if (features[i].destroy)
			features[i].destroy(d->services);
	mrtc_services_destroy(d->services);
	free(d);
}
