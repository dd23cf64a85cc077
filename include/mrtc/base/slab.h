/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory for long-lived small objects (the bounded cache's entries), kept apart from malloc's
 * heap: size classes in MRTC_SLAB_STEP-byte steps up to MRTC_SLAB_MAX bytes, each served from
 * MRTC_SLAB_SIZE-byte slabs mapped from the system, with a free list per slab. An object carries
 * no header, freed objects are reused by their class, and an empty slab goes back to the system
 * (each class keeps one). Larger objects come from malloc, and so does every object in an
 * AddressSanitizer build, which then checks their bounds. One allocator per owner: not
 * thread-safe. Pure.
 */
#ifndef MRTC_SLAB_H
#define MRTC_SLAB_H

#include <stddef.h>

#include "mrtc/base/asan.h"

#define MRTC_SLAB_STEP 16	   /* size classes and alignment of objects */
#define MRTC_SLAB_MAX 1024	   /* larger objects come from malloc */
#define MRTC_SLAB_SIZE (64 * 1024) /* one slab; a power of two */

/* 1 in an AddressSanitizer build: every object comes from malloc. */
#define MRTC_SLAB_USES_MALLOC MRTC_ASAN

struct mrtc_slab;

struct mrtc_slab_stats {
	size_t objects;	     /* allocated and not freed, those from malloc included */
	size_t slabs;	     /* slabs mapped */
	size_t object_bytes; /* the size classes of the objects in slabs */
};

/* NULL on OOM. */
struct mrtc_slab *mrtc_slab_create(void);

/* Unmaps every slab: objects still allocated in them are gone, large ones are not (free them
 * first). Accepts NULL. */
void mrtc_slab_destroy(struct mrtc_slab *slab);

/* @size bytes (at least 1) aligned to MRTC_SLAB_STEP (up to MRTC_SLAB_MAX) or to malloc's
 * alignment (larger), not zeroed; the caller frees it with mrtc_slab_free. NULL on OOM. */
void *mrtc_slab_alloc(struct mrtc_slab *slab, size_t size);

/* Frees @p (from mrtc_slab_alloc on @slab, or NULL) allocated with @size bytes, or with any
 * size rounding up to the same class (any size above MRTC_SLAB_MAX for a large one). */
void mrtc_slab_free(struct mrtc_slab *slab, void *p, size_t size);

void mrtc_slab_get_stats(const struct mrtc_slab *slab, struct mrtc_slab_stats *ret_stats);

/* @size zeroed bytes in whole pages mapped apart from the heap (a page not yet written costs no
 * memory), for a large array that lives long; freed with mrtc_pages_free and the same size.
 * NULL on OOM. */
void *mrtc_pages_alloc(size_t size);
void mrtc_pages_free(void *p, size_t size);

#endif
