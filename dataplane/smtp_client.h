/*
 * smtp_client.h — one outbound SMTP session (one TCP connection), sans-I/O.
 *
 * The caller owns the socket, the clock and TLS. It feeds the plaintext it
 * receives to smtp_client_input(), calls smtp_client_next() until it returns
 * SMTP_CLIENT_EV_NONE, and sends what smtp_client_output() holds (consuming
 * what it sent with sl_buf_consume()). Nothing here reads a clock or touches
 * a descriptor; timeouts and EOF are reported with smtp_client_timeout() and
 * smtp_client_eof().
 *
 * Session: greeting, EHLO (HELO if EHLO gets a 5xx), STARTTLS when offered
 * and the caller can do TLS (SMTP_CLIENT_EV_STARTTLS: the caller runs the
 * handshake, then smtp_client_tls_started() or smtp_client_tls_failed()),
 * then SMTP_CLIENT_EV_READY. In READY the caller gives one message with
 * smtp_client_send() or ends with smtp_client_quit(). Per message the client
 * reports SMTP_CLIENT_EV_RCPT for every recipient the receiver refused, then
 * exactly one SMTP_CLIENT_EV_MESSAGE_DONE whose reply is the outcome of
 * every recipient that got no RCPT event (the DATA final reply; the MAIL
 * reply if MAIL failed; a synthesized reply if the message was refused
 * locally). READY follows when the connection can take the next message.
 * PIPELINING (RFC 2920) is used when offered: MAIL, RCPTs and DATA go out in
 * one write.
 *
 * SMTP_CLIENT_EV_FAILED ends the session (any 421, bad greeting, EHLO and
 * HELO refused, TLS required and unavailable, a malformed or unexpected
 * reply, EOF, timeout): recipients of the message in flight that have no
 * outcome yet get its reply; then close the connection. Replies sluice made
 * up itself have ev.local set (always a 4xx for session failures, so the
 * mail is retried). SMTP_CLIENT_EV_CLOSED: QUIT was answered or abandoned;
 * close the connection. After FAILED or CLOSED next() returns NONE.
 *
 * Ownership: the client copies the params and the envelope; the body of a
 * message is read in place and must stay valid until its MESSAGE_DONE (or
 * FAILED). An event's reply points into the client and is valid until the
 * next call into it. A client belongs to one thread.
 *
 * Errors: -EINVAL for calls the contract forbids (send outside READY, bad
 * addresses), -ENOMEM. Running out of memory mid-session becomes a FAILED
 * event with a local 451 4.3.0 reply.
 */
#ifndef SL_SMTP_CLIENT_H
#define SL_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "smtp_reply.h"

struct smtp_client;

struct smtp_client_params {
	const char *ehlo_name; /* our name for EHLO/HELO; an IP literal as "[198.51.100.7]" */
	bool tls_available;    /* the caller can run a TLS handshake on this connection */
	bool require_tls;      /* fail unless STARTTLS succeeds (needs tls_available) */
};

/* EHLO keywords the receiver announced (smtp_client_has_ext). */
enum {
	SMTP_CLIENT_EXT_PIPELINING = 1u << 0,
	SMTP_CLIENT_EXT_SIZE = 1u << 1,
	SMTP_CLIENT_EXT_8BITMIME = 1u << 2,
	SMTP_CLIENT_EXT_SMTPUTF8 = 1u << 3,
	SMTP_CLIENT_EXT_STARTTLS = 1u << 4,
	SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES = 1u << 5,
	SMTP_CLIENT_EXT_CHUNKING = 1u << 6, /* recorded only; BDAT is not used */
	SMTP_CLIENT_EXT_DSN = 1u << 7,      /* recorded only */
};

/* Message flags (smtp_client_msg.flags). */
enum {
	SMTP_CLIENT_MSG_8BITMIME = 1u << 0, /* body has 8-bit bytes: BODY=8BITMIME if offered */
	SMTP_CLIENT_MSG_SMTPUTF8 = 1u << 1, /* needs SMTPUTF8 (implies 8BITMIME); fails 553 5.6.7 if not offered */
};

struct smtp_client_msg {
	const char *mail_from;    /* envelope sender without <>; "" for the null sender */
	const char *const *rcpts; /* recipients without <>; n_rcpts >= 1 */
	unsigned n_rcpts;
	const char *body;  /* header + body, CRLF lines, not dot-stuffed; valid until MESSAGE_DONE */
	size_t body_len;
	unsigned flags;    /* SMTP_CLIENT_MSG_* */
	uint64_t size;     /* for SIZE=; 0 = body_len */
};

enum smtp_client_ev {
	SMTP_CLIENT_EV_NONE = 0,     /* nothing to do until more input (or a call) */
	SMTP_CLIENT_EV_STARTTLS,     /* start the TLS handshake now, then tls_started/tls_failed */
	SMTP_CLIENT_EV_READY,        /* smtp_client_send() or smtp_client_quit() may be called */
	SMTP_CLIENT_EV_RCPT,         /* recipient ev.rcpt was refused with ev.reply (4xx/5xx) */
	SMTP_CLIENT_EV_MESSAGE_DONE, /* outcome for all recipients without a RCPT event */
	SMTP_CLIENT_EV_FAILED,       /* session over; fail what is in flight with ev.reply */
	SMTP_CLIENT_EV_CLOSED,       /* session over after QUIT; close */
};

struct smtp_client_event {
	enum smtp_client_ev kind;
	unsigned rcpt;                  /* RCPT: index into the message's rcpts */
	const struct smtp_reply *reply; /* RCPT, MESSAGE_DONE, FAILED; else NULL */
	bool local;                     /* reply synthesized by sluice, not sent by the peer */
};

/* What the session is waiting for, to pick a timeout (RFC 5321 §4.5.3.2). */
enum smtp_client_phase {
	SMTP_CLIENT_PHASE_GREETING,
	SMTP_CLIENT_PHASE_EHLO,     /* EHLO or HELO */
	SMTP_CLIENT_PHASE_STARTTLS, /* the reply to STARTTLS */
	SMTP_CLIENT_PHASE_TLS,      /* the caller's handshake */
	SMTP_CLIENT_PHASE_IDLE,     /* READY: waiting for the caller */
	SMTP_CLIENT_PHASE_MAIL,
	SMTP_CLIENT_PHASE_RCPT,
	SMTP_CLIENT_PHASE_DATA,     /* the reply to DATA */
	SMTP_CLIENT_PHASE_DOT,      /* the reply to the end of data */
	SMTP_CLIENT_PHASE_RSET,
	SMTP_CLIENT_PHASE_QUIT,
	SMTP_CLIENT_PHASE_DONE,     /* FAILED or CLOSED */
};

/* A session waiting for the greeting. -EINVAL: no or bad ehlo_name, or
 * require_tls without tls_available; -ENOMEM. */
int smtp_client_create(const struct smtp_client_params *p, struct smtp_client **out);
void smtp_client_destroy(struct smtp_client *c);

/* Hand over len bytes of received plaintext. 0 or -ENOMEM. Ignored once
 * the session is over. */
int smtp_client_input(struct smtp_client *c, const void *data, size_t len);
/* Advance: fill *ev and return its kind (SMTP_CLIENT_EV_NONE: nothing more
 * until input or a call). Call again until NONE. */
int smtp_client_next(struct smtp_client *c, struct smtp_client_event *ev);
/* The bytes to send. The caller sl_buf_consume()s what it sent. */
struct sl_buf *smtp_client_output(struct smtp_client *c);

/* After SMTP_CLIENT_EV_STARTTLS: the handshake is done; input is decrypted
 * from now on. The client sends EHLO again. */
void smtp_client_tls_started(struct smtp_client *c);
/* After SMTP_CLIENT_EV_STARTTLS: the handshake failed; next() gives FAILED. */
void smtp_client_tls_failed(struct smtp_client *c);

/* Start delivering m; only in READY (after the READY event), else -EINVAL.
 * -EINVAL also for no recipients or an address with CR, LF, NUL, '<' or '>'.
 * A message the receiver cannot take (over its SIZE, needs SMTPUTF8) is not
 * sent: MESSAGE_DONE comes with a local 552 5.3.4 / 553 5.6.7. */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m);
/* End the session: QUIT in READY (CLOSED follows its reply or EOF),
 * otherwise CLOSED at once, abandoning what is in flight. */
void smtp_client_quit(struct smtp_client *c);

/* The peer closed the connection: replies already received are still
 * processed, then FAILED (local 451 4.4.2) or CLOSED after QUIT. */
void smtp_client_eof(struct smtp_client *c);
/* The caller's timer for the current phase expired: like EOF, with a local
 * 451 4.4.2 naming the phase. */
void smtp_client_timeout(struct smtp_client *c);

/* Whether the last EHLO announced ext (SMTP_CLIENT_EXT_*). */
bool smtp_client_has_ext(const struct smtp_client *c, unsigned ext);
/* The receiver's SIZE limit, 0 if none or not announced. */
uint64_t smtp_client_size_max(const struct smtp_client *c);
/* Whether the session runs over TLS (smtp_client_tls_started was called). */
bool smtp_client_tls_active(const struct smtp_client *c);
enum smtp_client_phase smtp_client_phase(const struct smtp_client *c);
/* "greeting", "EHLO", "RCPT TO", ... for logs. */
const char *smtp_client_phase_name(enum smtp_client_phase phase);

#endif
