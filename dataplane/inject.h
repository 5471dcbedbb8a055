/*
 * inject.h — HTTP injection: a JSON batch of messages in, spooled mail out.
 *
 * Two halves:
 *
 * 1. inject_parse() (pure, any thread, fuzzed) reads a request body
 *        {"messages": [ {"from": F, "to": [R...], "raw": "<RFC 5322>"}
 *                     | {"from": F, "to": [R...], "subject": S, "text": T,
 *                        "html": H, "headers": {N: V...},
 *                        "stream": "transactional" | "marketing"} ]}
 *    ("stream" is allowed with "raw" too) and turns every message into an
 *    envelope plus an RFC 5322 message with CRLF line endings: raw ones
 *    get bare LFs turned into CRLF; structured ones are built with Date,
 *    From, To, Subject, MIME-Version and text/plain, text/html or
 *    multipart/alternative quoted-printable UTF-8 parts; non-ASCII header
 *    text is RFC 2047-encoded. Message-ID is left to the acceptance path
 *    (accept.h), which adds one from the queue id when it is missing.
 *    Structural errors (bad JSON, wrong types, unknown or missing fields,
 *    too many messages, a message over the size limit) fail the whole
 *    request with -EINVAL and a message naming the field, e.g.
 *    "messages[1].to[0]: expected a string". Bad addresses do not: a bad
 *    "from" rejects that message, a bad or surplus recipient rejects that
 *    recipient; each carries its reason into the reply.
 *
 * 2. inject_submit() (event-loop thread) hands every message that still
 *    has recipients to the acceptance path shared with SMTP and calls
 *    done once every one of them is committed to the spool or failed.
 *    inject_reply_json() renders the per-message, per-recipient result.
 *
 * Ownership: the batch owns everything in it; inject_batch_free() frees
 * it. Between inject_submit() and done the batch must stay alive and
 * untouched by the caller.
 *
 * Errors: -EINVAL (request invalid: see err), -ENOMEM.
 */
#ifndef SL_INJECT_H
#define SL_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accept.h"
#include "buf.h"
#include "config.h"

#define INJECT_DEFAULT_MAX_MESSAGES 100

struct inject_limits {
	size_t max_messages;     /* per batch (0: INJECT_DEFAULT_MAX_MESSAGES) */
	size_t max_rcpts;        /* per message; beyond: rejected recipients (0: 1000) */
	size_t max_message_size; /* bytes of the built message (0: no limit) */
};

enum inject_status {
	INJECT_PENDING = 0,  /* not submitted yet */
	INJECT_ACCEPTED = 1, /* durable in the spool, queued as id */
	INJECT_REJECTED = 2, /* reason says why */
};

struct inject_rcpt {
	char *addr;
	enum inject_status status;
	const char *reason;  /* static text; NULL while accepted/pending */
};

struct inject_message {
	char *mail_from;            /* envelope sender (address only) */
	struct inject_rcpt *rcpts;
	size_t n_rcpts;
	int stream;                 /* enum sl_stream, or -1: header / tenant default */
	struct sl_buf body;         /* the RFC 5322 message */
	enum inject_status status;
	const char *reason;         /* why the whole message was rejected */
	uint64_t id;                /* queue id once accepted */
	/* internal */
	struct accept_msg am;
	const char **rcpt_ptrs;
	struct inject_batch *batch;
};

struct inject_batch {
	struct inject_message *msgs;
	size_t n_msgs;
	/* set by inject_submit's caller */
	const struct sl_tenant_cfg *tenant;
	char peer[160];             /* who injects (e.g. "token:ID"), for Received */
	void (*done)(struct inject_batch *b, void *ctx); /* loop thread */
	void *ctx;
	/* internal */
	struct sl_tenant_cfg synth_tenant;
	char received_from[192];
	size_t pending;
};

/* Parse and build a request body (see above). now_ms dates structured
 * messages and seeds their MIME boundaries. 0 with *out filled, or
 * -EINVAL with a message in err, or -ENOMEM. */
int inject_parse(const char *json, size_t len, const struct inject_limits *lim,
		 uint64_t now_ms, struct inject_batch *out, char *err, size_t errlen);
void inject_batch_free(struct inject_batch *b);

/* Would the recipients be accepted as addresses? (local@domain, no spaces,
 * controls or brackets, a dotted domain of letters, digits and hyphens or
 * an address literal, at most 254 bytes.) */
bool inject_address_valid(const char *addr);

/* Loop thread: accept every message of b that is not rejected yet through
 * acc as tenant b->tenant (a tenant known only to the control store gets a
 * stand-in with the default stream and pool: pass t = NULL and name).
 * b->done runs once all are committed or failed — never before this
 * returns. 0, or a negative code when nothing was started (done not called). */
int inject_submit(struct accept *acc, struct inject_batch *b, const char *tenant_name);

/* Append {"accepted": N, "rejected": N, "messages": [{"index": i,
 * "status": "accepted", "id": "<16 hex>", "message_id": "<...>",
 * "recipients": [{"rcpt": "...", "status": "accepted"}|{..., "status":
 * "rejected", "reason": "..."}]}|{"index": i, "status": "rejected",
 * "reason": "..."}]} to out. */
int inject_reply_json(const struct inject_batch *b, struct sl_buf *out);

/* Helpers of the message builder, exposed for tests. */
/* Append value as RFC 2047 encoded-words (UTF-8, B) when it has non-ASCII
 * bytes, folding to keep lines short; verbatim otherwise. name_len is the
 * length of "Name: " already on the line. */
int inject_header_encode(struct sl_buf *out, const char *value, size_t name_len);
/* Append text as quoted-printable with CRLF line endings (LF or CRLF in). */
int inject_qp_encode(struct sl_buf *out, const char *text, size_t len);

#endif
