/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secrets of the configuration: a secret variable's value from NAME or from the file NAME_FILE
 * names (at most 4 KiB, trailing spaces and line ends trimmed, no NUL), lk-jwt-service's
 * LIVEKIT_KEY_FILE (key:secret) and LIVEKIT_*_FROM_FILE variants, and wiping them when done.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_table.h"
#include "mrtc/base/util.h"

#define SECRET_FILE_MAX 4096

/* Reads a small secret file, trimming trailing spaces, CR and LF. Caller frees (wipes). */
static char *read_secret_file(const char *path, const char **ret_why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*ret_why = strerror(errno);
		return NULL;
	}
	char *buf = calloc(1, SECRET_FILE_MAX + 1);
	size_t len = 0;
	if (!buf) {
		close(fd);
		*ret_why = "out of memory";
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, SECRET_FILE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*ret_why = strerror(errno);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == SECRET_FILE_MAX) {
			*ret_why = "file too large";
			goto fail;
		}
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (memchr(buf, '\0', len)) {
		sodium_memzero(buf, SECRET_FILE_MAX);
		free(buf);
		*ret_why = "contains a NUL byte";
		return NULL;
	}
	return buf;
fail:
	close(fd);
	sodium_memzero(buf, SECRET_FILE_MAX);
	free(buf);
	return NULL;
}

void mrtc_config_free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* lk-jwt-service trims spaces, CR and LF around its key and secret. */
static char *dup_trimmed(const char *s, size_t len)
{
	while (len && (*s == ' ' || *s == '\r' || *s == '\n')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	char *out = malloc(len + 1);
	if (out) {
		memcpy(out, s, len);
		out[len] = '\0';
	}
	return out;
}

/* The value of a secret @name, from NAME or NAME_FILE; NULL if neither. Caller frees. */
char *mrtc_config_secret(mrtc_getenv_fn getenv_fn, void *ctx, const char *name,
			 struct mrtc_buf *problems)
{
	char file_var[128];
	if (!mrtc_format(file_var, sizeof(file_var), "%s_FILE", name)) {
		mrtc_config_problem(problems, name, "name too long");
		return NULL;
	}
	const char *direct = mrtc_config_env(getenv_fn, ctx, name);
	const char *path = mrtc_config_env(getenv_fn, ctx, file_var);
	if (direct && path) {
		mrtc_config_problem(problems, name, "set both %s and %s; use one", name, file_var);
		return NULL;
	}
	if (direct)
		return strdup(direct);
	if (!path)
		return NULL;
	const char *why = NULL;
	char *s = read_secret_file(path, &why);
	if (!s)
		mrtc_config_problem(problems, file_var, "cannot read %s: %s", path, why);
	else if (!s[0]) {
		mrtc_config_problem(problems, file_var, "%s is empty", path);
		free(s);
		s = NULL;
	}
	return s;
}

/* LIVEKIT_KEY / LIVEKIT_SECRET with lk-jwt-service's file variants. */
void mrtc_config_load_livekit(struct mrtc_config *c, mrtc_getenv_fn getenv_fn, void *ctx,
			      struct mrtc_buf *problems)
{
	const char *pair = mrtc_config_env(getenv_fn, ctx, "LIVEKIT_KEY_FILE");
	if (pair) {
		const char *why = NULL;
		char *text = read_secret_file(pair, &why);
		if (!text) {
			mrtc_config_problem(problems, "LIVEKIT_KEY_FILE", "cannot read %s: %s",
					    pair, why);
			return;
		}
		char *colon = strchr(text, ':');
		if (!colon || strchr(colon + 1, ':')) {
			mrtc_config_problem(problems, "LIVEKIT_KEY_FILE",
					    "expected one line 'key:secret'");
		} else {
			c->livekit_key = dup_trimmed(text, (size_t)(colon - text));
			c->livekit_secret = dup_trimmed(colon + 1, strlen(colon + 1));
		}
		mrtc_config_free_secret(text);
	} else {
		const char *names[2][2] = { { "LIVEKIT_KEY", "LIVEKIT_KEY_FROM_FILE" },
					    { "LIVEKIT_SECRET", "LIVEKIT_SECRET_FROM_FILE" } };
		char **dst[2] = { &c->livekit_key, &c->livekit_secret };
		for (int i = 0; i < 2; i++) {
			const char *path = mrtc_config_env(getenv_fn, ctx, names[i][1]);
			const char *direct = mrtc_config_env(getenv_fn, ctx, names[i][0]);
			if (path) {
				const char *why = NULL;
				char *text = read_secret_file(path, &why);
				if (!text) {
					mrtc_config_problem(problems, names[i][1],
							    "cannot read %s: %s", path, why);
					continue;
				}
				*dst[i] = dup_trimmed(text, strlen(text));
				mrtc_config_free_secret(text);
			} else if (direct) {
				*dst[i] = dup_trimmed(direct, strlen(direct));
			}
		}
	}
	if (!c->livekit_key || !c->livekit_key[0])
		mrtc_config_problem(problems, "LIVEKIT_KEY",
				    "required (or LIVEKIT_KEY_FROM_FILE, or LIVEKIT_KEY_FILE)");
	if (!c->livekit_secret || !c->livekit_secret[0])
		mrtc_config_problem(problems, "LIVEKIT_SECRET",
				    "required (or LIVEKIT_SECRET_FROM_FILE)");
}
