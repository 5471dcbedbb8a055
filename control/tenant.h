/*
 * tenant.h — the tenant lifecycle: states, events, the transition table and
 * what each state lets the data path do.
 *
 * Pure functions over enums: no I/O, no clock, no allocation. The control
 * store (store.h) applies a transition and its audit entry in one
 * transaction; the data path asks tenant_may_inject() / tenant_may_deliver()
 * of the state it last read and answers refusals with tenant_refusal().
 *
 *   pending_review  new tenants: everything works except sending; injection
 *                   is refused (550 5.7.1 / HTTP 403 "awaiting review")
 *   sandbox         may send only to the tenant's own verified addresses
 *   active          normal sending
 *   warned          sending; the policy engine has flagged the tenant
 *   on_hold         mail is accepted and kept but not delivered until the
 *                   grace deadline (stored with the tenant) passes or an
 *                   operator acts
 *   disabled        injection refused, nothing delivered
 *
 * The table (anything not listed is refused):
 *   pending_review  operator_approve -> active, operator_sandbox -> sandbox,
 *                   operator_disable -> disabled
 *   sandbox         operator_approve -> active, operator_hold|policy_hold ->
 *                   on_hold, operator_disable|policy_disable -> disabled
 *   active          policy_warn -> warned, operator_hold|policy_hold ->
 *                   on_hold, operator_disable|policy_disable -> disabled,
 *                   operator_sandbox -> sandbox
 *   warned          policy_recover|operator_resume -> active, operator_hold|
 *                   policy_hold -> on_hold, operator_disable|policy_disable
 *                   -> disabled, operator_sandbox -> sandbox
 *   on_hold         operator_resume -> active, operator_sandbox -> sandbox,
 *                   operator_disable|policy_disable|grace_expired -> disabled
 *   disabled        operator_resume -> active, operator_sandbox -> sandbox
 * Only an operator takes a tenant out of review, out of a hold or out of
 * disabled; the policy engine only escalates, except policy_recover from
 * warned.
 *
 * Errors: -EPERM the event is not allowed in that state (the reason says
 * why; the admin API answers 409), -EINVAL a state or event out of range.
 */
#ifndef SL_TENANT_H
#define SL_TENANT_H

#include <stdbool.h>

enum tenant_state {
	TENANT_PENDING_REVIEW = 0,
	TENANT_SANDBOX = 1,
	TENANT_ACTIVE = 2,
	TENANT_WARNED = 3,
	TENANT_ON_HOLD = 4,
	TENANT_DISABLED = 5,
};
#define TENANT_STATE_COUNT 6

enum tenant_event {
	TENANT_EV_OPERATOR_APPROVE = 0,
	TENANT_EV_OPERATOR_HOLD = 1,
	TENANT_EV_OPERATOR_RESUME = 2,
	TENANT_EV_OPERATOR_DISABLE = 3,
	TENANT_EV_OPERATOR_SANDBOX = 4,
	TENANT_EV_POLICY_WARN = 5,
	TENANT_EV_POLICY_HOLD = 6,
	TENANT_EV_POLICY_DISABLE = 7,
	TENANT_EV_POLICY_RECOVER = 8,
	TENANT_EV_GRACE_EXPIRED = 9,
};
#define TENANT_EVENT_COUNT 10

/* "pending_review", "sandbox", ...; "?" when out of range. */
const char *tenant_state_name(enum tenant_state s);
/* The state named name (as tenant_state_name spells it), or -EINVAL. */
int tenant_state_parse(const char *name, enum tenant_state *out);
/* "operator_approve", ...; "?" when out of range. */
const char *tenant_event_name(enum tenant_event ev);
int tenant_event_parse(const char *name, enum tenant_event *out);
/* True for the operator_* events (the others come from the policy engine). */
bool tenant_event_is_operator(enum tenant_event ev);

/* Where ev takes a tenant in state from: 0 and *to set, or -EPERM with a
 * static English *reason (reason may be NULL), or -EINVAL. */
int tenant_transition(enum tenant_state from, enum tenant_event ev, enum tenant_state *to,
		      const char **reason);

/* May the tenant submit mail at all (SMTP MAIL/RCPT, HTTP inject)? False for
 * pending_review and disabled. A sandbox tenant may inject, but only to its
 * verified addresses (tenant_restricts_recipients). */
bool tenant_may_inject(enum tenant_state s);
/* True for sandbox: each recipient must be one of the tenant's verified
 * addresses, else tenant_refusal(TENANT_REFUSE_SANDBOX_RCPT). */
bool tenant_restricts_recipients(enum tenant_state s);
/* May the scheduler deliver the tenant's queued mail now? False for
 * pending_review, on_hold and disabled (on_hold mail stays queued). */
bool tenant_may_deliver(enum tenant_state s);

/* What the data path says when it refuses. */
enum tenant_refusal_kind {
	TENANT_REFUSE_PENDING_REVIEW = 0, /* injection while pending_review */
	TENANT_REFUSE_DISABLED = 1,       /* injection while disabled */
	TENANT_REFUSE_SANDBOX_RCPT = 2,   /* sandbox tenant, recipient not verified */
};

struct tenant_refusal {
	int smtp_code;        /* 550 */
	const char *enhanced; /* "5.7.1" */
	const char *text;     /* "Account awaiting operator review" */
	int http_status;      /* 403 */
	const char *error;    /* machine-readable JSON error code, "tenant_pending_review" */
};

/* The refusal for kind; NULL when kind is out of range. Static storage. */
const struct tenant_refusal *tenant_refusal(enum tenant_refusal_kind kind);
/* The refusal for injecting in state s, or NULL when s may inject. */
const struct tenant_refusal *tenant_inject_refusal(enum tenant_state s);

#endif
