/* SPDX-License-Identifier: Apache-2.0 */
/* Server names, user ids and room ids: accepted values never carry header-breaking bytes. */
#include "fuzz.h"
#include "mrtc/matrix/servername.h"

static void check_clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == ' ' || *s == '"' || *s == ',')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	if (!s)
		return 0;
	struct mrtc_server_name sn;
	if (mrtc_server_name_parse(s, &sn)) {
		check_clean(s);
		if (strlen(s) > MRTC_SERVER_NAME_MAX || strncmp(s, sn.host, strlen(sn.host)) != 0)
			abort();
		if (mrtc_server_name_is_ip_literal(s) != (sn.kind != MRTC_HOST_DNS))
			abort();
	}
	const char *server = mrtc_user_id_server(s);
	if (server) {
		check_clean(server);
		if (server <= s || server[-1] != ':')
			abort();
	}
	if (mrtc_room_id_is_valid(s) && (s[0] != '!' || strlen(s) > MRTC_ID_MAX))
		abort();
	free(s);
	return 0;
}
