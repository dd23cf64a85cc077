/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSC4195 endpoints, what both paths share: the request's state (rtc_private.h) with its cancel
 * and dispose hooks, the answers (a failure with its cause for the access line, 429, the JWT),
 * and minting on this server's SFU, for our own users (client.c) and for other servers' users
 * (federation.c). A request is a chain of asynchronous steps (whoami, membership, room creation,
 * federation); each step keeps the handle of its outbound call so that a client that goes away
 * cancels what is still running.
 */
#include "rtc_private.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/base/buf.h"
#include "mrtc/base/util.h"
#include "mrtc/delayed/delayed.h"
#include "mrtc/livekit/livekit.h"
#include "mrtc/net/inbound.h"
#include "mrtc/services/services.h"

/* ---- request lifecycle ---- */

static void tr_dispose(void *state)
{
	struct token_req *t = state;
	if (t->token) {
		sodium_memzero(t->token, strlen(t->token));
		free(t->token);
	}
	json_object_put(t->body);
	mrtc_token_fields_finish(&t->f);
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

struct token_req *mrtc_rtc_req_new(struct mrtc_request *r)
{
	struct token_req *t = mrtc_request_state(r, sizeof(*t), &tr_ops);
	if (!t)
		return NULL;
	t->r = r;
	t->s = r->services;
	return t;
}

void mrtc_rtc_fail(struct token_req *t, enum mrtc_err err, const char *msg, const char *detail)
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

void mrtc_rtc_limited(struct token_req *t, uint64_t retry_ms)
{
	struct mrtc_request *r = t->r;
	t->s->counters.rate_limited++;
	mrtc_http_reply_limited(r, retry_ms);
}

void mrtc_rtc_reply_jwt(struct token_req *t, const char *jwt)
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
		mrtc_rtc_fail(t, MRTC_ERR_INTERNAL, "Unable to create room on SFU", why);
		return;
	}
	const struct mrtc_config *c = t->s->config;
	struct mrtc_livekit_creds creds = { c->sfus[t->sfu].key, c->sfus[t->sfu].secret };
	char *jwt = NULL;
	err = mrtc_livekit_mint_participant(
	    &creds, t->federated ? MRTC_GRANT_FEDERATED_USER : MRTC_GRANT_LOCAL_USER, t->identity,
	    t->room_name, mrtc_now_ms() / 1000, c->token_ttl_s, &jwt);
	if (err != MRTC_OK) {
		mrtc_rtc_fail(t, MRTC_ERR_INTERNAL, "Unable to mint a token", NULL);
		return;
	}
	if (t->federated)
		t->s->counters.tokens_federated++;
	else
		t->s->counters.tokens_local++;
	mrtc_delayed_admitted(t->s->delayed, t->sfu, t->f.room_id, t->room_name, t->identity,
			      t->federated ? t->f.user_id : t->who.user_id, c->token_ttl_s);
	mrtc_rtc_reply_jwt(t, jwt);
	sodium_memzero(jwt, strlen(jwt));
	free(jwt);
}

void mrtc_rtc_mint_here(struct token_req *t, const char *user_id)
{
	const struct mrtc_config *c = t->s->config;
	int sfu = mrtc_config_sfu_find(c, t->f.url);
	if (sfu < 0) {
		mrtc_rtc_fail(t, MRTC_ERR_INVALID_PARAM,
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
		mrtc_rtc_fail(t, err == MRTC_ERR_BAD_JSON ? MRTC_ERR_BAD_JSON : MRTC_ERR_INTERNAL,
			      err == MRTC_ERR_BAD_JSON ? "A device id is required"
						       : "Cannot derive names",
			      NULL);
		return;
	}
	t->rs_call =
	    mrtc_roomservice_create_room(t->s->sfu_rooms[t->sfu], t->room_name, on_room, t);
	if (!t->rs_call)
		mrtc_rtc_fail(t, MRTC_ERR_INTERNAL, "Unable to create room on SFU",
			      "CreateRoom could not start");
}
