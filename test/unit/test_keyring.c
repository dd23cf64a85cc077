/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keyring's cache of remote server keys without I/O (keys added directly): lookups, the
 * bound on servers, least-recently-used eviction with servers without keys evicted first.
 */
#include <check.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mrtc/base/util.h"
#include "mrtc/net/keyring.h"
#include "vectors.h"

static struct event_base *base;

static struct mrtc_keyring *keyring_new(size_t max_servers)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	struct mrtc_keyring_config cfg = { .max_servers = max_servers };
	struct mrtc_keyring *kr = NULL;
	ck_assert_int_eq(mrtc_keyring_create(base, &cfg, &kr), MRTC_OK);
	return kr;
}

static void keyring_free(struct mrtc_keyring *kr)
{
	mrtc_keyring_destroy(kr);
	event_base_free(base);
}

/* Adds @name with one key "ed25519:a" whose public key starts with @tag (or no key). */
static void add(struct mrtc_keyring *kr, const char *name, bool with_key, uint8_t tag)
{
	struct mrtc_verify_key key = { .key_id = "ed25519:a", .expires_ms = UINT64_MAX };
	key.public_key[0] = tag;
	mrtc_keyring_add(kr, name, &key, with_key ? 1 : 0);
}

static bool held(struct mrtc_keyring *kr, const char *name)
{
	uint8_t pk[MRTC_ED25519_PK_LEN];
	return mrtc_keyring_lookup(kr, name, "ed25519:a", pk) == MRTC_OK;
}

/* Looks up each of the space-separated @names in that order (a lookup counts as a use): each must
 * be held, or not held when it starts with '!'. */
static void expect(struct mrtc_keyring *kr, const char *names)
{
	char name[64];
	for (const char *p = names; *p;) {
		size_t n = strcspn(p, " ");
		ck_assert_uint_lt(n, sizeof(name));
		memcpy(name, p, n);
		name[n] = 0;
		bool want = name[0] != '!';
		ck_assert_msg(held(kr, want ? name : name + 1) == want, "%s", name);
		p += n + (p[n] == ' ');
	}
}

static size_t n_servers(struct mrtc_keyring *kr)
{
	struct mrtc_keyring_stats st;
	mrtc_keyring_get_stats(kr, &st);
	return st.servers;
}

START_TEST(test_keyring_lookup_finds_key_of_its_server)
{
	struct mrtc_keyring *kr = keyring_new(0);
	add(kr, "a.example", true, 1);
	add(kr, "b.example", true, 2);
	uint8_t pk[MRTC_ED25519_PK_LEN];
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "b.example", "ed25519:a", pk), MRTC_OK);
	ck_assert_uint_eq(pk[0], 2);
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "a.example", "ed25519:a", pk), MRTC_OK);
	ck_assert_uint_eq(pk[0], 1);
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "a.example", "ed25519:b", pk),
			 MRTC_ERR_UNKNOWN_KEY);
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "c.example", "ed25519:a", pk),
			 MRTC_ERR_UNKNOWN_KEY);
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "a.exampl", "ed25519:a", pk),
			 MRTC_ERR_UNKNOWN_KEY);
	keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_lookup_expired_key_is_refused)
{
	struct mrtc_keyring *kr = keyring_new(0);
	struct mrtc_verify_key key = { .key_id = "ed25519:a", .expires_ms = 1 };
	mrtc_keyring_add(kr, "a.example", &key, 1);
	uint8_t pk[MRTC_ED25519_PK_LEN];
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "a.example", "ed25519:a", pk),
			 MRTC_ERR_KEY_EXPIRED);
	keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_add_again_replaces_keys)
{
	struct mrtc_keyring *kr = keyring_new(2);
	add(kr, "a.example", true, 1);
	add(kr, "a.example", true, 7);
	uint8_t pk[MRTC_ED25519_PK_LEN];
	ck_assert_int_eq(mrtc_keyring_lookup(kr, "a.example", "ed25519:a", pk), MRTC_OK);
	ck_assert_uint_eq(pk[0], 7);
	ck_assert_uint_eq(n_servers(kr), 1);
	keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_full_evicts_least_recently_used)
{
	struct mrtc_keyring *kr = keyring_new(3);
	add(kr, "a.example", true, 1);
	add(kr, "b.example", true, 2);
	add(kr, "c.example", true, 3);
	ck_assert(held(kr, "a.example")); /* a is now used more recently than b */
	add(kr, "d.example", true, 4);
	ck_assert_uint_eq(n_servers(kr), 3);
	expect(kr, "!b.example a.example c.example d.example");
	add(kr, "e.example", true, 5); /* a, c, d used in that order: a goes */
	expect(kr, "!a.example e.example");
	keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_full_evicts_server_without_keys_first)
{
	struct mrtc_keyring *kr = keyring_new(3);
	add(kr, "a.example", true, 1);
	add(kr, "nokeys.example", false, 0);
	add(kr, "c.example", true, 3);
	ck_assert(!held(kr, "nokeys.example")); /* used last, but it has no keys */
	add(kr, "d.example", true, 4);
	ck_assert_uint_eq(n_servers(kr), 3);
	expect(kr, "a.example c.example d.example"); /* a: least recently used, but has keys */
	keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_server_that_gets_keys_is_kept_over_one_without)
{
	struct mrtc_keyring *kr = keyring_new(3);
	add(kr, "a.example", false, 0);
	add(kr, "b.example", false, 0);
	add(kr, "c.example", true, 3);
	add(kr, "a.example", true, 1); /* a gets keys: b is now the only one without */
	add(kr, "d.example", true, 4);
	expect(kr, "a.example c.example d.example");
	ck_assert_uint_eq(n_servers(kr), 3);
	add(kr, "a.example", false, 0); /* and loses them: it goes first */
	add(kr, "e.example", true, 5);
	expect(kr, "!a.example c.example d.example e.example");
	keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_many_servers_stay_bounded)
{
	struct mrtc_keyring *kr = keyring_new(0); /* default bound: 4096 */
	char name[32];
	for (int i = 0; i < 5000; i++) {
		ck_assert(mrtc_format(name, sizeof(name), "s%d.example", i));
		add(kr, name, true, (uint8_t)i);
	}
	ck_assert_uint_eq(n_servers(kr), 4096);
	for (int i = 0; i < 5000; i++) {
		ck_assert(mrtc_format(name, sizeof(name), "s%d.example", i));
		ck_assert_msg(held(kr, name) == (i >= 5000 - 4096), "%s", name);
	}
	keyring_free(kr);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keyring");
	const TTest *tests[] = {
		test_keyring_lookup_finds_key_of_its_server,
		test_keyring_lookup_expired_key_is_refused,
		test_keyring_add_again_replaces_keys,
		test_keyring_full_evicts_least_recently_used,
		test_keyring_full_evicts_server_without_keys_first,
		test_keyring_server_that_gets_keys_is_kept_over_one_without,
		test_keyring_many_servers_stay_bounded,
	};
	vectors_add_tests(s, "keyring", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
