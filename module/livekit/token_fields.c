/* SPDX-License-Identifier: Apache-2.0 */
/* The get_token request fields, validated (PROTOCOL §2.3): pure, shared by rtc/'s endpoints and
 * delayed/'s delegation. */
#include "mrtc/livekit/token_fields.h"

#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/servername.h"

/*
 * A string member: MRTC_OK with its value (NULL when absent, null, or "" — empty counts as
 * missing), MRTC_ERR_BAD_JSON when of another type.
 */
static enum mrtc_err opt_string(const struct json_object *obj, const char *key, const char **ret)
{
	struct json_object *v = NULL;
	*ret = NULL;
	if (!obj || !json_object_object_get_ex(obj, key, &v) || v == NULL)
		return MRTC_OK;
	if (!json_object_is_type(v, json_type_string))
		return MRTC_ERR_BAD_JSON;
	const char *s = json_object_get_string(v);
	if (s[0] && strlen(s) == (size_t)json_object_get_string_len(v))
		*ret = s;
	else if (s[0])
		return MRTC_ERR_INVALID_PARAM; /* a NUL inside */
	return MRTC_OK;
}

enum mrtc_err mrtc_token_fields_parse(const struct json_object *body, bool federation,
				      struct mrtc_token_fields *ret, const char **msg)
{
	if (!json_object_is_type(body, json_type_object)) {
		*msg = "Body is not a JSON object";
		return MRTC_ERR_NOT_JSON;
	}
	const char *url, *room, *slot, *member_id, *mid, *dev, *cuser, *server = NULL, *user = NULL;
	struct json_object *member = NULL;
	if (json_object_object_get_ex(body, "member", &member) && member &&
	    !json_object_is_type(member, json_type_object)) {
		*msg = "'member' must be an object";
		return MRTC_ERR_BAD_JSON;
	}
	enum mrtc_err e;
	if ((e = opt_string(body, "url", &url)) || (e = opt_string(body, "room_id", &room)) ||
	    (e = opt_string(body, "slot_id", &slot)) ||
	    (e = opt_string(body, "member_id", &member_id)) ||
	    (e = opt_string(member, "id", &mid)) ||
	    (e = opt_string(member, "claimed_device_id", &dev)) ||
	    (e = opt_string(member, "claimed_user_id", &cuser)) ||
	    (!federation && (e = opt_string(body, "server_name", &server))) ||
	    (federation && (e = opt_string(body, "user_id", &user)))) {
		*msg = e == MRTC_ERR_BAD_JSON ? "A field has the wrong type"
					      : "A field contains a NUL character";
		return e;
	}
	if (!url || !room || !slot || (!member_id && !mid) || (federation && !user)) {
		*msg = federation ? "Missing url, room_id, slot_id, member id or user_id"
				  : "Missing url, room_id, slot_id or member id";
		return MRTC_ERR_BAD_JSON;
	}
	if (member_id && mid && strcmp(member_id, mid) != 0) {
		*msg = "'member_id' and 'member.id' differ";
		return MRTC_ERR_BAD_JSON;
	}
	const char *m = member_id ? member_id : mid;
	*msg = "Invalid parameter";
	if (strlen(url) > MRTC_TOKEN_URL_MAX) {
		*msg = "'url' is too long";
		return MRTC_ERR_INVALID_PARAM;
	}
	if (!mrtc_room_id_is_valid(room)) {
		*msg = "'room_id' is not a valid room id";
		return MRTC_ERR_INVALID_PARAM;
	}
	if (strlen(room) > MRTC_TOKEN_FIELD_MAX || strlen(slot) > MRTC_TOKEN_FIELD_MAX ||
	    strlen(m) > MRTC_TOKEN_FIELD_MAX) {
		*msg = "'slot_id' or member id is too long";
		return MRTC_ERR_INVALID_PARAM;
	}
	if ((dev && strlen(dev) > MRTC_TOKEN_FIELD_MAX) ||
	    (cuser && strlen(cuser) > MRTC_TOKEN_FIELD_MAX)) {
		*msg = "A claimed id is too long";
		return MRTC_ERR_INVALID_PARAM;
	}
	if (server &&
	    (!mrtc_server_name_is_valid(server) || strlen(server) > MRTC_TOKEN_FIELD_MAX)) {
		*msg = "'server_name' is not a valid server name";
		return MRTC_ERR_INVALID_PARAM;
	}
	if (user && (!mrtc_user_id_server(user) || strlen(user) > MRTC_TOKEN_FIELD_MAX)) {
		*msg = "'user_id' is not a valid user id";
		return MRTC_ERR_INVALID_PARAM;
	}
	/* One allocation sized to the content, each string after the other. */
	const char *src[] = { url, room, slot, m, dev, cuser, server, user };
	size_t total = 0;
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		total += src[i] ? strlen(src[i]) + 1 : 0;
	char *store = malloc(total);
	if (!store) {
		*msg = "Out of memory";
		return MRTC_ERR_NOMEM;
	}
	const char *dst[sizeof(src) / sizeof(src[0])];
	char *p = store;
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++) {
		dst[i] = "";
		if (src[i]) {
			size_t n = strlen(src[i]) + 1;
			memcpy(p, src[i], n);
			dst[i] = p;
			p += n;
		}
	}
	*ret = (struct mrtc_token_fields){ .url = dst[0],
					   .room_id = dst[1],
					   .slot_id = dst[2],
					   .member_id = dst[3],
					   .claimed_device_id = dst[4],
					   .claimed_user_id = dst[5],
					   .server_name = dst[6],
					   .user_id = dst[7],
					   .store = store };
	return MRTC_OK;
}

void mrtc_token_fields_finish(struct mrtc_token_fields *f)
{
	free(f->store);
	*f = (struct mrtc_token_fields){ 0 };
}
