/*
 * fuzz_smtp_client.c — an outbound SMTP session fed arbitrary server bytes.
 *
 * Input layout: byte 0 picks the params, byte 1 the body length (the body
 * is the next bytes of input), then repeated [control byte, chunk of
 * (control & 31) + 1 server bytes]. Control bits: 0x20 call tls_failed
 * instead of tls_started on STARTTLS, 0x40 ask for SMTPUTF8, 0x80 8BITMIME.
 * On READY a message is sent (up to 4), then QUIT. At the end EOF is
 * reported. Checks: event invariants, and that every byte the client sends
 * sits in CRLF lines with no bare CR or LF (no smuggled end of data).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_client.h"

static const char *const rcpts[] = { "a@example.org", "b@example.org", "c@example.org" };

struct run {
	struct smtp_client *c;
	struct smtp_client_msg m;
	unsigned sent, done_count;
	bool in_flight, over, last_cr;
	uint8_t rcpt_seen;
	uint8_t ctl;
};

static void drain(struct run *r)
{
	struct sl_buf *o = smtp_client_output(r->c);
	size_t n = sl_buf_avail(o), i;
	const char *p = n ? sl_buf_head(o) : "";

	for (i = 0; i < n; i++) {
		bool lf = p[i] == '\n';

		if (lf != r->last_cr)
			abort(); /* bare CR or bare LF */
		r->last_cr = p[i] == '\r';
	}
	sl_buf_consume(o, n);
}

static void events(struct run *r)
{
	struct smtp_client_event ev;
	int k;

	while ((k = smtp_client_next(r->c, &ev)) != SMTP_CLIENT_EV_NONE) {
		if (k != (int)ev.kind || r->over)
			abort();
		switch (ev.kind) {
		case SMTP_CLIENT_EV_READY:
			if (r->in_flight)
				abort();
			if (r->sent < 4) {
				r->m.n_rcpts = 1 + r->sent % 3;
				r->m.flags = (r->ctl & 0x40 ? SMTP_CLIENT_MSG_SMTPUTF8 : 0) |
					     (r->ctl & 0x80 ? SMTP_CLIENT_MSG_8BITMIME : 0);
				r->m.size = r->sent == 3 ? 1u << 30 : 0;
				if (smtp_client_send(r->c, &r->m) != 0)
					abort();
				r->sent++;
				r->in_flight = true;
				r->rcpt_seen = 0;
			} else {
				smtp_client_quit(r->c);
			}
			break;
		case SMTP_CLIENT_EV_STARTTLS:
			if (r->ctl & 0x20)
				smtp_client_tls_failed(r->c);
			else
				smtp_client_tls_started(r->c);
			break;
		case SMTP_CLIENT_EV_RCPT:
			if (!r->in_flight || ev.rcpt >= r->m.n_rcpts || !ev.reply ||
			    (r->rcpt_seen & (1u << ev.rcpt)) || ev.reply->code < 400)
				abort();
			r->rcpt_seen |= (uint8_t)(1u << ev.rcpt);
			break;
		case SMTP_CLIENT_EV_MESSAGE_DONE:
			if (!r->in_flight || !ev.reply)
				abort();
			r->in_flight = false;
			r->done_count++;
			break;
		case SMTP_CLIENT_EV_FAILED:
			if (!ev.reply || (ev.local && ev.reply->code / 100 != 4))
				abort();
			r->over = true;
			break;
		case SMTP_CLIENT_EV_CLOSED:
			r->over = true;
			break;
		case SMTP_CLIENT_EV_NONE:
			abort();
		}
		drain(r);
	}
	drain(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_client_params p = { "client.example.com", false, false };
	struct run r = { 0 };
	size_t off = 2, blen;

	if (size < 2)
		return 0;
	p.tls_available = data[0] & 1;
	p.require_tls = p.tls_available && (data[0] & 2);
	blen = data[1];
	if (blen > size - off)
		blen = size - off;
	r.m.mail_from = data[0] & 4 ? "" : "sender@example.com";
	r.m.rcpts = rcpts;
	r.m.body = (const char *)data + off;
	r.m.body_len = blen;
	off += blen;
	if (smtp_client_create(&p, &r.c) != 0)
		abort();
	while (off < size && !r.over) {
		size_t n;

		r.ctl = data[off++];
		n = (size_t)(r.ctl & 31) + 1;
		if (n > size - off)
			n = size - off;
		if (smtp_client_input(r.c, data + off, n) != 0)
			abort();
		off += n;
		events(&r);
	}
	smtp_client_eof(r.c);
	events(&r);
	if (!r.over || (r.in_flight && r.done_count + 1 != r.sent))
		abort();
	{
		struct smtp_client_event ev;

		if (smtp_client_next(r.c, &ev) != SMTP_CLIENT_EV_NONE)
			abort();
	}
	smtp_client_destroy(r.c);
	return 0;
}
