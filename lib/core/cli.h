/*
 * cli: the command line both FastCGI programs take (antigw-fcgi and
 * antigw-admin), and where their configuration is found without -c:
 *
 *   -c, --config FILE   -t, --threads N   --check-config   --version   -h, --help
 *
 * Without -c the configuration is $ANTIGW_CONFIG when set and not empty,
 * else SYSCONFDIR/antigw/antigw.cfg when that file is readable, else none.
 * What a program does with the result (its defaults, its usage text, what it
 * does without a configuration) stays with the program.
 */
#ifndef AGW_CLI_H
#define AGW_CLI_H

#include <stdio.h>

typedef struct {
    const char *prog;        /* in messages and --version: "antigw-fcgi" */
    int max_threads;         /* -t accepts 1..max_threads */
    void (*usage)(FILE *to); /* prints the program's usage text */
} agw_cli_spec;

typedef struct {
    /* -c, else the default above; NULL when there is none. Points into argv,
     * the environment or default_path. */
    const char *config_path;
    int threads;             /* -t; left as the caller set it when not given */
    int check_only;          /* --check-config */
    char default_path[512];  /* holds SYSCONFDIR/antigw/antigw.cfg when chosen */
} agw_cli;

/* Parses argv into `out` (whose threads the caller presets) with getopt_long,
 * so once per process unless optind is reset to 0. Returns -1 when the
 * program should go on; otherwise the exit status to return: 0 after
 * --version or --help (printed on stdout), 2 for a bad command line (said on
 * stderr: getopt's message or an out-of-range -t, then the usage for an
 * unknown option or a stray argument). */
int agw_cli_parse(const agw_cli_spec *spec, int argc, char **argv, agw_cli *out);

#endif
