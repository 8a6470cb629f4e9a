#include "core/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

#include "ac-config.h"

static const char *default_config_path(agw_cli *out)
{
    const char *env = getenv("ANTIGW_CONFIG");
    if (env && *env)
        return env;
    snprintf(out->default_path, sizeof out->default_path, "%s/antigw/antigw.cfg", SYSCONFDIR);
    return access(out->default_path, R_OK) == 0 ? out->default_path : NULL;
}

int agw_cli_parse(const agw_cli_spec *spec, int argc, char **argv, agw_cli *out)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { "check-config", no_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    int opt;
    out->check_only = 0;
    while ((opt = getopt_long(argc, argv, "c:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't':
            out->threads = atoi(optarg);
            if (out->threads < 1 || out->threads > spec->max_threads) {
                fprintf(stderr, "%s: --threads must be between 1 and %d\n", spec->prog,
                        spec->max_threads);
                return 2;
            }
            break;
        case 'C': out->check_only = 1; break;
        case 'V': printf("%s %s\n", spec->prog, PACKAGE_VERSION); return 0;
        case 'h': spec->usage(stdout); return 0;
        default: spec->usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        spec->usage(stderr);
        return 2;
    }
    out->config_path = path ? path : default_config_path(out);
    return -1;
}
