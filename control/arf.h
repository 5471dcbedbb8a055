/*
 * arf.h — parsing feedback (complaint) reports.
 *
 * Understands RFC 5965 ARF (multipart/report; report-type=feedback-report,
 * as Yahoo, AOL SComp, Comcast, Fastmail... send it) and the older
 * non-ARF abuse reports of Microsoft JMRP and AOL: a multipart/mixed
 * message with an explanatory text part ("This is an email abuse report
 * for an email message received from IP ...") and the complained-about
 * message attached (message/rfc822), whose headers carry the recipient
 * (X-HmXmrOriginalRecipient for Microsoft).
 *
 * Fields absent from a report are "" (providers redact recipients). Input
 * is untrusted: bounded, no allocation, values cut to the buffers' sizes
 * with control bytes as spaces. Errors: SL_EPROTO not a feedback report
 * (the struct is then zeroed apart from what was found).
 */
#ifndef SL_ARF_H
#define SL_ARF_H

#include <stddef.h>

enum arf_format {
	ARF_NONE = 0,
	ARF_RFC5965, /* multipart/report; report-type=feedback-report */
	ARF_JMRP,    /* Microsoft JMRP without a feedback-report part */
	ARF_AOL,     /* AOL's legacy non-ARF abuse report */
};

struct arf_report {
	enum arf_format format;
	char feedback_type[32];       /* "abuse", "fraud", ...; "abuse" for JMRP/AOL */
	char original_mail_from[256]; /* no angle brackets */
	char original_rcpt_to[256];   /* first one; no angle brackets */
	char source_ip[64];
	char arrival_date[128];
	char reported_domain[256];
	char user_agent[128];
	char message_id[256]; /* of the reported message, with angle brackets */
};

/* Parse a whole report message. 0 ok; SL_EPROTO not a feedback report. */
int arf_parse(const char *msg, size_t len, struct arf_report *out);
/* "rfc5965", "jmrp", "aol" or "none". */
const char *arf_format_name(enum arf_format f);

#endif
