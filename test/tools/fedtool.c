/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Drives the federation I/O components (resolver, HTTPS client, guard, keyring) for the
 * testbed integration test (test/integration/test_federation_io.py). Prints one JSON line.
 *
 *   fedtool [--dns IP:PORT] [--ca FILE] [--allow CIDR] [--timeout MS]
 *           [--notary "NAME KEY_ID BASE64KEY"] COMMAND ...
 *     resolve NAME                    where NAME is found
 *     get NAME TARGET [N]             N sequential unsigned GETs (default 1), then client stats
 *     keys NAME KEY_ID [N]            N concurrent keyring fetches for one key, then stats
 *     fetch URL                       one guarded GET of an https URL
 *     fetchn URL N                    N sequential guarded GETs of a URL, then client stats
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/net/fedclient.h"
#include "mrtc/net/keyring.h"
#include "mrtc/base/util.h"

struct tool {
	struct event_base *base;
	struct mrtc_dns *dns;
	struct mrtc_http_client *http;
	struct mrtc_resolver *resolver;
	struct mrtc_fedclient *fed;
	struct mrtc_keyring *keyring;
	uint64_t timeout_ms;
	const char *name, *target, *url;
	const struct mrtc_cidr *allow;
	size_t n_allow;
	int remaining, ok, statuses[256], n_status;
	enum mrtc_err last_err;
	const char *last_detail;
	char key_id[MRTC_KEY_ID_MAX + 1];
};

static void print_client_stats(struct tool *t)
{
	struct mrtc_http_client_stats hs;
	mrtc_http_client_get_stats(t->http, &hs);
	printf("\"connections\":%llu,\"tls_handshakes\":%llu,\"reused\":%llu,\"requests\":%llu,"
	       "\"retried\":%llu",
	       (unsigned long long)hs.connections, (unsigned long long)hs.tls_handshakes,
	       (unsigned long long)hs.reused, (unsigned long long)hs.requests,
	       (unsigned long long)hs.retried);
}

static void on_resolved(void *arg, enum mrtc_err err, const struct mrtc_resolved *r)
{
	struct tool *t = arg;
	if (err != MRTC_OK)
		printf("{\"ok\":false,\"err\":\"%s\"}\n", mrtc_err_str(err));
	else
		printf("{\"ok\":true,\"host\":\"%s\",\"port\":%u,\"tls_name\":\"%s\","
		       "\"host_header\":\"%s\",\"via_wellknown\":%s,\"via_srv\":%s}\n",
		       r->host, r->port, r->tls_name, r->host_header,
		       r->via_wellknown ? "true" : "false", r->via_srv ? "true" : "false");
	event_base_loopexit(t->base, NULL);
}

static void next_get(struct tool *t);

static void on_get(void *arg, const struct mrtc_http_response *resp)
{
	struct tool *t = arg;
	if (resp->err != MRTC_OK) {
		t->last_err = resp->err;
		t->last_detail = resp->detail;
	} else {
		t->ok++;
	}
	if (t->n_status < 256)
		t->statuses[t->n_status++] = resp->err == MRTC_OK ? resp->status : 0;
	if (--t->remaining > 0) {
		next_get(t);
		return;
	}
	printf("{\"ok\":%d,\"err\":\"%s\",\"detail\":\"%s\",\"status\":%d,", t->ok,
	       mrtc_err_str(t->last_err), t->last_detail ? t->last_detail : "",
	       t->n_status ? t->statuses[t->n_status - 1] : 0);
	print_client_stats(t);
	printf("}\n");
	event_base_loopexit(t->base, NULL);
}

static void next_get(struct tool *t)
{
	struct mrtc_http_request req = { .method = "GET",
					 .timeout_ms = t->timeout_ms,
					 .max_body = 65536 };
	if (t->url ? !mrtc_http_fetch(t->http, t->dns, t->url, &req, true, t->allow, t->n_allow,
				      on_get, t)
		   : !mrtc_fed_request(t->fed, t->name, "GET", t->target, NULL, false,
				       t->timeout_ms, 65536, on_get, t)) {
		printf("{\"ok\":0,\"err\":\"cannot start\"}\n");
		event_base_loopexit(t->base, NULL);
	}
}

static void on_key_again(void *arg, enum mrtc_err err)
{
	struct tool *t = arg;
	struct mrtc_keyring_stats ks;
	mrtc_keyring_get_stats(t->keyring, &ks);
	uint8_t pk[32];
	enum mrtc_err lk = mrtc_keyring_lookup(t->keyring, t->name, t->key_id, pk);
	printf("{\"ok\":%d,\"err\":\"%s\",\"again\":\"%s\",\"fetches\":%llu,"
	       "\"notary_fetches\":%llu,\"lookup\":\"%s\"}\n",
	       t->ok, mrtc_err_str(t->last_err), mrtc_err_str(err), (unsigned long long)ks.fetches,
	       (unsigned long long)ks.notary_fetches, mrtc_err_str(lk));
	event_base_loopexit(t->base, NULL);
}

/* After N concurrent asks, one more: it must be answered without another fetch. */
static void on_key(void *arg, enum mrtc_err err)
{
	struct tool *t = arg;
	if (err == MRTC_OK)
		t->ok++;
	else
		t->last_err = err;
	if (--t->remaining > 0)
		return;
	if (!mrtc_keyring_ensure(t->keyring, t->name, t->key_id, on_key_again, t))
		event_base_loopexit(t->base, NULL);
}

static void on_fetch(void *arg, const struct mrtc_http_response *resp)
{
	struct tool *t = arg;
	printf("{\"err\":\"%s\",\"status\":%d,\"detail\":\"%s\"}\n", mrtc_err_str(resp->err),
	       resp->err == MRTC_OK ? resp->status : 0, resp->detail ? resp->detail : "");
	event_base_loopexit(t->base, NULL);
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	struct tool t = { .timeout_ms = 5000 };
	const char *dns_server = NULL, *ca = NULL;
	struct mrtc_cidr allow[4];
	char notary[MRTC_SERVER_NAME_MAX + 1] = "";
	struct mrtc_verify_key notary_key;
	size_t n_allow = 0;
	int i = 1;
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		uint64_t v;
		if (strcmp(argv[i], "--dns") == 0)
			dns_server = argv[i + 1];
		else if (strcmp(argv[i], "--ca") == 0)
			ca = argv[i + 1];
		else if (strcmp(argv[i], "--allow") == 0 && n_allow < 4 &&
			 mrtc_cidr_parse(argv[i + 1], &allow[n_allow]))
			n_allow++;
		else if (strcmp(argv[i], "--timeout") == 0 &&
			 mrtc_parse_u64(argv[i + 1], 1, 600000, &v))
			t.timeout_ms = v;
		else if (strcmp(argv[i], "--notary") == 0 &&
			 mrtc_notary_spec_parse(argv[i + 1], notary, &notary_key))
			continue;
		else
			return 2;
	}
	if (i >= argc)
		return 2;
	const char *cmd = argv[i++];
	t.base = event_base_new();
	struct mrtc_http_client_config hc = { .ca_file = ca };
	if (mrtc_dns_create(t.base, dns_server, 2000, &t.dns) != MRTC_OK ||
	    mrtc_http_client_create(t.base, &hc, &t.http) != MRTC_OK)
		return 1;
	struct mrtc_resolver_config rc = { .dns = t.dns,
					   .http = t.http,
					   .allow = allow,
					   .n_allow = n_allow,
					   .timeout_ms = t.timeout_ms };
	struct mrtc_fedclient_config fc = {
		.dns = t.dns, .http = t.http, .allow = allow, .n_allow = n_allow
	};
	if (mrtc_resolver_create(t.base, &rc, &t.resolver) != MRTC_OK)
		return 1;
	fc.resolver = t.resolver;
	struct mrtc_keyring_config kc = { .timeout_ms = t.timeout_ms };
	if (mrtc_fedclient_create(t.base, &fc, &t.fed) != MRTC_OK)
		return 1;
	kc.fed = t.fed;
	if (notary[0]) {
		kc.notary = notary;
		kc.notary_key = notary_key;
	}
	if (mrtc_keyring_create(t.base, &kc, &t.keyring) != MRTC_OK)
		return 1;
	uint64_t n = 1;
	if (strcmp(cmd, "resolve") == 0 && i < argc) {
		mrtc_resolver_resolve(t.resolver, argv[i], on_resolved, &t);
	} else if (strcmp(cmd, "get") == 0 && i + 1 < argc) {
		t.name = argv[i];
		t.target = argv[i + 1];
		if (i + 2 < argc && !mrtc_parse_u64(argv[i + 2], 1, 256, &n))
			return 2;
		t.remaining = (int)n;
		next_get(&t);
	} else if (strcmp(cmd, "keys") == 0 && i + 1 < argc) {
		t.name = argv[i];
		snprintf(t.key_id, sizeof(t.key_id), "%s", argv[i + 1]);
		if (i + 2 < argc && !mrtc_parse_u64(argv[i + 2], 1, 10000, &n))
			return 2;
		t.remaining = (int)n;
		for (uint64_t k = 0; k < n; k++)
			if (!mrtc_keyring_ensure(t.keyring, t.name, t.key_id, on_key, &t))
				return 1;
	} else if (strcmp(cmd, "fetchn") == 0 && i + 1 < argc) {
		t.url = argv[i];
		t.allow = allow;
		t.n_allow = n_allow;
		if (!mrtc_parse_u64(argv[i + 1], 1, 256, &n))
			return 2;
		t.remaining = (int)n;
		next_get(&t);
	} else if (strcmp(cmd, "fetch") == 0 && i < argc) {
		struct mrtc_http_request req = { .method = "GET",
						 .timeout_ms = t.timeout_ms,
						 .max_body = 65536 };
		if (!mrtc_http_fetch(t.http, t.dns, argv[i], &req, true, allow, n_allow, on_fetch,
				     &t))
			return 1;
	} else {
		return 2;
	}
	event_base_dispatch(t.base);
	mrtc_keyring_destroy(t.keyring);
	mrtc_fedclient_destroy(t.fed);
	mrtc_resolver_destroy(t.resolver);
	mrtc_http_client_destroy(t.http);
	mrtc_dns_destroy(t.dns);
	event_base_free(t.base);
	return 0;
}
