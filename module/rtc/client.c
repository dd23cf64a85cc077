/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSC4195 client-server endpoints for our own users: GET rtc/transports and POST
 * rtc/livekit/get_token. The access token is checked by whoami (in application-service mode the
 * homeserver names the user), the body's fields against it, then the per-user rate limit and
 * the room membership; the token is minted here (rtc.c) or, for a room whose SFU another server
 * runs, asked of that server (relay.c).
 */
#include "rtc_private.h"

#include <stdlib.h>
#include <string.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/base/util.h"
#include "mrtc/matrix/servername.h"
#include "mrtc/services/services.h"

/* Answers a failed homeserver call (whoami, membership) and returns true; false if @err is OK. */
static bool homeserver_failed(struct token_req *t, enum mrtc_err err, const char *detail)
{
	if (err == MRTC_OK)
		return false;
	if (err == MRTC_ERR_UNKNOWN_TOKEN)
		mrtc_rtc_fail(t, err, "Unknown access token", detail);
	else
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver", detail);
	return true;
}

/*
 * The end of a whoami call: a failure is answered (true); on success the user is kept in @t and
 * the result is false. A refusal reaches the client as the homeserver sent it: 401 and 403 with
 * its errcode (and soft_logout), 429 with its retry hint; anything else is 502 M_UNKNOWN.
 */
static bool whoami_failed(struct token_req *t, enum mrtc_err err, const struct mrtc_whoami *who)
{
	t->hs_op = NULL; /* the whoami call has ended */
	if (err == MRTC_OK) {
		t->who = *who;
		return false;
	}
	int status;
	uint64_t retry_ms;
	struct json_object *body;
	if (!mrtc_whoami_refusal(err, who, &status, &body, &retry_ms)) {
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver", who->detail);
		return true;
	}
	struct mrtc_request *r = t->r;
	mrtc_request_note(r, "the homeserver refused the access token", mrtc_err_str(err));
	if (status == 429)
		mrtc_http_reply_limited(r, retry_ms);
	else
		mrtc_http_reply_json(r, status, body);
	json_object_put(body);
	return true;
}

/* ---- client-server: transports ---- */

static void transports_whoami(void *arg, enum mrtc_err err, const struct mrtc_whoami *who)
{
	struct token_req *t = arg;
	if (whoami_failed(t, err, who))
		return;
	const struct mrtc_config *c = t->s->config;
	struct json_object *body = json_object_new_object();
	struct json_object *list = json_object_new_array();
	bool ok = body && list;
	/* Every SFU in preference order, each with the service URL that mints for it. */
	for (size_t i = 0; ok && i < c->n_sfus; i++) {
		struct json_object *lk = json_object_new_object();
		ok = lk && json_object_array_add(list, lk) == 0;
		if (!ok) {
			json_object_put(lk);
			break;
		}
		json_object_object_add(lk, "type", json_object_new_string("livekit"));
		json_object_object_add(lk, "url", json_object_new_string(c->sfus[i].url));
		if (c->sfus[i].service_url)
			json_object_object_add(lk, "livekit_service_url",
					       json_object_new_string(c->sfus[i].service_url));
	}
	if (ok) {
		json_object_object_add(body, "rtc_transports", list);
	} else {
		json_object_put(list);
		json_object_put(body);
		body = NULL;
	}
	mrtc_http_reply_json(t->r, body ? 200 : 500, body);
	json_object_put(body);
}

/*
 * Application-service mode's way in: the homeserver has authenticated the user and says who it
 * is (hs_token, X-Matrix-User-Identifier). It passes no device, so who.device_id stays "" and
 * the device is the client's claimed_device_id (PROTOCOL.md, application-service mode).
 */
static struct token_req *start_appservice_client(struct mrtc_request *r, mrtc_whoami_fn next)
{
	struct mrtc_whoami who = { .soft_logout = -1 };
	if (!mrtc_appservice_client_user(r, who.user_id))
		return NULL;
	struct token_req *t = mrtc_rtc_req_new(r);
	if (!t) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return NULL;
	}
	next(t, MRTC_OK, &who);
	return NULL; /* @t may be gone already */
}

/* Starts a client-server request: bearer token, then whoami (or the application-service
 * identity). */
static struct token_req *start_client(struct mrtc_request *r, mrtc_whoami_fn next)
{
	if (r->services->config->appservice)
		return start_appservice_client(r, next);
	const char *token = mrtc_http_bearer(r);
	if (!token) {
		mrtc_http_reply_error(r, MRTC_ERR_MISSING_TOKEN, "Missing access token");
		return NULL;
	}
	struct token_req *t = mrtc_rtc_req_new(r);
	if (!t || !(t->token = strdup(token))) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return NULL;
	}
	t->hs_op = mrtc_hs_whoami(t->s->homeserver, t->token, next, t);
	if (!t->hs_op) {
		mrtc_rtc_fail(t, MRTC_ERR_INTERNAL, "Cannot ask the homeserver", NULL);
		return NULL;
	}
	return t;
}

void mrtc_rtc_transports(struct mrtc_request *r)
{
	start_client(r, transports_whoami);
}

/* ---- client-server: get_token ---- */

static void client_membership(void *arg, enum mrtc_err err, bool joined, const char *detail)
{
	struct token_req *t = arg;
	t->hs_op = NULL;
	if (homeserver_failed(t, err, detail))
		return;
	if (!joined) {
		/* The same words whether or not the room exists. */
		mrtc_rtc_fail(t, MRTC_ERR_FORBIDDEN,
			      "The requesting user is not a member of the room", NULL);
		return;
	}
	if (t->f.server_name[0] && strcmp(t->f.server_name, t->s->config->server_name) != 0)
		mrtc_rtc_relay_start(t);
	else
		mrtc_rtc_mint_here(t, t->who.user_id);
}

static void client_limited(void *arg, bool allowed, uint64_t retry);

static void client_whoami(void *arg, enum mrtc_err err, const struct mrtc_whoami *who)
{
	struct token_req *t = arg;
	if (whoami_failed(t, err, who))
		return;
	const struct mrtc_config *c = t->s->config;
	const char *server = mrtc_user_id_server(who->user_id);
	if (!server || strcmp(server, c->server_name) != 0) {
		mrtc_rtc_fail(t, MRTC_ERR_FORBIDDEN,
			      "Only users of this homeserver can use this endpoint", NULL);
		return;
	}
	const char *body;
	size_t len;
	const char *msg;
	err = mrtc_http_body(t->r, &body, &len);
	if (err != MRTC_OK) {
		mrtc_rtc_fail(t, err, "Request body too large", NULL);
		return;
	}
	err = mrtc_token_fields_parse_text(body, len, false, &t->f, &msg);
	if (err != MRTC_OK) {
		mrtc_rtc_fail(t, err, msg, NULL);
		return;
	}
	if (t->f.claimed_user_id[0] && strcmp(t->f.claimed_user_id, who->user_id) != 0) {
		mrtc_rtc_fail(t, MRTC_ERR_INVALID_PARAM,
			      "'member.claimed_user_id' is not the requesting user", NULL);
		return;
	}
	if (who->device_id[0] && t->f.claimed_device_id[0] &&
	    strcmp(who->device_id, t->f.claimed_device_id) != 0) {
		mrtc_rtc_fail(t, MRTC_ERR_INVALID_PARAM,
			      "'member.claimed_device_id' is not the device of the access token",
			      NULL);
		return;
	}
	if (!mrtc_copy(t->device, sizeof(t->device),
		       t->f.claimed_device_id[0] ? t->f.claimed_device_id : who->device_id)) {
		mrtc_rtc_fail(t, MRTC_ERR_INVALID_PARAM, "The device id is too long", NULL);
		return;
	}
	if (!t->device[0] && c->identity == MRTC_IDENTITY_USER_DEVICE_MEMBER) {
		mrtc_rtc_fail(t, MRTC_ERR_BAD_JSON,
			      "A device id is required ('member.claimed_device_id')", NULL);
		return;
	}
	t->limit_op = mrtc_limits_take(t->s->limits, t->s->user_limit, "user", who->user_id,
				       client_limited, t);
	if (!t->limit_op)
		mrtc_rtc_fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
}

static void client_limited(void *arg, bool allowed, uint64_t retry)
{
	struct token_req *t = arg;
	t->limit_op = NULL;
	if (!allowed) {
		mrtc_rtc_limited(t, retry);
		return;
	}
	t->hs_op = mrtc_hs_local_membership(t->s->homeserver, t->token, t->f.room_id,
					    t->who.user_id, client_membership, t);
	if (!t->hs_op)
		mrtc_rtc_fail(t, MRTC_ERR_INTERNAL, "Cannot ask the homeserver", NULL);
}

void mrtc_rtc_client_get_token(struct mrtc_request *r)
{
	start_client(r, client_whoami);
}
