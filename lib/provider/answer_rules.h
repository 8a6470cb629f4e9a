/*
 * answer_rules: what the gateway does to one provider's answers on their way
 * to the client, from its settings (core/config.h) and its type's defaults:
 * whether answers cut by an output cap are continued, and the rules that
 * rewrite their text (proto/sanitize.h). Kiro has both on by default, with
 * agw_sanitize_rules_kiro_default as its own rules; the other types have
 * neither unless configured.
 *
 * Ownership: agw_answer_sanitize_rules returns a rule set the caller frees
 * with agw_sanitize_rules_free.
 */
#ifndef AGW_ANSWER_RULES_H
#define AGW_ANSWER_RULES_H

#include "core/config.h"
#include "proto/sanitize.h"

/* 1 when p's answers cut by an output cap the client did not set are
 * continued. */
int agw_answer_continues(const agw_provider_cfg *p);

/* 1 when p's answers are rewritten (there is at least one rule). */
int agw_answer_sanitizes(const agw_provider_cfg *p);

/* The rules for p's answers: the type's own (unless sanitize_defaults is
 * off), then the configured ones; NULL when sanitizing is off or there are
 * none. */
agw_sanitize_rules *agw_answer_sanitize_rules(const agw_provider_cfg *p);

#endif
