/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one asynchronous convention of the daemon, written down once. Every component that starts
 * work on the event loop (the HTTPS client, DNS, the federation client, the keyring, the
 * signature workers, the homeserver client, RoomService, fed_proxy) follows it; a header that
 * deviates says so next to the start call.
 *
 * 1. A start call returns a handle, or NULL. NULL means the work did not start and no callback
 *    will ever run: the caller answers the failure itself.
 * 2. A callback never runs inside its start call: even an answer known at once (a cache hit)
 *    arrives on a later loop turn, so a caller may store the handle after the call returns and
 *    may be freed by its own callback.
 * 3. The callback runs exactly once, unless the work is cancelled; after it the handle is gone
 *    (the callback clears the caller's copy first thing).
 * 4. Cancel (accepts NULL) means no callback *and* the work stops: its connections are closed,
 *    its timers and queued answers dropped; the handle is invalid once cancel returns. Shared
 *    work another caller still waits for (one key fetch for several requests) goes on for them.
 * 5. Whoever starts work keeps the handle until the callback or cancel, and cancels every handle
 *    it holds when it quiesces or is freed (a request's state on a hang-up, a feature at
 *    shutdown). Work started without keeping a handle is a bug to be listed, not a pattern.
 *
 * There is no code here: the handles are each component's own opaque types.
 */
#ifndef MRTC_ASYNC_H
#define MRTC_ASYNC_H
#endif
