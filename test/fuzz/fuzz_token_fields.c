/* SPDX-License-Identifier: Apache-2.0 */
/* get_token bodies (client and federation forms), SFU URL matching and JWT shape checks. */
#include "fuzz.h"
#include "mrtc/matrix/json.h"
#include "mrtc/core/config.h"
#include "mrtc/rtc/rtc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *v = NULL;
	if (mrtc_json_parse((const char *)data, size, MRTC_JSON_MAX_DEPTH, &v) == MRTC_OK) {
		for (int fed = 0; fed < 2; fed++) {
			struct mrtc_token_fields f;
			const char *msg = NULL;
			if (mrtc_token_fields_parse(v, fed, &f, &msg) == MRTC_OK) {
				if (!f.room_id[0] || f.room_id[0] != '!' || !f.slot_id[0] ||
				    !f.member_id[0] || !f.url[0] || (fed && !f.user_id[0]) ||
				    strlen(f.url) > MRTC_TOKEN_URL_MAX ||
				    strlen(f.room_id) > MRTC_TOKEN_FIELD_MAX)
					abort();
				mrtc_token_fields_finish(&f);
			} else if (!msg) {
				abort();
			}
		}
		json_object_put(v);
	}
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	if (mrtc_sfu_url_matches(s, "wss://sfu.example.org") && strncmp(s, "wss://sfu", 9) != 0)
		abort();
	mrtc_jwt_is_well_formed(s);
	free(s);
	return 0;
}
