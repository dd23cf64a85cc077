/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mrtc_http_fetch(): a URL in front of a call. Parses http(s) URLs, resolves the host with
 * c-ares, keeps the first address the outbound guard allows, then sends the request as an
 * ordinary call. Fetches waiting for DNS are listed on the client so destroy can drop them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "httpclient_int.h"
#include "mrtc/base/util.h"

/* ---- fetch: URL + DNS + guard ---- */

void mrtc_http_fetch_unlist(struct mrtc_http_call *call)
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

/* ---- fetch: URL + DNS + guard ---- */

static void fetch_resolved(void *arg, enum mrtc_err err, const struct sockaddr_storage *addrs,
			   size_t n)
{
	struct mrtc_http_call *call = arg;
	call->dnsq = NULL;
	if (err != MRTC_OK) {
		mrtc_http_call_fail(call, err == MRTC_ERR_TIMEOUT ? MRTC_ERR_TIMEOUT : MRTC_ERR_DNS,
				    "name did not resolve");
		return;
	}
	const struct sockaddr_storage *chosen = NULL;
	for (size_t i = 0; i < n && !chosen; i++)
		if (!call->f_guard || !mrtc_guard_is_blocked((const struct sockaddr *)&addrs[i],
							     call->f_allow, call->f_n_allow))
			chosen = &addrs[i];
	if (!chosen) {
		mrtc_http_call_fail(call, MRTC_ERR_BLOCKED, "every address is in a blocked range");
		return;
	}
	/* Leave the DNS list: from here the call is an ordinary request. */
	mrtc_http_fetch_unlist(call);
	struct mrtc_http_target t = {
		.addr = *chosen,
		.tls = call->f_tls,
		.tls_name = call->f_ip_literal ? NULL : call->f_host,
		.host_header = call->f_host_header,
	};
	mrtc_http_call_start(call, &t, &call->freq, false);
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
	call = mrtc_http_call_new(c, req->timeout_ms, done, ctx);
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
		mrtc_http_call_free(call);
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
	if (!call->f_target || !mrtc_http_call_copy_request(call, req) || !call->f_host ||
	    !call->f_host_header || (n_allow && !call->f_allow)) {
		mrtc_http_call_free(call);
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
		mrtc_http_call_free(call);
		call = NULL;
	}
out:
	evhttp_uri_free(u);
	return call;
}

void mrtc_http_fetch_drop_all(struct mrtc_http_client *c)
{
	while (c->fetches) {
		struct mrtc_http_call *call = c->fetches;
		mrtc_dns_cancel(call->dnsq);
		call->dnsq = NULL;
		mrtc_http_call_free(call);
	}
}
