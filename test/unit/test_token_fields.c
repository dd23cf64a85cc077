/* SPDX-License-Identifier: Apache-2.0 */
/* The get_token body fields (livekit/token_fields.c, PROTOCOL §2.3): what the client and
 * federation bodies must carry, which error each refusal is, and that a refused body leaves the
 * out-parameter alone. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "mrtc/livekit/token_fields.h"
#include "mrtc/matrix/json.h"
#include "vectors.h"

/* Parses the JSON text @text; the caller puts the result. */
static struct json_object *doc(const char *text)
{
	struct json_object *d = json_tokener_parse(text);
	ck_assert_msg(d != NULL, "test JSON does not parse: %s", text);
	return d;
}

static enum mrtc_err parse(const char *text, bool federation, struct mrtc_token_fields *f,
			   const char **msg)
{
	struct json_object *d = doc(text);
	enum mrtc_err e = mrtc_token_fields_parse(d, federation, f, msg);
	json_object_put(d); /* the fields are copies: they outlive the document */
	return e;
}

#define CLIENT_OK                                                                                  \
	"{\"url\":\"https://"                                                                      \
	"sfu.example\",\"room_id\":\"!r:hs1.test\",\"slot_id\":\"m.call#ROOM\","                   \
	"\"member\":{\"id\":\"mem1\",\"claimed_device_id\":\"DEV\"}"

START_TEST(test_client_body_fields)
{
	struct mrtc_token_fields f;
	const char *msg = NULL;
	ck_assert_int_eq(parse(CLIENT_OK ",\"server_name\":\"hs2.test\"}", false, &f, &msg),
			 MRTC_OK);
	ck_assert_str_eq(f.url, "https://sfu.example");
	ck_assert_str_eq(f.room_id, "!r:hs1.test");
	ck_assert_str_eq(f.slot_id, "m.call#ROOM");
	ck_assert_str_eq(f.member_id, "mem1");
	ck_assert_str_eq(f.claimed_device_id, "DEV");
	ck_assert_str_eq(f.claimed_user_id, "");
	ck_assert_str_eq(f.server_name, "hs2.test");
	ck_assert_str_eq(f.user_id, "");
	mrtc_token_fields_finish(&f);
	ck_assert_ptr_null(f.store);
	/* The older top-level member_id is the same field. */
	ck_assert_int_eq(parse("{\"url\":\"u\",\"room_id\":\"!r:hs1.test\",\"slot_id\":\"s\","
			       "\"member_id\":\"m2\"}",
			       false, &f, &msg),
			 MRTC_OK);
	ck_assert_str_eq(f.member_id, "m2");
	ck_assert_str_eq(f.claimed_device_id, "");
	mrtc_token_fields_finish(&f);
	/* Both given: they must agree. */
	ck_assert_int_eq(parse(CLIENT_OK ",\"member_id\":\"other\"}", false, &f, &msg),
			 MRTC_ERR_BAD_JSON);
	ck_assert_str_eq(msg, "'member_id' and 'member.id' differ");
	ck_assert_int_eq(parse(CLIENT_OK ",\"member_id\":\"mem1\"}", false, &f, &msg), MRTC_OK);
	mrtc_token_fields_finish(&f);
}
END_TEST

/* user_id is the federation body's and required there; server_name is the client's. */
START_TEST(test_federation_body_fields)
{
	struct mrtc_token_fields f;
	const char *msg = NULL;
	ck_assert_int_eq(parse(CLIENT_OK "}", true, &f, &msg), MRTC_ERR_BAD_JSON);
	ck_assert_str_eq(msg, "Missing url, room_id, slot_id, member id or user_id");
	ck_assert_int_eq(parse(CLIENT_OK ",\"user_id\":\"@a:hs2.test\"}", true, &f, &msg), MRTC_OK);
	ck_assert_str_eq(f.user_id, "@a:hs2.test");
	mrtc_token_fields_finish(&f);
	ck_assert_int_eq(parse(CLIENT_OK ",\"user_id\":\"not-a-user\"}", true, &f, &msg),
			 MRTC_ERR_INVALID_PARAM);
	/* A client body's user_id is not read; a federation body's server_name is not either. */
	ck_assert_int_eq(parse(CLIENT_OK ",\"user_id\":42}", false, &f, &msg), MRTC_OK);
	ck_assert_str_eq(f.user_id, "");
	mrtc_token_fields_finish(&f);
	ck_assert_int_eq(parse(CLIENT_OK
			       ",\"user_id\":\"@a:hs2.test\",\"server_name\":\"bad name\"}",
			       true, &f, &msg),
			 MRTC_OK);
	ck_assert_str_eq(f.server_name, "");
	mrtc_token_fields_finish(&f);
}
END_TEST

/* Each refusal: its error (status) and that *ret is untouched. */
START_TEST(test_refusals)
{
	static const struct {
		const char *body;
		enum mrtc_err err;
	} cases[] = {
		{ "[]", MRTC_ERR_NOT_JSON },
		{ "\"text\"", MRTC_ERR_NOT_JSON },
		{ "{}", MRTC_ERR_BAD_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\"}", MRTC_ERR_BAD_JSON },
		{ "{\"url\":\"\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\"}",
		  MRTC_ERR_BAD_JSON }, /* empty counts as missing */
		{ "{\"url\":1,\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\"}",
		  MRTC_ERR_BAD_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member\":[]}",
		  MRTC_ERR_BAD_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"r:h\",\"slot_id\":\"s\",\"member_id\":\"m\"}",
		  MRTC_ERR_INVALID_PARAM },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\","
		  "\"server_name\":\"bad name\"}",
		  MRTC_ERR_INVALID_PARAM },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\\u0000x\",\"member_id\":"
		  "\"m\"}",
		  MRTC_ERR_INVALID_PARAM }, /* a NUL inside */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mrtc_token_fields f, before;
		memset(&f, 0x5a, sizeof(f));
		before = f;
		const char *msg = NULL;
		enum mrtc_err e = parse(cases[i].body, false, &f, &msg);
		ck_assert_msg(e == cases[i].err, "%s: %s instead of %s", cases[i].body,
			      mrtc_err_str(e), mrtc_err_str(cases[i].err));
		ck_assert_msg(msg && msg[0], "%s: no message", cases[i].body);
		ck_assert_msg(memcmp(&f, &before, sizeof(f)) == 0, "%s: *ret written",
			      cases[i].body);
	}
}
END_TEST

/* The bounds: each field at its size less one is taken, one more is refused. */
START_TEST(test_field_bounds)
{
	struct mrtc_token_fields f;
	const char *msg = NULL;
	char slot[300], body[4200], url[2100];
	memset(slot, 's', 255);
	slot[255] = '\0';
	ck_assert(snprintf(body, sizeof(body),
			   "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"%s\",\"member_id\":"
			   "\"m\"}",
			   slot) < (int)sizeof(body));
	ck_assert_int_eq(parse(body, false, &f, &msg), MRTC_OK);
	ck_assert_uint_eq(strlen(f.slot_id), 255);
	mrtc_token_fields_finish(&f);
	slot[255] = 's';
	slot[256] = '\0';
	ck_assert(snprintf(body, sizeof(body),
			   "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"%s\",\"member_id\":"
			   "\"m\"}",
			   slot) < (int)sizeof(body));
	ck_assert_int_eq(parse(body, false, &f, &msg), MRTC_ERR_INVALID_PARAM);
	memset(url, 'u', 2049);
	url[2049] = '\0';
	ck_assert(snprintf(body, sizeof(body),
			   "{\"url\":\"%s\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":"
			   "\"m\"}",
			   url) < (int)sizeof(body));
	ck_assert_int_eq(parse(body, false, &f, &msg), MRTC_ERR_INVALID_PARAM);
	ck_assert_str_eq(msg, "'url' is too long");
}
END_TEST

/* The one-pass reading of a body's text gives what the document path gives: the usual bodies
 * it reads itself, the others it leaves to the strict parser. */
START_TEST(test_parse_text_as_document)
{
	static const struct {
		const char *body;
		enum mrtc_err err;
	} cases[] = {
		{ CLIENT_OK ",\"server_name\":\"hs2.test\"}", MRTC_OK },
		{ " {\"url\":\"u\" , \"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member\":null,"
		  "\"member_id\":\"m\",\"server_name\":null}\n",
		  MRTC_OK },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\\u0041\",\"member_id\":"
		  "\"m\"}",
		  MRTC_OK }, /* an escape: the strict parser's */
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\","
		  "\"n\":[1,{}],\"user_id\":42}",
		  MRTC_OK },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"url\":\"v\",\"slot_id\":\"s\","
		  "\"member_id\":\"m\"}",
		  MRTC_ERR_NOT_JSON }, /* a duplicate key */
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member\":{\"id\":\"m\","
		  "\"id\":\"n\"}}",
		  MRTC_ERR_NOT_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\"}x",
		  MRTC_ERR_NOT_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member\":\"m\"}",
		  MRTC_ERR_BAD_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\","
		  "\"member\":{\"id\":\"n\"}}",
		  MRTC_ERR_BAD_JSON },
		{ "{\"url\":\"u\",\"room_id\":\"r:h\",\"slot_id\":\"s\",\"member_id\":\"m\"}",
		  MRTC_ERR_INVALID_PARAM },
		{ "{\"url\":\"\",\"room_id\":\"!r:h\",\"slot_id\":\"s\",\"member_id\":\"m\"}",
		  MRTC_ERR_BAD_JSON },
		{ "", MRTC_ERR_NOT_JSON },
		{ "[]", MRTC_ERR_NOT_JSON },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mrtc_token_fields f = { 0 }, g = { 0 };
		const char *msg = NULL, *msg_text = NULL;
		struct json_object *d = NULL;
		enum mrtc_err e = mrtc_json_parse(cases[i].body, strlen(cases[i].body),
						  MRTC_JSON_MAX_DEPTH, &d) == MRTC_OK
				      ? mrtc_token_fields_parse(d, false, &f, &msg)
				      : MRTC_ERR_NOT_JSON;
		json_object_put(d);
		enum mrtc_err e_text = mrtc_token_fields_parse_text(
		    cases[i].body, strlen(cases[i].body), false, &g, &msg_text);
		ck_assert_msg(e_text == cases[i].err, "%s: %s instead of %s", cases[i].body,
			      mrtc_err_str(e_text), mrtc_err_str(cases[i].err));
		ck_assert_int_eq(e, e_text);
		if (e == MRTC_ERR_NOT_JSON && !msg)
			msg = "Body is not valid JSON";
		ck_assert_str_eq(msg, msg_text);
		if (e == MRTC_OK) {
			ck_assert_str_eq(f.url, g.url);
			ck_assert_str_eq(f.room_id, g.room_id);
			ck_assert_str_eq(f.slot_id, g.slot_id);
			ck_assert_str_eq(f.member_id, g.member_id);
			ck_assert_str_eq(f.claimed_device_id, g.claimed_device_id);
			ck_assert_str_eq(f.server_name, g.server_name);
		}
		mrtc_token_fields_finish(&f);
		mrtc_token_fields_finish(&g);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("token_fields");
	const TTest *tests[] = {
		test_client_body_fields, test_federation_body_fields, test_refusals,
		test_field_bounds,	 test_parse_text_as_document,
	};
	vectors_add_tests(s, "token_fields", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
