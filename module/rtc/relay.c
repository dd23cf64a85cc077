/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSC4195 client-server get_token for a room whose SFU another server runs: the request is
 * relayed to that server's federation get_token, signed by us (the federation client) or, in
 * application-service mode, by our homeserver (MSC4512 fed_proxy). The path the peer serves
 * (unstable or v1) is remembered per server; its refusals reach the client as Matrix errors.
 */
#include "rtc_private.h"

#include <stdlib.h>
#include <string.h>

#include "mrtc/appservice/appservice.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/matrix/json.h"
#include "mrtc/services/services.h"

#define FED_RESPONSE_MAX (64 * 1024)
#define FED_PATH_TTL_MS (3600ull * 1000)

static const char *const fed_paths[2] = {
	"/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
	"/_matrix/federation/v1/rtc/livekit/get_token",
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
		mrtc_rtc_fail(t, MRTC_ERR_FORBIDDEN,
			      "This homeserver does not federate with the specified homeserver",
			      why);
		return;
	case MRTC_FEDPROXY_CONNECTION_FAILED:
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the specified homeserver",
			      why);
		return;
	case MRTC_FEDPROXY_NOT_APPSERVICE:
		mrtc_rtc_fail(
		    t, MRTC_ERR_UPSTREAM,
		    "The homeserver refused the transport service's application-service token",
		    why);
		return;
	case MRTC_FEDPROXY_PATH_NOT_ALLOWED:
		mrtc_rtc_fail(
		    t, MRTC_ERR_UPSTREAM,
		    "The homeserver does not let the transport service use this federation path "
		    "(io.element.msc4512.proxy_prefix)",
		    why);
		return;
	case MRTC_FEDPROXY_BAD_PARAM:
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM,
			      "The homeserver refused the federation proxy request", why);
		return;
	case MRTC_FEDPROXY_UNSUPPORTED:
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM,
			      "The homeserver offers no federation proxy (MSC4512 is not enabled)",
			      why);
		return;
	default:
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM,
			      "Unable to reach the homeserver's federation proxy", why);
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
		mrtc_rtc_limited(t, 1000);
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
			mrtc_rtc_fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
			return;
		}
		mrtc_rtc_reply_jwt(t, copy);
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
	mrtc_rtc_fail(t, err, msg, why);
}

static void relay_send(struct token_req *t)
{
	struct json_object *body = json_object_new_object();
	struct json_object *member = json_object_new_object();
	if (!body || !member) {
		json_object_put(body);
		json_object_put(member);
		mrtc_rtc_fail(t, MRTC_ERR_NOMEM, "Out of memory", NULL);
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
		mrtc_rtc_fail(t, MRTC_ERR_UPSTREAM, "Unable to reach the specified homeserver",
			      NULL);
}

void mrtc_rtc_relay_start(struct token_req *t)
{
	const int *known = mrtc_cache_get(t->s->fed_paths, t->f.server_name,
					  strlen(t->f.server_name), mrtc_monotonic_ms());
	t->fed_path = known ? *known : 0;
	relay_send(t);
}
