/* SPDX-License-Identifier: Apache-2.0 */
/* LiveKit RoomService client (Twirp JSON). */
#include "mrtc/livekit/roomservice.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/cache.h"
#include "mrtc/matrix/json.h"
#include "mrtc/base/util.h"

#define RESPONSE_MAX (256 * 1024)

struct mrtc_roomservice {
	struct event_base *base;
	struct mrtc_roomservice_config cfg;
	char *api_url;
	char *key, *secret;
	struct mrtc_cache *known; /* room name -> nothing: rooms known to exist (a hash lookup) */
	struct mrtc_roomservice_stats stats;
};

struct mrtc_rs_call {
	struct mrtc_roomservice *rs;
	struct mrtc_http_call *http;
	struct event *ev; /* immediate answers (room known to exist) */
	char room[MRTC_LIVEKIT_NAME_MAX + 1];
	bool remember_room;
	mrtc_rs_fn cb;
	void *ctx;
};

enum mrtc_err mrtc_roomservice_classify(int status, const char *body, size_t len,
					const char *content_type, char *detail, size_t size)
{
	if (status == 200) {
		mrtc_format_shown(detail, size, "ok");
		return MRTC_OK;
	}
	struct json_object *doc = NULL;
	const char *code = NULL, *msg = NULL;
	if (len && mrtc_json_parse(body, len, 8, &doc) == MRTC_OK) {
		code = mrtc_json_get_string(doc, "code");
		msg = mrtc_json_get_string(doc, "msg");
	}
	enum mrtc_err err = MRTC_ERR_UPSTREAM;
	char q[100];
	if (code) {
		if (strcmp(code, "not_found") == 0)
			err = MRTC_ERR_NOT_FOUND;
		mrtc_format_shown(detail, size, "twirp %d %s: %s", status, code,
				  mrtc_quote(q, sizeof(q), msg ? msg : "", 80));
	} else if (status == 401) {
		/* LiveKit answers bad or expired tokens in plain text */
		char text[96];
		size_t n = len < sizeof(text) - 1 ? len : sizeof(text) - 1;
		memcpy(text, body, n);
		text[n] = '\0';
		mrtc_format_shown(detail, size, "SFU refused our credentials (401 %s): %s",
				  content_type ? content_type : "no type",
				  mrtc_quote(q, sizeof(q), text, 80));
	} else {
		mrtc_format_shown(detail, size, "unexpected HTTP %d from the SFU", status);
	}
	json_object_put(doc);
	return err;
}

static bool room_known(struct mrtc_roomservice *rs, const char *room)
{
	return mrtc_cache_get(rs->known, room, strlen(room), mrtc_monotonic_ms()) != NULL;
}

static void remember_room(struct mrtc_roomservice *rs, const char *room)
{
	mrtc_cache_put_copy(rs->known, room, strlen(room), "", 1,
			    mrtc_monotonic_ms() + MRTC_ROOM_KNOWN_TTL_MS);
}

static void on_response(void *arg, const struct mrtc_http_response *resp)
{
	struct mrtc_rs_call *c = arg;
	struct mrtc_roomservice *rs = c->rs;
	char detail[256];
	enum mrtc_err err = resp->err;
	if (err == MRTC_OK) {
		rs->stats.last_ok_ms = mrtc_monotonic_ms();
		err = mrtc_roomservice_classify(resp->status, resp->body, resp->body_len,
						resp->content_type, detail, sizeof(detail));
	} else {
		mrtc_format_shown(detail, sizeof(detail), "SFU unreachable: %s (%s)",
				  mrtc_err_str(err), resp->detail ? resp->detail : "");
	}
	if (err == MRTC_OK) {
		rs->stats.ok++;
		if (c->remember_room)
			remember_room(rs, c->room);
	} else if (err == MRTC_ERR_NOT_FOUND) {
		rs->stats.not_found++;
	} else {
		rs->stats.failed++;
	}
	c->cb(c->ctx, err, detail);
	free(c);
}

static struct mrtc_rs_call *call(struct mrtc_roomservice *rs, const char *method,
				 struct json_object *video, struct json_object *body, mrtc_rs_fn cb,
				 void *ctx)
{
	struct mrtc_rs_call *c = NULL;
	char *jwt = NULL, *text = NULL, *auth = NULL, *url = NULL;
	size_t len;
	struct mrtc_livekit_creds creds = { rs->key, rs->secret };
	if (!video || !body ||
	    mrtc_livekit_mint_service(&creds, video, mrtc_now_ms() / 1000, &jwt) != MRTC_OK ||
	    mrtc_json_canonical(body, &text, &len) != MRTC_OK)
		goto out;
	size_t al = strlen(jwt) + 8, ul = strlen(rs->api_url) + strlen(method) + 40;
	auth = malloc(al);
	url = malloc(ul);
	c = calloc(1, sizeof(*c));
	if (!auth || !url || !c || !mrtc_format(auth, al, "Bearer %s", jwt) ||
	    !mrtc_format(url, ul, "%s/twirp/livekit.RoomService/%s", rs->api_url, method))
		goto fail;
	c->rs = rs;
	c->cb = cb;
	c->ctx = ctx;
	struct mrtc_http_request req = {
		.method = "POST",
		.content_type = "application/json",
		.authorization = auth,
		.body = text,
		.body_len = len,
		.timeout_ms = rs->cfg.timeout_ms,
		.max_body = RESPONSE_MAX,
	};
	/* The SFU is the operator's own: no outbound guard. */
	c->http =
	    mrtc_http_fetch(rs->cfg.http, rs->cfg.dns, url, &req, false, NULL, 0, on_response, c);
	if (c->http)
		goto out;
fail:
	free(c);
	c = NULL;
out:
	if (jwt)
		sodium_memzero(jwt, strlen(jwt));
	if (auth)
		sodium_memzero(auth, strlen(auth));
	free(jwt);
	free(auth);
	free(url);
	free(text);
	json_object_put(video);
	json_object_put(body);
	return c;
}

static void answer_known(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mrtc_rs_call *c = arg;
	c->cb(c->ctx, MRTC_OK, "room known to exist");
	event_free(c->ev);
	free(c);
}

struct mrtc_rs_call *mrtc_roomservice_create_room(struct mrtc_roomservice *rs, const char *room,
						  mrtc_rs_fn cb, void *ctx)
{
	if (strlen(room) > MRTC_LIVEKIT_NAME_MAX)
		return NULL;
	if (room_known(rs, room)) {
		struct mrtc_rs_call *c = calloc(1, sizeof(*c));
		if (!c)
			return NULL;
		c->rs = rs;
		c->cb = cb;
		c->ctx = ctx;
		c->ev = event_new(rs->base, -1, 0, answer_known, c);
		if (!c->ev) {
			free(c);
			return NULL;
		}
		rs->stats.known_room_hits++;
		event_active(c->ev, 0, 0);
		return c;
	}
	struct json_object *video = json_object_new_object();
	struct json_object *body = json_object_new_object();
	if (video)
		json_object_object_add(video, "roomCreate", json_object_new_boolean(1));
	if (body) {
		json_object_object_add(body, "name", json_object_new_string(room));
		json_object_object_add(body, "empty_timeout",
				       json_object_new_int64(rs->cfg.empty_timeout_s));
		json_object_object_add(body, "departure_timeout",
				       json_object_new_int64(rs->cfg.departure_timeout_s));
	}
	struct mrtc_rs_call *c = call(rs, "CreateRoom", video, body, cb, ctx);
	if (c) {
		c->remember_room = true;
		memcpy(c->room, room, strlen(room) + 1);
	}
	return c;
}

static struct mrtc_rs_call *participant_call(struct mrtc_roomservice *rs, const char *method,
					     const char *room, const char *identity, mrtc_rs_fn cb,
					     void *ctx)
{
	struct json_object *video = json_object_new_object();
	struct json_object *body = json_object_new_object();
	if (video) {
		json_object_object_add(video, "roomAdmin", json_object_new_boolean(1));
		json_object_object_add(video, "room", json_object_new_string(room));
	}
	if (body) {
		json_object_object_add(body, "room", json_object_new_string(room));
		json_object_object_add(body, "identity", json_object_new_string(identity));
	}
	return call(rs, method, video, body, cb, ctx);
}

struct mrtc_rs_call *mrtc_roomservice_get_participant(struct mrtc_roomservice *rs, const char *room,
						      const char *identity, mrtc_rs_fn cb,
						      void *ctx)
{
	return participant_call(rs, "GetParticipant", room, identity, cb, ctx);
}

struct mrtc_rs_call *mrtc_roomservice_remove_participant(struct mrtc_roomservice *rs,
							 const char *room, const char *identity,
							 mrtc_rs_fn cb, void *ctx)
{
	return participant_call(rs, "RemoveParticipant", room, identity, cb, ctx);
}

struct mrtc_rs_call *mrtc_roomservice_probe(struct mrtc_roomservice *rs, mrtc_rs_fn cb, void *ctx)
{
	struct json_object *video = json_object_new_object();
	struct json_object *body = json_object_new_object();
	struct json_object *names = json_object_new_array();
	if (video)
		json_object_object_add(video, "roomList", json_object_new_boolean(1));
	if (names)
		json_object_array_add(names, json_object_new_string("mrtc-readiness-probe"));
	if (body && names)
		json_object_object_add(body, "names", names);
	else
		json_object_put(names);
	return call(rs, "ListRooms", video, body, cb, ctx);
}

void mrtc_rs_call_cancel(struct mrtc_rs_call *c)
{
	if (!c)
		return;
	/* No callback, and the call stops (its connection closed), or the immediate answer
	 * waiting for the loop is dropped. */
	if (c->ev)
		event_free(c->ev);
	else
		mrtc_http_call_cancel(c->http);
	free(c);
}

enum mrtc_err mrtc_roomservice_create(struct event_base *base,
				      const struct mrtc_roomservice_config *config,
				      struct mrtc_roomservice **ret_rs)
{
	struct mrtc_roomservice *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return MRTC_ERR_NOMEM;
	rs->base = base;
	rs->cfg = *config;
	rs->api_url = strdup(config->api_url);
	rs->key = strdup(config->creds.key);
	rs->secret = strdup(config->creds.secret);
	rs->known = mrtc_cache_create(MRTC_ROOM_KNOWN_MAX, NULL);
	if (!rs->api_url || !rs->key || !rs->secret || !rs->known) {
		mrtc_roomservice_destroy(rs);
		return MRTC_ERR_NOMEM;
	}
	size_t n = strlen(rs->api_url);
	while (n && rs->api_url[n - 1] == '/')
		rs->api_url[--n] = '\0';
	*ret_rs = rs;
	return MRTC_OK;
}

void mrtc_roomservice_destroy(struct mrtc_roomservice *rs)
{
	if (!rs)
		return;
	if (rs->secret)
		sodium_memzero(rs->secret, strlen(rs->secret));
	free(rs->secret);
	free(rs->key);
	free(rs->api_url);
	mrtc_cache_destroy(rs->known);
	free(rs);
}

void mrtc_roomservice_get_stats(const struct mrtc_roomservice *rs,
				struct mrtc_roomservice_stats *ret)
{
	*ret = rs->stats;
}
