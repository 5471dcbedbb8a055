/*
 * err.h — sluice's error values.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and
 * a negative value on failure: either -errno (e.g. -ENOMEM, -EAGAIN) or one
 * of the negative SL_E* codes below, which name failures errno cannot.
 * sl_strerror() turns either kind into a short English phrase. Library code
 * never prints and never exits; the daemon's edges decide what to log.
 */
#ifndef SL_ERR_H
#define SL_ERR_H

enum {
	SL_EBASE = 10000,
	SL_ECONFIG = -(SL_EBASE + 1),   /* configuration is invalid */
	SL_EPROTO = -(SL_EBASE + 2),    /* peer violated the protocol */
	SL_ETOOBIG = -(SL_EBASE + 3),   /* a size limit was exceeded */
	SL_ESPOOL = -(SL_EBASE + 4),    /* the spool store failed */
	SL_ETLS = -(SL_EBASE + 5),      /* TLS handshake or record failure */
	SL_EDNS = -(SL_EBASE + 6),      /* name resolution failed */
	SL_EAUTH = -(SL_EBASE + 7),     /* authentication failed */
	SL_ENOTFOUND = -(SL_EBASE + 8), /* no such record */
	SL_EVERSION = -(SL_EBASE + 9),  /* on-disk format is incompatible */
};

/* A static, human-readable description of err (negative errno or SL_E*). */
const char *sl_strerror(int err);

#endif
