/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSC4195 endpoints. A request is a chain of asynchronous steps (whoami, membership, room
 * creation, federation); each step keeps the handle of its outbound call so that a client that
 * goes away cancels what is still running.
 */
#include "mrtc/rtc/rtc.h"

#include <arpa/inet.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/base/buf.h"
#include "mrtc/delayed/delayed.h"
#include "mrtc/matrix/json.h"
#include "mrtc/livekit/livekit.h"
#include "mrtc/core/log.h"
#include "mrtc/services/services.h"
#include "mrtc/base/util.h"
#include "mrtc/net/inbound.h"

#define FED_RESPONSE_MAX (64 * 1024)
#define FED_PATH_TTL_MS (3600ull * 1000)

static const char *const fed_paths[2] = {
	"/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
	"/_matrix/federation/v1/rtc/livekit/get_token",
};

struct token_req {
	struct mrtc_request *r;
	struct mrtc_services *s;
	char *token; /* the caller's access token (wiped on free) */
	struct mrtc_whoami who;
	struct mrtc_token_fields f;
	char device[256];
	char origin[MRTC_SERVER_NAME_MAX + 1];
	struct json_object *body;
	int fed_path;
	bool fed_retried;
	char room_name[MRTC_LIVEKIT_HASH_LEN + 1];
	char identity[MRTC_LIVEKIT_HASH_LEN + 1];
	bool federated; /* answering another server */
	size_t sfu;	/* index in config->sfus, chosen by the request's url */
	/* the outbound call in progress, for cancellation */
	struct mrtc_hs_op *hs_op;
	struct mrtc_rs_call *rs_call;
	struct mrtc_fed_call *fed_call;
	struct mrtc_fedproxy_call *proxy_call;
	struct mrtc_inbound *inbound;
	struct mrtc_limits_take *limit_op;
};

/* ---- field validation (pure) ---- */

bool mrtc_jwt_is_well_formed(const char *jwt)
{
	int parts = 1;
	size_t run = 0, len = strlen(jwt);
	if (len == 0 || len > 16384)
		return false;
	for (const char *p = jwt; *p; p++) {
		char c = *p;
		if (c == '.') {
			if (run == 0)
				return false;
			parts++;
			run = 0;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_') {
			run++;
		} else {
			return false;
		}
	}
	return parts == 3 && run > 0;
}

/* ---- request lifecycle ---- */

static void tr_dispose(void *state)
{
	struct token_req *t = state;
	if (t->token) {
		sodium_memzero(t->token, strlen(t->token));
		free(t->token);
	}
	json_object_put(t->body);
}

static void tr_cancel(void *state)
{
	struct token_req *t = state;
	mrtc_hs_op_cancel(t->hs_op);
	mrtc_rs_call_cancel(t->rs_call);
	mrtc_fed_call_cancel(t->fed_call);
	mrtc_fedproxy_cancel(t->proxy_call);
	mrtc_inbound_cancel(t->inbound);
	mrtc_limits_take_cancel(t->limit_op);
}

static const struct mrtc_request_state_ops tr_ops = { tr_cancel, tr_dispose };

static struct token_req *tr_new(struct mrtc_request *r)
{
	struct token_req *t = mrtc_request_state(r, sizeof(*t), &tr_ops);
	if (!t)
		return NULL;
	t->r = r;
	t->s = r->services;
	return t;
}

/* Answers @err with @msg; @detail (may be NULL) says why, for the access line only. */
static void fail(struct token_req *t, enum mrtc_err err, const char *msg, const char *detail)
{
	char who[300] = "", line[MRTC_REQUEST_DETAIL_MAX];
	const char *name = t->federated ? t->origin : t->who.user_id;
	if (name[0])
		mrtc_format_shown(who, sizeof(who), "%s %s, ", t->federated ? "origin" : "user",
				  mrtc_quote(line, sizeof(line), name, 255));
	mrtc_format_shown(line, sizeof(line), "%s%s%s%s", who, mrtc_err_str(err),
			  detail ? ": " : "", detail ? detail : "");
	mrtc_request_fail(t->r, err, msg, line);
}

static void limited(struct token_req *t, uint64_t retry_ms)
{
	struct mrtc_request *r = t->r;
	t->s->counters.rate_limited++;
	mrtc_http_reply_limited(r, retry_ms);
}

static void reply_jwt(struct token_req *t, const char *jwt)
{
	struct mrtc_request *r = t->r;
	/* {"jwt":"..."} written directly: a JWT is base64url and dots, nothing to escape. */
	char stack[1024];
	struct mrtc_buf b;
	mrtc_buf_init_with(&b, stack, sizeof(stack));
	mrtc_buf_puts(&b, "{\"jwt\":\"");
	mrtc_buf_puts(&b, jwt);
	mrtc_buf_puts(&b, "\"}");
	if (b.failed)
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
	else
		mrtc_http_reply_json_text(r, 200, b.data, b.len);
	sodium_memzero(b.data, b.len);
	if (b.data != stack) /* moved to the heap: the start is still on the stack */
		sodium_memzero(stack, sizeof(stack));
	mrtc_buf_finish(&b);
}

/* ---- minting (both paths) ---- */

static void on_room(void *arg, enum mrtc_err err, const char *detail)
{
	struct token_req *t = arg;
	t->rs_call = NULL;
	if (err != MRTC_OK) {
		char why[MRTC_REQUEST_DETAIL_MAX];
		mrtc_format_shown(why, sizeof(why), "CreateRoom failed: %s", detail ? detail : "");
		fail(t, MRTC_ERR_INTERNAL, "Unable to create room on SFU", why);
		return;
	}
	const struct mrtc_config *c = t->s->config;
	struct mrtc_livekit_creds creds = { c->sfus[t->sfu].key, c->sfus[t->sfu].secret };
	char *jwt = NULL;
	err = mrtc_livekit_mint_participant(
	    &creds, t->federated ? MRTC_GRANT_FEDERATED_USER : MRTC_GRANT_LOCAL_USER, t->identity,
	    t->room_name, mrtc_now_ms() / 1000, c->token_ttl_s, &jwt);
	if (err != MRTC_OK) {
		fail(t, MRTC_ERR_INTERNAL, "Unable to mint a token", NULL);
		return;
	}
	if (t->federated)
		t->s->counters.tokens_federated++;
	else
		t->s->counters.tokens_local++;
	mrtc_delayed_admitted(t->s->delayed, t->sfu, t->f.room_id, t->room_name, t->identity,
			      t->federated ? t->f.user_id : t->who.user_id, c->token_ttl_s);
	reply_jwt(t, jwt);
	sodium_memzero(jwt, strlen(jwt));
	free(jwt);
}

/* Checks the url, derives names and makes sure the room exists, then mints. */
static void mint_here(struct token_req *t, const char *user_id)
{
	const struct mrtc_config *c = t->s->config;
	int sfu = mrtc_config_sfu_find(c, t->f.url);
	if (sfu < 0) {
		fail(t, MRTC_ERR_INVALID_PARAM,
		     "The specified `url` is not a LiveKit SFU of this homeserver", NULL);
		return;
	}
	t->sfu = (size_t)sfu;
	enum mrtc_identity_kind kind = c->identity == MRTC_IDENTITY_USER_MEMBER
					   ? MRTC_IDENTITY_KIND_USER_MEMBER
					   : MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER;
	enum mrtc_err err = mrtc_livekit_room_name(t->f.room_id, t->f.slot_id, t->room_name);
	if (err == MRTC_OK)
		err = mrtc_livekit_identity(kind, user_id, t->device, t->f.member_id, t->identity);
	if (err != MRTC_OK) {
		fail(t, err == MRTC_ERR_BAD_JSON ? MRTC_ERR_BAD_JSON : MRTC_ERR_INTERNAL,
		     err == MRTC_ERR_BAD_JSON ? "A device id is required" : "Cannot derive names",
		     NULL);
		return;
	}
	t->rs_call =
	    mrtc_roomservice_create_room(t->s->sfu_rooms[t->sfu], t->room_name, on_room, t);
	if (!t->rs_call)
		fail(t, MRTC_ERR_INTERNAL, "Unable to create room on SFU",
		     "CreateRoom could not start");
}

/* Answers a failed homeserver call (whoami, membership) and returns true; false if @err is OK. */
static bool homeserver_failed(struct token_req *t, enum mrtc_err err, const char *detail)
{
	if (err == MRTC_OK)
		return false;
	if (err == MRTC_ERR_UNKNOWN_TOKEN)
		fail(t, err, "Unknown access token", detail);
	else
		fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver", detail);
	return true;
}

/*
 * Answers a failed whoami and returns true; false if @err is OK. A refusal reaches the client as
 * the homeserver sent it: 401 and 403 with its errcode (and soft_logout), 429 with its retry
 * hint; anything else is 502 M_UNKNOWN.
 */
static bool whoami_failed(struct token_req *t, enum mrtc_err err, const struct mrtc_whoami *who)
{
	if (err == MRTC_OK)
		return false;
	int status;
	uint64_t retry_ms;
	struct json_object *body;
	if (!mrtc_whoami_refusal(err, who, &status, &body, &retry_ms)) {
		fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver", who->detail);
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
	t->hs_op = NULL;
	if (whoami_failed(t, err, who))
		return;
	t->who = *who;
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
	struct token_req *t = tr_new(r);
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
	struct token_req *t = tr_new(r);
	if (!t || !(t->token = strdup(token))) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return NULL;
	}
	t->hs_op = mrtc_hs_whoami(t->s->homeserver, t->token, next, t);
	if (!t->hs_op) {
		fail(t, MRTC_ERR_INTERNAL, "Cannot ask the homeserver", NULL);
		return NULL;
	}
	return t;
}

void mrtc_rtc_transports(struct mrtc_request *r)
{
	start_client(r, transports_whoami);
}

/* ---- client-server: get_token ---- */

static void relay_start(struct token_req *t);

static void client_membership(void *arg, enum mrtc_err err, bool joined, const char *detail)
{
	struct token_req *t = arg;
	t->hs_op = NULL;
	if (homeserver_failed(t, err, detail))
		return;
	if (!joined) {
		/* The same words whether or not the room exists. */
		fail(t, MRTC_ERR_FORBIDDEN, "The requesting user is not a member of the room",
		     NULL);
		return;
	}
	if (t->f.server_name[0] && strcmp(t->f.server_name, t->s->config->server_name) != 0)
		relay_start(t);
	else
		mint_here(t, t->who.user_id);
}

static void client_limited(void *arg, bool allowed, uint64_t retry);

static void client_whoami(void *arg, enum mrtc_err err, const struct mrtc_whoami *who)
{
	struct token_req *t = arg;
	t->hs_op = NULL;
	if (whoami_failed(t, err, who))
		return;
	t->who = *who;
	const struct mrtc_config *c = t->s->config;
	const char *server = mrtc_user_id_server(who->user_id);
	if (!server || strcmp(server, c->server_name) != 0) {
		fail(t, MRTC_ERR_FORBIDDEN, "Only users of this homeserver can use this endpoint",
		     NULL);
		return;
	}
	const char *body;
	size_t len;
	const char *msg;
	err = mrtc_http_body(t->r, &body, &len);
	if (err != MRTC_OK) {
		fail(t, err, "Request body too large", NULL);
		return;
	}
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &t->body) != MRTC_OK) {
		fail(t, MRTC_ERR_NOT_JSON, "Body is not valid JSON", NULL);
		return;
	}
	err = mrtc_token_fields_parse(t->body, false, &t->f, &msg);
	if (err != MRTC_OK) {
		fail(t, err, msg, NULL);
		return;
	}
	if (t->f.claimed_user_id[0] && strcmp(t->f.claimed_user_id, who->user_id) != 0) {
		fail(t, MRTC_ERR_INVALID_PARAM,
		     "'member.claimed_user_id' is not the requesting user", NULL);
		return;
	}
	if (who->device_id[0] && t->f.claimed_device_id[0] &&
	    strcmp(who->device_id, t->f.claimed_device_id) != 0) {
		fail(t, MRTC_ERR_INVALID_PARAM,
		     "'member.claimed_device_id' is not the device of the access token", NULL);
		return;
	}
	if (!mrtc_copy(t->device, sizeof(t->device),
		       t->f.claimed_device_id[0] ? t->f.claimed_device_id : who->device_id)) {
		fail(t, MRTC_ERR_INVALID_PARAM, "The device id is too long", NULL);
		return;
	}
	if (!t->device[0] && c->identity == MRTC_IDENTITY_USER_DEVICE_MEMBER) {
		fail(t, MRTC_ERR_BAD_JSON, "A device id is required ('member.claimed_device_id')",
		     NULL);
		return;
	}
	t->limit_op = mrtc_limits_take(t->s->limits, t->s->user_limit, "user", who->user_id,
				       client_limited, t);
	if (!t->limit_op)
		fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
}

static void client_limited(void *arg, bool allowed, uint64_t retry)
{
	struct token_req *t = arg;
	t->limit_op = NULL;
	if (!allowed) {
		limited(t, retry);
		return;
	}
	t->hs_op = mrtc_hs_local_membership(t->s->homeserver, t->token, t->f.room_id,
					    t->who.user_id, client_membership, t);
	if (!t->hs_op)
		fail(t, MRTC_ERR_INTERNAL, "Cannot ask the homeserver", NULL);
}

void mrtc_rtc_client_get_token(struct mrtc_request *r)
{
	start_client(r, client_whoami);
}

/* ---- relay to the resident server ---- */

static void relay_send(struct token_req *t);

/* A fed_proxy refusal as the client gets it: the destination was not asked. */
static void relay_refused(struct token_req *t, const struct mrtc_http_response *resp,
			  enum mrtc_fedproxy_refusal refusal)
{
	char dest[300], why[MRTC_REQUEST_DETAIL_MAX];
	mrtc_quote(dest, sizeof(dest), t->f.server_name, 255);
	t->s->counters.fed_out_failed++;
	mrtc_format_shown(why, sizeof(why), "get_token at %s through fed_proxy failed: %s", dest,
			  resp->detail ? resp->detail : mrtc_fedproxy_refusal_str(refusal));
	switch (refusal) {
	case MRTC_FEDPROXY_DESTINATION_DENIED:
		fail(t, MRTC_ERR_FORBIDDEN,
		     "This homeserver does not federate with the specified homeserver", why);
		return;
	case MRTC_FEDPROXY_CONNECTION_FAILED:
		fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the specified homeserver", why);
		return;
	case MRTC_FEDPROXY_NOT_APPSERVICE:
		fail(t, MRTC_ERR_UPSTREAM,
		     "The homeserver refused the transport service's application-service token",
		     why);
		return;
	case MRTC_FEDPROXY_PATH_NOT_ALLOWED:
		fail(t, MRTC_ERR_UPSTREAM,
		     "The homeserver does not let the transport service use this federation path "
		     "(io.element.msc4512.proxy_prefix)",
		     why);
		return;
	case MRTC_FEDPROXY_BAD_PARAM:
		fail(t, MRTC_ERR_UPSTREAM, "The homeserver refused the federation proxy request",
		     why);
		return;
	case MRTC_FEDPROXY_UNSUPPORTED:
		fail(t, MRTC_ERR_UPSTREAM,
		     "The homeserver offers no federation proxy (MSC4512 is not enabled)", why);
		return;
	default:
		fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver's federation proxy",
		     why);
		return;
	}
}

static void relay_done(void *arg, const struct mrtc_http_response *resp);

static void relay_proxied(void *arg, const struct mrtc_http_response *resp,
			  enum mrtc_fedproxy_refusal refusal)
{
	struct token_req *t = arg;
	t->proxy_call = NULL;
	if (refusal != MRTC_FEDPROXY_RELAYED)
		relay_refused(t, resp, refusal);
	else
		relay_done(t, resp);
}

static void relay_done(void *arg, const struct mrtc_http_response *resp)
{
	struct token_req *t = arg;
	t->fed_call = NULL;
	struct json_object *doc = NULL;
	const char *errcode = NULL, *jwt = NULL;
	if (resp->err == MRTC_OK &&
	    mrtc_json_parse(resp->body, resp->body_len, 16, &doc) == MRTC_OK) {
		errcode = mrtc_json_get_string(doc, "errcode");
		jwt = mrtc_json_get_string(doc, "jwt");
	}
	char dest[300];
	mrtc_quote(dest, sizeof(dest), t->f.server_name, 255);
	if (resp->err == MRTC_OK && resp->status == 404 && !t->fed_retried &&
	    (!errcode || strcmp(errcode, "M_UNRECOGNIZED") == 0)) {
		/* The peer does not serve this path: try the other one once. */
		t->fed_retried = true;
		t->fed_path = 1 - t->fed_path;
		json_object_put(doc);
		relay_send(t);
		return;
	}
	struct mrtc_services *s = t->s;
	if (resp->err == MRTC_ERR_LIMIT_EXCEEDED) {
		/* Our own cap on outbound connections (MRTC_OUTBOUND_MAX): try again shortly. */
		json_object_put(doc);
		limited(t, 1000);
		return;
	}
	if (resp->err == MRTC_OK && resp->status == 200 && jwt && mrtc_jwt_is_well_formed(jwt)) {
		int *path = malloc(sizeof(*path));
		if (path) {
			*path = t->fed_path;
			mrtc_cache_put(s->fed_paths, t->f.server_name, strlen(t->f.server_name),
				       path, mrtc_monotonic_ms() + FED_PATH_TTL_MS);
		}
		s->counters.fed_out_ok++;
		mrtc_log(LOG_INFO, "federation", t->r->id, "token for %s obtained from %s",
			 t->who.user_id, dest);
		char *copy = strdup(jwt);
		json_object_put(doc);
		if (!copy) {
			fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
			return;
		}
		reply_jwt(t, copy);
		free(copy);
		return;
	}
	enum mrtc_err err = MRTC_ERR_UPSTREAM;
	const char *msg = "Unable to reach the specified homeserver";
	if (resp->err == MRTC_OK && resp->status == 403 && errcode &&
	    strcmp(errcode, "M_FORBIDDEN") == 0) {
		err = MRTC_ERR_FORBIDDEN;
		msg =
		    "The requesting user is not a member of the room on the destination homeserver";
		s->counters.fed_out_forbidden++;
	} else if (resp->err == MRTC_OK && resp->status == 400 && errcode &&
		   strcmp(errcode, "M_INVALID_PARAM") == 0) {
		err = MRTC_ERR_INVALID_PARAM;
		msg = "The destination homeserver rejected the specified `url`";
		s->counters.fed_out_invalid++;
	} else {
		s->counters.fed_out_failed++;
	}
	char code[80], why[MRTC_REQUEST_DETAIL_MAX];
	mrtc_format_shown(why, sizeof(why), "get_token at %s: %s%s%s, HTTP %d, errcode %s", dest,
			  mrtc_err_str(resp->err), resp->detail ? ": " : "",
			  resp->detail ? resp->detail : "", resp->err == MRTC_OK ? resp->status : 0,
			  mrtc_quote(code, sizeof(code), errcode ? errcode : "none", 40));
	json_object_put(doc);
	fail(t, err, msg, why);
}

static void relay_send(struct token_req *t)
{
	struct json_object *body = json_object_new_object();
	struct json_object *member = json_object_new_object();
	if (!body || !member) {
		json_object_put(body);
		json_object_put(member);
		fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
		return;
	}
	json_object_object_add(body, "user_id", json_object_new_string(t->who.user_id));
	json_object_object_add(body, "url", json_object_new_string(t->f.url));
	json_object_object_add(body, "room_id", json_object_new_string(t->f.room_id));
	json_object_object_add(body, "slot_id", json_object_new_string(t->f.slot_id));
	json_object_object_add(body, "member_id", json_object_new_string(t->f.member_id));
	json_object_object_add(member, "id", json_object_new_string(t->f.member_id));
	if (t->device[0])
		json_object_object_add(member, "claimed_device_id",
				       json_object_new_string(t->device));
	json_object_object_add(body, "member", member);
	bool started;
	if (t->s->config->appservice) {
		/* The homeserver signs it: Synapse's MSC4512 fed_proxy. */
		t->proxy_call = mrtc_fedproxy_request(
		    t->s, t->f.server_name, "POST", fed_paths[t->fed_path], body,
		    t->s->config->federation_timeout_s * 1000, relay_proxied, t);
		started = t->proxy_call != NULL;
	} else {
		t->fed_call = mrtc_fed_request(
		    t->s->fed, t->f.server_name, "POST", fed_paths[t->fed_path], body, true,
		    t->s->config->federation_timeout_s * 1000, FED_RESPONSE_MAX, relay_done, t);
		started = t->fed_call != NULL;
	}
	json_object_put(body);
	if (!started)
		fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the specified homeserver", NULL);
}

static void relay_start(struct token_req *t)
{
	const int *known = mrtc_cache_get(t->s->fed_paths, t->f.server_name,
					  strlen(t->f.server_name), mrtc_monotonic_ms());
	t->fed_path = known ? *known : 0;
	relay_send(t);
}

/* ---- federation: answering another server ---- */

static void fed_remote_membership(void *arg, enum mrtc_err err,
				  const struct mrtc_remote_membership *m)
{
	struct token_req *t = arg;
	t->hs_op = NULL;
	if (err != MRTC_OK) {
		t->s->counters.fed_in_refused++;
		fail(t, MRTC_ERR_UPSTREAM, "Unable to check the room membership", m->detail);
		return;
	}
	if (!m->acl_allows) {
		t->s->counters.fed_in_refused++;
		fail(t, MRTC_ERR_FORBIDDEN, "Server ACLs deny the requesting server", NULL);
		return;
	}
	if (!m->user_joined || !m->local_joined) {
		t->s->counters.fed_in_refused++;
		fail(t, MRTC_ERR_FORBIDDEN, "The requesting user is not a member of the room",
		     NULL);
		return;
	}
	t->s->counters.fed_in_ok++;
	mint_here(t, t->f.user_id);
}

static void fed_limited(void *arg, bool allowed, uint64_t retry);

static void fed_verified(struct token_req *t)
{
	const char *msg;
	enum mrtc_err err = mrtc_token_fields_parse(t->body, true, &t->f, &msg);
	if (err != MRTC_OK) {
		fail(t, err, msg, NULL);
		return;
	}
	if (strcmp(mrtc_user_id_server(t->f.user_id), t->origin) != 0) {
		fail(t, MRTC_ERR_FORBIDDEN, "'user_id' does not belong to the requesting server",
		     NULL);
		return;
	}
	if (!mrtc_copy(t->device, sizeof(t->device), t->f.claimed_device_id)) {
		fail(t, MRTC_ERR_INVALID_PARAM, "The device id is too long", NULL);
		return;
	}
	if (!t->device[0] && t->s->config->identity == MRTC_IDENTITY_USER_DEVICE_MEMBER) {
		fail(t, MRTC_ERR_BAD_JSON, "A device id is required ('member.claimed_device_id')",
		     NULL);
		return;
	}
	t->limit_op =
	    mrtc_limits_take(t->s->limits, t->s->origin_limit, "origin", t->origin, fed_limited, t);
	if (!t->limit_op)
		fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
}

static void fed_limited(void *arg, bool allowed, uint64_t retry)
{
	struct token_req *t = arg;
	t->limit_op = NULL;
	if (!allowed) {
		limited(t, retry);
		return;
	}
	t->hs_op = mrtc_hs_remote_membership(t->s->homeserver, t->f.room_id, t->f.user_id,
					     t->origin, fed_remote_membership, t);
	if (!t->hs_op)
		fail(t, MRTC_ERR_UPSTREAM, "Unable to check the room membership", NULL);
}

static void fed_authenticated(void *arg, const struct mrtc_inbound_result *res)
{
	struct token_req *t = arg;
	t->inbound = NULL;
	mrtc_copy(t->origin, sizeof(t->origin), res->origin); /* same size: fits */
	if (res->bad_signature)
		t->s->counters.sig_bad++;
	if (res->err == MRTC_ERR_LIMIT_EXCEEDED) {
		limited(t, res->retry_after_ms);
		return;
	}
	if (res->err != MRTC_OK) {
		fail(t, res->err, res->message, NULL);
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
	struct token_req *t = tr_new(r);
	if (!t) {
		mrtc_http_reply_error(r, MRTC_ERR_NOMEM, "Out of memory");
		return NULL;
	}
	t->federated = true;
	const char *body;
	size_t len;
	enum mrtc_err err = mrtc_http_body(r, &body, &len);
	if (err != MRTC_OK) {
		fail(t, err, "Request body too large", NULL);
		return NULL;
	}
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &t->body) != MRTC_OK ||
	    !json_object_is_type(t->body, json_type_object)) {
		fail(t, MRTC_ERR_NOT_JSON, "Body is not a JSON object", NULL);
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
		fail(t, MRTC_ERR_INVALID_PARAM, "Malformed request origin", NULL);
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
		fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
}
