/*
 * smtp_server.h — the ESMTP server session that tenants submit mail to.
 *
 * A sans-I/O state machine for one ingress connection (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, STARTTLS and
 * AUTH PLAIN/LOGIN). It owns no socket, reads no clock and does no TLS: the
 * caller feeds it received plaintext, sends what it queues, runs the timers
 * and the TLS handshake, and answers its events (credentials to check, a
 * message to spool). It is never an open relay: MAIL is refused with 530
 * unless the caller marked the peer relay-allowed or AUTH succeeded.
 *
 * Driving it (one connection):
 *
 *	smtp_server_create(&lim, &s);
 *	smtp_server_set_relay_allowed(s, peer_in_relay_networks);
 *	smtp_server_greet(s);
 *	loop:
 *		while ((k = smtp_server_next(s, &ev)) > SMTP_SERVER_EV_NONE)
 *			handle k (see the events below);
 *		if (k < 0) close now;
 *		send smtp_server_output(s), sl_buf_consume() what was sent;
 *		if (smtp_server_want_close(s) && output empty) close;
 *		(re)arm the timer smtp_server_timeout_kind(s) names;
 *		when smtp_server_want_input(s), read and smtp_server_input();
 *		call smtp_server_next() again after new input, after answering
 *		an event and after output drained.
 *
 * Replies carry RFC 3463 enhanced status codes on every 2xx/4xx/5xx reply
 * except the 220 banner and the EHLO/HELO 250, where RFC 2034 forbids them;
 * 334 and 354 are intermediate replies and carry none either. Every 4xx/5xx
 * the session sends because of a client mistake counts as an error; at
 * max_errors it adds "421 4.7.0" and closes. Not counted: 452 for too many
 * recipients (a normal client batches), the caller's own message_result
 * codes. An accepted message (2xx message_result) resets the count.
 *
 * Message content rules (the SMTP smuggling defence): DATA ends only at
 * <CR><LF>.<CR><LF>. A bare CR or bare LF anywhere in the content taints the
 * message; the session reads on to the real terminator and replies
 * "550 5.5.2" without an event. A content line longer than max_line after
 * dot-unstuffing gets "552 5.3.4 Message line too long", content beyond
 * max_size "552 5.3.4 Message size exceeds fixed limit" (both at the end,
 * no event, the content is discarded while reading). After any of these the
 * session stays usable.
 *
 * Ownership: the session owns all its buffers. Strings in an event point
 * into the session and stay valid until the event is answered
 * (smtp_server_auth_result / smtp_server_message_result) or the session is
 * destroyed. The output buffer belongs to the session; the caller only
 * consumes from its front.
 *
 * Errors: functions return 0 (or a non-negative value) on success and a
 * negative value on failure: -ENOMEM (the session is broken, close it),
 * -EINVAL (bad arguments or a call in the wrong state, the session is
 * unchanged), SL_ETOOBIG (the peer keeps sending while it should wait;
 * close).
 */
#ifndef SL_SMTP_SERVER_H
#define SL_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Longest address kept (RFC 5321 path without the angle brackets). */
#define SMTP_SERVER_MAX_ADDR 254
/* AUTH lines may be longer than max_line, up to this (RFC 4954 §4). */
#define SMTP_SERVER_AUTH_LINE_MAX 12288
/* smtp_server_input() fails with SL_ETOOBIG when this much unprocessed
 * input is already buffered (a peer that ignores our replies). */
#define SMTP_SERVER_MAX_PENDING (1024 * 1024)
/* smtp_server_next() stops executing commands while this much output is
 * waiting to be sent; call it again once the output drained. */
#define SMTP_SERVER_OUTPUT_HIGH (64 * 1024)

struct smtp_server_limits {
	const char *hostname; /* banner and EHLO reply; copied; printable ASCII */
	size_t max_line;      /* longest command or content line incl. CRLF, >= 16 (config default 1000) */
	size_t max_size;      /* longest message content, > 0; advertised in SIZE */
	unsigned max_rcpts;   /* recipients per transaction, > 0; beyond: 452 4.5.3 */
	unsigned max_errors;  /* error replies before 421 4.7.0 and close; 0 = no limit */
	bool tls_available;   /* offer STARTTLS (before TLS only) */
	bool auth_available;  /* offer and accept AUTH PLAIN LOGIN (once TLS is active) */
};

enum smtp_server_event_kind {
	SMTP_SERVER_EV_NONE = 0, /* need input, or blocked until the caller answers */
	SMTP_SERVER_EV_STARTTLS, /* "220 2.0.0" queued: flush it, handshake, smtp_server_tls_started() */
	SMTP_SERVER_EV_AUTH,     /* check ev->auth, answer with smtp_server_auth_result() */
	SMTP_SERVER_EV_MESSAGE,  /* spool ev->msg, answer with smtp_server_message_result() */
	SMTP_SERVER_EV_CLOSE,    /* flush the output, then close; returned once */
};

enum smtp_server_timeout {
	SMTP_SERVER_TIMEOUT_NONE = 0, /* no client timer: waiting on the caller (time the TLS
				       * handshake yourself) or closing */
	SMTP_SERVER_TIMEOUT_COMMAND,  /* waiting for a command line */
	SMTP_SERVER_TIMEOUT_DATA,     /* waiting for message content */
};

enum smtp_server_body {
	SMTP_SERVER_BODY_UNSPEC = 0, /* no BODY= parameter */
	SMTP_SERVER_BODY_7BIT,
	SMTP_SERVER_BODY_8BITMIME,
};

struct smtp_server_auth {
	const char *mechanism; /* "PLAIN" or "LOGIN" */
	const char *username;  /* authentication identity, 1..255 octets, no NUL */
	const char *password;  /* 0..255 octets, no NUL; wiped after the answer */
};

struct smtp_server_message {
	const char *helo;            /* the HELO/EHLO argument */
	bool esmtp;                  /* greeted with EHLO (not HELO) */
	bool tls;                    /* TLS was active */
	const char *tenant;          /* authenticated tenant; NULL if relayed by network */
	const char *mail_from;       /* reverse-path without brackets; "" = null sender */
	uint64_t size;               /* SIZE= as declared, 0 if absent */
	enum smtp_server_body body_type;
	bool smtputf8;               /* SMTPUTF8 given */
	const char *const *rcpts;    /* accepted forward-paths, without brackets */
	size_t n_rcpts;              /* >= 1 */
	const char *body;            /* content: dot-unstuffed lines, each ending in CRLF; */
	size_t body_len;             /* the ".CRLF" terminator line is not included */
};

struct smtp_server_event {
	enum smtp_server_event_kind kind;
	struct smtp_server_auth auth;   /* SMTP_SERVER_EV_AUTH */
	struct smtp_server_message msg; /* SMTP_SERVER_EV_MESSAGE */
};

struct smtp_server;

/* Make a session; the limits are copied. -EINVAL for unusable limits. */
int smtp_server_create(const struct smtp_server_limits *lim, struct smtp_server **out);
/* Free the session and everything its events pointed to. NULL is fine. */
void smtp_server_destroy(struct smtp_server *s);

/* The peer may send without AUTH (it is in a relay network). Read at MAIL. */
void smtp_server_set_relay_allowed(struct smtp_server *s, bool allowed);
/* A synchronous recipient check (a decision over memory or a store read,
 * never I/O that waits): called for each syntactically valid RCPT with
 * the session's tenant (NULL when relayed by network) and the address.
 * It returns 0 to take the recipient, or a code 400..599 with the rest of
 * the reply line in reply ("5.7.1 recipient suppressed (hard_bounce)"),
 * which is sent instead. NULL check: every valid RCPT is taken. */
typedef int smtp_server_rcpt_check_fn(void *ctx, const char *tenant, const char *rcpt,
				      char *reply, size_t replylen);
void smtp_server_set_rcpt_check(struct smtp_server *s, smtp_server_rcpt_check_fn *check,
				void *ctx);
/* The same for the envelope sender: called for each accepted MAIL FROM
 * (the address; "" for the null sender), e.g. to refuse a sending domain
 * that is not verified ("550 5.7.1 sending domain ... is not verified"). */
void smtp_server_set_mail_check(struct smtp_server *s, smtp_server_rcpt_check_fn *check,
				void *ctx);
/* Queue the "220 hostname ESMTP" banner; only the first call does it. */
void smtp_server_greet(struct smtp_server *s);

/* Buffer received plaintext. Ignored once closing. SL_ETOOBIG if the peer
 * piled up SMTP_SERVER_MAX_PENDING bytes, -ENOMEM. */
int smtp_server_input(struct smtp_server *s, const void *data, size_t len);
/* Execute buffered input, queueing replies, until an event or until more
 * input or an answer is needed. Returns the event kind (ev filled in; other
 * members zero) or a negative error (the session is broken: close). */
int smtp_server_next(struct smtp_server *s, struct smtp_server_event *ev);
/* Bytes to send. The caller sends from sl_buf_head() and sl_buf_consume()s
 * what went out. */
struct sl_buf *smtp_server_output(struct smtp_server *s);

/* Close once the output is flushed (QUIT, 421, timeout, fatal errors). */
bool smtp_server_want_close(const struct smtp_server *s);
/* Worth reading more input now? False while blocked on the caller, while
 * output is backlogged and once closing. Input is still accepted. */
bool smtp_server_want_input(const struct smtp_server *s);
/* Which client timer to arm; re-arm it whenever input arrives or the kind
 * changes. */
enum smtp_server_timeout smtp_server_timeout_kind(const struct smtp_server *s);
/* The armed timer fired: queue "421 4.4.2" and close. */
void smtp_server_timeout(struct smtp_server *s);

/* The TLS handshake after SMTP_SERVER_EV_STARTTLS finished: discard every
 * plaintext byte buffered before it (injection defence), forget HELO and
 * any transaction (RFC 3207), mark TLS active. Also valid before any input
 * for implicit TLS (port 465). -EINVAL otherwise. If the handshake fails,
 * just close. */
int smtp_server_tls_started(struct smtp_server *s);
/* Answer SMTP_SERVER_EV_AUTH: "235 2.7.0" and tenant_name (copied) becomes
 * the session's tenant, or "535 5.7.8" (counts as an error). -EINVAL if no
 * AUTH event is waiting (also once a timeout closed the session). */
int smtp_server_auth_result(struct smtp_server *s, bool ok, const char *tenant_name);
/* Answer every MAIL FROM with "code enhanced text" (e.g. 550 5.7.1 for a
 * tenant awaiting review) instead of starting a transaction, until called
 * again with code 0. The caller sets it whenever the session's tenant or
 * its state may have changed (after AUTH, before feeding input). -EINVAL
 * for a code outside 400..599 or a line over 250 bytes. */
int smtp_server_set_mail_refusal(struct smtp_server *s, int code, const char *enhanced,
				 const char *text);
/* Answer SMTP_SERVER_EV_MESSAGE with "code enhanced text", e.g.
 * (250, "2.0.0", "Ok: queued as X") only after the message is durable.
 * enhanced may be NULL; control characters in text become spaces. code 421
 * also closes the session. Ends the transaction either way. -EINVAL if no
 * message is waiting or code is not 200..599. */
int smtp_server_message_result(struct smtp_server *s, int code, const char *enhanced,
			       const char *text);

#endif
