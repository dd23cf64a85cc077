/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One configuration value by its type: server names, http(s)/ws(s) URLs, readable files,
 * host:port and ip[:port], bounded numbers, the membership backend and identity choices, CIDR
 * and server lists, log level and format, the store spec. Each bad value is one problem line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/http.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_table.h"
#include "mrtc/core/storespec.h"
#include "mrtc/matrix/servername.h"
#include "mrtc/base/util.h"

bool mrtc_hostport_parse(const char *s, bool host_required, struct mrtc_hostport *ret)
{
	struct mrtc_hostport hp = { .port = 0 };
	const char *port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return false;
		size_t n = (size_t)(close - s - 1);
		if (n == 0 || n >= sizeof(hp.host))
			return false;
		memcpy(hp.host, s + 1, n);
		hp.host[n] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, hp.host, &a6) != 1)
			return false;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon)
			return false;
		size_t n = (size_t)(colon - s);
		if (n >= sizeof(hp.host) || memchr(s, ':', n))
			return false;
		memcpy(hp.host, s, n);
		hp.host[n] = '\0';
		if (n && !mrtc_server_name_is_valid(hp.host))
			return false;
		port = colon + 1;
	}
	if (host_required && !hp.host[0])
		return false;
	uint64_t p;
	if (!mrtc_parse_u64(port, 1, 65535, &p))
		return false;
	hp.port = (uint16_t)p;
	*ret = hp;
	return true;
}

static bool ip_port_parse(const char *s, struct mrtc_hostport *ret)
{
	struct mrtc_hostport hp = { .port = 53 };
	struct in_addr a4;
	struct in6_addr a6;
	if (strlen(s) < sizeof(hp.host) &&
	    (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)) {
		memcpy(hp.host, s, strlen(s) + 1);
		*ret = hp;
		return true;
	}
	if (!mrtc_hostport_parse(s, true, &hp))
		return false;
	if (inet_pton(AF_INET, hp.host, &a4) != 1 && inet_pton(AF_INET6, hp.host, &a6) != 1)
		return false;
	*ret = hp;
	return true;
}

/* Calls @fn on each non-empty item of @list, separated by commas and/or white space. */
static bool each_item(const char *list, bool (*fn)(void *ctx, const char *item), void *ctx)
{
	const char *p = list;
	for (;;) {
		p += strspn(p, ", \t\r\n");
		if (!*p)
			return true;
		size_t n = strcspn(p, ", \t\r\n");
		char item[512];
		if (n >= sizeof(item))
			return false;
		memcpy(item, p, n);
		item[n] = '\0';
		if (!fn(ctx, item))
			return false;
		p += n;
	}
}

static bool add_cidr(void *ctx, const char *item)
{
	struct mrtc_config *c = ctx;
	struct mrtc_cidr cidr;
	if (!mrtc_cidr_parse(item, &cidr))
		return false;
	struct mrtc_cidr *n = realloc(c->allow_cidrs, (c->n_allow_cidrs + 1) * sizeof(*n));
	if (!n)
		return false;
	c->allow_cidrs = n;
	c->allow_cidrs[c->n_allow_cidrs++] = cidr;
	return true;
}

static bool add_server(void *ctx, const char *item)
{
	struct mrtc_config *c = ctx;
	if (strcmp(item, "*") == 0) {
		c->full_access_all = true;
		return true;
	}
	if (!mrtc_server_name_is_valid(item))
		return false;
	char **n = realloc(c->full_access, (c->n_full_access + 1) * sizeof(*n));
	if (!n)
		return false;
	c->full_access = n;
	c->full_access[c->n_full_access] = strdup(item);
	return c->full_access[c->n_full_access++] != NULL;
}

/* Checks an absolute URL with one of the allowed schemes and a host. */
static bool url_ok(const char *value, const char *const *schemes)
{
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(value, 0);
	if (!u)
		return false;
	bool ok = false;
	const char *scheme = evhttp_uri_get_scheme(u);
	const char *host = evhttp_uri_get_host(u);
	for (size_t i = 0; scheme && schemes[i]; i++)
		if (strcmp(scheme, schemes[i]) == 0)
			ok = true;
	if (!host || !host[0] || evhttp_uri_get_fragment(u) || evhttp_uri_get_userinfo(u))
		ok = false;
	if (mrtc_has_control(value, strlen(value)) || strchr(value, ' '))
		ok = false;
	evhttp_uri_free(u);
	return ok;
}

bool mrtc_config_ca_file_is_usable(const char *path)
{
	X509_STORE *store = X509_STORE_new();
	if (!store)
		return false;
	bool ok = X509_STORE_load_locations(store, path, NULL) == 1;
	X509_STORE_free(store);
	return ok;
}

char **mrtc_config_string_field(struct mrtc_config *c, const struct config_var *v)
{
	return (char **)((char *)c + v->offset);
}

/* Parses @value for @v into @c; returns false (after recording a problem) if invalid. */
void mrtc_config_parse_value(struct mrtc_config *c, const struct config_var *v, const char *value,
			     struct mrtc_buf *problems)
{
	static const char *const http_schemes[] = { "http", "https", NULL };
	static const char *const https_schemes[] = { "https", NULL };
	static const char *const ws_schemes[] = { "ws", "wss", NULL };
	void *field = (char *)c + v->offset;
	switch (v->type) {
	case T_STRING:
	case T_MEMBERSHIP: /* a name, checked against the backend list by the loader */
		break;
	case T_SERVER_NAME:
		if (!mrtc_server_name_is_valid(value)) {
			mrtc_config_problem(problems, v->name,
					    "not a valid server name (hostname[:port])");
			return;
		}
		break;
	case T_HTTP_URL:
	case T_HTTPS_URL:
	case T_WS_URL:
		if (strlen(value) > MRTC_URL_MAX) {
			mrtc_config_problem(problems, v->name, "longer than %d characters",
					    MRTC_URL_MAX);
			return;
		}
		if (v->type == T_WS_URL) {
			if (!url_ok(value, ws_schemes)) {
				mrtc_config_problem(problems, v->name,
						    "not a valid ws:// or wss:// URL");
				return;
			}
			break;
		}
		if (!url_ok(value, v->type == T_HTTP_URL ? http_schemes : https_schemes)) {
			mrtc_config_problem(problems, v->name, "not a valid %s URL",
					    v->type == T_HTTP_URL ? "http(s)" : "https");
			return;
		}
		break;
	case T_FILE:
		if (access(value, R_OK) != 0) {
			mrtc_config_problem(problems, v->name, "cannot read %s: %s", value,
					    strerror(errno));
			return;
		}
		break;
	case T_HOSTPORT:
		if (!mrtc_hostport_parse(value, false, field))
			mrtc_config_problem(problems, v->name,
					    "expected host:port, [ipv6]:port or :port");
		return;
	case T_IP_PORT:
		if (!ip_port_parse(value, field))
			mrtc_config_problem(problems, v->name,
					    "expected an IP address with an optional :port");
		else
			c->has_dns_server = true;
		return;
	case T_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
			*(bool *)field = value[0] == 't';
		else
			mrtc_config_problem(problems, v->name, "expected true or false");
		return;
	case T_UINT:
		if (!mrtc_parse_u64(value, v->min, v->max, field))
			mrtc_config_problem(problems, v->name,
					    "expected a whole number from %llu to %llu",
					    (unsigned long long)v->min, (unsigned long long)v->max);
		return;
	case T_IDENTITY:
		if (strcmp(value, "user-device-member") == 0)
			c->identity = MRTC_IDENTITY_USER_DEVICE_MEMBER;
		else if (strcmp(value, "user-member") == 0)
			c->identity = MRTC_IDENTITY_USER_MEMBER;
		else
			mrtc_config_problem(problems, v->name,
					    "expected user-device-member or user-member");
		return;
	case T_CIDRS:
		if (!each_item(value, add_cidr, c))
			mrtc_config_problem(
			    problems, v->name,
			    "expected comma-separated CIDR ranges (a.b.c.d/n, v6/n)");
		return;
	case T_SERVER_LIST:
		if (!each_item(value, add_server, c))
			mrtc_config_problem(problems, v->name,
					    "expected '*' or comma-separated server names");
		return;
	case T_LOG_LEVEL:
		if (!mrtc_log_level_parse(value, &c->log_level))
			mrtc_config_problem(problems, v->name,
					    "expected debug, info, warn or error");
		return;
	case T_LOG_FORMAT:
		if (strcmp(value, "text") == 0)
			c->log_format = MRTC_LOG_TEXT;
		else if (strcmp(value, "json") == 0)
			c->log_format = MRTC_LOG_JSON;
		else
			mrtc_config_problem(problems, v->name, "expected text or json");
		return;
	case T_REFUSED:
		mrtc_config_problem(problems, v->name, "%s", v->help);
		return;
	case T_STORE:
		if (strcmp(value, "none") == 0) {
			c->store_off = true;
			return;
		}
		if (!mrtc_store_spec_is_valid(value)) {
			mrtc_config_problem(
			    problems, v->name,
			    "expected sqlite:<path>, redis://[user[:password]@]host[:port][/db] "
			    "or redis+sentinel://[user[:password]@]host[:port][,...]/master[/db]"
			    " (percent-encode special characters in the user and password)");
			return;
		}
		break;
	}
	char **s = mrtc_config_string_field(c, v);
	free(*s);
	*s = strdup(value);
	if (!*s)
		mrtc_config_problem(problems, v->name, "out of memory");
}
