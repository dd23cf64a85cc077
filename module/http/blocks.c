/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blocks of requests and their states kept for the next requests (reused rather than freed): a
 * handler asks for the same size every time, and after many requests and cache entries glibc's
 * malloc serves a state of a few KiB from consolidated free chunks, slower than the work of a
 * warm get_token. A free list per size, for the first MRTC_BLOCK_SIZES sizes asked for, at most
 * MRTC_BLOCK_KEEP blocks each (as many requests as are usually in flight at once).
 */
#include "blocks.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/asan.h"

/* Under AddressSanitizer a kept block is poisoned, so that a state used after its request
 * finished is still reported. */
#if MRTC_ASAN
#include <sanitizer/asan_interface.h>
#define BLOCK_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define BLOCK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define BLOCK_POISON(p, n) ((void)(p), (void)(n))
#define BLOCK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* What a block of @size takes: room for the free list's link at least. */
static size_t block_bytes(size_t size)
{
	return size < sizeof(void *) ? sizeof(void *) : size;
}

static struct mrtc_block_list *list_of(struct mrtc_blocks *b, size_t size, bool add)
{
	for (size_t i = 0; i < MRTC_BLOCK_SIZES; i++) {
		struct mrtc_block_list *l = &b->lists[i];
		if (l->size == size)
			return l;
		if (!l->size) {
			if (!add)
				return NULL;
			l->size = size;
			return l;
		}
	}
	return NULL;
}

void *mrtc_blocks_alloc(struct mrtc_blocks *b, size_t size)
{
	struct mrtc_block_list *l = list_of(b, size, false);
	if (!l || !l->head)
		return malloc(block_bytes(size));
	void *block = l->head;
	BLOCK_UNPOISON(block, block_bytes(size));
	memcpy(&l->head, block, sizeof(void *));
	l->n--;
	return block;
}

void mrtc_blocks_free(struct mrtc_blocks *b, void *block, size_t size)
{
	if (!block)
		return;
	struct mrtc_block_list *l = list_of(b, size, true);
	if (!l || l->n >= MRTC_BLOCK_KEEP) {
		free(block);
		return;
	}
	memcpy(block, &l->head, sizeof(void *));
	BLOCK_POISON(block, block_bytes(size));
	l->head = block;
	l->n++;
}

void mrtc_blocks_finish(struct mrtc_blocks *b)
{
	for (size_t i = 0; i < MRTC_BLOCK_SIZES; i++) {
		struct mrtc_block_list *l = &b->lists[i];
		while (l->head) {
			void *block = l->head;
			BLOCK_UNPOISON(block, block_bytes(l->size));
			memcpy(&l->head, block, sizeof(void *));
			free(block);
		}
		l->n = 0;
	}
}
