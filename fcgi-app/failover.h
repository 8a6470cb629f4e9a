/*
 * failover: a model call's attempts on its ordered candidates.
 *
 * Each attempt sends the call to one candidate: the client's bytes when the
 * provider speaks the client's protocol (only the model value may change),
 * else the request decoded into the IR and encoded for the provider, with a
 * bridge converting the answer back. While nothing has reached the client, a
 * retryable failure (connect error, timeout, broken answer, 429, 5xx) moves
 * on to the next candidate; the last attempt, or any failure after the first
 * byte, is answered. Every attempt feeds the load balancer's statistics and
 * the metrics; the attempt that answers leaves the usage record and settles
 * the key's TPM reservation with the tokens it used.
 */
#ifndef AGW_FAILOVER_H
#define AGW_FAILOVER_H

#include "model_call.h"

/* Tries mc's candidates in order, at most `max_tries` of them (and at most
 * mc->n_tries). Always leaves an answer with the client (or knows it left). */
void agw_failover_run(agw_request *r, agw_model_call *mc, size_t max_tries);

#endif
