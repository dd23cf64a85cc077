/* SPDX-License-Identifier: Apache-2.0 */
/* The libFuzzer entry point every target defines, and a helper for NUL-terminated copies. */
#ifndef MRTC_FUZZ_H
#define MRTC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (caller frees), or NULL on OOM. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

#endif
