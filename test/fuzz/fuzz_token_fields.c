/* SPDX-License-Identifier: Apache-2.0 */
/* get_token bodies (client and federation forms), SFU URL matching and JWT shape checks. The
 * one-pass reading of a body's text (mrtc_token_fields_parse_text) must give what the strict
 * parser and mrtc_token_fields_parse give, on every input. */
#include "fuzz.h"
#include "mrtc/matrix/json.h"
#include "mrtc/core/config.h"
#include "mrtc/rtc/rtc.h"

static bool same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static bool same_fields(const struct mrtc_token_fields *a, const struct mrtc_token_fields *b)
{
	return same(a->url, b->url) && same(a->room_id, b->room_id) &&
	       same(a->slot_id, b->slot_id) && same(a->member_id, b->member_id) &&
	       same(a->claimed_device_id, b->claimed_device_id) &&
	       same(a->claimed_user_id, b->claimed_user_id) &&
	       same(a->server_name, b->server_name) && same(a->user_id, b->user_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *v = NULL;
	bool json = mrtc_json_parse((const char *)data, size, MRTC_JSON_MAX_DEPTH, &v) == MRTC_OK;
	for (int fed = 0; fed < 2; fed++) {
		struct mrtc_token_fields f = { 0 }, g = { 0 };
		const char *msg = NULL, *msg_text = NULL;
		enum mrtc_err e =
		    json ? mrtc_token_fields_parse(v, fed, &f, &msg) : MRTC_ERR_NOT_JSON;
		if (!json)
			msg = "Body is not valid JSON";
		enum mrtc_err e_text =
		    mrtc_token_fields_parse_text((const char *)data, size, fed, &g, &msg_text);
		if (e != e_text || !msg_text || !same(msg, msg_text))
			abort();
		if (e == MRTC_OK) {
			if (!f.room_id[0] || f.room_id[0] != '!' || !f.slot_id[0] ||
			    !f.member_id[0] || !f.url[0] || (fed && !f.user_id[0]) ||
			    strlen(f.url) > MRTC_TOKEN_URL_MAX ||
			    strlen(f.room_id) > MRTC_TOKEN_FIELD_MAX || !same_fields(&f, &g))
				abort();
			mrtc_token_fields_finish(&f);
			mrtc_token_fields_finish(&g);
		} else if (!msg) {
			abort();
		}
	}
	json_object_put(v);
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	if (mrtc_sfu_url_matches(s, "wss://sfu.example.org") && strncmp(s, "wss://sfu", 9) != 0)
		abort();
	mrtc_jwt_is_well_formed(s);
	free(s);
	return 0;
}
