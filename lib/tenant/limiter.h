/*
 * limiter: per-key QPM and TPM limits, exact across every process and thread
 * of the pool: the state lives in the shared segment (shm.h), so a key gets
 * its limit once per pool, not once per process (README.md, "What a limit
 * means").
 *
 * What a limit of N per minute means (GCRA, the generic cell rate algorithm,
 * which is a token bucket kept as one number):
 *  - Each key has a bucket of N units (requests for QPM, tokens for TPM). It
 *    starts full, holds at most N (the burst is N), and refills continuously
 *    at N per minute: one unit every floor(60 s / N).
 *  - A request is admitted when the bucket holds its cost (1 request; for TPM
 *    the token estimate below), and the cost is taken out. Otherwise it is
 *    refused with 429 and takes nothing.
 *  - So N requests can arrive at once; after that one more every 60/N s. In
 *    any interval of t seconds at most N + N*t/60 units pass, and the
 *    sustained rate is N per minute.
 * The bucket is stored as its theoretical arrival time TAT (the moment it
 * will be full again): admission of cost c at time `now` is
 *     new = max(TAT, now) + c*I;  admit iff new - now <= N*I  (I = 60 s / N)
 * and one compare-and-swap of that 64-bit TAT in shared memory makes it
 * exact under any concurrency, with no lock.
 *
 * TPM reserves an estimate at admission (agw_limit_estimate: a quarter of the
 * request body's bytes, rounded up, plus the request's max_tokens,
 * max_completion_tokens or max_output_tokens) and settles with the real count when the response
 * ends (input + cache read + cache write + output tokens as the provider
 * reported them): the difference is added to or taken from the bucket.
 *  - A request whose estimate exceeds N is refused (too_large in the ticket):
 *    it could spend more than the key may in a minute, and no wait changes
 *    that. Its max_tokens must come down, or the limit go up.
 *  - A bucket may go below zero at settlement (a request without max_tokens
 *    that answered at length), by the whole difference: the key's requests
 *    are refused until the refill has paid the debt. Capping the debt would
 *    forgive spent tokens, and one request every few minutes could then
 *    spend many times N.
 * So while every request spends at most its estimate, the tokens of the
 * requests admitted in any t seconds stay within N + N*t/60; a request that
 * spends more than its estimate pushes that excess onto the requests after it.
 *
 * A changed limit starts with a full bucket: antigw-admin calls
 * agw_limit_reset when it stores a key whose QPM or TPM changed (the TAT of
 * the old limit would otherwise carry over, measured in the old limit's
 * units: a bucket emptied at 1 per minute would stay empty at 30).
 *
 * When both limits are set, QPM is taken first; a request that TPM refuses
 * gets its request unit back at once. Between the two steps another request
 * of the same key may see one unit less, so at the exact edge of both limits
 * at once a request can be refused that a single lock would have admitted;
 * never the other way round: nothing is ever over-admitted.
 */
#ifndef AGW_LIMITER_H
#define AGW_LIMITER_H

#include "core/core.h"
#include "state/shm.h"

/* Limits are per minute; larger values are refused by the admin API. */
#define AGW_LIMIT_MAX INT64_C(1000000000)

/* ---- admission against the shared segment ---- */

typedef struct {
    int64_t qpm; /* 0 = no limit */
    int64_t tpm; /* 0 = no limit */
} agw_limit_policy;

typedef enum { AGW_LIMIT_ADMITTED = 0, AGW_LIMIT_BY_QPM, AGW_LIMIT_BY_TPM } agw_limit_verdict;

typedef struct {
    agw_limit_verdict verdict;
    uint64_t retry_after_ms;     /* refused: when the bucket will hold the cost */
    int64_t remaining_requests;  /* after this request; -1 when QPM is off */
    int64_t remaining_tokens;    /* after this request's reservation; -1 when TPM is off */
    /* private: what agw_limit_finish undoes or settles */
    agw_shm_limit_slot *slot;    /* pinned while admitted; NULL when no limit applies */
    agw_limit_policy policy;
    int64_t reserved;            /* tokens taken from the TPM bucket */
    int too_large;               /* AGW_LIMIT_BY_TPM: the estimate alone exceeds the limit,
                                    so retrying cannot help (retry_after_ms is a full refill) */
} agw_limit_ticket;

/* A request's TPM estimate from its body (see above). */
int64_t agw_limit_estimate(agw_str body);

/* Admits or refuses one request of key `key_id`. Returns AGW_OK with the
 * verdict in `t` (a refusal also counts antigateway_rate_limit_hits_total);
 * AGW_ETOOBIG when the limiter table has no slot for the key (the caller
 * answers 503). An admitted ticket must be finished with agw_limit_finish. */
AGW_WARN_UNUSED agw_err agw_limit_admit(agw_shm *shm, uint64_t key_id, const agw_limit_policy *p,
                                        int64_t estimate, uint64_t now_ns, agw_limit_ticket *t);

/* Ends an admitted request: settles TPM with `actual` tokens (< 0 keeps the
 * estimate as the cost) and unpins the slot. Safe on a refused or zeroed ticket. */
void agw_limit_finish(agw_limit_ticket *t, int64_t actual, uint64_t now_ns);

/* Fills key `key_id`'s QPM bucket (qpm != 0) and/or TPM bucket (tpm != 0):
 * call it when that limit of the key changed. Requests in flight settle
 * against the fresh bucket. */
void agw_limit_reset(agw_shm *shm, uint64_t key_id, int qpm, int tpm, uint64_t now_ns);

#endif
