/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The synapse-admin membership backend: Synapse's admin API, asked with an admin access token
 * (MRTC_HOMESERVER_ADMIN_TOKEN): the room's members (is the remote user joined, is any of ours
 * still joined) and its m.room.server_acl state, two calls at once.
 */
#include <string.h>

#include "homeserver_private.h"
#include "mrtc/matrix/acl.h"
#include "mrtc/matrix/json.h"
#include "mrtc/base/util.h"

static bool is_local(const struct mrtc_homeserver *hs, const char *user)
{
	const char *server = mrtc_user_id_server(user);
	return server && strcmp(server, hs->cfg.server_name) == 0;
}

static void members_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
			 struct json_object *doc)
{
	if (resp->status == 401 || resp->status == 403) {
		mrtc_hs_admin_refused(op, resp->status);
		return;
	}
	if (resp->status == 404)
		return; /* unknown room: nobody is joined */
	struct json_object *members = NULL;
	if (resp->status != 200 || !json_object_object_get_ex(doc, "members", &members) ||
	    !json_object_is_type(members, json_type_array)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	op->hs->stats.admin_misconfigured = false;
	size_t n = json_object_array_length(members);
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(members, i);
		if (!json_object_is_type(m, json_type_string))
			continue;
		const char *u = json_object_get_string(m);
		if (strcmp(u, op->user_id) == 0)
			op->remote.user_joined = true;
		if (is_local(op->hs, u))
			op->remote.local_joined = true;
	}
}

static void acl_step(struct mrtc_hs_op *op, const struct mrtc_http_response *resp,
		     struct json_object *doc)
{
	if (resp->status == 401 || resp->status == 403) {
		mrtc_hs_admin_refused(op, resp->status);
		return;
	}
	if (resp->status == 404)
		return;
	struct json_object *state = NULL;
	if (resp->status != 200 || !json_object_object_get_ex(doc, "state", &state) ||
	    !json_object_is_type(state, json_type_array)) {
		op->err = MRTC_ERR_UPSTREAM;
		return;
	}
	size_t n = json_object_array_length(state);
	for (size_t i = 0; i < n; i++) {
		struct json_object *ev = json_object_array_get_idx(state, i), *content = NULL;
		const char *type = mrtc_json_get_string(ev, "type");
		const char *key = mrtc_json_get_string(ev, "state_key");
		if (type && strcmp(type, "m.room.server_acl") == 0 && key && !key[0] &&
		    json_object_object_get_ex(ev, "content", &content))
			op->remote.acl_allows = mrtc_acl_allows(content, op->origin);
	}
}

static bool start(struct mrtc_hs_op *op, const char *room_e)
{
	char path[8 * MRTC_ID_MAX];
	bool ok = mrtc_format(path, sizeof(path), "/_synapse/admin/v1/rooms/%s/members", room_e) &&
		  mrtc_hs_get(op, path, op->hs->member_auth, members_step);
	return ok &&
	       mrtc_format(path, sizeof(path),
			   "/_synapse/admin/v1/rooms/%s/state?type=m.room.server_acl", room_e) &&
	       mrtc_hs_get(op, path, op->hs->member_auth, acl_step);
}

const struct mrtc_membership_backend mrtc_membership_synapse_admin = {
	.name = "synapse-admin",
	.token_var = "MRTC_HOMESERVER_ADMIN_TOKEN",
	.token_label = "admin",
	.start = start,
};
