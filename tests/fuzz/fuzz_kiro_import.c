/* libFuzzer target for what an admin hands the Kiro imports and the social
 * sign-in's callback (provider/kiro_auth.h). The first byte picks the parser:
 *   0  kiro-auth-token.json, then (after a NUL, when there is one) its client
 *      registration;
 *   1  a kiro-cli SQLite file (read in memory, read-only: a hostile file);
 *   2  a callback URL.
 * Invariants, any violation aborts:
 *  - an accepted import has a method the refresh table knows and a refresh
 *    token; an IdC or Builder ID one has its client id and secret;
 *  - a refused one says why, and leaves nothing allocated (LeakSanitizer);
 *  - an accepted callback has a non-empty code and state;
 *  - nothing reads outside its input (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider/credential.h"
#include "provider/kiro_auth.h"

static void check_import(agw_err e, agw_cred *c, const char *why)
{
    if (e) {
        if (!why[0] || c->method || c->refresh_token || c->access_token)
            abort();
        return;
    }
    if (!c->method || !agw_cred_method_of(AGW_PROVIDER_KIRO, c->method) || !c->refresh_token ||
        !*c->refresh_token || !c->access_token)
        abort();
    if (strcmp(c->method, "social") != 0 && (!c->client_id || !c->client_secret))
        abort();
    agw_cred_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char why[256] = "";
    agw_cred c;
    memset(&c, 0, sizeof c);
    switch (data[0] % 3) {
    case 0: {
        const char *nul = memchr(p, '\0', n);
        agw_str token = { p, nul ? (size_t)(nul - p) : n };
        agw_str client = nul ? (agw_str){ nul + 1, n - token.len - 1 } : (agw_str){ NULL, 0 };
        check_import(agw_kiro_import_token_file(token, client, &c, why, sizeof why), &c, why);
        break;
    }
    case 1:
        check_import(agw_kiro_import_cli_db((agw_str){ p, n }, &c, why, sizeof why), &c, why);
        break;
    default: {
        char *url = malloc(n + 1);
        if (!url)
            return 0;
        memcpy(url, p, n);
        url[n] = '\0';
        char *code, *state, *opt;
        if (agw_kiro_parse_callback(url, &code, &state, &opt, why, sizeof why) == AGW_OK) {
            if (!code || !*code || !state || !*state)
                abort();
            free(code);
            free(state);
            free(opt);
        } else if (!why[0]) {
            abort();
        }
        free(url);
        break;
    }
    }
    return 0;
}
