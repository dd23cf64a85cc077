/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exposes our LiveKit token code to test/integration/test_livekit_tokens.py, which checks it
 * against PyJWT and livekit-server-sdk.
 *   lktool mint KEY SECRET KIND IDENTITY ROOM NOW TTL   -> prints the JWT
 *         KIND: local | federated | legacy-full | legacy-restricted
 *   lktool webhook KEY SECRET NOW AUTHORIZATION         -> body on stdin; prints a JSON verdict
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/livekit/livekit.h"
#include "mrtc/base/util.h"

static int mint(char **argv)
{
	static const char *const kinds[] = { "local", "federated", "legacy-full",
					     "legacy-restricted" };
	int kind = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(argv[4], kinds[i]) == 0)
			kind = i;
	uint64_t now, ttl;
	if (kind < 0 || !mrtc_parse_u64(argv[7], 0, UINT64_MAX / 2, &now) ||
	    !mrtc_parse_u64(argv[8], 0, UINT64_MAX / 2, &ttl))
		return 2;
	struct mrtc_livekit_creds c = { argv[2], argv[3] };
	char *jwt = NULL;
	enum mrtc_err err = mrtc_livekit_mint_participant(&c, (enum mrtc_grant_kind)kind, argv[5],
							  argv[6], now, ttl, &jwt);
	if (err != MRTC_OK) {
		fprintf(stderr, "mint: %s\n", mrtc_err_str(err));
		return 1;
	}
	puts(jwt);
	free(jwt);
	return 0;
}

static int webhook(char **argv)
{
	uint64_t now;
	if (!mrtc_parse_u64(argv[4], 0, UINT64_MAX / 2, &now))
		return 2;
	char body[65536];
	size_t len = fread(body, 1, sizeof(body), stdin);
	struct mrtc_livekit_creds c = { argv[2], argv[3] };
	struct mrtc_webhook hook;
	enum mrtc_err err = mrtc_livekit_webhook_verify(&c, argv[5], body, len, now, &hook);
	if (err != MRTC_OK) {
		printf("{\"ok\":false,\"err\":\"%s\"}\n", mrtc_err_str(err));
		return 0;
	}
	char room[300], id[300];
	printf("{\"ok\":true,\"event\":%d,\"room\":%s,\"identity\":%s}\n", (int)hook.event,
	       mrtc_quote(room, sizeof(room), hook.room, 256),
	       mrtc_quote(id, sizeof(id), hook.identity, 256));
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	if (argc == 9 && strcmp(argv[1], "mint") == 0)
		return mint(argv);
	if (argc == 6 && strcmp(argv[1], "webhook") == 0)
		return webhook(argv);
	fprintf(stderr, "usage: see the comment at the top of lktool.c\n");
	return 2;
}
