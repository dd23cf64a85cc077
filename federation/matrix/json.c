/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict RFC 8259 parser producing json-c objects, and the Matrix canonical JSON writer.
 * Pure: no I/O, no logging.
 */
#include "mrtc/matrix/json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/buf.h"

struct parser {
	const unsigned char *p;
	const unsigned char *end;
	int max_depth;
	enum mrtc_err err;
};

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool fail(struct parser *ps, enum mrtc_err err)
{
	if (ps->err == MRTC_OK)
		ps->err = err;
	return false;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool read_hex4(struct parser *ps, uint32_t *ret)
{
	if (ps->end - ps->p < 4)
		return fail(ps, MRTC_ERR_NOT_JSON);
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(ps->p[i]);
		if (h < 0)
			return fail(ps, MRTC_ERR_NOT_JSON);
		v = v << 4 | (uint32_t)h;
	}
	ps->p += 4;
	*ret = v;
	return true;
}

static bool put_utf8(struct mrtc_buf *b, uint32_t cp)
{
	char o[4];
	size_t n;
	if (cp < 0x80) {
		o[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		o[0] = (char)(0xf0 | cp >> 18);
		o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return mrtc_buf_append(b, o, n);
}

/*
 * Length of the well-formed UTF-8 sequence at @p (at most @avail bytes), or 0 if it is not
 * well-formed (overlong forms, surrogates and code points above U+10FFFF are not).
 */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Parses a string at ps->p (which is at the opening quote) into @out. */
static bool parse_string(struct parser *ps, struct mrtc_buf *out)
{
	ps->p++;
	for (;;) {
		if (ps->p >= ps->end)
			return fail(ps, MRTC_ERR_NOT_JSON);
		unsigned char c = *ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20)
			return fail(ps, MRTC_ERR_NOT_JSON);
		/* A run of plain ASCII is copied at once: most strings are nothing else. */
		const unsigned char *run = ps->p;
		while (run < ps->end && *run >= 0x20 && *run < 0x80 && *run != '"' && *run != '\\')
			run++;
		if (run > ps->p) {
			if (!mrtc_buf_append(out, ps->p, (size_t)(run - ps->p)))
				return fail(ps, MRTC_ERR_NOMEM);
			ps->p = run;
			continue;
		}
		if (c != '\\') {
			size_t n = utf8_seq_len(ps->p, (size_t)(ps->end - ps->p));
			if (n == 0)
				return fail(ps, MRTC_ERR_NOT_JSON);
			if (!mrtc_buf_append(out, ps->p, n))
				return fail(ps, MRTC_ERR_NOMEM);
			ps->p += n;
			continue;
		}
		ps->p++;
		if (ps->p >= ps->end)
			return fail(ps, MRTC_ERR_NOT_JSON);
		char e = (char)*ps->p++;
		char lit;
		switch (e) {
		case '"':
		case '\\':
		case '/':
			lit = e;
			break;
		case 'b':
			lit = '\b';
			break;
		case 'f':
			lit = '\f';
			break;
		case 'n':
			lit = '\n';
			break;
		case 'r':
			lit = '\r';
			break;
		case 't':
			lit = '\t';
			break;
		case 'u': {
			uint32_t cp;
			if (!read_hex4(ps, &cp))
				return false;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(ps, MRTC_ERR_NOT_JSON);
			if (cp >= 0xd800 && cp <= 0xdbff) {
				uint32_t lo;
				if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
					return fail(ps, MRTC_ERR_NOT_JSON);
				ps->p += 2;
				if (!read_hex4(ps, &lo))
					return false;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(ps, MRTC_ERR_NOT_JSON);
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (!put_utf8(out, cp))
				return fail(ps, MRTC_ERR_NOMEM);
			continue;
		}
		default:
			return fail(ps, MRTC_ERR_NOT_JSON);
		}
		if (!mrtc_buf_putc(out, lit))
			return fail(ps, MRTC_ERR_NOMEM);
	}
	return true;
}

static bool parse_number(struct parser *ps, struct json_object **ret)
{
	bool neg = false;
	if (*ps->p == '-') {
		neg = true;
		ps->p++;
	}
	const unsigned char *start = ps->p;
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
		ps->p++;
	size_t n = (size_t)(ps->p - start);
	if (n == 0 || (n > 1 && start[0] == '0'))
		return fail(ps, MRTC_ERR_NOT_JSON);
	/* Fractions and exponents are floats, which canonical JSON does not have. */
	if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
		return fail(ps, MRTC_ERR_NOT_JSON);
	if (n > 16)
		return fail(ps, MRTC_ERR_NOT_JSON);
	int64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (start[i] - '0');
	if (v > MRTC_JSON_INT_MAX)
		return fail(ps, MRTC_ERR_NOT_JSON);
	*ret = json_object_new_int64(neg ? -v : v);
	if (!*ret)
		return fail(ps, MRTC_ERR_NOMEM);
	return true;
}

static bool parse_value(struct parser *ps, int depth, struct json_object **ret);

static bool parse_object(struct parser *ps, int depth, struct json_object **ret)
{
	struct json_object *obj = json_object_new_object();
	char stack[128]; /* most keys fit: no allocation */
	struct mrtc_buf key;
	mrtc_buf_init_with(&key, stack, sizeof(stack));
	if (!obj)
		return fail(ps, MRTC_ERR_NOMEM);
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		*ret = obj;
		return true;
	}
	for (;;) {
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != '"')
			goto bad;
		key.len = 0;
		if (!parse_string(ps, &key))
			goto out;
		if (!mrtc_buf_append(&key, "", 0)) {
			fail(ps, MRTC_ERR_NOMEM);
			goto out;
		}
		if (memchr(key.data, '\0', key.len))
			goto bad;
		if (json_object_object_get_ex(obj, key.data, NULL))
			goto bad;
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ':')
			goto bad;
		ps->p++;
		struct json_object *member = NULL;
		if (!parse_value(ps, depth + 1, &member))
			goto out;
		/* Known to be new (duplicates were refused above): json-c need not look it up. */
		if (json_object_object_add_ex(obj, key.data, member,
					      JSON_C_OBJECT_ADD_KEY_IS_NEW) != 0) {
			json_object_put(member);
			fail(ps, MRTC_ERR_NOMEM);
			goto out;
		}
		skip_ws(ps);
		if (ps->p >= ps->end)
			goto bad;
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == '}') {
			ps->p++;
			break;
		}
		goto bad;
	}
	mrtc_buf_finish(&key);
	*ret = obj;
	return true;
bad:
	fail(ps, MRTC_ERR_NOT_JSON);
out:
	mrtc_buf_finish(&key);
	json_object_put(obj);
	return false;
}

static bool parse_array(struct parser *ps, int depth, struct json_object **ret)
{
	struct json_object *arr = json_object_new_array();
	if (!arr)
		return fail(ps, MRTC_ERR_NOMEM);
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		*ret = arr;
		return true;
	}
	for (;;) {
		struct json_object *item = NULL;
		if (!parse_value(ps, depth + 1, &item))
			goto out;
		if (json_object_array_add(arr, item) != 0) {
			json_object_put(item);
			fail(ps, MRTC_ERR_NOMEM);
			goto out;
		}
		skip_ws(ps);
		if (ps->p >= ps->end)
			goto bad;
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == ']') {
			ps->p++;
			break;
		}
		goto bad;
	}
	*ret = arr;
	return true;
bad:
	fail(ps, MRTC_ERR_NOT_JSON);
out:
	json_object_put(arr);
	return false;
}

static bool match_literal(struct parser *ps, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
		return fail(ps, MRTC_ERR_NOT_JSON);
	ps->p += n;
	return true;
}

/* A string value: a function of its own so that the recursion's frames do not carry its
 * buffer. */
static bool parse_string_value(struct parser *ps, struct json_object **ret)
{
	char stack[256]; /* most strings fit: no allocation besides json-c's copy */
	struct mrtc_buf s;
	mrtc_buf_init_with(&s, stack, sizeof(stack));
	if (!parse_string(ps, &s)) {
		mrtc_buf_finish(&s);
		return false;
	}
	*ret = json_object_new_string_len(s.data ? s.data : "", (int)s.len);
	mrtc_buf_finish(&s);
	return *ret ? true : fail(ps, MRTC_ERR_NOMEM);
}

static bool parse_value(struct parser *ps, int depth, struct json_object **ret)
{
	if (depth > ps->max_depth)
		return fail(ps, MRTC_ERR_NOT_JSON);
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, MRTC_ERR_NOT_JSON);
	switch (*ps->p) {
	case '{':
		return parse_object(ps, depth, ret);
	case '[':
		return parse_array(ps, depth, ret);
	case '"':
		return parse_string_value(ps, ret);
	case 't':
		if (!match_literal(ps, "true"))
			return false;
		*ret = json_object_new_boolean(1);
		return *ret ? true : fail(ps, MRTC_ERR_NOMEM);
	case 'f':
		if (!match_literal(ps, "false"))
			return false;
		*ret = json_object_new_boolean(0);
		return *ret ? true : fail(ps, MRTC_ERR_NOMEM);
	case 'n':
		*ret = NULL;
		return match_literal(ps, "null");
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return parse_number(ps, ret);
		return fail(ps, MRTC_ERR_NOT_JSON);
	}
}

enum mrtc_err mrtc_json_parse(const char *text, size_t len, int max_depth,
			      struct json_object **ret_value)
{
	/* json-c stores string lengths as int. */
	if (!text || len > INT32_MAX)
		return MRTC_ERR_NOT_JSON;
	struct parser ps = {
		.p = (const unsigned char *)text,
		.end = (const unsigned char *)text + len,
		.max_depth = max_depth,
	};
	struct json_object *v = NULL;
	if (!parse_value(&ps, 0, &v))
		return ps.err;
	skip_ws(&ps);
	if (ps.p != ps.end || !v) {
		json_object_put(v);
		return MRTC_ERR_NOT_JSON;
	}
	*ret_value = v;
	return MRTC_OK;
}

/* ---- canonical writer ---- */

bool mrtc_json_write_string(struct mrtc_buf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	mrtc_buf_putc(b, '"');
	size_t i = 0;
	while (i < len) {
		/* A run that needs no escaping is copied at once: names are mostly plain. */
		size_t run = i;
		while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			mrtc_buf_append(b, p + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		if (c >= 0x80) {
			size_t n = utf8_seq_len(p + i, len - i);
			if (n == 0)
				return false;
			mrtc_buf_append(b, p + i, n);
			i += n;
			continue;
		}
		i++;
		switch (c) {
		case '"':
			mrtc_buf_puts(b, "\\\"");
			break;
		case '\\':
			mrtc_buf_puts(b, "\\\\");
			break;
		case '\b':
			mrtc_buf_puts(b, "\\b");
			break;
		case '\f':
			mrtc_buf_puts(b, "\\f");
			break;
		case '\n':
			mrtc_buf_puts(b, "\\n");
			break;
		case '\r':
			mrtc_buf_puts(b, "\\r");
			break;
		case '\t':
			mrtc_buf_puts(b, "\\t");
			break;
		default:
			if (c < 0x20)
				mrtc_buf_printf(b, "\\u%04x", c);
			else
				mrtc_buf_putc(b, (char)c);
		}
	}
	mrtc_buf_putc(b, '"');
	return true;
}

static int cmp_keys(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: UTF-8 byte order is code point order. */
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool write_value(struct mrtc_buf *b, const struct json_object *v, int depth)
{
	if (depth > MRTC_JSON_MAX_DEPTH * 4)
		return false;
	switch (json_object_get_type(v)) {
	case json_type_null:
		return mrtc_buf_puts(b, "null"), true;
	case json_type_boolean:
		return mrtc_buf_puts(b, json_object_get_boolean(v) ? "true" : "false"), true;
	case json_type_int: {
		int64_t i = json_object_get_int64(v);
		if (i > MRTC_JSON_INT_MAX || i < -MRTC_JSON_INT_MAX)
			return false;
		/* A uint64 above INT64_MAX reads back clamped; refuse it. */
		if (i == INT64_MAX)
			return false;
		mrtc_buf_printf(b, "%lld", (long long)i);
		return true;
	}
	case json_type_double:
		return false;
	case json_type_string:
		return mrtc_json_write_string(b, json_object_get_string((struct json_object *)v),
					      (size_t)json_object_get_string_len(v));
	case json_type_array: {
		size_t n = json_object_array_length(v);
		mrtc_buf_putc(b, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				mrtc_buf_putc(b, ',');
			if (!write_value(b, json_object_array_get_idx(v, i), depth + 1))
				return false;
		}
		mrtc_buf_putc(b, ']');
		return true;
	}
	case json_type_object: {
		size_t n = (size_t)json_object_object_length(v);
		const char **keys = n ? calloc(n, sizeof(*keys)) : NULL;
		if (n && !keys) {
			b->failed = true;
			return true;
		}
		size_t k = 0;
		json_object_object_foreach ((struct json_object *)v, key, val) {
			(void)val;
			if (k < n)
				keys[k++] = key;
		}
		if (k > 1)
			qsort(keys, k, sizeof(*keys), cmp_keys);
		bool ok = true;
		mrtc_buf_putc(b, '{');
		for (size_t i = 0; i < k && ok; i++) {
			if (i)
				mrtc_buf_putc(b, ',');
			struct json_object *member = NULL;
			json_object_object_get_ex(v, keys[i], &member);
			ok = mrtc_json_write_string(b, keys[i], strlen(keys[i])) &&
			     (mrtc_buf_putc(b, ':'), true) && write_value(b, member, depth + 1);
		}
		mrtc_buf_putc(b, '}');
		free(keys);
		return ok;
	}
	}
	return false;
}

enum mrtc_err mrtc_json_canonical(const struct json_object *value, char **ret_text, size_t *ret_len)
{
	struct mrtc_buf b;
	mrtc_buf_init(&b);
	if (!write_value(&b, value, 0)) {
		mrtc_buf_finish(&b);
		return MRTC_ERR_INVALID_PARAM;
	}
	char *text = mrtc_buf_steal(&b, ret_len);
	if (!text)
		return MRTC_ERR_NOMEM;
	*ret_text = text;
	return MRTC_OK;
}

const char *mrtc_json_get_string(const struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;
	if (!json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}
