/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matrix server resolution. A resolution is a small state machine: (well-known fetch with
 * redirects) -> (SRV _matrix-fed, then _matrix) -> result, with waiters coalesced per name
 * and results cached with the well-known's lifetime.
 */
#include "mrtc/net/resolver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrtc/base/cache.h"
#include "mrtc/base/util.h"
#include "mrtc/matrix/json.h"

struct waiter {
	struct mrtc_resolve_op *op;
	struct waiter *next;
};

/* One name being resolved. */
struct job {
	struct mrtc_resolver *r;
	char name[MRTC_SERVER_NAME_MAX + 1];
	char delegated[MRTC_SERVER_NAME_MAX + 1]; /* hostname[:port] to use after well-known */
	bool via_wellknown;
	char url[MRTC_SERVER_NAME_MAX + 64];
	int redirects;
	uint64_t deadline_ms; /* monotonic: every well-known hop shares the one timeout */
	bool tried_legacy_srv;
	uint64_t ttl_ms;
	struct mrtc_http_call *http;
	struct mrtc_dns_query *dnsq;
	struct mrtc_resolve_op *ops; /* waiters */
	struct job *next;
};

struct mrtc_resolve_op {
	struct mrtc_resolver *r;
	struct job *job;
	mrtc_resolve_fn cb;
	void *ctx;
	bool cancelled;
	struct mrtc_resolve_op *next;
	/* a cache hit is delivered from this event */
	struct event *ev;
	struct mrtc_resolved result;
};

struct mrtc_resolver {
	struct event_base *base;
	struct mrtc_resolver_config cfg;
	struct job *jobs;
	/* name -> struct mrtc_resolved (copied), monotonic expiry; [1]: delegated by a
	 * well-known, [0]: no usable well-known (the short failure lifetime) */
	struct mrtc_cache *cache[2];
	struct mrtc_resolver_stats stats;
};

bool mrtc_wellknown_parse(const char *body, size_t len, char ret_server[MRTC_SERVER_NAME_MAX + 1])
{
	struct json_object *doc = NULL;
	if (mrtc_json_parse(body, len, 16, &doc) != MRTC_OK)
		return false;
	const char *s = mrtc_json_get_string(doc, "m.server");
	bool ok = s && mrtc_server_name_is_valid(s);
	if (ok)
		memcpy(ret_server, s, strlen(s) + 1);
	json_object_put(doc);
	return ok;
}

bool mrtc_cache_control_max_age(const char *value, uint64_t *ret_seconds)
{
	if (!value)
		return false;
	const char *p = value;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		size_t n = strcspn(p, ",");
		if ((n >= 8 && strncasecmp(p, "no-store", 8) == 0) ||
		    (n >= 8 && strncasecmp(p, "no-cache", 8) == 0)) {
			*ret_seconds = 0;
			return true;
		}
		if (n > 8 && strncasecmp(p, "max-age=", 8) == 0) {
			size_t d = n - 8;
			while (d && (p[8 + d - 1] == ' ' || p[8 + d - 1] == '\t'))
				d--;
			uint64_t v;
			if (mrtc_parse_u64_n(p + 8, d, 0, UINT64_MAX / 1000, &v)) {
				*ret_seconds = v;
				return true;
			}
		}
		p += n;
	}
	return false;
}

/* ---- cache ---- */

/* The cached resolution of @name (borrowed, valid until the cache changes), or NULL. */
static const struct mrtc_resolved *cache_get(struct mrtc_resolver *r, const char *name)
{
	uint64_t now = mrtc_monotonic_ms();
	const struct mrtc_resolved *res = mrtc_cache_get(r->cache[1], name, strlen(name), now);
	return res ? res : mrtc_cache_get(r->cache[0], name, strlen(name), now);
}

/*
 * Names delegated by a well-known and names without one are held apart, each kind bounded by
 * cache_max, the oldest going first when full (a hash lookup per request whatever the number
 * of names): a flood of names that resolve to nothing (an attacker's made-up origins, each
 * held for the short failure lifetime) cannot push out the delegations of real servers.
 */
static void cache_put(struct mrtc_resolver *r, const char *name, const struct mrtc_resolved *res,
		      uint64_t ttl_ms, bool via_wellknown)
{
	if (ttl_ms == 0)
		return;
	mrtc_cache_remove(r->cache[!via_wellknown], name, strlen(name));
	mrtc_cache_put_copy(r->cache[via_wellknown], name, strlen(name), res, sizeof(*res),
			    mrtc_monotonic_ms() + ttl_ms);
}

/* ---- jobs ---- */

static void job_unlink(struct job *j)
{
	for (struct job **p = &j->r->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			return;
		}
	}
}

static void job_finish(struct job *j, enum mrtc_err err, const struct mrtc_resolved *res)
{
	if (err == MRTC_OK)
		cache_put(j->r, j->name, res, j->ttl_ms, j->via_wellknown);
	job_unlink(j);
	struct mrtc_resolve_op *op = j->ops;
	while (op) {
		struct mrtc_resolve_op *next = op->next;
		if (!op->cancelled)
			op->cb(op->ctx, err, res);
		free(op);
		op = next;
	}
	free(j);
}

/* Fills @res for "@name" that is an IP literal or carries a port (steps 1 and 2). */
static bool direct(const char *name, struct mrtc_resolved *res)
{
	struct mrtc_server_name sn;
	if (!mrtc_server_name_parse(name, &sn))
		return false;
	if (sn.kind == MRTC_HOST_DNS && sn.port == 0)
		return false;
	*res = (struct mrtc_resolved){ .port = sn.port ? sn.port : 8448 };
	if (sn.kind == MRTC_HOST_IPV6) {
		size_t n = strlen(sn.host) - 2;
		memcpy(res->host, sn.host + 1, n);
		res->host[n] = '\0';
	} else {
		memcpy(res->host, sn.host, strlen(sn.host) + 1);
	}
	if (sn.kind == MRTC_HOST_DNS)
		memcpy(res->tls_name, sn.host, strlen(sn.host) + 1);
	return mrtc_copy(res->host_header, sizeof(res->host_header), name);
}

static void srv_step(struct job *j);

static void on_srv(void *arg, enum mrtc_err err, const struct mrtc_srv *recs, size_t n)
{
	struct job *j = arg;
	j->dnsq = NULL;
	const char *host = j->delegated;
	if (err != MRTC_OK) {
		job_finish(j, err == MRTC_ERR_TIMEOUT ? MRTC_ERR_TIMEOUT : MRTC_ERR_DNS, NULL);
		return;
	}
	if (n == 0 && !j->tried_legacy_srv) {
		j->tried_legacy_srv = true;
		srv_step(j);
		return;
	}
	struct mrtc_resolved res = { .via_wellknown = j->via_wellknown };
	memcpy(res.tls_name, host, strlen(host) + 1);
	memcpy(res.host_header, host, strlen(host) + 1);
	if (n > 0) {
		/* The target is only where to connect: TLS and Host stay the server's name. */
		size_t tl = strlen(recs[0].target);
		if (tl && recs[0].target[tl - 1] == '.')
			tl--;
		if (tl >= sizeof(res.host)) {
			job_finish(j, MRTC_ERR_DNS, NULL);
			return;
		}
		memcpy(res.host, recs[0].target, tl);
		res.host[tl] = '\0';
		res.port = recs[0].port;
		res.via_srv = true;
	} else {
		memcpy(res.host, host, strlen(host) + 1);
		res.port = 8448;
	}
	job_finish(j, MRTC_OK, &res);
}

static void srv_step(struct job *j)
{
	char q[MRTC_SERVER_NAME_MAX + 32];
	j->dnsq =
	    mrtc_format(q, sizeof(q), "%s.%s",
			j->tried_legacy_srv ? "_matrix._tcp" : "_matrix-fed._tcp", j->delegated)
		? mrtc_dns_srv(j->r->cfg.dns, q, on_srv, j)
		: NULL;
	if (!j->dnsq)
		job_finish(j, MRTC_ERR_NOMEM, NULL);
}

/* After the well-known step: @delegated is the name to continue with. */
static void after_wellknown(struct job *j)
{
	struct mrtc_resolved res;
	if (direct(j->delegated, &res)) {
		res.via_wellknown = j->via_wellknown;
		job_finish(j, MRTC_OK, &res);
		return;
	}
	srv_step(j);
}

static void fetch_wellknown(struct job *j);

static void on_wellknown(void *arg, const struct mrtc_http_response *resp)
{
	struct job *j = arg;
	j->http = NULL;
	j->ttl_ms = MRTC_WELLKNOWN_FAILURE_TTL_MS;
	if (resp->err == MRTC_OK && resp->status >= 300 && resp->status < 400 && resp->location &&
	    j->redirects < MRTC_WELLKNOWN_MAX_REDIRECTS &&
	    strncmp(resp->location, "https://", 8) == 0 &&
	    strlen(resp->location) < sizeof(j->url)) {
		j->redirects++;
		memcpy(j->url, resp->location, strlen(resp->location) + 1);
		fetch_wellknown(j);
		return;
	}
	char delegated[MRTC_SERVER_NAME_MAX + 1];
	if (resp->err == MRTC_OK && resp->status == 200 &&
	    mrtc_wellknown_parse(resp->body, resp->body_len, delegated)) {
		memcpy(j->delegated, delegated, strlen(delegated) + 1);
		j->via_wellknown = true;
		uint64_t max_age;
		j->ttl_ms = MRTC_WELLKNOWN_TTL_DEFAULT_MS;
		if (mrtc_cache_control_max_age(resp->cache_control, &max_age)) {
			j->ttl_ms = max_age * 1000;
			if (j->ttl_ms < MRTC_WELLKNOWN_TTL_MIN_MS)
				j->ttl_ms = MRTC_WELLKNOWN_TTL_MIN_MS;
			if (j->ttl_ms > MRTC_WELLKNOWN_TTL_MAX_MS)
				j->ttl_ms = MRTC_WELLKNOWN_TTL_MAX_MS;
		}
	}
	/* Anything else: no (usable) well-known; continue with the name itself. */
	after_wellknown(j);
}

static void fetch_wellknown(struct job *j)
{
	struct mrtc_resolver *r = j->r;
	uint64_t now = mrtc_monotonic_ms();
	if (now >= j->deadline_ms) {
		/* Out of time across the redirects: no usable well-known. */
		j->ttl_ms = MRTC_WELLKNOWN_FAILURE_TTL_MS;
		after_wellknown(j);
		return;
	}
	struct mrtc_http_request req = {
		.method = "GET",
		.timeout_ms = j->deadline_ms - now,
		.max_body = MRTC_WELLKNOWN_MAX,
	};
	r->stats.wellknown_fetches++;
	/* Every hop goes through the guard: a redirect cannot reach a blocked address. */
	j->http = mrtc_http_fetch(r->cfg.http, r->cfg.dns, j->url, &req, true, r->cfg.allow,
				  r->cfg.n_allow, on_wellknown, j);
	if (!j->http) {
		j->ttl_ms = MRTC_WELLKNOWN_FAILURE_TTL_MS;
		after_wellknown(j);
	}
}

static void deliver_hit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_resolve_op *op = arg;
	if (!op->cancelled)
		op->cb(op->ctx, op->result.port ? MRTC_OK : MRTC_ERR_INVALID_PARAM,
		       op->result.port ? &op->result : NULL);
	event_free(op->ev);
	free(op);
}

struct mrtc_resolve_op *mrtc_resolver_resolve(struct mrtc_resolver *r, const char *server_name,
					      mrtc_resolve_fn cb, void *ctx)
{
	struct mrtc_resolve_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->r = r;
	op->cb = cb;
	op->ctx = ctx;
	bool valid = mrtc_server_name_is_valid(server_name);
	const struct mrtc_resolved *e = valid ? cache_get(r, server_name) : NULL;
	if (!valid || e || direct(server_name, &op->result)) {
		if (e) {
			op->result = *e;
			r->stats.hits++;
		}
		if (!valid)
			op->result.port = 0;
		op->ev = event_new(r->base, -1, 0, deliver_hit, op);
		if (!op->ev) {
			free(op);
			return NULL;
		}
		event_active(op->ev, 0, 0);
		return op;
	}
	r->stats.misses++;
	for (struct job *j = r->jobs; j; j = j->next) {
		if (strcmp(j->name, server_name) == 0) {
			op->job = j;
			op->next = j->ops;
			j->ops = op;
			return op;
		}
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		free(op);
		return NULL;
	}
	j->r = r;
	j->deadline_ms = mrtc_monotonic_ms() + r->cfg.timeout_ms;
	memcpy(j->name, server_name, strlen(server_name) + 1);
	memcpy(j->delegated, server_name, strlen(server_name) + 1);
	/* url has room for the longest server name */
	mrtc_format(j->url, sizeof(j->url), "https://%s/.well-known/matrix/server", server_name);
	j->ops = op;
	op->job = j;
	j->next = r->jobs;
	r->jobs = j;
	fetch_wellknown(j);
	return op;
}

void mrtc_resolve_cancel(struct mrtc_resolve_op *op)
{
	if (op)
		op->cancelled = true; /* the job goes on: its result is cached for the next asker */
}

enum mrtc_err mrtc_resolver_create(struct event_base *base,
				   const struct mrtc_resolver_config *config,
				   struct mrtc_resolver **ret_resolver)
{
	struct mrtc_resolver *r = calloc(1, sizeof(*r));
	if (!r)
		return MRTC_ERR_NOMEM;
	r->base = base;
	r->cfg = *config;
	if (!r->cfg.cache_max)
		r->cfg.cache_max = 1024;
	if (!r->cfg.timeout_ms)
		r->cfg.timeout_ms = 10000;
	r->cache[0] = mrtc_cache_create(r->cfg.cache_max, NULL);
	r->cache[1] = mrtc_cache_create(r->cfg.cache_max, NULL);
	if (!r->cache[0] || !r->cache[1]) {
		mrtc_cache_destroy(r->cache[0]);
		mrtc_cache_destroy(r->cache[1]);
		free(r);
		return MRTC_ERR_NOMEM;
	}
	*ret_resolver = r;
	return MRTC_OK;
}

void mrtc_resolver_get_stats(const struct mrtc_resolver *r, struct mrtc_resolver_stats *ret)
{
	*ret = r->stats;
	ret->size = 0;
	for (int i = 0; i < 2; i++) {
		struct mrtc_cache_stats cs;
		mrtc_cache_get_stats(r->cache[i], &cs);
		ret->size += cs.size;
	}
}

void mrtc_resolver_destroy(struct mrtc_resolver *r)
{
	if (!r)
		return;
	while (r->jobs) {
		struct job *j = r->jobs;
		r->jobs = j->next;
		mrtc_http_call_cancel(j->http);
		mrtc_dns_cancel(j->dnsq);
		while (j->ops) {
			struct mrtc_resolve_op *op = j->ops;
			j->ops = op->next;
			free(op);
		}
		free(j);
	}
	mrtc_cache_destroy(r->cache[0]);
	mrtc_cache_destroy(r->cache[1]);
	free(r);
}
