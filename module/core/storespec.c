/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MRTC_STORE spec, parsed without I/O: sqlite:<path>, or a Redis server or Sentinel set
 * with its percent-encoded credentials; the checks configuration validation asks of it, and a
 * redacted copy for logs, --help and /readyz. Pure: no connection, no logging. The store
 * (module/store/) opens what it describes.
 */
#include "mrtc/core/storespec.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/matrix/servername.h"
#include "mrtc/base/util.h"

#define DEFAULT_PORT 6379
#define DEFAULT_SENTINEL_PORT 26379
#define DB_MAX 1000

/* Percent-decodes @len bytes of @s into @out (NUL-terminated); false on a bad escape, a
 * control character, a NUL or an overflow. */
static bool decode(const char *s, size_t len, char *out, size_t size)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '%') {
			if (i + 2 >= len)
				return false;
			size_t got = 0;
			if (sodium_hex2bin(&ch, 1, s + i + 1, 2, NULL, &got, NULL) != 0 ||
			    got != 1 || ch == 0)
				return false;
			i += 2;
		} else if (ch < 0x20 || ch == 0x7f) {
			return false;
		}
		if (n + 1 >= size)
			return false;
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return true;
}

/* One "host[:port]" or "[v6]:port" of @len bytes. */
static bool parse_node(const char *s, size_t len, int def_port, struct mrtc_redis_node *ret)
{
	char name[sizeof(ret->host) + 2];
	size_t hl;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close)
			return false;
		hl = (size_t)(close - s) + 1;
	} else {
		const char *colon = memchr(s, ':', len);
		hl = colon ? (size_t)(colon - s) : len;
	}
	if (hl == 0 || hl >= sizeof(name))
		return false;
	memcpy(name, s, hl);
	name[hl] = '\0';
	if (!mrtc_server_name_is_valid(name))
		return false;
	uint64_t port = (uint64_t)def_port;
	if (hl < len) {
		if (s[hl] != ':' || !mrtc_parse_u64_n(s + hl + 1, len - hl - 1, 1, 65535, &port))
			return false;
	}
	size_t off = name[0] == '[' ? 1 : 0;
	size_t n = hl - 2 * off;
	if (n >= sizeof(ret->host))
		return false;
	memcpy(ret->host, name + off, n);
	ret->host[n] = '\0';
	ret->port = (int)port;
	return true;
}

static bool master_name_ok(const char *s, size_t len)
{
	if (len == 0 || len >= sizeof(((struct mrtc_redis_spec *)0)->master))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static bool parse_userinfo(const char *s, size_t len, struct mrtc_redis_spec *r)
{
	const char *colon = memchr(s, ':', len);
	size_t ul = colon ? (size_t)(colon - s) : len;
	if (!decode(s, ul, r->user, sizeof(r->user)))
		return false;
	if (!colon)
		return r->user[0] != '\0'; /* "user@": the password comes from elsewhere */
	size_t pl = len - ul - 1;
	r->has_password = true;
	return pl > 0 && decode(colon + 1, pl, r->password, sizeof(r->password));
}

static bool parse(const char *spec, struct mrtc_redis_spec *r)
{
	const char *rest;
	if (strncmp(spec, "redis://", 8) == 0) {
		rest = spec + 8;
	} else if (strncmp(spec, "redis+sentinel://", 17) == 0) {
		r->sentinel = true;
		rest = spec + 17;
	} else {
		return false;
	}
	/* The userinfo ends at the last '@': nothing after it may hold one. */
	const char *at = strrchr(rest, '@');
	if (at) {
		if (!parse_userinfo(rest, (size_t)(at - rest), r))
			return false;
		rest = at + 1;
	}
	size_t hosts_len = strcspn(rest, "/");
	const char *path = rest + hosts_len;
	for (const char *p = rest; p < path;) {
		size_t n = strcspn(p, ",/");
		if (n > (size_t)(path - p))
			n = (size_t)(path - p);
		if (r->n_nodes == MRTC_REDIS_NODES_MAX || (!r->sentinel && r->n_nodes == 1) ||
		    !parse_node(p, n, r->sentinel ? DEFAULT_SENTINEL_PORT : DEFAULT_PORT,
				&r->nodes[r->n_nodes]))
			return false;
		r->n_nodes++;
		p += n;
		if (*p == ',' && p + 1 >= path)
			return false; /* a trailing comma */
		if (*p == ',')
			p++;
	}
	if (r->n_nodes == 0)
		return false;
	if (r->sentinel) {
		if (*path != '/')
			return false;
		path++;
		size_t n = strcspn(path, "/");
		if (!master_name_ok(path, n))
			return false;
		memcpy(r->master, path, n);
		r->master[n] = '\0';
		path += n;
	}
	uint64_t db = 0;
	if (*path == '/') {
		if (!mrtc_parse_u64(path + 1, 0, DB_MAX, &db))
			return false;
	} else if (*path) {
		return false;
	}
	r->db = (int)db;
	return true;
}

bool mrtc_redis_spec_parse(const char *spec, struct mrtc_redis_spec *ret)
{
	struct mrtc_redis_spec *r = calloc(1, sizeof(*r));
	if (!r)
		return false;
	bool ok = parse(spec, r);
	if (ok)
		*ret = *r;
	mrtc_redis_spec_wipe(r);
	free(r);
	return ok;
}

void mrtc_redis_spec_wipe(struct mrtc_redis_spec *spec)
{
	sodium_memzero(spec, sizeof(*spec));
}

void mrtc_redis_spec_redact(const char *spec, char *out, size_t size)
{
	if (size == 0)
		return;
	const char *scheme_end = strstr(spec, "://");
	const char *at = scheme_end ? strrchr(scheme_end + 3, '@') : NULL;
	const char *colon = at ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
	/* A cut copy still holds no password: the cut falls before or after it. */
	if (colon)
		mrtc_format_shown(out, size, "%.*s***%s", (int)(colon + 1 - spec), spec, at);
	else
		mrtc_format_shown(out, size, "%s", spec);
}

static bool is_redis(const char *spec)
{
	return strncmp(spec, "redis://", 8) == 0 || strncmp(spec, "redis+sentinel://", 17) == 0;
}

bool mrtc_store_spec_is_valid(const char *spec)
{
	if (strncmp(spec, "sqlite:", 7) == 0)
		return spec[7] != '\0';
	struct mrtc_redis_spec r;
	bool ok = is_redis(spec) && mrtc_redis_spec_parse(spec, &r);
	mrtc_redis_spec_wipe(&r);
	return ok;
}

bool mrtc_store_spec_has_password(const char *spec)
{
	struct mrtc_redis_spec r;
	bool has = is_redis(spec) && mrtc_redis_spec_parse(spec, &r) && r.has_password;
	mrtc_redis_spec_wipe(&r);
	return has;
}

bool mrtc_store_spec_has_user(const char *spec)
{
	struct mrtc_redis_spec r;
	bool has = is_redis(spec) && mrtc_redis_spec_parse(spec, &r) && r.user[0];
	mrtc_redis_spec_wipe(&r);
	return has;
}

void mrtc_store_spec_redact(const char *spec, char *out, size_t size)
{
	mrtc_redis_spec_redact(spec, out, size);
}
