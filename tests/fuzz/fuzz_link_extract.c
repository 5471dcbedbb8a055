/*
 * fuzz_link_extract.c — URL host extraction on arbitrary messages: it must
 * not crash, stay inside its bounds, and every host must be a terminated,
 * lower-case name with a dot and no spaces, '@', ':' or '/'.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link_check.h"

#define MAX_SCAN 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct link_scan s;
	static char scratch[MAX_SCAN + 1];

	link_scan_init(&s, 8);
	link_scan_message(&s, (const char *)data, size, MAX_SCAN, scratch);
	if (s.n_hosts > 8 || s.scanned > MAX_SCAN)
		abort();
	for (size_t i = 0; i < s.n_hosts; i++) {
		const char *h = s.hosts[i];

		if (!memchr(h, 0, LINK_HOST_LEN) || !strchr(h, '.'))
			abort();
		for (const char *p = h; *p; p++)
			if ((unsigned char)*p <= ' ' || isupper((unsigned char)*p) || *p == '@' ||
			    *p == ':' || *p == '/')
				abort();
	}
	return 0;
}
