/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MRTC_ASAN: 1 in an AddressSanitizer build (GCC's __SANITIZE_ADDRESS__, clang's
 * __has_feature), else 0. Code that keeps memory of its own (the cache's slabs, the HTTP
 * server's kept blocks) hands it to AddressSanitizer's checks in such a build.
 */
#ifndef MRTC_BASE_ASAN_H
#define MRTC_BASE_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define MRTC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MRTC_ASAN 1
#endif
#endif
#ifndef MRTC_ASAN
#define MRTC_ASAN 0
#endif

#endif
