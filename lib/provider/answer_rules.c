#include "provider/answer_rules.h"

static int type_default(const agw_provider_cfg *p)
{
    return p->type == AGW_PROVIDER_KIRO;
}

int agw_answer_continues(const agw_provider_cfg *p)
{
    return p->continuation < 0 ? type_default(p) : p->continuation;
}

static int has_own_rules(const agw_provider_cfg *p)
{
    return p->sanitize_defaults && p->type == AGW_PROVIDER_KIRO;
}

int agw_answer_sanitizes(const agw_provider_cfg *p)
{
    int on = p->sanitize < 0 ? type_default(p) : p->sanitize;
    return on && (has_own_rules(p) || p->n_sanitize_rules > 0);
}

agw_sanitize_rules *agw_answer_sanitize_rules(const agw_provider_cfg *p)
{
    if (!agw_answer_sanitizes(p))
        return NULL;
    agw_sanitize_rules *r = has_own_rules(p) ? agw_sanitize_rules_kiro_default()
                                             : agw_sanitize_rules_new();
    if (!r)
        return NULL;
    static const agw_sanitize_kind kinds[] = {
        [AGW_RULE_REPLACE] = AGW_SANITIZE_LITERAL,
        [AGW_RULE_REPLACE_WORD] = AGW_SANITIZE_WORD,
        [AGW_RULE_REMOVE] = AGW_SANITIZE_REGION,
    };
    for (size_t i = 0; i < p->n_sanitize_rules; i++) {
        const agw_rule_cfg *c = &p->sanitize_rules[i];
        /* The configuration checked each rule against what the engine takes;
         * one refused here is a bug, and leaving it out beats failing calls. */
        if (agw_sanitize_rules_add(r, kinds[c->kind], agw_str_c(c->pattern), agw_str_c(c->text)))
            agw_log_error("provider %s: sanitize rule %lu refused", p->name, (unsigned long)i);
    }
    agw_sanitize_rules_set_thinking(r, p->sanitize_thinking);
    return r;
}
