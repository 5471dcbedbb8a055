/* err.c — descriptions for sluice's error values; see err.h. */
#include "err.h"

#include <string.h>

const char *sl_strerror(int err)
{
	switch (err) {
	case SL_ECONFIG: return "invalid configuration";
	case SL_EPROTO: return "protocol violation";
	case SL_ETOOBIG: return "size limit exceeded";
	case SL_ESPOOL: return "spool store failure";
	case SL_ETLS: return "TLS failure";
	case SL_EDNS: return "name resolution failure";
	case SL_EAUTH: return "authentication failed";
	case SL_ENOTFOUND: return "not found";
	case SL_EVERSION: return "incompatible on-disk format version";
	}
	if (err < 0 && err > -SL_EBASE)
		return strerror(-err);
	return "unknown error";
}
