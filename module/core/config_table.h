/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to module/core's configuration files: the variable table's types, the table, and the
 * helpers the loader (config.c), the value parsers (config_value.c), the secrets
 * (config_secret.c) and the table with --help (config_vars.c) share. Not for other folders:
 * they see struct mrtc_config through mrtc/core/config.h.
 */
#ifndef MRTC_CONFIG_TABLE_H
#define MRTC_CONFIG_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "mrtc/core/config.h"

enum var_type {
	T_STRING,
	T_SERVER_NAME,
	T_HTTP_URL,  /* http or https */
	T_HTTPS_URL, /* https only */
	T_WS_URL,
	T_FILE,
	T_HOSTPORT,
	T_IP_PORT,
	T_UINT,
	T_MEMBERSHIP,
	T_IDENTITY,
	T_CIDRS,
	T_SERVER_LIST,
	T_LOG_LEVEL,
	T_LOG_FORMAT,
	T_REFUSED,
	T_STORE,
	T_BOOL,
};

enum var_flags {
	F_SECRET = 1u << 0,	/* never printed; may come from NAME_FILE */
	F_REQUIRED = 1u << 1,	/* required in every mode */
	F_HOMESERVER = 1u << 2, /* one of the three homeserver-mode variables */
	F_SPECIAL = 1u << 3,	/* read by code after the table loop */
	F_SFU = 1u << 4,	/* one of an SFU's numbered variables, read by load_sfus() */
};

struct config_var {
	const char *name;
	enum var_type type;
	const char *def;
	unsigned flags;
	size_t offset;
	uint64_t min, max;
	const char *help;
};

#define OFF(field) offsetof(struct mrtc_config, field)

/* Every variable, in --help order; mrtc_config_n_vars of them. */
extern const struct config_var mrtc_config_vars[];
extern const size_t mrtc_config_n_vars;

/* Appends "NAME: message" (one line, a cut message marked "...") to @problems. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void mrtc_config_problem(struct mrtc_buf *problems, const char *name, const char *fmt, ...);

/* The value of @name from @getenv_fn, or NULL when unset or empty. Borrowed. */
const char *mrtc_config_env(mrtc_getenv_fn getenv_fn, void *ctx, const char *name);

/* Wipes and frees @s; accepts NULL. */
void mrtc_config_free_secret(char *s);

/* The value of a secret @name, from NAME or NAME_FILE; NULL if neither (or on a problem, then
 * recorded). Caller frees with mrtc_config_free_secret(). */
char *mrtc_config_secret(mrtc_getenv_fn getenv_fn, void *ctx, const char *name,
			 struct mrtc_buf *problems);

/* LIVEKIT_KEY / LIVEKIT_SECRET with lk-jwt-service's file variants, into @c. */
void mrtc_config_load_livekit(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
			      struct mrtc_buf *problems);

/* The char * field of @c that @v is stored in (for the string-like types). */
char **mrtc_config_string_field(struct mrtc_config *c, const struct config_var *v);

/* Parses @value for @v into @c; records a problem if it is invalid. */
void mrtc_config_parse_value(struct mrtc_config *c, const struct config_var *v, const char *value,
			     struct mrtc_buf *problems);

/* Whether OpenSSL loads a certificate from the PEM file @path. */
bool mrtc_config_ca_file_is_usable(const char *path);

#endif
