/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Micro-benchmark: the keyring's per-request lookup (mrtc_keyring_lookup, called for every
 * inbound X-Matrix request) with 10, 1 000 and 4 000 remote servers held, each looked up in
 * turn. A flat cost per lookup is what counts: it must not grow with the number of servers.
 */
#include <event2/event.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "mrtc/base/util.h"
#include "mrtc/net/keyring.h"

#define NAMES_MAX 4000

struct ctx {
	struct mrtc_keyring *kr;
	char names[NAMES_MAX][32];
	size_t n, next;
};

static bool lookup(void *arg)
{
	struct ctx *c = arg;
	uint8_t pk[MRTC_ED25519_PK_LEN];
	const char *name = c->names[c->next];
	c->next = (c->next + 1) % c->n;
	return mrtc_keyring_lookup(c->kr, name, "ed25519:a", pk) == MRTC_OK;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
	struct event_base *base = event_base_new();
	static struct ctx c;
	static const size_t sizes[] = { 10, 1000, NAMES_MAX };
	if (!base)
		return 1;
	bench_header();
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct mrtc_keyring_config cfg = { .max_servers = NAMES_MAX + 96 };
		if (mrtc_keyring_create(base, &cfg, &c.kr) != MRTC_OK)
			return 1;
		c.n = sizes[s];
		c.next = 0;
		struct mrtc_verify_key key = { .key_id = "ed25519:a", .expires_ms = UINT64_MAX };
		for (size_t i = 0; i < c.n; i++) {
			if (!mrtc_format(c.names[i], sizeof(c.names[i]), "server-%zu.example.org",
					 i))
				return 1;
			mrtc_keyring_add(c.kr, c.names[i], &key, 1);
		}
		char row[64];
		if (!mrtc_format(row, sizeof(row), "keyring lookup, %zu servers", c.n))
			return 1;
		bench_row(row, bench_rate(lookup, &c, seconds));
		mrtc_keyring_destroy(c.kr);
	}
	event_base_free(base);
	return 0;
}
