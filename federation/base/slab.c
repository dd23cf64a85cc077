/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The slab allocator. Slabs are aligned to their size, so the slab of an object is its address
 * with the low bits cleared; its header there counts the objects handed out and links the freed
 * ones. A class lists the slabs that have room (never-used space at the end, or freed objects),
 * the most recently freed into first; the full slabs of every class are on one list, left when
 * one of their objects is freed. Memory comes from anonymous mappings: freed slabs go back to the
 * system at once, and malloc's heap, where requests allocate and free all the time, holds no
 * long-lived entries between its free chunks.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS: POSIX.1-2024, not in 2008 */
#include "mrtc/base/slab.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define N_CLASSES (MRTC_SLAB_MAX / MRTC_SLAB_STEP)

struct slab {
	struct slab *prev, *next; /* the class's slabs with room, or the full ones */
	void *free;		  /* freed objects, each starting with the next one's address */
	uint32_t used;		  /* objects handed out */
	uint32_t fresh;		  /* offset of the never-used space */
	uint32_t cls;
	uint32_t magic; /* SLAB_MAGIC: a free of an object not from a slab is caught */
};

#define SLAB_MAGIC 0x5ab1a110u

/* Where the objects of a slab start: after the header, aligned. */
#define FIRST ((sizeof(struct slab) + MRTC_SLAB_STEP - 1) / MRTC_SLAB_STEP * MRTC_SLAB_STEP)

struct mrtc_slab {
	struct slab *room[N_CLASSES]; /* per class: the slabs with room */
	struct slab *full;	      /* the slabs without, of every class */
	struct mrtc_slab_stats stats;
};

_Static_assert((MRTC_SLAB_SIZE & (MRTC_SLAB_SIZE - 1)) == 0, "slabs are aligned to their size");
_Static_assert(MRTC_SLAB_MAX % MRTC_SLAB_STEP == 0, "whole classes");
_Static_assert(FIRST + MRTC_SLAB_MAX <= MRTC_SLAB_SIZE, "a slab holds an object of each class");

struct mrtc_slab *mrtc_slab_create(void)
{
	return calloc(1, sizeof(struct mrtc_slab));
}

static size_t class_of(size_t size)
{
	return size ? (size - 1) / MRTC_SLAB_STEP : 0;
}

static size_t class_size(size_t cls)
{
	return (cls + 1) * MRTC_SLAB_STEP;
}

static void *map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A slab: twice its size mapped, then what lies outside its aligned middle unmapped. */
static struct slab *slab_map(void)
{
	unsigned char *p = map(2 * (size_t)MRTC_SLAB_SIZE);
	if (!p)
		return NULL;
	uintptr_t at = ((uintptr_t)p + MRTC_SLAB_SIZE - 1) & ~(uintptr_t)(MRTC_SLAB_SIZE - 1);
	size_t head = at - (uintptr_t)p;
	if (head)
		munmap(p, head);
	munmap((unsigned char *)at + MRTC_SLAB_SIZE, MRTC_SLAB_SIZE - head);
	return (struct slab *)at; /* zero: fresh anonymous memory */
}

static void list_remove(struct slab **head, struct slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static void list_push(struct slab **head, struct slab *s)
{
	s->prev = NULL;
	s->next = *head;
	if (s->next)
		s->next->prev = s;
	*head = s;
}

static bool has_room(const struct slab *s)
{
	return s->free || s->fresh + class_size(s->cls) <= MRTC_SLAB_SIZE;
}

void *mrtc_slab_alloc(struct mrtc_slab *a, size_t size)
{
	if (size > MRTC_SLAB_MAX || MRTC_SLAB_USES_MALLOC) {
		void *p = malloc(size ? size : 1);
		if (p)
			a->stats.objects++;
		return p;
	}
	size_t cls = class_of(size);
	struct slab *s = a->room[cls];
	if (!s) {
		s = slab_map();
		if (!s)
			return NULL;
		s->cls = (uint32_t)cls;
		s->fresh = FIRST;
		s->magic = SLAB_MAGIC;
		list_push(&a->room[cls], s);
		a->stats.slabs++;
	}
	void *p = s->free;
	if (p) {
		void *next;
		memcpy(&next, p, sizeof(next));
		s->free = next;
	} else {
		p = (unsigned char *)s + s->fresh;
		s->fresh += (uint32_t)class_size(cls);
	}
	s->used++;
	if (!has_room(s)) {
		list_remove(&a->room[cls], s);
		list_push(&a->full, s);
	}
	a->stats.objects++;
	a->stats.object_bytes += class_size(cls);
	return p;
}

void mrtc_slab_free(struct mrtc_slab *a, void *p, size_t size)
{
	if (!p)
		return;
	a->stats.objects--;
	if (size > MRTC_SLAB_MAX || MRTC_SLAB_USES_MALLOC) {
		free(p);
		return;
	}
	struct slab *s = (struct slab *)((uintptr_t)p & ~(uintptr_t)(MRTC_SLAB_SIZE - 1));
	assert(s->magic == SLAB_MAGIC && class_of(size) == s->cls);
	bool was_full = !has_room(s);
	memcpy(p, &s->free, sizeof(s->free));
	s->free = p;
	s->used--;
	a->stats.object_bytes -= class_size(s->cls);
	if (was_full) {
		list_remove(&a->full, s);
		list_push(&a->room[s->cls], s);
	}
	if (s->used == 0 && (s->prev || s->next)) { /* empty, and not its class's last */
		list_remove(&a->room[s->cls], s);
		munmap(s, MRTC_SLAB_SIZE);
		a->stats.slabs--;
	}
}

void mrtc_slab_get_stats(const struct mrtc_slab *a, struct mrtc_slab_stats *ret)
{
	*ret = a->stats;
}

void mrtc_slab_destroy(struct mrtc_slab *a)
{
	if (!a)
		return;
	for (size_t i = 0; i <= N_CLASSES; i++) {
		struct slab **head = i < N_CLASSES ? &a->room[i] : &a->full;
		while (*head) {
			struct slab *s = *head;
			list_remove(head, s);
			munmap(s, MRTC_SLAB_SIZE);
		}
	}
	free(a);
}

void *mrtc_pages_alloc(size_t size)
{
	if (MRTC_SLAB_USES_MALLOC)
		return calloc(1, size);
	return map(size);
}

void mrtc_pages_free(void *p, size_t size)
{
	if (MRTC_SLAB_USES_MALLOC || !p)
		free(p);
	else
		munmap(p, size);
}
