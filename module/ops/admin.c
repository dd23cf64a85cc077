/* SPDX-License-Identifier: Apache-2.0 */
/* Readiness probes, /readyz, and /metrics over every component's statistics. */
#include "mrtc/ops/admin.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc-version.h"
#include "mrtc/appservice/appservice.h"
#include "mrtc/delayed/delayed.h"
#include "mrtc/core/log.h"
#include "mrtc/store/async.h"
#include "mrtc/services/services.h"
#include "mrtc/base/util.h"

/* One SFU's probe. */
struct sfu_probe {
	struct mrtc_readiness *rd;
	size_t index;	/* in config->sfus */
	uint64_t ok_ms; /* monotonic time of the last good probe */
	struct mrtc_rs_call *call;
};

struct mrtc_readiness {
	struct mrtc_services *s;
	struct event *timer;
	uint64_t hs_ok_ms; /* monotonic time of the last good probe */
	bool hs_probing;
	struct mrtc_http_call *hs_call;
	struct sfu_probe sfus[MRTC_SFUS_MAX];
};

static void on_hs_probe(void *arg, const struct mrtc_http_response *resp)
{
	struct mrtc_readiness *rd = arg;
	rd->hs_call = NULL;
	rd->hs_probing = false;
	struct mrtc_appservice_features f;
	if (resp->err == MRTC_OK && resp->status == 200 && rd->s->config->appservice &&
	    mrtc_appservice_features_parse(resp->body, resp->body_len, &f))
		mrtc_appservice_features_update(rd->s, &f);
	if (resp->err == MRTC_OK && resp->status == 200)
		rd->hs_ok_ms = mrtc_monotonic_ms();
	else
		mrtc_log(LOG_WARNING, "readiness", NULL, "homeserver probe failed: %s, HTTP %d",
			 mrtc_err_str(resp->err), resp->err == MRTC_OK ? resp->status : 0);
}

static void on_sfu_probe(void *arg, enum mrtc_err err, const char *detail)
{
	struct sfu_probe *p = arg;
	p->call = NULL;
	if (err == MRTC_OK)
		p->ok_ms = mrtc_monotonic_ms();
	else
		mrtc_log(LOG_WARNING, "readiness", NULL, "SFU %zu (%s) probe failed: %s",
			 p->index + 1, p->rd->s->config->sfus[p->index].url,
			 detail ? detail : mrtc_err_str(err));
}

static void probe(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_readiness *rd = arg;
	const struct mrtc_config *c = rd->s->config;
	if (c->homeserver_url && !rd->hs_probing) {
		char url[MRTC_URL_MAX + 64];
		struct mrtc_http_request req = { .method = "GET",
						 .timeout_ms = c->homeserver_timeout_s * 1000,
						 .max_body = 64 * 1024 };
		/* MRTC_URL_MAX leaves room for the path: a failure is a bug, and no probe. */
		rd->hs_call =
		    mrtc_format(url, sizeof(url), "%s/_matrix/client/versions", c->homeserver_url)
			? mrtc_http_fetch(rd->s->http, rd->s->dns, url, &req, false, NULL, 0,
					  on_hs_probe, rd)
			: NULL;
		rd->hs_probing = rd->hs_call != NULL;
	}
	for (size_t i = 0; i < c->n_sfus; i++) {
		struct sfu_probe *p = &rd->sfus[i];
		if (!p->call)
			p->call = mrtc_roomservice_probe(rd->s->sfu_rooms[i], on_sfu_probe, p);
	}
}

enum mrtc_err mrtc_readiness_create(struct mrtc_services *s, struct mrtc_readiness **ret)
{
	struct mrtc_readiness *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return MRTC_ERR_NOMEM;
	rd->s = s;
	for (size_t i = 0; i < MRTC_SFUS_MAX; i++)
		rd->sfus[i] = (struct sfu_probe){ .rd = rd, .index = i };
	rd->timer = event_new(s->base, -1, EV_PERSIST, probe, rd);
	struct timeval tv = { .tv_sec = (time_t)s->config->readiness_interval_s };
	if (!rd->timer || event_add(rd->timer, &tv) != 0) {
		mrtc_readiness_destroy(rd);
		return MRTC_ERR_NOMEM;
	}
	probe(-1, 0, rd);
	*ret = rd;
	return MRTC_OK;
}

void mrtc_readiness_quiesce(struct mrtc_readiness *rd)
{
	if (!rd)
		return;
	if (rd->timer)
		event_del(rd->timer);
	mrtc_http_call_cancel(rd->hs_call);
	rd->hs_call = NULL;
	for (size_t i = 0; i < MRTC_SFUS_MAX; i++) {
		mrtc_rs_call_cancel(rd->sfus[i].call);
		rd->sfus[i].call = NULL;
	}
}

void mrtc_readiness_destroy(struct mrtc_readiness *rd)
{
	if (!rd)
		return;
	mrtc_http_call_cancel(rd->hs_call);
	for (size_t i = 0; i < MRTC_SFUS_MAX; i++)
		mrtc_rs_call_cancel(rd->sfus[i].call);
	if (rd->timer)
		event_free(rd->timer);
	free(rd);
}

/* Whether something answered well within the last three probe intervals (as README says:
 * the third missed probe turns the check false, no extra grace). */
static bool recent(uint64_t ok_ms, uint64_t other_ms, uint64_t interval_s)
{
	uint64_t last = ok_ms > other_ms ? ok_ms : other_ms;
	uint64_t window = 3 * interval_s * 1000;
	return last && mrtc_monotonic_ms() - last <= window;
}

void mrtc_admin_readyz(struct mrtc_request *r)
{
	struct mrtc_services *s = r->services;
	const struct mrtc_config *c = s->config;
	struct mrtc_readiness *rd = s->readiness;
	struct json_object *body = json_object_new_object();
	struct json_object *checks = json_object_new_object();
	bool ready = true;
	/* Every SFU by itself; the daemon is ready while any answers, since tokens for the
	 * others still work (and every instance sees the same SFUs). */
	bool sfu = false;
	struct json_object *sfus = json_object_new_array();
	for (size_t i = 0; i < c->n_sfus; i++) {
		struct mrtc_roomservice_stats rss;
		mrtc_roomservice_get_stats(s->sfu_rooms[i], &rss);
		bool up =
		    recent(rd ? rd->sfus[i].ok_ms : 0, rss.last_ok_ms, c->readiness_interval_s);
		sfu = sfu || up;
		struct json_object *o = json_object_new_object();
		if (o && sfus && json_object_array_add(sfus, o) == 0) {
			json_object_object_add(o, "sfu", json_object_new_int64((int64_t)i + 1));
			json_object_object_add(o, "url", json_object_new_string(c->sfus[i].url));
			json_object_object_add(o, "ready", json_object_new_boolean(up));
		} else {
			json_object_put(o);
		}
	}
	ready = ready && sfu;
	if (checks)
		json_object_object_add(checks, "sfu", json_object_new_boolean(sfu));
	if (body && sfus)
		json_object_object_add(body, "sfus", sfus);
	else
		json_object_put(sfus);
	if (!c->legacy_only) {
		struct mrtc_homeserver_stats hss;
		mrtc_homeserver_get_stats(s->homeserver, &hss);
		bool key = c->signing_key != NULL;
		bool hs = recent(rd ? rd->hs_ok_ms : 0, hss.last_ok_ms, c->readiness_interval_s);
		bool admin = !hss.admin_misconfigured;
		if (c->appservice) {
			/* No key of ours: the homeserver's MSC4512 proxy and MSC4502 instead. */
			static const struct mrtc_appservice_features none;
			const struct mrtc_appservice_features *f =
			    s->appservice_features ? s->appservice_features : &none;
			key = f->msc4512 && (f->msc4502 || f->msc4502_stable);
			if (checks) {
				json_object_object_add(checks, "msc4195",
						       json_object_new_boolean(f->msc4195));
				json_object_object_add(
				    checks, "msc4502",
				    json_object_new_boolean(f->msc4502 || f->msc4502_stable));
				json_object_object_add(checks, "msc4512",
						       json_object_new_boolean(f->msc4512));
			}
		}
		ready = ready && key && hs && admin;
		if (checks) {
			if (!c->appservice)
				json_object_object_add(checks, "signing_key",
						       json_object_new_boolean(key));
			json_object_object_add(checks, "homeserver", json_object_new_boolean(hs));
			json_object_object_add(checks, "membership_token",
					       json_object_new_boolean(admin));
		}
	}
	/* The store: named, with its state ("none", "off" with MRTC_STORE=none). Only refused
	 * credentials (a configuration error) make the daemon unready: an unreachable Redis stops
	 * delegation, not tokens. */
	const struct mrtc_store_async *store = mrtc_delayed_get_store(s->delayed);
	{
		struct mrtc_store_status st;
		mrtc_store_async_get_status(store, &st); /* the last known: never waits */
		ready = ready && !st.refused;
		struct json_object *o = json_object_new_object();
		if (o) {
			json_object_object_add(o, "kind", json_object_new_string(st.kind));
			if (st.spec[0])
				json_object_object_add(o, "spec", json_object_new_string(st.spec));
			if (st.address[0])
				json_object_object_add(o, "address",
						       json_object_new_string(st.address));
			json_object_object_add(o, "state", json_object_new_string(st.state));
			if (st.detail[0])
				json_object_object_add(o, "detail",
						       json_object_new_string(st.detail));
		}
		if (checks && store)
			json_object_object_add(checks, "store",
					       json_object_new_boolean(!st.refused));
		if (body && o)
			json_object_object_add(body, "store", o);
		else
			json_object_put(o);
	}
	if (body) {
		json_object_object_add(body, "status",
				       json_object_new_string(ready ? "ready" : "not ready"));
		json_object_object_add(body, "checks", checks);
	} else {
		json_object_put(checks);
	}
	mrtc_http_reply_json(r, ready ? 200 : 503, body);
	json_object_put(body);
}

static void cache_lines(struct mrtc_buf *b, const char *cache, uint64_t hits, uint64_t misses,
			size_t size)
{
	mrtc_buf_printf(b, "mrtc_cache_hits_total{cache=\"%s\"} %llu\n", cache,
			(unsigned long long)hits);
	mrtc_buf_printf(b, "mrtc_cache_misses_total{cache=\"%s\"} %llu\n", cache,
			(unsigned long long)misses);
	mrtc_buf_printf(b, "mrtc_cache_entries{cache=\"%s\"} %zu\n", cache, size);
}

/* A counter with result="ok" and result="failed". */
static void result_lines(struct mrtc_buf *b, const char *name, const char *help, uint64_t ok,
			 uint64_t failed)
{
	mrtc_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	mrtc_buf_printf(b, "%s{result=\"ok\"} %llu\n%s{result=\"failed\"} %llu\n", name,
			(unsigned long long)ok, name, (unsigned long long)failed);
}

/* RoomService figures and readiness of each SFU, labelled sfu="<n>" (its place in the list). */
static void write_sfu_metrics(struct mrtc_buf *b, const struct mrtc_services *s)
{
	const struct mrtc_config *c = s->config;
	mrtc_buf_puts(b, "# HELP mrtc_roomservice_calls_total LiveKit RoomService calls, by SFU "
			 "and result.\n# TYPE mrtc_roomservice_calls_total counter\n");
	for (size_t i = 0; i < c->n_sfus; i++) {
		struct mrtc_roomservice_stats rs;
		mrtc_roomservice_get_stats(s->sfu_rooms[i], &rs);
		unsigned long long n[3] = { rs.ok, rs.not_found, rs.failed };
		static const char *const result[3] = { "ok", "not_found", "failed" };
		for (int k = 0; k < 3; k++)
			mrtc_buf_printf(b,
					"mrtc_roomservice_calls_total{sfu=\"%zu\",result=\"%s\"} "
					"%llu\n",
					i + 1, result[k], n[k]);
	}
	mrtc_buf_puts(b, "# HELP mrtc_rooms_known_hits_total Tokens that needed no CreateRoom "
			 "(room known to exist), by SFU.\n"
			 "# TYPE mrtc_rooms_known_hits_total counter\n");
	for (size_t i = 0; i < c->n_sfus; i++) {
		struct mrtc_roomservice_stats rs;
		mrtc_roomservice_get_stats(s->sfu_rooms[i], &rs);
		mrtc_buf_printf(b, "mrtc_rooms_known_hits_total{sfu=\"%zu\"} %llu\n", i + 1,
				(unsigned long long)rs.known_room_hits);
	}
	mrtc_buf_puts(b, "# HELP mrtc_sfu_up Whether the SFU answered within the last three "
			 "readiness probes.\n# TYPE mrtc_sfu_up gauge\n");
	for (size_t i = 0; i < c->n_sfus; i++) {
		struct mrtc_roomservice_stats rs;
		mrtc_roomservice_get_stats(s->sfu_rooms[i], &rs);
		const struct mrtc_readiness *rd = s->readiness;
		bool up =
		    recent(rd ? rd->sfus[i].ok_ms : 0, rs.last_ok_ms, c->readiness_interval_s);
		mrtc_buf_printf(b, "mrtc_sfu_up{sfu=\"%zu\"} %d\n", i + 1, up ? 1 : 0);
	}
}

void mrtc_admin_metrics(struct mrtc_request *r)
{
	struct mrtc_services *s = r->services;
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	mrtc_metrics_write_requests(&s->metrics, &b);
	mrtc_metrics_write_one(&b, "mrtc_build_info", "gauge", "Version of this build.",
			       "version=\"" MRTC_VERSION "\"", 1);
	mrtc_buf_puts(&b, "# HELP mrtc_tokens_minted_total LiveKit tokens minted, by kind.\n"
			  "# TYPE mrtc_tokens_minted_total counter\n");
	mrtc_buf_printf(&b,
			"mrtc_tokens_minted_total{kind=\"local\"} %llu\n"
			"mrtc_tokens_minted_total{kind=\"federated\"} %llu\n"
			"mrtc_tokens_minted_total{kind=\"legacy\"} %llu\n",
			(unsigned long long)s->counters.tokens_local,
			(unsigned long long)s->counters.tokens_federated,
			(unsigned long long)s->counters.tokens_legacy);
	mrtc_buf_puts(&b, "# HELP mrtc_federation_requests_out_total Token requests relayed to "
			  "other homeservers, by result.\n"
			  "# TYPE mrtc_federation_requests_out_total counter\n");
	mrtc_buf_printf(&b,
			"mrtc_federation_requests_out_total{result=\"ok\"} %llu\n"
			"mrtc_federation_requests_out_total{result=\"forbidden\"} %llu\n"
			"mrtc_federation_requests_out_total{result=\"invalid_url\"} %llu\n"
			"mrtc_federation_requests_out_total{result=\"failed\"} %llu\n",
			(unsigned long long)s->counters.fed_out_ok,
			(unsigned long long)s->counters.fed_out_forbidden,
			(unsigned long long)s->counters.fed_out_invalid,
			(unsigned long long)s->counters.fed_out_failed);
	mrtc_buf_puts(&b, "# HELP mrtc_federation_requests_in_total Token requests from other "
			  "homeservers past signature checks, by result.\n"
			  "# TYPE mrtc_federation_requests_in_total counter\n");
	mrtc_buf_printf(&b,
			"mrtc_federation_requests_in_total{result=\"ok\"} %llu\n"
			"mrtc_federation_requests_in_total{result=\"refused\"} %llu\n",
			(unsigned long long)s->counters.fed_in_ok,
			(unsigned long long)s->counters.fed_in_refused);
	mrtc_buf_puts(&b, "# HELP mrtc_signature_verifications_total X-Matrix signatures checked, "
			  "by result.\n# TYPE mrtc_signature_verifications_total counter\n");
	mrtc_buf_printf(&b,
			"mrtc_signature_verifications_total{result=\"ok\"} %llu\n"
			"mrtc_signature_verifications_total{result=\"bad\"} %llu\n",
			(unsigned long long)s->counters.sig_ok,
			(unsigned long long)s->counters.sig_bad);
	mrtc_metrics_write_one(&b, "mrtc_rate_limited_total", "counter",
			       "Requests refused by a rate limit.", NULL,
			       (double)s->counters.rate_limited);
	mrtc_limits_write_metrics(s->limits, &b);

	struct mrtc_keyring_stats ks = { 0 };
	if (s->keyring)
		mrtc_keyring_get_stats(s->keyring, &ks);
	result_lines(&b, "mrtc_key_fetches_total", "Server key fetches, by result.",
		     ks.fetches - ks.fetch_failures, ks.fetch_failures);
	result_lines(&b, "mrtc_key_notary_fetches_total",
		     "Server key fetches from the notary after a direct fetch failed, by result.",
		     ks.notary_fetches - ks.notary_failures, ks.notary_failures);

	mrtc_buf_puts(&b, "# HELP mrtc_cache_hits_total Cache hits, by cache.\n"
			  "# TYPE mrtc_cache_hits_total counter\n"
			  "# HELP mrtc_cache_misses_total Cache misses, by cache.\n"
			  "# TYPE mrtc_cache_misses_total counter\n"
			  "# HELP mrtc_cache_entries Entries held, by cache.\n"
			  "# TYPE mrtc_cache_entries gauge\n");
	if (s->homeserver) {
		struct mrtc_homeserver_stats hs;
		mrtc_homeserver_get_stats(s->homeserver, &hs);
		cache_lines(&b, "auth", hs.auth.hits, hs.auth.misses, hs.auth.size);
		cache_lines(&b, "membership", hs.membership.hits, hs.membership.misses,
			    hs.membership.size);
	}
	cache_lines(&b, "keys", ks.hits, ks.misses, ks.servers);
	struct mrtc_resolver_stats res;
	mrtc_resolver_get_stats(s->resolver, &res);
	cache_lines(&b, "resolution", res.hits, res.misses, res.size);
	struct mrtc_cache_stats oc;
	mrtc_cache_get_stats(s->openid_cache, &oc);
	cache_lines(&b, "openid", oc.hits, oc.misses, oc.size);

	struct mrtc_http_client_stats cs;
	mrtc_http_client_get_stats(s->http, &cs);
	mrtc_metrics_write_one(&b, "mrtc_tls_handshakes_total", "counter",
			       "Outbound TLS connections opened.", NULL, (double)cs.tls_handshakes);
	mrtc_metrics_write_one(&b, "mrtc_outbound_connections_total", "counter",
			       "Outbound connections opened.", NULL, (double)cs.connections);
	mrtc_metrics_write_one(&b, "mrtc_outbound_connections_open", "gauge",
			       "Outbound connections open now (in use or pooled).", NULL,
			       (double)cs.open);
	mrtc_metrics_write_one(&b, "mrtc_outbound_connections_max", "gauge",
			       "Outbound connections allowed open at once (MRTC_OUTBOUND_MAX).",
			       NULL, (double)s->config->outbound_max);
	mrtc_metrics_write_one(&b, "mrtc_outbound_connections_refused_total", "counter",
			       "Outbound calls failed because MRTC_OUTBOUND_MAX connections were "
			       "open.",
			       NULL, (double)cs.refused);
	mrtc_metrics_write_one(&b, "mrtc_outbound_requests_reused_total", "counter",
			       "Outbound requests sent on a pooled connection.", NULL,
			       (double)cs.reused);
	mrtc_metrics_write_one(&b, "mrtc_outbound_requests_retried_total", "counter",
			       "Requests sent again on a new connection after a pooled one "
			       "closed before answering.",
			       NULL, (double)cs.retried);

	write_sfu_metrics(&b, s);

	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	struct evbuffer *out = evbuffer_new();
	if (out && !b.failed)
		evbuffer_add(out, b.data, b.len);
	mrtc_buf_finish(&b);
	mrtc_http_reply_raw(r, out ? 200 : 500, out);
	if (out)
		evbuffer_free(out);
}
