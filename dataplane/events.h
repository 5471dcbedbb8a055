/*
 * events.h — the delivery event log: one JSON object per line (JSON lines)
 * for every reception and every recipient outcome, for operators, log
 * shippers and billing. Not the diagnostic log (common/log.h).
 *
 * A line looks like (one line, wrapped here):
 *   {"time":"2026-11-23T09:34:27.123Z","event":"delivered",
 *    "id":"0123456789abcdef","tenant":"acme","stream":"marketing",
 *    "mail_from":"b+x@bounce.acme.example","rcpt":"bob@example.com",
 *    "domain":"example.com","message_id":"<a@b>","source_ip":"198.51.100.7",
 *    "site":"mx.example.com","response":"250 2.0.0 Ok","attempt":1,
 *    "queued_ms":812,"session_ms":96,"size":48213}
 * Keys always come in this order. "time" is the event's wall clock in UTC
 * with milliseconds. String fields that are NULL are left out, "attempt" is
 * left out while it is 0, "next_attempt" (ISO-8601 like "time") appears
 * only on "deferred" lines; the other numbers are always there. "tls"
 * follows "size" on delivered/deferred/bounced/expired lines of an attempt
 * that reached a receiver (docs/tls.md): null when the attempt ran in
 * plaintext and its policy allowed that, else
 *   {"policy":"verify","version":"TLSv1.3","cipher":"TLS_AES_256_GCM_SHA384",
 *    "verified":true}
 * with "version" and "cipher" null when TLS did not run, and "failure"
 * (an RFC 8460 result type such as "starttls-not-supported") last when
 * the TLS policy failed. Strings are
 * escaped by common/json.h, so any bytes give valid UTF-8 JSON.
 *
 * struct events owns an fd and a buffer; it is not thread-safe: give each
 * worker its own, opened on the same path. Every write(2) carries whole
 * lines to an O_APPEND file, so lines from several writers never
 * interleave. events_write() only buffers (and flushes by itself past
 * 64 KiB); the daemon calls events_flush() once per loop iteration and
 * events_close() at exit.
 *
 * Errors: negative errno from open/mkdir/write, -ENOMEM. If flushing
 * fails, the unwritten lines stay buffered and the next flush retries
 * them; once EVENTS_MAX_PENDING bytes are waiting, events_write() drops
 * new lines (returning the flush error) and counts them in
 * events_dropped().
 */
#ifndef SL_EVENTS_H
#define SL_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

enum event_kind {
	EVENT_RECEPTION, /* "reception": accepted into the spool */
	EVENT_DELIVERED, /* "delivered" */
	EVENT_DEFERRED,  /* "deferred": temporary failure, will retry */
	EVENT_BOUNCED,   /* "bounced": permanent failure */
	EVENT_EXPIRED,   /* "expired": gave up after max age */
	EVENT_DSN_SENT,  /* "dsn_sent": a delivery status notification went out */
	EVENT_PURGED,    /* "purged": removed by an operator or tenant (queue purge) */
	/* "queue_stuck": a destination queue's oldest message passed
	 * queues.stuck_age, or it got the same deferral stuck_deferrals times
	 * in a row; tenant/domain/stream name the queue, response the last
	 * reply, queued_ms the oldest message's age. No rcpt. */
	EVENT_QUEUE_STUCK,
	/* Reputation (dataplane/reputation.h); "response" carries the why. */
	EVENT_SUPPRESSED,     /* "suppressed": a recipient refused at injection */
	EVENT_ASYNC_BOUNCE,   /* "async_bounce": a DSN to a VERP return path */
	EVENT_COMPLAINT,      /* "complaint": an ARF report (rcpt: the complainer) */
	EVENT_POLICY,         /* "policy": a threshold decision (response: the audit text) */
	EVENT_RESPONSE_RULE,  /* "response_rule": a receiver response rule fired */
	/* Abuse signals (docs/abuse.md); "response" carries the why. */
	EVENT_LINK_LISTED,    /* "link_listed": a message links to a blocklisted host */
	EVENT_IP_BLOCKLISTED, /* "ip_blocklisted": a source IP is listed (source_ip, site: the zone) */
	EVENT_IP_DELISTED,    /* "ip_delisted": ... and no longer is */
};

/* The TLS of a delivery attempt (dataplane/tls_policy.h). */
struct event_tls {
	const char *policy;  /* tls_policy_name(): "opportunistic", "require", ... */
	bool active;         /* the session ran over TLS */
	const char *version; /* active: "TLSv1.3" ... */
	const char *cipher;  /* active: "TLS_AES_256_GCM_SHA384" ... */
	bool verified;       /* active: chain and MX host name verified */
	const char *failure; /* RFC 8460 result type when the policy failed, else NULL */
};

struct event_outcome {
	enum event_kind kind;
	uint64_t time_ms;     /* wall clock, ms since the Unix epoch */
	const char *id;       /* queue id, 16 hex chars */
	const char *tenant;
	const char *stream;   /* "transactional" | "marketing" */
	const char *mail_from;
	const char *rcpt;
	const char *message_id;
	const char *source_ip; /* may be NULL (no attempt yet) */
	const char *site;      /* destination site (MX host or route); may be NULL */
	const char *domain;    /* recipient domain */
	const char *response;  /* "250 2.0.0 Ok" or local error text; may be NULL */
	unsigned attempt;      /* 1-based attempt number; 0 = no attempt yet */
	uint64_t queued_ms;    /* time spent since reception */
	uint64_t session_ms;   /* duration of the delivery attempt/session part */
	uint64_t next_attempt_ms; /* DEFERRED: wall clock of the next attempt, ms since epoch */
	uint64_t size;         /* message size in bytes */
	const struct event_tls *tls; /* NULL: no "tls" key (no connection was made) */
};

/* Buffered bytes that trigger a flush inside events_write(). */
#define EVENTS_FLUSH_AT (64 * 1024)
/* Buffered bytes past which events_write() drops lines (flushes failing). */
#define EVENTS_MAX_PENDING (8 * 1024 * 1024)

struct events;

/*
 * Open the log at path for appending ("-" is stdout, which is never
 * closed). The file is created 0640 and its missing parent directories
 * 0750; the fd is O_CLOEXEC.
 */
int events_open(const char *path, struct events **out);
/*
 * Format one line into the buffer, flushing past EVENTS_FLUSH_AT. 0 means
 * the line is recorded (a failed automatic flush is retried and reported
 * by the next events_flush()); negative means it was dropped: -EINVAL for
 * an unknown kind, -ENOMEM, or the flush error once the buffer is full.
 */
int events_write(struct events *ev, const struct event_outcome *o);
/* Write all buffered lines; 0 when the buffer is empty afterwards. */
int events_flush(struct events *ev);
/*
 * Flush to the old file, then open path again (after log rotation renamed
 * it). On failure the old fd stays in use and the error is returned.
 */
int events_reopen(struct events *ev);
/* Lines dropped because the buffer was full of unflushable data. */
uint64_t events_dropped(const struct events *ev);
/* Flush (best effort), close and free. NULL is a no-op. */
void events_close(struct events *ev);

/*
 * Format ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (25
 * bytes with the NUL). Exposed for tests and other JSON writers.
 */
void events_format_time(uint64_t ms, char out[25]);

#endif
