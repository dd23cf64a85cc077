/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one error enumeration of mrtc-transport. Components return these; only the HTTP boundary
 * (module/http/http.c) turns them into a status code and a Matrix errcode.
 */
#ifndef MRTC_ERR_H
#define MRTC_ERR_H

enum mrtc_err {
	MRTC_OK = 0,
	MRTC_ERR_NOMEM,		    /* allocation failed */
	MRTC_ERR_NOT_JSON,	    /* input is not (strict) JSON or not an object */
	MRTC_ERR_BAD_JSON,	    /* JSON with missing fields or wrong types */
	MRTC_ERR_INVALID_PARAM,	    /* a field has a bad value */
	MRTC_ERR_TOO_LARGE,	    /* input over a size limit */
	MRTC_ERR_MISSING_TOKEN,	    /* no access token */
	MRTC_ERR_UNKNOWN_TOKEN,	    /* access token not recognised */
	MRTC_ERR_FORBIDDEN,	    /* authenticated but not allowed */
	MRTC_ERR_UNAUTHORIZED,	    /* 401 M_UNAUTHORIZED: credentials not accepted */
	MRTC_ERR_AUTH_MISSING,	    /* no X-Matrix authorization */
	MRTC_ERR_AUTH_MALFORMED,    /* malformed X-Matrix authorization */
	MRTC_ERR_BAD_SIGNATURE,	    /* a signature did not verify */
	MRTC_ERR_UNKNOWN_KEY,	    /* signing key not known for that server */
	MRTC_ERR_KEY_EXPIRED,	    /* signing key no longer valid */
	MRTC_ERR_WRONG_DESTINATION, /* request addressed to another server */
	MRTC_ERR_UNSUPPORTED,	    /* unknown algorithm or format */
	MRTC_ERR_NOT_FOUND,	    /* unknown path */
	MRTC_ERR_METHOD,	    /* known path, wrong method */
	MRTC_ERR_LIMIT_EXCEEDED,    /* rate limited */
	MRTC_ERR_UPSTREAM,	    /* an upstream server failed or was unreachable */
	MRTC_ERR_TIMEOUT,	    /* an operation ran out of time */
	MRTC_ERR_DNS,		    /* a name did not resolve */
	MRTC_ERR_BLOCKED,	    /* an outbound address is in a blocked range */
	MRTC_ERR_TLS,		    /* TLS handshake or certificate verification failed */
	MRTC_ERR_CONNECT,	    /* the connection failed or broke */
	MRTC_ERR_IO,		    /* local I/O failure (files, sockets) */
	MRTC_ERR_CONFIG,	    /* configuration problem */
	MRTC_ERR_INTERNAL,	    /* a bug or an impossible state */
	MRTC_ERR__COUNT
};

/* A short, stable, human-readable name for @err ("bad signature"). Never NULL. */
const char *mrtc_err_str(enum mrtc_err err);

#endif
