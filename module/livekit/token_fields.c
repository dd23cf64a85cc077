/* SPDX-License-Identifier: Apache-2.0 */
/* The get_token request fields, validated (PROTOCOL §2.3): pure, shared by rtc/'s endpoints and
 * delayed/'s delegation. */
#include "mrtc/livekit/token_fields.h"

#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/json.h"
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

/* The string fields a body may carry, in the order of struct mrtc_token_fields (member_id and
 * member.id both lead to member_id). */
enum field {
	F_URL,
	F_ROOM,
	F_SLOT,
	F_MEMBER_ID,
	F_MID,
	F_DEV,
	F_CUSER,
	F_SERVER,
	F_USER,
	F_COUNT
};

/*
 * The second half of a parse: the string values found (NULL: absent, null or ""), checked and
 * copied into *@ret.
 */
static enum mrtc_err fields_take(const char *const v[F_COUNT], bool federation,
				 struct mrtc_token_fields *ret, const char **msg)
{
	const char *url = v[F_URL], *room = v[F_ROOM], *slot = v[F_SLOT],
		   *member_id = v[F_MEMBER_ID], *mid = v[F_MID], *dev = v[F_DEV],
		   *cuser = v[F_CUSER], *server = v[F_SERVER], *user = v[F_USER];
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
	const char *v[F_COUNT] = { url, room, slot, member_id, mid, dev, cuser, server, user };
	return fields_take(v, federation, ret, msg);
}

/*
 * ---- The usual body in one pass ----
 * A get_token body is a flat object of short strings, with "member" an object of strings. Such
 * a body is read straight from its text, without building a document: an object of strings of
 * printable ASCII without escapes, or null, and one nested object under the top-level key
 * "member". For anything else (other types, escapes, bytes outside printable ASCII, more
 * members than PLAIN_MAX, long values) the reader gives up and the body goes through
 * mrtc_json_parse() and mrtc_token_fields_parse(): it accepts only what they accept, with the
 * same result (the fuzz target compares both on every input).
 */
#define PLAIN_MAX 16	/* members per object */
#define PLAIN_TEXT 1024 /* bytes of the values used, NULs included */

struct plain_member {
	const char *key, *value; /* value: NULL for null or the nested object */
	size_t key_len, value_len;
	bool object;
};

struct plain_object {
	struct plain_member m[PLAIN_MAX];
	size_t n;
};

static void plain_ws(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
		(*p)++;
}

/* A string at *@p of printable ASCII without escapes: its bytes, and *@p moved past it. */
static bool plain_string(const char **p, const char *end, const char **ret, size_t *ret_len)
{
	if (*p >= end || **p != '"')
		return false;
	const char *s = *p + 1, *q = s;
	while (q < end && *q != '"') {
		if (*q < 0x20 || *q > 0x7e || *q == '\\')
			return false;
		q++;
	}
	if (q >= end)
		return false;
	*ret = s;
	*ret_len = (size_t)(q - s);
	*p = q + 1;
	return true;
}

/* The object at *@p into @o; @member takes a nested object under "member" (NULL: none may
 * be). A duplicate key is given up on: the strict parser refuses it. */
static bool plain_object(const char **p, const char *end, struct plain_object *o,
			 struct plain_object *member)
{
	const char *s = *p;
	o->n = 0;
	if (s >= end || *s != '{')
		return false;
	s++;
	plain_ws(&s, end);
	if (s < end && *s == '}') {
		*p = s + 1;
		return true;
	}
	for (;;) {
		struct plain_member m = { 0 };
		plain_ws(&s, end);
		if (o->n == PLAIN_MAX || !plain_string(&s, end, &m.key, &m.key_len))
			return false;
		for (size_t i = 0; i < o->n; i++)
			if (o->m[i].key_len == m.key_len &&
			    memcmp(o->m[i].key, m.key, m.key_len) == 0)
				return false;
		plain_ws(&s, end);
		if (s >= end || *s != ':')
			return false;
		s++;
		plain_ws(&s, end);
		if (s < end && *s == '"') {
			if (!plain_string(&s, end, &m.value, &m.value_len))
				return false;
		} else if (end - s >= 4 && memcmp(s, "null", 4) == 0) {
			s += 4;
		} else if (member && m.key_len == 6 && memcmp(m.key, "member", 6) == 0) {
			if (!plain_object(&s, end, member, NULL))
				return false;
			m.object = true;
		} else {
			return false;
		}
		o->m[o->n++] = m;
		plain_ws(&s, end);
		if (s < end && *s == ',') {
			s++;
		} else if (s < end && *s == '}') {
			*p = s + 1;
			return true;
		} else {
			return false;
		}
	}
}

/* The member @key of @o, or NULL. */
static const struct plain_member *plain_get(const struct plain_object *o, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < o->n; i++)
		if (o->m[i].key_len == n && memcmp(o->m[i].key, key, n) == 0)
			return &o->m[i];
	return NULL;
}

/*
 * The one-pass reading: true with the result of fields_take() in *@ret_err, or false to leave
 * the body to the full parser.
 */
static bool plain_parse(const char *text, size_t len, bool federation,
			struct mrtc_token_fields *ret, const char **msg, enum mrtc_err *ret_err)
{
	const char *p = text, *end = text + len;
	struct plain_object body, member = { .n = 0 };
	plain_ws(&p, end);
	if (!plain_object(&p, end, &body, &member))
		return false;
	plain_ws(&p, end);
	if (p != end)
		return false;
	const struct plain_member *mm = plain_get(&body, "member");
	if (mm && !mm->object && mm->value)
		return false; /* a string where an object belongs: the full path says which */
	static const struct {
		const char *key;
		bool in_member;
	} keys[F_COUNT] = {
		[F_URL] = { "url", false },
		[F_ROOM] = { "room_id", false },
		[F_SLOT] = { "slot_id", false },
		[F_MEMBER_ID] = { "member_id", false },
		[F_MID] = { "id", true },
		[F_DEV] = { "claimed_device_id", true },
		[F_CUSER] = { "claimed_user_id", true },
		[F_SERVER] = { "server_name", false },
		[F_USER] = { "user_id", false },
	};
	char buf[PLAIN_TEXT];
	size_t used = 0;
	const char *v[F_COUNT] = { NULL };
	for (size_t i = 0; i < F_COUNT; i++) {
		if ((i == F_SERVER && federation) || (i == F_USER && !federation))
			continue;
		const struct plain_member *m =
		    plain_get(keys[i].in_member ? &member : &body, keys[i].key);
		if (!m || m->object)
			continue; /* a nested object is only ever "member", not one of these */
		if (!m->value || m->value_len == 0)
			continue; /* null and "" count as absent */
		if (m->value_len + 1 > sizeof(buf) - used)
			return false;
		memcpy(buf + used, m->value, m->value_len);
		buf[used + m->value_len] = '\0';
		v[i] = buf + used;
		used += m->value_len + 1;
	}
	*ret_err = fields_take(v, federation, ret, msg);
	return true;
}

enum mrtc_err mrtc_token_fields_parse_text(const char *text, size_t len, bool federation,
					   struct mrtc_token_fields *ret, const char **msg)
{
	enum mrtc_err err;
	if (plain_parse(text, len, federation, ret, msg, &err))
		return err;
	struct json_object *body = NULL;
	if (mrtc_json_parse(text, len, MRTC_JSON_MAX_DEPTH, &body) != MRTC_OK) {
		*msg = "Body is not valid JSON";
		return MRTC_ERR_NOT_JSON;
	}
	err = mrtc_token_fields_parse(body, federation, ret, msg);
	json_object_put(body);
	return err;
}

void mrtc_token_fields_finish(struct mrtc_token_fields *f)
{
	free(f->store);
	*f = (struct mrtc_token_fields){ 0 };
}
