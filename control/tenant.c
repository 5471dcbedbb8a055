/*
 * tenant.c — the tenant lifecycle table and decisions; see tenant.h.
 */
#include "tenant.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static const char *const state_names[TENANT_STATE_COUNT] = {
	[TENANT_PENDING_REVIEW] = "pending_review",
	[TENANT_SANDBOX] = "sandbox",
	[TENANT_ACTIVE] = "active",
	[TENANT_WARNED] = "warned",
	[TENANT_ON_HOLD] = "on_hold",
	[TENANT_DISABLED] = "disabled",
};

static const char *const event_names[TENANT_EVENT_COUNT] = {
	[TENANT_EV_OPERATOR_APPROVE] = "operator_approve",
	[TENANT_EV_OPERATOR_HOLD] = "operator_hold",
	[TENANT_EV_OPERATOR_RESUME] = "operator_resume",
	[TENANT_EV_OPERATOR_DISABLE] = "operator_disable",
	[TENANT_EV_OPERATOR_SANDBOX] = "operator_sandbox",
	[TENANT_EV_POLICY_WARN] = "policy_warn",
	[TENANT_EV_POLICY_HOLD] = "policy_hold",
	[TENANT_EV_POLICY_DISABLE] = "policy_disable",
	[TENANT_EV_POLICY_RECOVER] = "policy_recover",
	[TENANT_EV_GRACE_EXPIRED] = "grace_expired",
};

/* -1 marks a refused transition. */
#define NO -1
#define PR TENANT_PENDING_REVIEW
#define SB TENANT_SANDBOX
#define AC TENANT_ACTIVE
#define WA TENANT_WARNED
#define OH TENANT_ON_HOLD
#define DI TENANT_DISABLED

static const signed char table[TENANT_STATE_COUNT][TENANT_EVENT_COUNT] = {
	/*            approve hold resume disable sandbox  warn phold pdisable recover grace */
	[PR] = { AC, NO, NO, DI, SB, NO, NO, NO, NO, NO },
	[SB] = { AC, OH, NO, DI, NO, NO, OH, DI, NO, NO },
	[AC] = { NO, OH, NO, DI, SB, WA, OH, DI, NO, NO },
	[WA] = { NO, OH, AC, DI, SB, NO, OH, DI, AC, NO },
	[OH] = { NO, NO, AC, DI, SB, NO, NO, DI, NO, DI },
	[DI] = { NO, NO, AC, NO, SB, NO, NO, NO, NO, NO },
};

/* Why a refused transition is refused: the first matching rule wins. */
static const char *refusal_reason(enum tenant_state from, enum tenant_event ev)
{
	if (table[from][ev] == NO && ev == TENANT_EV_OPERATOR_APPROVE)
		return from == TENANT_ACTIVE || from == TENANT_WARNED
			       ? "tenant is already approved"
			       : "approve applies to tenants in review or sandbox; use resume";
	if (from == TENANT_PENDING_REVIEW)
		return "tenant awaits review: only approve, sandbox or disable apply";
	if (from == TENANT_DISABLED)
		return ev == TENANT_EV_OPERATOR_DISABLE ? "tenant is already disabled"
							: "only an operator may resume or sandbox a disabled tenant";
	switch (ev) {
	case TENANT_EV_OPERATOR_HOLD:
	case TENANT_EV_POLICY_HOLD:
		return from == TENANT_ON_HOLD ? "tenant is already on hold"
					      : "hold does not apply in this state";
	case TENANT_EV_OPERATOR_RESUME:
		return "resume applies to warned, on_hold or disabled tenants";
	case TENANT_EV_OPERATOR_SANDBOX:
		return "tenant is already in the sandbox";
	case TENANT_EV_POLICY_WARN:
		return from == TENANT_WARNED ? "tenant is already warned"
					     : "warn applies to active tenants only";
	case TENANT_EV_POLICY_RECOVER:
		return from == TENANT_ON_HOLD ? "a held tenant leaves hold only by an operator or grace expiry"
					      : "recover applies to warned tenants only";
	case TENANT_EV_GRACE_EXPIRED:
		return "grace expiry applies to tenants on hold only";
	default:
		return "transition not allowed";
	}
}

const char *tenant_state_name(enum tenant_state s)
{
	return (unsigned)s < TENANT_STATE_COUNT ? state_names[s] : "?";
}

int tenant_state_parse(const char *name, enum tenant_state *out)
{
	for (int i = 0; name && i < TENANT_STATE_COUNT; i++)
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum tenant_state)i;
			return 0;
		}
	return -EINVAL;
}

const char *tenant_event_name(enum tenant_event ev)
{
	return (unsigned)ev < TENANT_EVENT_COUNT ? event_names[ev] : "?";
}

int tenant_event_parse(const char *name, enum tenant_event *out)
{
	for (int i = 0; name && i < TENANT_EVENT_COUNT; i++)
		if (strcmp(name, event_names[i]) == 0) {
			*out = (enum tenant_event)i;
			return 0;
		}
	return -EINVAL;
}

bool tenant_event_is_operator(enum tenant_event ev)
{
	return ev >= TENANT_EV_OPERATOR_APPROVE && ev <= TENANT_EV_OPERATOR_SANDBOX;
}

int tenant_transition(enum tenant_state from, enum tenant_event ev, enum tenant_state *to,
		      const char **reason)
{
	if ((unsigned)from >= TENANT_STATE_COUNT || (unsigned)ev >= TENANT_EVENT_COUNT) {
		if (reason)
			*reason = "unknown state or event";
		return -EINVAL;
	}
	if (table[from][ev] == NO) {
		if (reason)
			*reason = refusal_reason(from, ev);
		return -EPERM;
	}
	*to = (enum tenant_state)table[from][ev];
	if (reason)
		*reason = NULL;
	return 0;
}

bool tenant_may_inject(enum tenant_state s)
{
	return (unsigned)s < TENANT_STATE_COUNT && s != TENANT_PENDING_REVIEW && s != TENANT_DISABLED;
}

bool tenant_restricts_recipients(enum tenant_state s)
{
	return s == TENANT_SANDBOX;
}

bool tenant_may_deliver(enum tenant_state s)
{
	return s == TENANT_SANDBOX || s == TENANT_ACTIVE || s == TENANT_WARNED;
}

static const struct tenant_refusal refusals[] = {
	[TENANT_REFUSE_PENDING_REVIEW] = { 550, "5.7.1", "Account awaiting operator review", 403,
					   "tenant_pending_review" },
	[TENANT_REFUSE_DISABLED] = { 550, "5.7.1", "Account disabled", 403, "tenant_disabled" },
	[TENANT_REFUSE_SANDBOX_RCPT] = { 550, "5.7.1",
					 "Sandbox account may send only to its verified addresses", 403,
					 "sandbox_recipient_not_verified" },
};

const struct tenant_refusal *tenant_refusal(enum tenant_refusal_kind kind)
{
	if ((unsigned)kind >= sizeof refusals / sizeof refusals[0])
		return NULL;
	return &refusals[kind];
}

const struct tenant_refusal *tenant_inject_refusal(enum tenant_state s)
{
	if (s == TENANT_PENDING_REVIEW)
		return &refusals[TENANT_REFUSE_PENDING_REVIEW];
	if (s == TENANT_DISABLED || (unsigned)s >= TENANT_STATE_COUNT)
		return &refusals[TENANT_REFUSE_DISABLED];
	return NULL;
}
