/* SPDX-License-Identifier: Apache-2.0 */
/* The slab allocator: size classes and their boundaries, alignment, reuse of freed objects,
 * release of empty slabs, many objects with frees and new allocations mixed, and the page
 * arrays. The checks of slab internals (reuse, slab counts) hold without AddressSanitizer,
 * under which every object comes from malloc; the contents checks hold in both builds. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mrtc/base/slab.h"
#include "vectors.h"

/* Fills @p's @size bytes with a pattern of @seed. */
static void fill(unsigned char *p, size_t size, uint32_t seed)
{
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(seed * 31 + i * 7);
}

static bool holds(const unsigned char *p, size_t size, uint32_t seed)
{
	for (size_t i = 0; i < size; i++)
		if (p[i] != (unsigned char)(seed * 31 + i * 7))
			return false;
	return true;
}

static size_t n_slabs(const struct mrtc_slab *a)
{
	struct mrtc_slab_stats st;
	mrtc_slab_get_stats(a, &st);
	return st.slabs;
}

START_TEST(test_slab_alloc_reuses_freed_object_of_its_class)
{
	struct mrtc_slab *a = mrtc_slab_create();
	ck_assert_ptr_nonnull(a);
	enum {
		SIZE = 5 * MRTC_SLAB_STEP - 2
	};
	unsigned char *p = mrtc_slab_alloc(a, SIZE);
	unsigned char *q = mrtc_slab_alloc(a, SIZE);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(q);
	fill(p, SIZE, 1);
	fill(q, SIZE, 2);
	mrtc_slab_free(a, p, SIZE);
	/* 4 steps + 1 .. 5 steps: the same class */
	unsigned char *r = mrtc_slab_alloc(a, 4 * MRTC_SLAB_STEP + 1);
	ck_assert_ptr_nonnull(r);
	ck_assert(holds(q, SIZE, 2));
	if (!MRTC_SLAB_USES_MALLOC) {
		ck_assert_ptr_eq(r, p);
		/* no header between them */
		ck_assert_uint_eq((uintptr_t)q - (uintptr_t)p, 5 * MRTC_SLAB_STEP);
		ck_assert_uint_eq(n_slabs(a), 1);
	}
	struct mrtc_slab_stats st;
	mrtc_slab_get_stats(a, &st);
	ck_assert_uint_eq(st.objects, 2);
	mrtc_slab_free(a, r, 5 * MRTC_SLAB_STEP);
	mrtc_slab_free(a, q, SIZE);
	mrtc_slab_free(a, NULL, SIZE);
	mrtc_slab_get_stats(a, &st);
	ck_assert_uint_eq(st.objects, 0);
	mrtc_slab_destroy(a);
	mrtc_slab_destroy(NULL);
}
END_TEST

START_TEST(test_slab_class_boundaries_and_alignment)
{
	struct mrtc_slab *a = mrtc_slab_create();
	/* Every size up to past the largest class, each object written whole: neighbours keep
	 * their bytes, so no class is smaller than its sizes. */
	enum {
		N = MRTC_SLAB_MAX + 40
	};
	unsigned char *obj[N + 1] = { 0 };
	for (size_t size = 0; size <= N; size++) {
		obj[size] = mrtc_slab_alloc(a, size);
		ck_assert_ptr_nonnull(obj[size]);
		if (size <= MRTC_SLAB_MAX)
			ck_assert_uint_eq((uintptr_t)obj[size] % MRTC_SLAB_STEP, 0);
		fill(obj[size], size, (uint32_t)size);
	}
	for (size_t size = 0; size <= N; size++)
		ck_assert_msg(holds(obj[size], size, (uint32_t)size), "size %zu", size);
	if (!MRTC_SLAB_USES_MALLOC) {
		/* One step and one more byte lie in different classes, so in different slabs;
		 * 1 byte and one step in one. */
		const size_t S = MRTC_SLAB_STEP;
		uintptr_t mask = ~(uintptr_t)(MRTC_SLAB_SIZE - 1);
		ck_assert_uint_eq((uintptr_t)obj[1] & mask, (uintptr_t)obj[S] & mask);
		ck_assert_uint_ne((uintptr_t)obj[S] & mask, (uintptr_t)obj[S + 1] & mask);
		ck_assert_uint_eq((uintptr_t)obj[S + 1] & mask, (uintptr_t)obj[2 * S] & mask);
		ck_assert_uint_ne((uintptr_t)obj[MRTC_SLAB_MAX - S] & mask,
				  (uintptr_t)obj[MRTC_SLAB_MAX] & mask);
		/* One slab per class; the larger objects come from malloc. */
		ck_assert_uint_eq(n_slabs(a), MRTC_SLAB_MAX / MRTC_SLAB_STEP);
		struct mrtc_slab_stats st;
		mrtc_slab_get_stats(a, &st);
		ck_assert_uint_eq(st.objects, N + 1);
		size_t in_slabs = 0;
		for (size_t size = 0; size <= MRTC_SLAB_MAX; size++)
			in_slabs +=
			    size ? (size + MRTC_SLAB_STEP - 1) / MRTC_SLAB_STEP * MRTC_SLAB_STEP
				 : MRTC_SLAB_STEP;
		ck_assert_uint_eq(st.object_bytes, in_slabs);
	}
	for (size_t size = 0; size <= N; size++)
		mrtc_slab_free(a, obj[size], size);
	mrtc_slab_destroy(a);
}
END_TEST

START_TEST(test_slab_empty_slabs_go_back_but_one_per_class)
{
	struct mrtc_slab *a = mrtc_slab_create();
	enum {
		SIZE = 64,
		PER_SLAB = MRTC_SLAB_SIZE / SIZE,
		N = 5 * PER_SLAB
	};
	void **p = calloc(N, sizeof(*p));
	for (size_t i = 0; i < N; i++) {
		p[i] = mrtc_slab_alloc(a, SIZE);
		ck_assert_ptr_nonnull(p[i]);
	}
	if (!MRTC_SLAB_USES_MALLOC)
		ck_assert_uint_ge(n_slabs(a), 5);
	/* Freeing every other object empties no slab. */
	for (size_t i = 0; i < N; i += 2)
		mrtc_slab_free(a, p[i], SIZE);
	if (!MRTC_SLAB_USES_MALLOC)
		ck_assert_uint_ge(n_slabs(a), 5);
	/* Reallocating fills the holes before any new slab is mapped. */
	size_t before = n_slabs(a);
	for (size_t i = 0; i < N; i += 2) {
		p[i] = mrtc_slab_alloc(a, SIZE);
		ck_assert_ptr_nonnull(p[i]);
	}
	ck_assert_uint_eq(n_slabs(a), before);
	for (size_t i = 0; i < N; i++)
		mrtc_slab_free(a, p[i], SIZE);
	if (!MRTC_SLAB_USES_MALLOC)
		ck_assert_uint_eq(n_slabs(a), 1); /* the class keeps one */
	/* And uses it again. */
	p[0] = mrtc_slab_alloc(a, SIZE);
	ck_assert_uint_eq(n_slabs(a), MRTC_SLAB_USES_MALLOC ? 0 : 1);
	mrtc_slab_free(a, p[0], SIZE);
	free(p);
	mrtc_slab_destroy(a);
}
END_TEST

/* A small deterministic generator (xorshift32). */
static uint32_t next_random(uint32_t *state)
{
	uint32_t x = *state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

START_TEST(test_slab_many_objects_freed_and_reallocated)
{
	struct mrtc_slab *a = mrtc_slab_create();
	enum {
		N = 100000,
		ROUNDS = 4
	};
	unsigned char **p = calloc(N, sizeof(*p));
	size_t *size = calloc(N, sizeof(*size));
	uint32_t *seed = calloc(N, sizeof(*seed));
	uint32_t rnd = 12345;
	for (int round = 0; round < ROUNDS; round++) {
		/* Each slot, at random, keeps its object or gets a new one of a random size. */
		for (size_t i = 0; i < N; i++) {
			uint32_t r = next_random(&rnd);
			if (p[i] && r % 3 != 0)
				continue;
			if (p[i]) {
				ck_assert(holds(p[i], size[i], seed[i]));
				mrtc_slab_free(a, p[i], size[i]);
			}
			size[i] = 1 + (r >> 8) % (r % 16 ? 200 : 1200); /* some from malloc */
			seed[i] = r;
			p[i] = mrtc_slab_alloc(a, size[i]);
			ck_assert_ptr_nonnull(p[i]);
			fill(p[i], size[i], seed[i]);
		}
		struct mrtc_slab_stats st;
		mrtc_slab_get_stats(a, &st);
		ck_assert_uint_eq(st.objects, N);
	}
	for (size_t i = 0; i < N; i++)
		ck_assert_msg(holds(p[i], size[i], seed[i]), "object %zu", i);
	/* Free the objects of the first half: slabs of objects only from it go back. */
	size_t before = n_slabs(a);
	for (size_t i = 0; i < N / 2; i++) {
		mrtc_slab_free(a, p[i], size[i]);
		p[i] = NULL;
	}
	for (size_t i = N / 2; i < N; i++)
		ck_assert(holds(p[i], size[i], seed[i]));
	for (size_t i = N / 2; i < N; i++)
		mrtc_slab_free(a, p[i], size[i]);
	struct mrtc_slab_stats st;
	mrtc_slab_get_stats(a, &st);
	ck_assert_uint_eq(st.objects, 0);
	ck_assert_uint_eq(st.object_bytes, 0);
	if (!MRTC_SLAB_USES_MALLOC) {
		ck_assert_uint_gt(before, 100);
		ck_assert_uint_le(st.slabs, MRTC_SLAB_MAX / MRTC_SLAB_STEP);
	}
	free(p);
	free(size);
	free(seed);
	mrtc_slab_destroy(a);
}
END_TEST

START_TEST(test_slab_pages_are_zeroed_and_writable)
{
	size_t size = 3 * 4096 + 8;
	unsigned char *p = mrtc_pages_alloc(size);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < size; i++)
		ck_assert_uint_eq(p[i], 0);
	memset(p, 0xa5, size);
	mrtc_pages_free(p, size);
	mrtc_pages_free(NULL, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("slab");
	const TTest *tests[] = {
		test_slab_alloc_reuses_freed_object_of_its_class,
		test_slab_class_boundaries_and_alignment,
		test_slab_empty_slabs_go_back_but_one_per_class,
		test_slab_many_objects_freed_and_reallocated,
		test_slab_pages_are_zeroed_and_writable,
	};
	vectors_add_tests(s, "slab", tests, sizeof(tests) / sizeof(tests[0]));
	return vectors_run_suite(s);
}
