/* Unit tests for lib/cli: each option into its field, the -t range, stray
 * arguments and unknown options (2, with the usage on stderr), --help and
 * --version (0), and where the configuration comes from without -c. */
#include <fcntl.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cli.h"

/* ---- helpers ---- */

static FILE *usage_to; /* where the last usage went; NULL: not printed */
static int usage_calls;

static void fake_usage(FILE *to)
{
    usage_to = to;
    usage_calls++;
}

static const agw_cli_spec spec = { "antigw-test", 64, fake_usage };

/* Parses a NULL-terminated argument list (argv[0] included) as a fresh
 * process would: optind = 0 makes glibc's getopt start over. */
static int parse(agw_cli *out, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    usage_to = NULL;
    usage_calls = 0;
    optind = 0;
    opterr = 1;
    return agw_cli_parse(&spec, argc, argv, out);
}

/* Runs parse with stdout and stderr sent to /dev/null (the TAP goes to stdout). */
static int parse_quiet(agw_cli *out, char **argv)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2), null = open("/dev/null", O_WRONLY);
    assert_true(saved_out >= 0 && saved_err >= 0 && null >= 0);
    dup2(null, 1);
    dup2(null, 2);
    int rc = parse(out, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(null);
    return rc;
}

static int set_up(void **state)
{
    (void)state;
    return setenv("ANTIGW_CONFIG", "/env/antigw.cfg", 1);
}

/* ---- tests ---- */

static void test_options_into_fields(void **state)
{
    (void)state;
    agw_cli cli = { .threads = 4 };
    char *argv[] = { "prog", "-c", "/etc/a.cfg", "-t", "8", "--check-config", NULL };
    assert_int_equal(parse(&cli, argv), -1);
    assert_string_equal(cli.config_path, "/etc/a.cfg");
    assert_int_equal(cli.threads, 8);
    assert_int_equal(cli.check_only, 1);
    assert_int_equal(usage_calls, 0);

    agw_cli longs = { .threads = 4 };
    char *argv2[] = { "prog", "--config=/x.cfg", "--threads", "64", NULL };
    assert_int_equal(parse(&longs, argv2), -1);
    assert_string_equal(longs.config_path, "/x.cfg");
    assert_int_equal(longs.threads, 64);
    assert_int_equal(longs.check_only, 0);
}

static void test_threads_default_kept(void **state)
{
    (void)state;
    agw_cli cli = { .threads = 4 };
    char *argv[] = { "prog", NULL };
    assert_int_equal(parse(&cli, argv), -1);
    assert_int_equal(cli.threads, 4);
    agw_cli zero = { .threads = 0 };
    assert_int_equal(parse(&zero, argv), -1);
    assert_int_equal(zero.threads, 0);
}

static void test_threads_out_of_range(void **state)
{
    (void)state;
    agw_cli cli = { .threads = 4 };
    char *low[] = { "prog", "-t", "0", NULL };
    assert_int_equal(parse_quiet(&cli, low), 2);
    char *high[] = { "prog", "-t", "65", NULL };
    assert_int_equal(parse_quiet(&cli, high), 2);
    char *word[] = { "prog", "--threads", "many", NULL };
    assert_int_equal(parse_quiet(&cli, word), 2);
    assert_int_equal(usage_calls, 0); /* the message says what is wrong; no usage */
}

static void test_bad_command_lines(void **state)
{
    (void)state;
    agw_cli cli = { .threads = 4 };
    char *stray[] = { "prog", "-c", "/a.cfg", "extra", NULL };
    assert_int_equal(parse_quiet(&cli, stray), 2);
    assert_ptr_equal(usage_to, stderr);
    char *unknown[] = { "prog", "--bogus", NULL };
    assert_int_equal(parse_quiet(&cli, unknown), 2);
    assert_ptr_equal(usage_to, stderr);
    char *missing[] = { "prog", "-c", NULL };
    assert_int_equal(parse_quiet(&cli, missing), 2);
    assert_ptr_equal(usage_to, stderr);
}

static void test_help_and_version(void **state)
{
    (void)state;
    agw_cli cli = { .threads = 4 };
    char *help[] = { "prog", "--help", NULL };
    assert_int_equal(parse(&cli, help), 0);
    assert_ptr_equal(usage_to, stdout);
    char *h[] = { "prog", "-h", "-c", "/a.cfg", NULL };
    assert_int_equal(parse(&cli, h), 0);
    assert_int_equal(usage_calls, 1);
    char *version[] = { "prog", "--version", NULL };
    assert_int_equal(parse_quiet(&cli, version), 0);
    assert_int_equal(usage_calls, 0);
}

static void test_config_from_environment(void **state)
{
    (void)state;
    agw_cli cli = { .threads = 4 };
    char *none[] = { "prog", NULL };
    assert_int_equal(parse(&cli, none), -1);
    assert_string_equal(cli.config_path, "/env/antigw.cfg");
    /* -c wins over the environment. */
    char *given[] = { "prog", "-c", "/given.cfg", NULL };
    assert_int_equal(parse(&cli, given), -1);
    assert_string_equal(cli.config_path, "/given.cfg");
}

static void test_config_from_sysconfdir(void **state)
{
    (void)state;
    /* Empty counts as unset; then the system file, only when readable. */
    assert_int_equal(setenv("ANTIGW_CONFIG", "", 1), 0);
    agw_cli cli = { .threads = 4 };
    char *none[] = { "prog", NULL };
    assert_int_equal(parse(&cli, none), -1);
    const char *sys = SYSCONFDIR "/antigw/antigw.cfg";
    if (access(sys, R_OK) == 0) {
        assert_non_null(cli.config_path);
        assert_string_equal(cli.config_path, sys);
    } else {
        assert_null(cli.config_path);
    }
    assert_int_equal(unsetenv("ANTIGW_CONFIG"), 0);
    agw_cli again = { .threads = 4 };
    assert_int_equal(parse(&again, none), -1);
    assert_true(again.config_path == NULL || strcmp(again.config_path, sys) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_options_into_fields, set_up),
        cmocka_unit_test_setup(test_threads_default_kept, set_up),
        cmocka_unit_test_setup(test_threads_out_of_range, set_up),
        cmocka_unit_test_setup(test_bad_command_lines, set_up),
        cmocka_unit_test_setup(test_help_and_version, set_up),
        cmocka_unit_test_setup(test_config_from_environment, set_up),
        cmocka_unit_test_setup(test_config_from_sysconfdir, set_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
