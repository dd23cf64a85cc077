/* SPDX-License-Identifier: Apache-2.0 */
/* POST /sfu_webhook: LiveKit's webhooks, verified with each SFU's key and secret, drive the
 * jobs (participant joined, left, room finished) and the membership watch (joined). */
#include <event2/http.h>
#include <string.h>

#include "internal.h"
#include "mrtc/base/util.h"
#include "mrtc/core/log.h"
#include "mrtc/services/services.h"
#include "mrtc/matrix/json.h"

void mrtc_delayed_webhook(struct mrtc_request *r)
{
	struct mrtc_services *s = r->services;
	const char *body;
	size_t len;
	if (mrtc_http_body(r, &body, &len) != MRTC_OK) {
		mrtc_http_reply_error(r, MRTC_ERR_TOO_LARGE, "Request body too large");
		return;
	}
	const char *auth =
	    evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	/* Each SFU signs with its own key and secret: the hook concerns the SFUs whose secret
	 * verifies it (several if they share the key and secret). A hook that verified but whose
	 * body is bad says so rather than 401. */
	struct mrtc_webhook hook;
	enum mrtc_err err = MRTC_ERR_AUTH_MISSING;
	unsigned from = 0; /* bit i: SFU i */
	for (size_t i = 0; auth && i < s->config->n_sfus; i++) {
		const struct mrtc_sfu_config *u = &s->config->sfus[i];
		struct mrtc_livekit_creds creds = { u->key, u->secret };
		struct mrtc_webhook h;
		enum mrtc_err e =
		    mrtc_livekit_webhook_verify(&creds, auth, body, len, mrtc_now_ms() / 1000, &h);
		if (e == MRTC_OK) {
			if (!from)
				hook = h;
			from |= 1u << i;
			err = MRTC_OK;
		} else if (i == 0 ||
			   (err != MRTC_OK && (e == MRTC_ERR_NOT_JSON || e == MRTC_ERR_BAD_JSON))) {
			err = e;
		}
	}
	if (err != MRTC_OK) {
		mrtc_log(LOG_WARNING, "webhook", r->id, "refused an SFU webhook: %s",
			 mrtc_err_str(err));
		mrtc_http_reply_error(r,
				      err == MRTC_ERR_NOT_JSON || err == MRTC_ERR_BAD_JSON
					  ? err
					  : MRTC_ERR_UNAUTHORIZED,
				      "Webhook not accepted");
		return;
	}
	if (s->delayed && hook.room[0])
		mrtc_delayed_on_webhook(s->delayed, from, &hook);
	struct json_object *ok = json_object_new_object();
	mrtc_http_reply_json(r, 200, ok);
	json_object_put(ok);
}
