/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSC4195 federation get_token, answered for another server: the X-Matrix signature checked by
 * net/'s inbound step (in application-service mode our homeserver has checked it and names the
 * origin), the body's fields, the per-origin rate limit, the remote user's membership and the
 * server ACLs, then a token minted here for the federated user (rtc.c).
 */
#include "rtc_private.h"

#include <arpa/inet.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/matrix/json.h"
#include "mrtc/matrix/servername.h"
#include "mrtc/net/inbound.h"
#include "mrtc/services/services.h"

/* ---- federation: answering another server ---- */

static void fed_remote_membership(void *arg, enum mrtc_err err,
				  const struct mrtc_remote_membership *m)
{
	struct token_req *t = arg;
	t->hs_op = NULL;
	if (err != MRTC_OK) {
		t->s->counters.fed_in_refused++;
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM, "Unable to check the room membership",
			      m->detail);
		return;
	}
	if (!m->acl_allows) {
		t->s->counters.fed_in_refused++;
		mrtc_rtc_fail(t, MRTC_ERR_FORBIDDEN, "Server ACLs deny the requesting server",
			      NULL);
		return;
	}
	if (!m->user_joined || !m->local_joined) {
		t->s->counters.fed_in_refused++;
		mrtc_rtc_fail(t, MRTC_ERR_FORBIDDEN,
			      "The requesting user is not a member of the room", NULL);
		return;
	}
	t->s->counters.fed_in_ok++;
	mrtc_rtc_mint_here(t, t->f.user_id);
}

static void fed_limited(void *arg, bool allowed, uint64_t retry);

static void fed_verified(struct token_req *t)
{
	const char *msg;
	enum mrtc_err err = mrtc_token_fields_parse(t->body, true, &t->f, &msg);
	if (err != MRTC_OK) {
		mrtc_rtc_fail(t, err, msg, NULL);
		return;
	}
	if (strcmp(mrtc_user_id_server(t->f.user_id), t->origin) != 0) {
		mrtc_rtc_fail(t, MRTC_ERR_FORBIDDEN,
			      "'user_id' does not belong to the requesting server", NULL);
		return;
	}
	if (!mrtc_copy(t->device, sizeof(t->device), t->f.claimed_device_id)) {
		mrtc_rtc_fail(t, MRTC_ERR_INVALID_PARAM, "The device id is too long", NULL);
		return;
	}
	if (!t->device[0] && t->s->config->identity == MRTC_IDENTITY_USER_DEVICE_MEMBER) {
		mrtc_rtc_fail(t, MRTC_ERR_BAD_JSON,
			      "A device id is required ('member.claimed_device_id')", NULL);
		return;
	}
	t->limit_op =
	    mrtc_limits_take(t->s->limits, t->s->origin_limit, "origin", t->origin, fed_limited, t);
	if (!t->limit_op)
		mrtc_rtc_fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
}

static void fed_limited(void *arg, bool allowed, uint64_t retry)
{
	struct token_req *t = arg;
	t->limit_op = NULL;
	if (!allowed) {
		mrtc_rtc_limited(t, retry);
		return;
	}
	t->hs_op = mrtc_hs_remote_membership(t->s->homeserver, t->f.room_id, t->f.user_id,
					     t->origin, fed_remote_membership, t);
	if (!t->hs_op)
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM, "Unable to check the room membership", NULL);
}

static void fed_authenticated(void *arg, const struct mrtc_inbound_result *res)
{
	struct token_req *t = arg;
	t->inbound = NULL;
	mrtc_copy(t->origin, sizeof(t->origin), res->origin); /* same size: fits */
	if (res->bad_signature)
		t->s->counters.sig_bad++;
	if (res->err == MRTC_ERR_LIMIT_EXCEEDED) {
		mrtc_rtc_limited(t, res->retry_after_ms);
		return;
	}
	if (res->err != MRTC_OK) {
		mrtc_rtc_fail(t, res->err, res->message, NULL);
		return;
	}
	t->s->counters.sig_ok++;
	mrtc_log(LOG_INFO, "federation", t->r->id, "verified X-Matrix signature of %s",
		 res->origin);
	fed_verified(t);
}

/* An IPv6 client counts as its /64 (what one machine is given); anything else as is. */
static void peer_key(char *addr, size_t size)
{
	struct in6_addr a;
	if (!strchr(addr, ':') || inet_pton(AF_INET6, addr, &a) != 1 || IN6_IS_ADDR_V4MAPPED(&a))
		return;
	memset(a.s6_addr + 8, 0, 8);
	char out[INET6_ADDRSTRLEN];
	char keyed[INET6_ADDRSTRLEN + 4];
	if (inet_ntop(AF_INET6, &a, out, sizeof(out)) &&
	    mrtc_format(keyed, sizeof(keyed), "%s/64", out) && strlen(keyed) < size)
		mrtc_copy(addr, size, keyed);
}

/* The client's address, for the per-peer cap on key fetches: the connection's peer, or behind a
 * reverse proxy on loopback the address it appended to X-Forwarded-For (the last one); an IPv6
 * address as its /64. */
static void client_address(struct mrtc_request *r, char *out, size_t size)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	out[0] = '\0';
	evhttp_connection_get_peer(evhttp_request_get_connection(r->req), &addr, &port);
	if (!addr)
		return;
	const char *xff =
	    evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Forwarded-For");
	if (xff && (strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
		    strncmp(addr, "::ffff:127.", 11) == 0)) {
		const char *last = strrchr(xff, ',');
		last = last ? last + 1 : xff;
		while (*last == ' ')
			last++;
		size_t n = strcspn(last, " ");
		if (n > 0 && n < size) {
			memcpy(out, last, n);
			out[n] = '\0';
			peer_key(out, size);
			return;
		}
	}
	if (mrtc_copy(out, size, addr)) /* "" if it does not fit: counted as no address */
		peer_key(out, size);
}

/* Starts answering another server: the request context and the body, which must be a JSON
 * object (in homeserver mode it is part of what is signed). NULL after replying. */
static struct token_req *federation_start(struct mrtc_request *r)
{
	struct token_req *t = mrtc_rtc_req_new(r);
	if (!t) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return NULL;
	}
	t->federated = true;
	const char *body;
	size_t len;
	enum mrtc_err err = mrtc_http_body(r, &body, &len);
	if (err != MRTC_OK) {
		mrtc_rtc_fail(t, err, "Request body too large", NULL);
		return NULL;
	}
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &t->body) != MRTC_OK ||
	    !json_object_is_type(t->body, json_type_object)) {
		mrtc_rtc_fail(t, MRTC_ERR_NOT_JSON, "Body is not a JSON object", NULL);
		return NULL;
	}
	return t;
}

/* Application-service mode's way in for federation: the homeserver verified the X-Matrix
 * signature and names the origin (hs_token, X-Matrix-Origin). */
static void federation_from_homeserver(struct mrtc_request *r)
{
	char origin[MRTC_SERVER_NAME_MAX + 1];
	if (!mrtc_appservice_origin(r, origin))
		return;
	struct token_req *t = federation_start(r);
	if (!t)
		return;
	if (!mrtc_copy(t->origin, sizeof(t->origin), origin)) { /* same size: cannot happen */
		mrtc_rtc_fail(t, MRTC_ERR_INVALID_PARAM, "Malformed request origin", NULL);
		return;
	}
	mrtc_log(LOG_INFO, "federation", r->id, "request from %s, verified by the homeserver",
		 origin);
	fed_verified(t);
}

void mrtc_rtc_federation_get_token(struct mrtc_request *r)
{
	if (r->services->config->appservice) {
		federation_from_homeserver(r);
		return;
	}
	struct token_req *t = federation_start(r);
	if (!t)
		return;
	char peer[64];
	client_address(r, peer, sizeof(peer));
	struct mrtc_inbound_env env = { .base = t->s->base,
					.keyring = t->s->keyring,
					.verifier = t->s->verifier };
	struct mrtc_inbound_request in = {
		.method = mrtc_http_method_name(evhttp_request_get_command(r->req)),
		.uri = evhttp_request_get_uri(r->req),
		.headers = evhttp_request_get_input_headers(r->req),
		.body = t->body,
		.server_name = r->services->config->server_name,
		.peer = peer,
	};
	t->inbound = mrtc_inbound_start(&env, &in, fed_authenticated, t);
	if (!t->inbound)
		mrtc_rtc_fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
}
