/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the HTTPS client, shared by its three files: httpclient_pool.c (the client, its
 * TLS context, destinations and their keep-alive connections), httpclient_call.c (one request
 * and its response on a connection, with the call's deadline and one retry) and
 * httpclient_fetch.c (URL, DNS and the outbound guard in front of a call). Nothing outside
 * federation/net includes it.
 */
#ifndef MRTC_HTTPCLIENT_INT_H
#define MRTC_HTTPCLIENT_INT_H

#include <event2/http.h>
#include <openssl/ssl.h>

#include "mrtc/base/cache.h"
#include "mrtc/net/httpclient.h"

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

/* Keyed in the client's dests map by "tls|tls_name|host_header|ip|port". */
struct dest {
	struct mrtc_http_client *client;
	struct conn *idle;
	size_t n_idle;
};

struct mrtc_http_client {
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	size_t max_idle;
	size_t max_open;
	struct mrtc_cache *dests; /* key -> struct dest *, least recently used evicted */
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

/* ---- pool (httpclient_pool.c) ---- */

/* The destination for @key (at most DEST_KEY_MAX - 1 bytes), now the most recently used;
 * with @create a new one is added, evicting the least recently used when max_dests are held.
 * NULL when absent (or out of memory). */
struct dest *mrtc_http_pool_dest(struct mrtc_http_client *client, const char *key, bool create);

/* Opens a connection to @t (@ip: its address as text) for destination @d (NULL: not pooled);
 * NULL on failure. */
struct conn *mrtc_http_pool_open(struct mrtc_http_client *client, struct dest *d,
				 const struct mrtc_http_target *t, const char *ip);

/* Takes @k off its destination's idle list, if it is on it. */
void mrtc_http_pool_unidle(struct conn *k);

/* After a complete response: @k goes back to its destination's idle list, or is discarded
 * when it has none or that list is full. */
void mrtc_http_pool_release(struct conn *k);

/* Frees @k from the loop: never from inside one of its own callbacks. */
void mrtc_http_pool_discard(struct conn *k);

/* Makes room for one more connection under max_open by closing an idle one; false when every
 * open connection is busy. */
bool mrtc_http_pool_make_room(struct mrtc_http_client *client);

uint16_t mrtc_http_port_of(const struct sockaddr_storage *sa);

/* ---- calls (httpclient_call.c) ---- */

/* A call with its deadline armed; NULL on OOM. */
struct mrtc_http_call *mrtc_http_call_new(struct mrtc_http_client *client, uint64_t timeout_ms,
					  mrtc_http_done_fn done, void *ctx);

/* Frees @call without a callback. */
void mrtc_http_call_free(struct mrtc_http_call *call);

/* Starts @call on a pooled (unless @fresh) or new connection; a failure is delivered from the
 * loop, never inside this function. */
void mrtc_http_call_start(struct mrtc_http_call *call, const struct mrtc_http_target *t,
			  const struct mrtc_http_request *rq, bool fresh);

/* Copies @rq into the call (f_*, freq), the target too unless already set; false on OOM (what
 * was copied is freed with the call). */
bool mrtc_http_call_copy_request(struct mrtc_http_call *call, const struct mrtc_http_request *rq);

/* Delivers @err to the callback (unless cancelled) and frees @call. */
void mrtc_http_call_fail(struct mrtc_http_call *call, enum mrtc_err err, const char *detail);

/* ---- fetch (httpclient_fetch.c) ---- */

/* Takes @call off the list of fetches waiting for DNS, if it is on it. */
void mrtc_http_fetch_unlist(struct mrtc_http_call *call);

/* Frees every fetch still waiting for DNS, without callback (client destroy). */
void mrtc_http_fetch_drop_all(struct mrtc_http_client *client);

#endif
