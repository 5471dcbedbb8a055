/* fuzz_inject_json.c — the HTTP injection request parser and message builder
 * (dataplane/inject.c) on arbitrary bodies: no crash, no leak, and every
 * accepted message is CRLF-only with a bounded size. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inject.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct inject_limits lim = { .max_messages = 20, .max_rcpts = 50,
						  .max_message_size = 1 << 16 };
	struct inject_batch b;
	struct sl_buf out = { 0 };
	char err[256];

	if (inject_parse((const char *)data, size, &lim, 1795000000000ull, &b, err, sizeof err) < 0)
		return 0;
	for (size_t i = 0; i < b.n_msgs; i++) {
		const struct sl_buf *m = &b.msgs[i].body;

		if (m->len > lim.max_message_size)
			abort();
		for (size_t k = 0; k < m->len; k++)
			if (m->data[k] == '\n' && (k == 0 || m->data[k - 1] != '\r'))
				abort();
	}
	inject_reply_json(&b, &out);
	sl_buf_free(&out);
	inject_batch_free(&b);
	return 0;
}
