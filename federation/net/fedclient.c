/* SPDX-License-Identifier: Apache-2.0 */
/* Outbound federation requests: resolver -> DNS -> guard -> TLS (+ X-Matrix). */
#include "mrtc/net/fedclient.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
#include "mrtc/base/util.h"
#include "mrtc/matrix/xmatrix.h"

struct mrtc_fedclient {
	struct event_base *base;
	struct mrtc_fedclient_config cfg;
	struct mrtc_fedclient_stats stats;
	struct mrtc_fed_call *calls; /* every call not yet freed, for destroy */
};

struct mrtc_fed_call {
	struct mrtc_fedclient *fc;
	char destination[MRTC_SERVER_NAME_MAX + 1];
	char *method, *target, *body, *auth;
	size_t body_len;
	uint64_t deadline_ms;
	size_t max_body;
	mrtc_http_done_fn done;
	void *ctx;
	bool cancelled;
	struct mrtc_resolved res;
	struct mrtc_resolve_op *rop;
	struct mrtc_dns_query *dnsq;
	struct mrtc_http_call *http;
	struct event *deadline; /* ends resolution (well-known hops, SRV, DNS) at deadline_ms */
	struct mrtc_fed_call *prev, *next;
};

static void call_free(struct mrtc_fed_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (c->fc->calls == c)
		c->fc->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->deadline)
		event_free(c->deadline);
	free(c->method);
	free(c->target);
	free(c->body);
	free(c->auth);
	free(c);
}

static void finish_error(struct mrtc_fed_call *c, enum mrtc_err err, const char *detail)
{
	struct mrtc_http_response r = { .err = err, .detail = detail };
	c->fc->stats.failures++;
	if (err == MRTC_ERR_BLOCKED)
		c->fc->stats.blocked++;
	if (!c->cancelled)
		c->done(c->ctx, &r);
	call_free(c);
}

static uint64_t remaining(const struct mrtc_fed_call *c)
{
	uint64_t now = mrtc_monotonic_ms();
	return c->deadline_ms > now ? c->deadline_ms - now : 0;
}

/*
 * The call's one deadline passed while the destination was still being resolved: the caller
 * gets its timeout now. A resolution goes on for the resolver's cache and frees the call when
 * it ends; an address lookup is cancelled. (Once the request is sent, the HTTP call's own
 * timeout, the time left, ends it.)
 */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_fed_call *c = arg;
	if (c->http || c->cancelled || (!c->rop && !c->dnsq))
		return;
	struct mrtc_http_response r = { .err = MRTC_ERR_TIMEOUT, .detail = "timed out resolving" };
	c->fc->stats.failures++;
	c->done(c->ctx, &r);
	c->cancelled = true;
	if (c->dnsq) {
		mrtc_dns_cancel(c->dnsq);
		call_free(c);
	}
}

static void on_response(void *arg, const struct mrtc_http_response *resp)
{
	struct mrtc_fed_call *c = arg;
	c->http = NULL;
	if (resp->err != MRTC_OK)
		c->fc->stats.failures++;
	if (!c->cancelled)
		c->done(c->ctx, resp);
	call_free(c);
}

static void on_addrs(void *arg, enum mrtc_err err, const struct sockaddr_storage *addrs, size_t n)
{
	struct mrtc_fed_call *c = arg;
	c->dnsq = NULL;
	if (c->cancelled) {
		call_free(c);
		return;
	}
	if (err != MRTC_OK) {
		finish_error(c, err == MRTC_ERR_TIMEOUT ? MRTC_ERR_TIMEOUT : MRTC_ERR_DNS,
			     "host did not resolve");
		return;
	}
	const struct sockaddr_storage *chosen = NULL;
	for (size_t i = 0; i < n && !chosen; i++)
		if (!mrtc_guard_is_blocked((const struct sockaddr *)&addrs[i], c->fc->cfg.allow,
					   c->fc->cfg.n_allow))
			chosen = &addrs[i];
	if (!chosen) {
		finish_error(c, MRTC_ERR_BLOCKED, "every address is in a blocked range");
		return;
	}
	uint64_t left = remaining(c);
	if (left == 0) {
		finish_error(c, MRTC_ERR_TIMEOUT, "timed out resolving");
		return;
	}
	struct mrtc_http_target t = {
		.addr = *chosen,
		.tls = true,
		.tls_name = c->res.tls_name[0] ? c->res.tls_name : NULL,
		.host_header = c->res.host_header,
	};
	struct mrtc_http_request req = {
		.method = c->method,
		.target = c->target,
		.content_type = c->body ? "application/json" : NULL,
		.authorization = c->auth,
		.body = c->body,
		.body_len = c->body_len,
		.timeout_ms = left,
		.max_body = c->max_body,
	};
	c->http = mrtc_http_send(c->fc->cfg.http, &t, &req, on_response, c);
	if (!c->http)
		finish_error(c, MRTC_ERR_NOMEM, "cannot send");
}

static void on_resolved(void *arg, enum mrtc_err err, const struct mrtc_resolved *res)
{
	struct mrtc_fed_call *c = arg;
	c->rop = NULL;
	if (c->cancelled) {
		call_free(c);
		return;
	}
	if (err != MRTC_OK) {
		finish_error(c, err, "server name did not resolve");
		return;
	}
	c->res = *res;
	c->dnsq = mrtc_dns_resolve(c->fc->cfg.dns, res->host, res->port, on_addrs, c);
	if (!c->dnsq)
		finish_error(c, MRTC_ERR_NOMEM, "cannot resolve");
}

struct mrtc_fed_call *mrtc_fed_request(struct mrtc_fedclient *fc, const char *destination,
				       const char *method, const char *target,
				       const struct json_object *content, bool sign,
				       uint64_t timeout_ms, size_t max_body, mrtc_http_done_fn done,
				       void *ctx)
{
	if (!mrtc_server_name_is_valid(destination) || (sign && !fc->cfg.key))
		return NULL;
	struct mrtc_fed_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fc = fc;
	c->next = fc->calls;
	if (fc->calls)
		fc->calls->prev = c;
	fc->calls = c;
	memcpy(c->destination, destination, strlen(destination) + 1);
	c->method = strdup(method);
	c->target = strdup(target);
	c->deadline_ms = mrtc_monotonic_ms() + timeout_ms;
	c->max_body = max_body;
	c->done = done;
	c->ctx = ctx;
	if (!c->method || !c->target)
		goto fail;
	if (content && mrtc_json_canonical(content, &c->body, &c->body_len) != MRTC_OK)
		goto fail;
	if (sign && mrtc_xmatrix_sign(method, target, fc->cfg.origin, destination, content,
				      fc->cfg.key, &c->auth) != MRTC_OK)
		goto fail;
	fc->stats.requests++;
	if (sign)
		fc->stats.signed_requests++;
	c->deadline = evtimer_new(fc->base, on_deadline, c);
	struct timeval tv = { .tv_sec = (time_t)(timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
	if (!c->deadline || evtimer_add(c->deadline, &tv) != 0)
		goto fail;
	c->rop = mrtc_resolver_resolve(fc->cfg.resolver, destination, on_resolved, c);
	if (!c->rop)
		goto fail;
	return c;
fail:
	call_free(c);
	return NULL;
}

void mrtc_fed_call_cancel(struct mrtc_fed_call *c)
{
	if (!c)
		return;
	c->cancelled = true;
	if (c->rop) {
		/* The resolution goes on for the cache; its callback frees the call. */
		return;
	}
	if (c->dnsq)
		return; /* on_addrs frees it */
	if (c->http) {
		mrtc_http_call_cancel(c->http);
		call_free(c);
	}
}

enum mrtc_err mrtc_fedclient_create(struct event_base *base,
				    const struct mrtc_fedclient_config *config,
				    struct mrtc_fedclient **ret_client)
{
	struct mrtc_fedclient *fc = calloc(1, sizeof(*fc));
	if (!fc)
		return MRTC_ERR_NOMEM;
	fc->base = base;
	fc->cfg = *config;
	*ret_client = fc;
	return MRTC_OK;
}

void mrtc_fedclient_destroy(struct mrtc_fedclient *fc)
{
	if (!fc)
		return;
	/* Calls still resolving for the cache after their caller was answered or went away (the
	 * resolver, DNS and HTTP client are destroyed after us and never call back). */
	while (fc->calls) {
		struct mrtc_fed_call *c = fc->calls;
		mrtc_resolve_cancel(c->rop);
		mrtc_dns_cancel(c->dnsq);
		mrtc_http_call_cancel(c->http);
		call_free(c);
	}
	free(fc);
}

void mrtc_fedclient_get_stats(const struct mrtc_fedclient *fc, struct mrtc_fedclient_stats *ret)
{
	*ret = fc->stats;
}
