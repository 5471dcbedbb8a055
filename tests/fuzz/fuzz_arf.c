/*
 * fuzz_arf.c — the feedback report parser on arbitrary bytes: it must not
 * crash, and every field must come back NUL-terminated and free of
 * control bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arf.h"

#define FIELD_OK(f)                                                                        \
	do {                                                                               \
		if (!memchr((f), 0, sizeof(f)))                                            \
			abort();                                                           \
		for (const char *p = (f); *p; p++)                                         \
			if ((unsigned char)*p < 0x20)                                      \
				abort();                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arf_report r;
	int rc = arf_parse((const char *)data, size, &r);

	if (rc != 0 && r.format != ARF_NONE)
		abort();
	if (rc == 0 && (r.format == ARF_NONE || !r.feedback_type[0]))
		abort();
	FIELD_OK(r.feedback_type);
	FIELD_OK(r.original_mail_from);
	FIELD_OK(r.original_rcpt_to);
	FIELD_OK(r.source_ip);
	FIELD_OK(r.arrival_date);
	FIELD_OK(r.reported_domain);
	FIELD_OK(r.user_agent);
	FIELD_OK(r.message_id);
	return 0;
}
