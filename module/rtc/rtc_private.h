/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to module/rtc: the state of one MSC4195 request, owned by the request (freed by the
 * one finishing call, its outbound calls cancelled if the client goes away), and the steps the
 * folder's files share: rtc.c answers and mints, client.c and federation.c take requests in,
 * relay.c asks another server for a client.
 */
#ifndef MRTC_RTC_PRIVATE_H
#define MRTC_RTC_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrtc/livekit/livekit.h"
#include "mrtc/rtc/rtc.h"
#include "mrtc/services/services.h"

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

/* The request's zeroed state, whose cancel hook stops every outbound call in flight and whose
 * dispose hook wipes the access token; NULL on OOM (nothing answered). */
struct token_req *mrtc_rtc_req_new(struct mrtc_request *r);
/* Answers @err with @msg; @detail (may be NULL) says why, for the access line only. */
void mrtc_rtc_fail(struct token_req *t, enum mrtc_err err, const char *msg, const char *detail);
/* Answers 429 with a retry hint of @retry_ms, counted as rate limited. */
void mrtc_rtc_limited(struct token_req *t, uint64_t retry_ms);
/* Answers 200 {"jwt": @jwt}, wiping the copy it made. */
void mrtc_rtc_reply_jwt(struct token_req *t, const char *jwt);
/* Checks the url, derives names and makes sure the room exists, then mints for @user_id and
 * answers (rtc.c). */
void mrtc_rtc_mint_here(struct token_req *t, const char *user_id);
/* Relays a client's get_token to t->f.server_name, the room's resident server, and answers with
 * its JWT or its refusal (relay.c). */
void mrtc_rtc_relay_start(struct token_req *t);

#endif
