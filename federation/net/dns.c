/* SPDX-License-Identifier: Apache-2.0 */
/*
 * c-ares driven by libevent. c-ares may answer inside the call that starts a query, so every
 * result is parked in its query and delivered from a deferred event: callers never see a
 * callback before they hold the query handle.
 */
#include "mrtc/net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FDS 16

struct fd_watch {
	ares_socket_t fd;
	struct event *ev;
};

struct mrtc_dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct fd_watch fds[MAX_FDS];
	struct mrtc_dns_query *queries; /* outstanding, doubly linked */
	bool destroying;
};

struct mrtc_dns_query {
	struct mrtc_dns *dns;
	struct mrtc_dns_query *prev, *next;
	struct event *done;
	bool is_srv;
	bool cancelled;
	bool answered;
	uint16_t port;
	mrtc_dns_addrs_fn addrs_cb;
	mrtc_dns_srv_fn srv_cb;
	void *ctx;
	enum mrtc_err err;
	size_t n;
	struct sockaddr_storage addrs[MRTC_DNS_MAX_ADDRS];
	struct mrtc_srv srv[MRTC_DNS_MAX_SRV];
};

static void rearm_timer(struct mrtc_dns *dns)
{
	struct timeval tv, *t = ares_timeout(dns->channel, NULL, &tv);
	if (t)
		event_add(dns->timer, t);
	else
		event_del(dns->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_dns *dns = arg;
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(dns);
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct mrtc_dns *dns = arg;
	ares_process_fd(dns->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(dns);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mrtc_dns *dns = data;
	struct fd_watch *w = NULL, *free_slot = NULL;
	for (int i = 0; i < MAX_FDS; i++) {
		if (dns->fds[i].ev && dns->fds[i].fd == fd)
			w = &dns->fds[i];
		else if (!dns->fds[i].ev && !free_slot)
			free_slot = &dns->fds[i];
	}
	if (w) {
		event_free(w->ev);
		w->ev = NULL;
	}
	if (!readable && !writable)
		return;
	if (!w)
		w = free_slot;
	if (!w)
		return; /* c-ares opens few sockets; a full table only delays to the timer */
	w->fd = fd;
	w->ev =
	    event_new(dns->base, fd,
		      (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0)),
		      on_socket, dns);
	if (w->ev)
		event_add(w->ev, NULL);
}

static void unlink_query(struct mrtc_dns_query *q)
{
	struct mrtc_dns *dns = q->dns;
	if (q->prev)
		q->prev->next = q->next;
	else if (dns->queries == q)
		dns->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void free_query(struct mrtc_dns_query *q)
{
	unlink_query(q);
	if (q->done)
		event_free(q->done);
	free(q);
}

static void deliver(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_dns_query *q = arg;
	if (!q->cancelled) {
		if (q->is_srv)
			q->srv_cb(q->ctx, q->err, q->srv, q->n);
		else
			q->addrs_cb(q->ctx, q->err, q->addrs, q->n);
	}
	free_query(q);
}

/* Called from c-ares with the answer (possibly inside ares_*() itself). */
static void finish(struct mrtc_dns_query *q, enum mrtc_err err)
{
	q->err = err;
	q->answered = true;
	if (q->dns->destroying) {
		free_query(q);
		return;
	}
	event_active(q->done, 0, 0);
}

static enum mrtc_err map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return MRTC_OK;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return MRTC_ERR_NOT_FOUND;
	case ARES_ETIMEOUT:
		return MRTC_ERR_TIMEOUT;
	case ARES_ENOMEM:
		return MRTC_ERR_NOMEM;
	default:
		return MRTC_ERR_UPSTREAM;
	}
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	(void)timeouts;
	struct mrtc_dns_query *q = arg;
	enum mrtc_err err = map_status(status);
	if (err == MRTC_OK && res) {
		for (struct ares_addrinfo_node *n = res->nodes; n && q->n < MRTC_DNS_MAX_ADDRS;
		     n = n->ai_next) {
			if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
				continue;
			if (n->ai_addrlen > sizeof(q->addrs[0]))
				continue;
			memset(&q->addrs[q->n], 0, sizeof(q->addrs[0]));
			memcpy(&q->addrs[q->n], n->ai_addr, n->ai_addrlen);
			if (n->ai_family == AF_INET)
				((struct sockaddr_in *)(void *)&q->addrs[q->n])->sin_port =
				    htons(q->port);
			else
				((struct sockaddr_in6 *)(void *)&q->addrs[q->n])->sin6_port =
				    htons(q->port);
			q->n++;
		}
		if (q->n == 0)
			err = MRTC_ERR_NOT_FOUND;
	}
	if (res)
		ares_freeaddrinfo(res);
	finish(q, err);
}

static int cmp_srv(const void *a, const void *b)
{
	const struct mrtc_srv *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->weight > y->weight ? -1 : x->weight < y->weight;
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct mrtc_dns_query *q = arg;
	enum mrtc_err err = map_status(status);
	if (err == MRTC_ERR_NOT_FOUND) {
		finish(q, MRTC_OK); /* no record is an answer, not a failure */
		return;
	}
	if (err == MRTC_OK) {
		struct ares_srv_reply *reply = NULL;
		int ps = ares_parse_srv_reply(abuf, alen, &reply);
		if (ps == ARES_SUCCESS) {
			for (struct ares_srv_reply *r = reply; r && q->n < MRTC_DNS_MAX_SRV;
			     r = r->next) {
				size_t tl = strlen(r->host);
				if (tl == 0 || tl >= sizeof(q->srv[0].target) || r->port == 0)
					continue;
				struct mrtc_srv *s = &q->srv[q->n++];
				memcpy(s->target, r->host, tl + 1);
				s->port = r->port;
				s->priority = r->priority;
				s->weight = r->weight;
			}
			ares_free_data(reply);
			qsort(q->srv, q->n, sizeof(q->srv[0]), cmp_srv);
		} else if (ps != ARES_ENODATA) {
			err = MRTC_ERR_UPSTREAM;
		}
	}
	finish(q, err);
}

enum mrtc_err mrtc_dns_create(struct event_base *base, const char *server, uint64_t timeout_ms,
			      struct mrtc_dns **ret_dns)
{
	static bool library_ready;
	if (!library_ready) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
			return MRTC_ERR_INTERNAL;
		library_ready = true;
	}
	struct mrtc_dns *dns = calloc(1, sizeof(*dns));
	if (!dns)
		return MRTC_ERR_NOMEM;
	dns->base = base;
	struct ares_options opts = {
		.sock_state_cb = sock_state,
		.sock_state_cb_data = dns,
		.timeout = (int)timeout_ms,
		.tries = 2,
	};
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	enum mrtc_err err = MRTC_ERR_INTERNAL;
	if (ares_init_options(&dns->channel, &opts, mask) != ARES_SUCCESS) {
		free(dns);
		return err;
	}
	if (server && ares_set_servers_ports_csv(dns->channel, server) != ARES_SUCCESS) {
		err = MRTC_ERR_CONFIG;
		goto fail;
	}
	dns->timer = evtimer_new(base, on_timer, dns);
	if (!dns->timer) {
		err = MRTC_ERR_NOMEM;
		goto fail;
	}
	*ret_dns = dns;
	return MRTC_OK;
fail:
	ares_destroy(dns->channel);
	free(dns);
	return err;
}

void mrtc_dns_destroy(struct mrtc_dns *dns)
{
	if (!dns)
		return;
	dns->destroying = true;
	ares_destroy(dns->channel); /* answers every pending query with ARES_EDESTRUCTION */
	while (dns->queries)
		free_query(dns->queries); /* answered, waiting for delivery */
	for (int i = 0; i < MAX_FDS; i++)
		if (dns->fds[i].ev)
			event_free(dns->fds[i].ev);
	if (dns->timer)
		event_free(dns->timer);
	free(dns);
}

static struct mrtc_dns_query *new_query(struct mrtc_dns *dns, void *ctx)
{
	struct mrtc_dns_query *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->dns = dns;
	q->ctx = ctx;
	q->done = event_new(dns->base, -1, 0, deliver, q);
	if (!q->done) {
		free(q);
		return NULL;
	}
	q->next = dns->queries;
	if (dns->queries)
		dns->queries->prev = q;
	dns->queries = q;
	return q;
}

struct mrtc_dns_query *mrtc_dns_resolve(struct mrtc_dns *dns, const char *host, uint16_t port,
					mrtc_dns_addrs_fn cb, void *ctx)
{
	struct mrtc_dns_query *q = new_query(dns, ctx);
	if (!q)
		return NULL;
	q->addrs_cb = cb;
	q->port = port;
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC };
	ares_getaddrinfo(dns->channel, host, NULL, &hints, on_addrinfo, q);
	rearm_timer(dns);
	return q;
}

struct mrtc_dns_query *mrtc_dns_srv(struct mrtc_dns *dns, const char *name, mrtc_dns_srv_fn cb,
				    void *ctx)
{
	struct mrtc_dns_query *q = new_query(dns, ctx);
	if (!q)
		return NULL;
	q->is_srv = true;
	q->srv_cb = cb;
	ares_query(dns->channel, name, ns_c_in, ns_t_srv, on_srv, q);
	rearm_timer(dns);
	return q;
}

void mrtc_dns_cancel(struct mrtc_dns_query *q)
{
	if (q)
		q->cancelled = true;
}
