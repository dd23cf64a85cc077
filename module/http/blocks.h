/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to module/http: the blocks of requests and their states the server keeps for the next
 * requests instead of freeing them (blocks.c).
 */
#ifndef MRTC_HTTP_BLOCKS_H
#define MRTC_HTTP_BLOCKS_H

#include <stddef.h>

#define MRTC_BLOCK_SIZES 8 /* sizes kept: the first ones asked for */
#define MRTC_BLOCK_KEEP 64 /* blocks kept per size */

struct mrtc_block_list {
	size_t size; /* 0: unused */
	size_t n;
	void *head; /* each kept block starts with the pointer to the next */
};

/* Embedded in its owner, zeroed to start; mrtc_blocks_finish() frees what it keeps. */
struct mrtc_blocks {
	struct mrtc_block_list lists[MRTC_BLOCK_SIZES];
};

/* @size bytes, not zeroed: a kept block of that size, else a new one; NULL without memory. */
void *mrtc_blocks_alloc(struct mrtc_blocks *blocks, size_t size);
/* Takes back @block (NULL accepted) of @size bytes: kept up to MRTC_BLOCK_KEEP, else freed. */
void mrtc_blocks_free(struct mrtc_blocks *blocks, void *block, size_t size);
/* Frees every kept block. */
void mrtc_blocks_finish(struct mrtc_blocks *blocks);

#endif
