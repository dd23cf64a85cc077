/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delegation endpoint (POST …/rtc/livekit/delegate_delayed_leave, PROTOCOL §2.4): the
 * homeserver says whose token it is, the body names the call (token_fields), the homeserver's
 * own list confirms the delayed event is the user's in that room; the job is answered 200 once
 * it is in the store.
 */
#include <event2/http.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mrtc/appservice/appservice.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/limits/limits.h"
#include "mrtc/livekit/token_fields.h"
#include "mrtc/services/services.h"
#include "mrtc/matrix/json.h"

struct delegation {
	struct mrtc_request *r;
	struct mrtc_services *s;
	char *token;
	struct mrtc_whoami who;
	struct mrtc_token_fields f;
	char delay_id[256];
	char device[256];
	int sfu; /* index in config->sfus chosen by the url */
	int path;
	bool single; /* trying GET …/delayed_events/{delay_id} before the list */
	struct mrtc_hs_op *hs_op;
	struct mrtc_http_call *http;
	struct mrtc_job_record rec; /* the job, while the store writes it */
	struct mrtc_store_call *save;
	struct mrtc_limits_take *limit_op;
};

/* The request's state: freed by the request after its finishing call. */
static void dl_dispose(void *state)
{
	struct delegation *g = state;
	if (g->token) {
		sodium_memzero(g->token, strlen(g->token));
		free(g->token);
	}
	sodium_memzero(g->delay_id, sizeof(g->delay_id));
	sodium_memzero(&g->rec, sizeof(g->rec));
	mrtc_token_fields_finish(&g->f);
}

/* The client went away: the work stops. */
static void dl_cancel(void *state)
{
	struct delegation *g = state;
	mrtc_hs_op_cancel(g->hs_op);
	mrtc_http_call_cancel(g->http);
	mrtc_store_call_cancel(g->save);
	mrtc_limits_take_cancel(g->limit_op);
}

static const struct mrtc_request_state_ops dl_ops = { dl_cancel, dl_dispose };

/* The finishing call for a refusal: @detail (may be NULL) goes to the access line only. */
static void dl_fail_detail(struct delegation *g, enum mrtc_err err, const char *msg,
			   const char *detail)
{
	char who[300] = "", line[MRTC_REQUEST_DETAIL_MAX];
	if (g->who.user_id[0])
		mrtc_format_shown(who, sizeof(who), "user %s, ",
				  mrtc_quote(line, sizeof(line), g->who.user_id, 255));
	mrtc_format_shown(line, sizeof(line), "%sdelegation refused: %s%s%s", who,
			  mrtc_err_str(err), detail ? ": " : "", detail ? detail : "");
	mrtc_request_fail(g->r, err, msg, line);
}

static void dl_fail(struct delegation *g, enum mrtc_err err, const char *msg)
{
	dl_fail_detail(g, err, msg, NULL);
}

static void dl_list(struct delegation *g);
static void dl_saved(void *arg, enum mrtc_err err);

/* The delayed event @id in @e (one entry; MSC4140 head or older field names): its delay, or
 * 0 if @e is another event. */
static uint64_t entry_delay(struct json_object *e, const char *id)
{
	struct json_object *dv = NULL;
	const char *eid = mrtc_json_get_string(e, "delay_id");
	if (!eid || strcmp(eid, id) != 0)
		return 0;
	if (!json_object_object_get_ex(e, "delay_ms", &dv))
		json_object_object_get_ex(e, "delay", &dv);
	if (!dv || !json_object_is_type(dv, json_type_int) || json_object_get_int64(dv) <= 0)
		return 0;
	return (uint64_t)json_object_get_int64(dv);
}

/* The entry for @id in a list answer (delayed_events[] or scheduled[]), or NULL. */
static struct json_object *find_entry(struct json_object *doc, const char *id)
{
	struct json_object *list = NULL;
	if (!json_object_object_get_ex(doc, "delayed_events", &list))
		json_object_object_get_ex(doc, "scheduled", &list);
	if (!list || !json_object_is_type(list, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		if (entry_delay(e, id))
			return e;
	}
	return NULL;
}

static void on_list(void *arg, const struct mrtc_http_response *resp)
{
	struct delegation *g = arg;
	g->http = NULL;
	struct json_object *doc = NULL;
	if (resp->err == MRTC_OK)
		mrtc_json_parse(resp->body, resp->body_len, 32, &doc);
	const char *errcode = mrtc_json_get_string(doc, "errcode");
	bool unrecognized =
	    resp->err == MRTC_OK &&
	    ((resp->status == 404 && errcode && strcmp(errcode, "M_UNRECOGNIZED") == 0) ||
	     resp->status == 405);
	if (unrecognized && (g->single || g->path == 0)) {
		json_object_put(doc);
		if (g->single) {
			g->single = false; /* no single-event lookup here: ask for the list */
		} else {
			g->path = 1; /* the homeserver only serves the stable path */
			g->single = true;
		}
		dl_list(g);
		return;
	}
	if (g->single && resp->err == MRTC_OK && resp->status == 404) {
		json_object_put(doc);
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "Unknown `delay_id`");
		return;
	}
	if (resp->err != MRTC_OK || resp->status != 200 ||
	    !json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
		char why[200];
		if (resp->err == MRTC_OK)
			mrtc_format_shown(why, sizeof(why), "delayed events answered HTTP %d",
					  resp->status);
		else
			mrtc_format_shown(why, sizeof(why), "delayed events call failed: %s%s%s",
					  mrtc_err_str(resp->err), resp->detail ? ": " : "",
					  resp->detail ? resp->detail : "");
		dl_fail_detail(g,
			       resp->err == MRTC_OK && resp->status == 401 ? MRTC_ERR_UNKNOWN_TOKEN
									   : MRTC_ERR_UPSTREAM,
			       resp->err == MRTC_OK && resp->status == 401
				   ? "Unknown access token"
				   : "Unable to reach the homeserver",
			       why);
		return;
	}
	struct json_object *e =
	    g->single && entry_delay(doc, g->delay_id) ? doc : find_entry(doc, g->delay_id);
	uint64_t delay = e ? entry_delay(e, g->delay_id) : 0;
	const char *room = e ? mrtc_json_get_string(e, "room_id") : NULL;
	const char *owner = NULL;
	if (e && !(owner = mrtc_json_get_string(e, "sender")))
		owner = mrtc_json_get_string(e, "user_id");
	const struct mrtc_config *c = g->s->config;
	const char *refusal = NULL;
	if (!delay)
		refusal = "Unknown `delay_id`";
	else if (owner && strcmp(owner, g->who.user_id) != 0)
		refusal = "The delayed event belongs to another user";
	else if (!room || strcmp(room, g->f.room_id) != 0)
		refusal = "The delayed event belongs to another room";
	else if (delay < c->delayed_min_delay_ms)
		refusal = "The delayed event's delay is below this service's minimum";
	json_object_put(doc);
	if (refusal) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, refusal);
		return;
	}
	struct mrtc_delayed *d = g->s->delayed;
	struct mrtc_job_record *rec = &g->rec;
	*rec = (struct mrtc_job_record){ .delay_ms = delay, .created_ms = mrtc_now_ms() };
	const char *parts[] = { g->f.room_id, g->f.slot_id, g->f.member_id, g->who.user_id };
	enum mrtc_identity_kind kind = c->identity == MRTC_IDENTITY_USER_MEMBER
					   ? MRTC_IDENTITY_KIND_USER_MEMBER
					   : MRTC_IDENTITY_KIND_USER_DEVICE_MEMBER;
	if (mrtc_livekit_hash(parts, 4, rec->key) != MRTC_OK ||
	    mrtc_livekit_room_name(g->f.room_id, g->f.slot_id, rec->room_name) != MRTC_OK ||
	    mrtc_livekit_identity(kind, g->who.user_id, g->device, g->f.member_id, rec->identity) !=
		MRTC_OK) {
		dl_fail(g, MRTC_ERR_BAD_JSON,
			"A device id is required ('member.claimed_device_id')");
		return;
	}
	enum mrtc_err err =
	    mrtc_copy(rec->user_id, sizeof(rec->user_id), g->who.user_id) &&
		    mrtc_copy(rec->room_id, sizeof(rec->room_id), g->f.room_id) &&
		    mrtc_copy(rec->delay_id, sizeof(rec->delay_id), g->delay_id) &&
		    mrtc_copy(rec->cs_api_url, sizeof(rec->cs_api_url), c->homeserver_url) &&
		    mrtc_copy(rec->sfu_url, sizeof(rec->sfu_url), c->sfus[g->sfu].url)
		? MRTC_OK
		: MRTC_ERR_INVALID_PARAM;
	if (err != MRTC_OK) {
		dl_fail(g, err, "Unable to take the delegation");
		return;
	}
	/* Answered once the job is in the store: a 200 means it survives a restart. */
	if (!mrtc_delayed_enabled(d) ||
	    !(g->save = mrtc_store_put(mrtc_delayed_store(d), rec, dl_saved, g)))
		dl_fail(g, MRTC_ERR_UPSTREAM, "Unable to take the delegation");
}

static void dl_saved(void *arg, enum mrtc_err err)
{
	struct delegation *g = arg;
	g->save = NULL;
	if (err == MRTC_OK)
		err = mrtc_delayed_start_stored(g->s->delayed, &g->rec);
	else
		err = MRTC_ERR_UPSTREAM; /* the store (Redis) is unreachable: 502 */
	if (err != MRTC_OK) {
		dl_fail(g, err, "Unable to take the delegation");
		return;
	}
	struct json_object *empty = json_object_new_object();
	mrtc_http_reply_json(g->r, 200, empty);
	json_object_put(empty);
}

static void dl_list(struct delegation *g)
{
	char url[2600];
	char *id = g->single ? evhttp_uriencode(g->delay_id, -1, 0) : NULL;
	bool built =
	    (!g->single || id) &&
	    mrtc_format(url, sizeof(url), "%s%s%s%s", g->s->config->homeserver_url,
			mrtc_delayed_paths[g->path], g->single ? "/" : "", g->single ? id : "");
	if (id) {
		sodium_memzero(id, strlen(id));
		free(id);
	}
	if (!built) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "`delay_id` is too long");
		return;
	}
	/* Application-service mode has no user token: the as_token acting as the user. */
	const char *token = g->token ? g->token : g->s->config->appservice_token;
	if (!g->token) {
		char *user = evhttp_uriencode(g->who.user_id, -1, 0);
		size_t n = strlen(url);
		bool fits = user && mrtc_format(url + n, sizeof(url) - n, "?user_id=%s", user);
		free(user);
		if (!fits) {
			sodium_memzero(url, sizeof(url));
			dl_fail(g, MRTC_ERR_INVALID_PARAM, "`delay_id` is too long");
			return;
		}
	}
	size_t al = strlen(token) + 8;
	char *auth = malloc(al);
	if (!auth || !mrtc_format(auth, al, "Bearer %s", token)) {
		free(auth);
		sodium_memzero(url, sizeof(url));
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	struct mrtc_http_request req = { .method = "GET",
					 .authorization = auth,
					 .timeout_ms = g->s->config->homeserver_timeout_s * 1000,
					 .max_body = MRTC_DELAYED_HS_RESPONSE_MAX };
	g->http = mrtc_http_fetch(g->s->http, g->s->dns, url, &req, false, NULL, 0, on_list, g);
	sodium_memzero(url, sizeof(url));
	sodium_memzero(auth, al);
	free(auth);
	if (!g->http)
		dl_fail(g, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver");
}

static void dl_limited(void *arg, bool allowed, uint64_t retry);

static void dl_whoami(void *arg, enum mrtc_err err, const struct mrtc_whoami *who)
{
	struct delegation *g = arg;
	g->hs_op = NULL;
	int status;
	uint64_t retry_ms;
	struct json_object *refusal;
	if (err != MRTC_OK && mrtc_whoami_refusal(err, who, &status, &refusal, &retry_ms)) {
		/* The homeserver's own answer, as on the other client-server endpoints. */
		struct mrtc_request *r = g->r;
		mrtc_request_note(r, "the homeserver refused the access token", mrtc_err_str(err));
		if (status == 429)
			mrtc_http_reply_limited(r, retry_ms);
		else
			mrtc_http_reply_json(r, status, refusal);
		json_object_put(refusal);
		return;
	}
	if (err != MRTC_OK) {
		dl_fail_detail(g, MRTC_ERR_UPSTREAM, "Unable to reach the homeserver", who->detail);
		return;
	}
	g->who = *who;
	const struct mrtc_config *c = g->s->config;
	const char *server = mrtc_user_id_server(who->user_id);
	if (!server || strcmp(server, c->server_name) != 0) {
		dl_fail(g, MRTC_ERR_FORBIDDEN,
			"Only users of this homeserver can use this endpoint");
		return;
	}
	const char *body, *msg;
	size_t len;
	struct json_object *doc = NULL;
	if (mrtc_http_body(g->r, &body, &len) != MRTC_OK) {
		dl_fail(g, MRTC_ERR_TOO_LARGE, "Request body too large");
		return;
	}
	if (mrtc_json_parse(body, len, MRTC_JSON_MAX_DEPTH, &doc) != MRTC_OK) {
		dl_fail(g, MRTC_ERR_NOT_JSON, "Body is not valid JSON");
		return;
	}
	/* `url` is required by the newest MSC4195 but older clients omit it: with one SFU
	 * configured, a missing url means ours. */
	struct json_object *uv = NULL;
	if (json_object_is_type(doc, json_type_object) &&
	    (!json_object_object_get_ex(doc, "url", &uv) || !uv))
		json_object_object_add(doc, "url", json_object_new_string(c->livekit_url));
	err = mrtc_token_fields_parse(doc, false, &g->f, &msg);
	struct json_object *dv = NULL;
	if (err == MRTC_OK &&
	    (!json_object_object_get_ex(doc, "delay_id", &dv) ||
	     !json_object_is_type(dv, json_type_string) || !json_object_get_string_len(dv))) {
		err = MRTC_ERR_BAD_JSON;
		msg = "Missing `delay_id`";
	} else if (err == MRTC_OK &&
		   (size_t)json_object_get_string_len(dv) >= sizeof(g->delay_id)) {
		err = MRTC_ERR_INVALID_PARAM;
		msg = "`delay_id` is too long";
	} else if (err == MRTC_OK) {
		mrtc_copy(g->delay_id, sizeof(g->delay_id), json_object_get_string(dv)); /* fits */
	}
	json_object_put(doc);
	if (err != MRTC_OK) {
		dl_fail(g, err, msg);
		return;
	}
	g->sfu = mrtc_config_sfu_find(c, g->f.url);
	if ((g->f.server_name[0] && strcmp(g->f.server_name, c->server_name) != 0) || g->sfu < 0) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM,
			"Only calls on this homeserver's SFU can be delegated here");
		return;
	}
	if (who->device_id[0] && g->f.claimed_device_id[0] &&
	    strcmp(who->device_id, g->f.claimed_device_id) != 0) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM,
			"'member.claimed_device_id' is not the device of the access token");
		return;
	}
	if (!mrtc_copy(g->device, sizeof(g->device),
		       g->f.claimed_device_id[0] ? g->f.claimed_device_id : who->device_id)) {
		dl_fail(g, MRTC_ERR_INVALID_PARAM, "The device id is too long");
		return;
	}
	g->limit_op =
	    mrtc_limits_take(g->s->limits, g->s->user_limit, "user", who->user_id, dl_limited, g);
	if (!g->limit_op)
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
}

static void dl_limited(void *arg, bool allowed, uint64_t retry)
{
	struct delegation *g = arg;
	g->limit_op = NULL;
	if (!allowed) {
		mrtc_http_reply_limited(g->r, retry);
		return;
	}
	g->single = true;
	dl_list(g);
}

/* The request's delegation context, or NULL after replying. */
static struct delegation *dl_new(struct mrtc_request *r)
{
	struct delegation *g = mrtc_request_state(r, sizeof(*g), &dl_ops);
	if (!g) {
		mrtc_request_fail(r, MRTC_ERR_NOMEM, "Out of memory", NULL);
		return NULL;
	}
	g->r = r;
	g->s = r->services;
	return g;
}

/* Application-service mode: the homeserver authenticated the user (no device, no token). */
static void delegate_from_homeserver(struct mrtc_request *r)
{
	struct mrtc_whoami who = { .soft_logout = -1 };
	if (!mrtc_appservice_client_user(r, who.user_id))
		return;
	struct delegation *g = dl_new(r);
	if (g)
		dl_whoami(g, MRTC_OK, &who);
}

void mrtc_delayed_delegate(struct mrtc_request *r)
{
	if (r->services->config->appservice) {
		delegate_from_homeserver(r);
		return;
	}
	const char *token = mrtc_http_bearer(r);
	if (!token) {
		mrtc_http_reply_error(r, MRTC_ERR_MISSING_TOKEN, "Missing access token");
		return;
	}
	struct delegation *g = dl_new(r);
	if (!g)
		return;
	if (!(g->token = strdup(token))) {
		dl_fail(g, MRTC_ERR_NOMEM, "Out of memory");
		return;
	}
	g->hs_op = mrtc_hs_whoami(g->s->homeserver, g->token, dl_whoami, g);
	if (!g->hs_op)
		dl_fail(g, MRTC_ERR_INTERNAL, "Cannot ask the homeserver");
}
