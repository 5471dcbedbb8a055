/*
 * bounce.h — classifying delivery failures ("bounces") into one reason.
 *
 * Two inputs: a bare SMTP reply as a receiver sent it ("550 5.1.1 <x@y>:
 * User unknown", multi-line replies welcome), or a whole message that
 * arrived at a return path: an RFC 3464 multipart/report DSN, a
 * non-standard bounce (Postfix, Exim, Sendmail, qmail, Exchange/Office 365,
 * Gmail, Yahoo), an ARF complaint (-> feedback, see arf.h), an auto-reply
 * (-> vacation) or a success DSN (-> delivered).
 *
 * The reason vocabulary is sisimai's (BOUNCE_R_* below, names via
 * bounce_reason_name()). Which reply maps to which reason is data, not
 * code: struct bounce_rules is loaded from a rules file (format and order
 * of evaluation in docs/bounces.md and configs/bounce-rules.conf). The
 * rules are immutable once loaded and may be shared between threads.
 *
 * A DSN may report several recipients; the result describes ONE: the
 * first recipient whose Action is "failed" (else the first "delayed",
 * else the first at all); n_recipients says how many the report listed.
 *
 * Input is untrusted: parsing is bounded (BOUNCE_MSG_MAX bytes, MIME depth
 * and part count limits), never reads out of bounds and never crashes;
 * fields are cut to their buffer sizes and control bytes become spaces.
 *
 * Errors: SL_ECONFIG a bad rules file (err holds "FILE:LINE: message"),
 * SL_EPROTO the message is not recognisable as any kind of report (the
 * result is still filled, reason undefined), -ENOMEM, -errno from open().
 */
#ifndef SL_BOUNCE_H
#define SL_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#define BOUNCE_MSG_MAX (4u << 20) /* bytes of a message looked at */

enum bounce_reason {
	BOUNCE_R_UNDEFINED = 0,
	BOUNCE_R_USERUNKNOWN,
	BOUNCE_R_MAILBOXFULL,
	BOUNCE_R_HOSTUNKNOWN,
	BOUNCE_R_FILTERED,
	BOUNCE_R_BLOCKED,
	BOUNCE_R_SPAMDETECTED,
	BOUNCE_R_POLICYVIOLATION,
	BOUNCE_R_REJECTED,
	BOUNCE_R_TOOMANYCONN,
	BOUNCE_R_SPEEDING,
	BOUNCE_R_BADREPUTATION,
	BOUNCE_R_AUTHFAILURE,
	BOUNCE_R_REQUIREPTR,
	BOUNCE_R_NOTCOMPLIANTRFC,
	BOUNCE_R_SECURITYERROR,
	BOUNCE_R_MESGTOOBIG,
	BOUNCE_R_EXCEEDLIMIT,
	BOUNCE_R_SYSTEMERROR,
	BOUNCE_R_SYSTEMFULL,
	BOUNCE_R_NETWORKERROR,
	BOUNCE_R_CONTENTERROR,
	BOUNCE_R_NOTACCEPT,
	BOUNCE_R_NORELAYING,
	BOUNCE_R_SUSPEND,
	BOUNCE_R_EXPIRED,
	BOUNCE_R_SYNTAXERROR,
	BOUNCE_R_ONHOLD,
	BOUNCE_R_HASMOVED,
	BOUNCE_R_MAILERERROR,
	BOUNCE_R_VIRUSDETECTED,
	BOUNCE_R_FAILEDSTARTTLS,
	BOUNCE_R_FEEDBACK,  /* an ARF complaint */
	BOUNCE_R_VACATION,  /* an auto-reply, not a bounce */
	BOUNCE_R_DELIVERED, /* a success DSN */
	BOUNCE_R_COUNT
};

struct bounce_result {
	enum bounce_reason reason;
	char recipient[256];  /* failed recipient, no angle brackets; "" if unknown */
	char status[16];      /* RFC 3463 status, e.g. "5.1.1"; "" if none */
	char diagnostic[512]; /* the receiver's words, on one line; "" if none */
	int code;             /* basic SMTP reply code, 0 if none */
	bool hard;            /* permanent failure (not for feedback/vacation/delivered) */
	unsigned n_recipients; /* recipients listed in a DSN (0 for replies) */
};

struct bounce_rules;

/* The reason's name ("userunknown"); "undefined" for out-of-range values. */
const char *bounce_reason_name(enum bounce_reason r);
/* The reason called name (case-insensitive), or -1. */
int bounce_reason_from_name(const char *name);

/* Load a rules file. On success *out must go to bounce_rules_free(). */
int bounce_rules_load(const char *path, struct bounce_rules **out, char *err, size_t errlen);
/* The same from text in memory; name is used in error messages. */
int bounce_rules_parse(const char *text, size_t len, const char *name,
		       struct bounce_rules **out, char *err, size_t errlen);
void bounce_rules_free(struct bounce_rules *r);
/* Number of rules loaded. */
size_t bounce_rules_count(const struct bounce_rules *r);

/* Classify a bare SMTP reply (one or more lines). 0, or SL_EPROTO if it
 * does not start with a reply code (it is still classified by its text). */
int bounce_classify_reply(const struct bounce_rules *rules, const char *reply,
			  struct bounce_result *out);
/* Classify a whole message (RFC 5322 text, CRLF or LF). 0, SL_EPROTO
 * (not a report of any kind; reason undefined), -ENOMEM. */
int bounce_classify_message(const struct bounce_rules *rules, const char *msg, size_t len,
			    struct bounce_result *out);

#endif
