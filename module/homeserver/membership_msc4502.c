/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The msc4502 membership backend: MSC4502 is_joined, asked with the application service's
 * as_token (MRTC_APPSERVICE_TOKEN): is the remote user joined (?mxid=), is our server still
 * in the room (?server_name=), two calls at once. MSC4502 has no ACL source: the ACL check is
 * skipped (documented).
 */
#include "homeserver_private.h"
#include "mrtc/base/util.h"

static void is_joined_user_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				struct json_object *doc)
{
	mrtc_hs_joined_step(op, resp, doc, &op->remote.user_joined);
}

static void is_joined_server_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
				  struct json_object *doc)
{
	mrtc_hs_joined_step(op, resp, doc, &op->remote.local_joined);
}

static bool start(struct mrtc_hs_op *op, const char *room_e)
{
	struct mrtc_homeserver *hs = op->hs;
	char q_e[3 * MRTC_ID_MAX + 1], path[8 * MRTC_ID_MAX];
	bool ok = mrtc_hs_encode_segment(op->user_id, q_e, sizeof(q_e)) &&
		  mrtc_format(path, sizeof(path), "%s%s/is_joined?mxid=%s",
			      mrtc_hs_is_joined_prefix(hs), room_e, q_e) &&
		  mrtc_hs_get(op, path, hs->member_auth, is_joined_user_step);
	return ok && mrtc_hs_encode_segment(hs->cfg.server_name, q_e, sizeof(q_e)) &&
	       mrtc_format(path, sizeof(path), "%s%s/is_joined?server_name=%s",
			   mrtc_hs_is_joined_prefix(hs), room_e, q_e) &&
	       mrtc_hs_get(op, path, hs->member_auth, is_joined_server_step);
}

const struct mrtc_membership_backend mrtc_membership_msc4502 = {
	.name = "msc4502",
	.token_var = "MRTC_APPSERVICE_TOKEN",
	.token_label = "appservice",
	.start = start,
};
