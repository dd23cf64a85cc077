/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTPS client's pool: the client itself and its TLS context, destinations (one per
 * TLS flag, verified name, Host header and address) and the evhttp connections open to them.
 * Each connection carries one request at a time and is never reconnected: a connection that
 * closes or fails is discarded (libevent 2.1 cannot reuse an OpenSSL bufferevent after a
 * disconnect), and an idle one goes back to its destination's pool.
 */
#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "httpclient_int.h"
#include "mrtc/base/util.h"

/* ---- SSL context ---- */

/* The system's CA file (SSL_CERT_FILE, else OpenSSL's default), read into the store the first
 * time a chain needs an issuer the store does not hold yet, then answered from the store. The
 * same certificates are trusted as with SSL_CTX_set_default_verify_paths, which reads the file
 * when the context is made: about 150 certificates, near 1 MiB of heap and 1.5 MiB of RSS in a
 * daemon that may never need them (a homeserver, SFU and peers under MRTC_CA_FILE's CA, which
 * is read at once). The lookup's method data marks the file as read (or tried). */
static int system_file_by_subject(X509_LOOKUP *lu, X509_LOOKUP_TYPE type, const X509_NAME *name,
				  X509_OBJECT *ret)
{
	X509_STORE *store = X509_LOOKUP_get_store(lu);
	if (!X509_LOOKUP_get_method_data(lu)) {
		X509_LOOKUP_set_method_data(lu, store);
		const char *file = getenv(X509_get_default_cert_file_env());
		X509_load_cert_crl_file(lu, file ? file : X509_get_default_cert_file(),
					X509_FILETYPE_PEM);
		ERR_clear_error(); /* as SSL_CTX_set_default_verify_paths: a missing file is fine */
	}
	if (type != X509_LU_X509 || !X509_STORE_lock(store))
		return 0;
	X509_OBJECT *o =
	    X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), type, name);
	X509 *x = o ? X509_OBJECT_get0_X509(o) : NULL;
	/* Borrowed, as OpenSSL's own lookups answer (the caller takes a reference): set1 takes
	 * one, given back at once, the store's keeping the certificate alive. */
	int found = x && X509_OBJECT_set1_X509(ret, x);
	if (found)
		X509_free(x);
	X509_STORE_unlock(store);
	return found;
}

static X509_LOOKUP_METHOD *system_file_method;

static SSL_CTX *make_ssl_ctx(const char *ca_file)
{
	/* Made once, by the loop's thread, and kept: contexts of reloads share it. */
	if (!system_file_method) {
		system_file_method = X509_LOOKUP_meth_new("mrtc system CA file, read when needed");
		if (!system_file_method || !X509_LOOKUP_meth_set_get_by_subject(
					       system_file_method, system_file_by_subject)) {
			X509_LOOKUP_meth_free(system_file_method);
			system_file_method = NULL;
			return NULL;
		}
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* SSL_CTX_set_default_verify_paths's three lookups, the file one read when needed. */
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_LOOKUP *dir = NULL, *uri = NULL;
	bool ok = X509_STORE_add_lookup(store, system_file_method) &&
		  (dir = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir())) &&
		  X509_LOOKUP_add_dir(dir, NULL, X509_FILETYPE_DEFAULT) &&
		  (uri = X509_STORE_add_lookup(store, X509_LOOKUP_store()));
	if (ok)
		X509_LOOKUP_add_store(uri, NULL); /* SSL_CERT_URI; nothing by default */
	ERR_clear_error();
	if (!ok || (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void dest_dropped(void *arg);

enum mrtc_err mrtc_http_client_create(struct event_base *base,
				      const struct mrtc_http_client_config *config,
				      struct mrtc_http_client **ret_client)
{
	struct mrtc_http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return MRTC_ERR_NOMEM;
	c->base = base;
	c->max_idle = config->max_idle_per_dest ? config->max_idle_per_dest : 32;
	c->max_open = config->max_open;
	c->dests = mrtc_cache_create(config->max_dests ? config->max_dests : 256, dest_dropped);
	if (!c->dests) {
		free(c);
		return MRTC_ERR_NOMEM;
	}
	c->ssl_ctx = make_ssl_ctx(config->ca_file);
	if (!c->ssl_ctx) {
		mrtc_cache_destroy(c->dests);
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

void mrtc_http_pool_unidle(struct conn *k)
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
	mrtc_http_pool_unidle(k);
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

void mrtc_http_pool_discard(struct conn *k)
{
	k->dead = true;
	mrtc_http_pool_unidle(k);
	event_active(k->free_ev, 0, 0);
}

void mrtc_http_pool_release(struct conn *k)
{
	struct dest *d = k->dest;
	if (d && d->n_idle < k->client->max_idle) {
		k->idle = true;
		k->idle_next = d->idle;
		d->idle = k;
		d->n_idle++;
	} else {
		mrtc_http_pool_discard(k);
	}
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct conn *k = arg;
	if (!k->dead)
		mrtc_http_pool_discard(k);
}

/* The cache dropped @arg (evicted, or the client is destroyed): its idle connections close,
 * busy ones finish their call and are not pooled afterwards. */
static void dest_dropped(void *arg)
{
	struct dest *d = arg;
	while (d->idle)
		mrtc_http_pool_discard(d->idle);
	for (struct conn *k = d->client->conns; k; k = k->next)
		if (k->dest == d)
			k->dest = NULL;
	free(d);
}

struct dest *mrtc_http_pool_dest(struct mrtc_http_client *c, const char *key, bool create)
{
	size_t len = strlen(key);
	/* Refreshed: the most recently used, the last to be evicted. */
	if (mrtc_cache_refresh(c->dests, key, len, 0, UINT64_MAX))
		return mrtc_cache_get(c->dests, key, len, 0);
	if (!create)
		return NULL;
	struct dest *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->client = c;
	/* When full, the least recently used destination goes (dest_dropped). On failure the
	 * cache has freed @d. */
	return mrtc_cache_put(c->dests, key, len, d, UINT64_MAX) ? d : NULL;
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

uint16_t mrtc_http_port_of(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

struct conn *mrtc_http_pool_open(struct mrtc_http_client *c, struct dest *d,
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
	k->evcon = evhttp_connection_base_bufferevent_new(c->base, NULL, k->bev, ip,
							  mrtc_http_port_of(&t->addr));
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

/* The first idle connection found is closed. */
bool mrtc_http_pool_make_room(struct mrtc_http_client *c)
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

void mrtc_http_client_destroy(struct mrtc_http_client *c)
{
	if (!c)
		return;
	mrtc_http_fetch_drop_all(c);
	/* Calls in flight are owned by their requests; freeing the connections drops them. */
	while (c->conns)
		conn_free_now(c->conns);
	mrtc_cache_destroy(c->dests);
	SSL_CTX_free(c->ssl_ctx);
	free(c);
}
