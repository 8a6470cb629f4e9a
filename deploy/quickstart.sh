#!/bin/bash
# AntiGateway quick start: everything from a fresh Debian 12 checkout.
#
#   deploy/quickstart.sh [start]   install packages, build, start the web server + the pool
#   deploy/quickstart.sh stop      stop them
#   deploy/quickstart.sh status    what is running, and /health
#   deploy/quickstart.sh reload    every process re-reads var/antigw.cfg (SIGHUP), no
#                                  request is cut; a file that does not load is refused
#   deploy/quickstart.sh check     install test packages, build, run every test
#
# Environment:
#   ANTIGW_PORT         port for the web server (default 8080), on 127.0.0.1
#   ANTIGW_SERVER       the web server in front: lighttpd (default), apache, caddy or
#                       nginx, run from its config in deploy/ (its Debian package is
#                       installed if missing; the system's own sites are not touched)
#   ANTIGW_API_KEY      the client key (default: generated once, kept in var/client-key)
#   ANTIGW_ADMIN_KEY    the admin API key (default: generated once, printed once, kept in
#                       var/admin-key)
#   ANTIGW_TENANT=1     tenant mode: clients use per-team keys made through /admin/keys
#   OPENAI_API_KEY      declares an OpenAI provider; OPENAI_BASE_URL overrides its URL
#   ANTHROPIC_API_KEY   declares an Anthropic provider; ANTHROPIC_BASE_URL likewise
#   ANTIGW_PROCESSES    processes in the pool (default 2); ANTIGW_THREADS per process
#
# State lives in var/ inside the checkout: antigw.cfg, antigw.db, the secrets key
# (secret.key, mode 0600), sockets, logs.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
var=$top/var
# The port: ANTIGW_PORT, else the one the running gateway was started on (so
# `status` looks at the right place), else 8080.
port=${ANTIGW_PORT:-$(cat "$var/run/port" 2>/dev/null || echo 8080)}
cmd=${1:-start}
# The web server: ANTIGW_SERVER, else the one running (for stop/status), else lighttpd.
server=${ANTIGW_SERVER:-$(cat "$var/run/server" 2>/dev/null || echo lighttpd)}
case "$server" in
lighttpd | apache | caddy | nginx) ;;
*) printf 'quickstart: ANTIGW_SERVER must be lighttpd, apache, caddy or nginx\n' >&2; exit 1 ;;
esac

say() { printf '%s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# ---- packages ----

# Run-time and build packages; `check` adds the test tools.
RUN_PKGS="build-essential autoconf automake libtool pkg-config libfcgi-dev libcurl4-openssl-dev
libcjson-dev libsqlite3-dev libssl-dev libconfig-dev lighttpd spawn-fcgi multiwatch curl
ca-certificates sqlite3"
# libclang-rt-dev carries libFuzzer and the sanitizer runtimes clang links;
# clang only recommends it, and recommends are not installed here.
# prometheus: for promtool, which checks the /metrics output in the tests (19 MB
# download, 96 MB installed; no lighter Debian 12 package ships promtool).
# python3-cryptography: the tenant suite seals a provider key the way an older
# release did (AES-256-GCM) to test its migration.
TEST_PKGS="libcmocka-dev python3 python3-cryptography clang libclang-rt-dev prometheus"
# The other web servers: the integration suite runs its web subset behind each
# (tests/integration/test_web.py); fcgid is the shared-hosting recipe.
WEB_TEST_PKGS="apache2 libapache2-mod-fcgid caddy nginx"
# procps: pool.sh finds the pool's processes with pgrep.
RUN_PKGS="$RUN_PKGS procps"

# The Debian package of each web server.
server_package() {
    case "$1" in
    apache) echo apache2 ;;
    *) echo "$1" ;;
    esac
}

# Web server packages without their system service: Debian starts each on
# port 80 with its default site on install. A temporary policy-rc.d (when none
# exists) keeps them from starting; the services are then disabled, so the
# machine's own sites are never touched. An already installed server is left
# as it is (install_packages skips it).
install_servers() {
    local missing=() p sudo=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    local policy=/usr/sbin/policy-rc.d made=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# deploy/quickstart.sh: no service starts while it installs\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made=1
    fi
    install_packages "${missing[@]}" || { [ $made = 0 ] || "${sudo[@]}" rm -f "$policy"; return 1; }
    [ $made = 0 ] || "${sudo[@]}" rm -f "$policy"
    if command -v systemctl >/dev/null; then
        for p in "${missing[@]}"; do
            case "$p" in
            apache2 | nginx | caddy)
                "${sudo[@]}" systemctl disable --now "$p" >/dev/null 2>&1 || true ;;
            esac
        done
    fi
}
# chromium: the admin UI's end-to-end tests drive Debian's headless Chromium.
TEST_PKGS="$TEST_PKGS chromium"

install_packages() {
    local missing=() p
    for p in $*; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo; install: ${missing[*]}"
        sudo=(sudo)
    fi
    say "installing: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # Debian starts the packaged lighttpd on port 80; ours runs on its own config.
    if [[ " ${missing[*]} " == *" lighttpd "* ]] && command -v systemctl >/dev/null &&
        systemctl is-active -q lighttpd 2>/dev/null; then
        "${sudo[@]}" systemctl disable --now lighttpd >/dev/null 2>&1 || true
    fi
}

# ---- build ----

# Builds out of tree in build/, so the source tree stays clean for `check`.
build() {
    cd "$top"
    [ -x configure ] || ./autogen.sh >/dev/null
    mkdir -p build
    (cd build && { [ -f Makefile ] || ../configure -q; } && make -s -j"$(nproc)" >/dev/null)
}

# ---- configuration ----

MARK="# generated by deploy/quickstart.sh: delete this line to keep your own edits"

client_key() {
    if [ -n "${ANTIGW_API_KEY:-}" ]; then
        printf '%s' "$ANTIGW_API_KEY"
        return
    fi
    if [ ! -s "$var/client-key" ]; then
        (umask 077 && printf 'agw-%s\n' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
            > "$var/client-key")
    fi
    tr -d '\n' < "$var/client-key"
}

# The admin key: ANTIGW_ADMIN_KEY, else one generated on the first start and
# kept in var/admin-key (mode 0600). ADMIN_KEY_NEW=1 when it was just made, so
# it is printed once.
ADMIN_KEY_NEW=0
admin_key() {
    if [ -n "${ANTIGW_ADMIN_KEY:-}" ]; then
        printf '%s' "$ANTIGW_ADMIN_KEY"
        return
    fi
    tr -d '\n' < "$var/admin-key"
}

make_admin_key() {
    if [ -z "${ANTIGW_ADMIN_KEY:-}" ] && [ ! -s "$var/admin-key" ]; then
        (umask 077 && printf 'agw-admin-%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
            > "$var/admin-key")
        ADMIN_KEY_NEW=1
    fi
}

# The key that encrypts provider secrets in the database (AES-256-GCM):
# 32 random bytes as hex, readable by this user only. Losing it makes the
# stored provider keys unreadable; keep it with your backups of var/.
make_secret_key() {
    if [ ! -s "$var/secret.key" ]; then
        (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$var/secret.key")
    fi
    chmod 600 "$var/secret.key"
}

cfg_string() { # a libconfig string literal
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

providers_block() {
    local first=1
    printf 'providers = (\n'
    if [ -n "${OPENAI_API_KEY:-}" ]; then
        printf '  { name = "openai"; type = "openai"; base_url = %s; api_key = %s;\n' \
            "$(cfg_string "${OPENAI_BASE_URL:-https://api.openai.com/v1}")" \
            "$(cfg_string "$OPENAI_API_KEY")"
        printf '    models = [ "gpt-*", "o[0-9]*", "text-embedding-*", "chatgpt-*" ]; }'
        first=0
    fi
    if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
        [ $first = 1 ] || printf ',\n'
        printf '  { name = "anthropic"; type = "anthropic"; base_url = %s; api_key = %s;\n' \
            "$(cfg_string "${ANTHROPIC_BASE_URL:-https://api.anthropic.com}")" \
            "$(cfg_string "$ANTHROPIC_API_KEY")"
        printf '    models = [ "claude-*" ]; }'
    fi
    printf '\n);\n'
}

write_config() {
    local cfg=$var/antigw.cfg key
    if [ -f "$cfg" ] && ! grep -qxF "$MARK" "$cfg"; then
        say "keeping $cfg (your edits; it no longer has the quickstart marker line)"
        return
    fi
    key=$(client_key)
    local admin tenant=false
    admin=$(admin_key)
    [ "${ANTIGW_TENANT:-0}" = 1 ] && tenant=true
    (
        umask 077
        {
            printf '%s\n' "$MARK"
            # The example, with the keys, tenant mode and the declared providers filled in.
            sed -e "s|^  api_key = \"\";|  api_key = $(cfg_string "$key" | sed 's/[&|]/\\&/g');|" \
                -e "s|^  admin_key = \"\";|  admin_key = $(cfg_string "$admin" | sed 's/[&|]/\\&/g');|" \
                -e "s|^  enabled = false;|  enabled = $tenant;|" \
                -e '/^providers = ( );$/d' "$top/antigw.cfg.example"
            printf 'secrets: { key_file = "secret.key"; };\n'
            providers_block
        } > "$cfg.tmp"
    )
    mv "$cfg.tmp" "$cfg"
}

# ---- processes ----

export ANTIGW_VAR=$var ANTIGW_BIND=127.0.0.1 ANTIGW_PORT=$port
export ANTIGW_BIN=$top/build/fcgi-app/antigw-fcgi ANTIGW_CONFIG=$var/antigw.cfg
ADMIN_BIN=$top/build/admin-cgi/antigw-admin

admin_pool() { # pool.sh for antigw-admin: one process (multiwatch restarts it), 4 threads
    ANTIGW_POOL_NAME=admin ANTIGW_BIN=$ADMIN_BIN ANTIGW_PROCESSES=1 ANTIGW_THREADS=4 \
        "$top/deploy/pool.sh" "$@"
}

lighttpd_bin() { command -v lighttpd || echo /usr/sbin/lighttpd; }

export ANTIGW_DEPLOY=$top/deploy

# The web server's pid file (each config writes its own under var/run).
web_pidfile() { echo "$var/run/$1.pid"; }

web_running() {
    local f
    f=$(web_pidfile "$1")
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# Starts $server from its shipped config, in the background.
web_start() {
    local log=$var/log
    case "$server" in
    lighttpd)
        "$(lighttpd_bin)" -tt -f "$top/deploy/lighttpd.conf" >/dev/null ||
            die "lighttpd rejected deploy/lighttpd.conf"
        "$(lighttpd_bin)" -f "$top/deploy/lighttpd.conf" ;;
    apache)
        apache2 -t -f "$top/deploy/apache/standalone.conf" 2>"$log/apache-check.log" ||
            die "apache2 rejected deploy/apache/standalone.conf: $(cat "$log/apache-check.log")"
        apache2 -f "$top/deploy/apache/standalone.conf" ;;
    nginx)
        "$top/deploy/nginx/render.sh" > "$var/run/nginx.conf"
        nginx -t -q -e "$log/nginx.log" -c "$var/run/nginx.conf" ||
            die "nginx rejected deploy/nginx/standalone.conf"
        nginx -e "$log/nginx.log" -c "$var/run/nginx.conf" ;;
    caddy)
        mkdir -p "$var/run/caddy-home"
        HOME=$var/run/caddy-home XDG_CONFIG_HOME=$var/run/caddy-home \
            XDG_DATA_HOME=$var/run/caddy-home nohup caddy run --adapter caddyfile \
            --config "$top/deploy/caddy/Caddyfile" --pidfile "$(web_pidfile caddy)" \
            >>"$log/caddy.log" 2>&1 &
        for _ in $(seq 50); do [ -s "$(web_pidfile caddy)" ] && break; sleep 0.1; done ;;
    esac
}

stop_all() {
    local s
    for s in lighttpd apache caddy nginx; do
        if web_running "$s"; then
            kill "$(cat "$(web_pidfile "$s")")" 2>/dev/null || true
            for _ in $(seq 50); do web_running "$s" || break; sleep 0.1; done
        fi
        rm -f "$(web_pidfile "$s")"
    done
    rm -f "$var/run/server"
    if [ -d "$var/run" ]; then
        "$top/deploy/pool.sh" stop
        admin_pool stop
    fi
    return 0
}

start_all() {
    install_packages $RUN_PKGS
    install_servers "$(server_package "$server")"
    install_ui_packages || true
    build
    mkdir -p "$var/run" "$var/log" "$var/www"
    chmod 700 "$var"
    # Run by root, Apache and nginx hand their workers to www-data: the
    # sockets are then its group's, and var/ must let it pass to them.
    if [ "$(id -u)" = 0 ] && { [ "$server" = apache ] || [ "$server" = nginx ]; }; then
        export ANTIGW_WEB_USER=www-data ANTIGW_SOCKET_GROUP=www-data
        chmod 711 "$var"
        setpriv --reuid=www-data --regid=www-data --clear-groups -- test -x "$var/run" ||
            die "www-data cannot reach $var/run (a parent folder is closed to it); run the quick start as another user, or from a checkout outside /root"
    else
        export ANTIGW_WEB_USER
        ANTIGW_WEB_USER=$(id -un)
    fi
    make_admin_key
    make_secret_key
    write_config
    "$ANTIGW_BIN" --check-config -c "$ANTIGW_CONFIG" >/dev/null
    "$ADMIN_BIN" --check-config -c "$ANTIGW_CONFIG" >/dev/null ||
        die "antigw-admin rejected $ANTIGW_CONFIG (it needs auth.admin_key)"
    stop_all
    "$top/deploy/pool.sh" start
    admin_pool start
    echo "$port" > "$var/run/port"
    echo "$server" > "$var/run/server"
    web_start || die "$server did not start; see $var/log/ (is port $port free?)"
    local url="http://127.0.0.1:$port" code=""
    for _ in $(seq 50); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health" || true)
        [ "$code" = 200 ] || [ "$code" = 503 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || [ "$code" = 503 ] || die "gateway not answering on $url/health (got '$code')"
    local key
    key=$(sed -n 's/^  api_key = "\(.*\)";$/\1/p' "$ANTIGW_CONFIG" | head -1)
    say "AntiGateway is running at $url (behind $server)"
    if grep -q '^  enabled = true;' "$ANTIGW_CONFIG"; then
        say "  tenant mode: clients use keys made through the admin API, e.g."
        say "    curl -s -H \"Authorization: Bearer \$(cat $var/admin-key)\" \\"
        say "      -d '{\"name\":\"team-a\",\"qpm\":60}' $url/admin/keys"
        say "  (the answer's \"key\" is shown only then)"
    else
        say "  client key:  $key"
        say "  OpenAI SDK:    OPENAI_BASE_URL=$url/v1 OPENAI_API_KEY=$key"
        say "  Anthropic SDK: ANTHROPIC_BASE_URL=$url ANTHROPIC_API_KEY=$key"
    fi
    if [ "$ADMIN_KEY_NEW" = 1 ]; then
        say "  admin API:   $url/admin/  admin key (shown this once; kept in var/admin-key):"
        say "    $(admin_key)"
    elif [ -n "${ANTIGW_ADMIN_KEY:-}" ]; then
        say "  admin API:   $url/admin/  with the admin key from ANTIGW_ADMIN_KEY"
    else
        say "  admin API:   $url/admin/  with the admin key in var/admin-key"
    fi
    local providers
    providers=$("$ANTIGW_BIN" --check-config -c "$ANTIGW_CONFIG" |
        sed -n 's/^provider \([^ ]*\) \([^ ]*\) \(.*\)$/\1 (\2, \3)/p' | paste -sd';' - | sed 's/;/; /g')
    if [ -n "$providers" ]; then
        say "  providers:   $providers"
    else
        say "  No provider is configured, so model calls answer 404. Add one:"
        say "    OPENAI_API_KEY=sk-... deploy/quickstart.sh   (or ANTHROPIC_API_KEY=...)"
        say "    or edit the providers list in $ANTIGW_CONFIG and run deploy/quickstart.sh again"
    fi
    if link_ui; then
        say "  admin UI:    $url/ui/  (sign in with the admin key)"
    else
        say "  admin UI:    not built (needs Node.js and npm: see frontend/README.md)"
    fi
    say "  config: $ANTIGW_CONFIG   logs: $var/log/"
    say "  stop:   deploy/quickstart.sh stop    status: deploy/quickstart.sh status"
}

status() {
    local url="http://127.0.0.1:$port"
    if web_running "$server"; then say "$server running (pid $(cat "$(web_pidfile "$server")")) on $url"
    else say "$server stopped"; fi
    local down=0
    web_running "$server" || down=1
    ANTIGW_VAR=$var "$top/deploy/pool.sh" status || down=1
    ANTIGW_VAR=$var admin_pool status || down=1
    if web_running "$server"; then
        # The details (providers, traffic) need the admin key.
        say "health: $(curl -s -H "Authorization: Bearer $(admin_key 2>/dev/null || true)" "$url/health" ||
            echo unreachable)"
    fi
    # Scripts can test it: 0 only when the web server and both pools run.
    return $down
}

# The SDK conformance suite (tests/sdk) runs the official npm SDKs on Node.js
# (20 from NodeSource where installed; Debian 12's own 18 works too).
# NodeSource's nodejs bundles npm and conflicts with Debian's npm package: look for
# the commands, not the packages.
install_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        install_packages nodejs npm
    fi
    (cd "$top/tests/sdk" && npm ci --prefer-offline --no-audit --no-fund >/dev/null) ||
        die "npm ci in tests/sdk failed (is the npm registry reachable?)"
}

# The admin web UI (frontend/) is built by make when its npm packages are
# installed; a failure here leaves the gateway without /ui/, nothing else.
install_ui_packages() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        install_packages nodejs npm
    fi
    # npm keeps its own record of what it installed: skip when it is newer than the lock.
    [ "$top/frontend/node_modules/.package-lock.json" -nt "$top/frontend/package-lock.json" ] &&
        return 0
    (cd "$top/frontend" && npm ci --prefer-offline --no-audit --no-fund >/dev/null) || {
        say "quickstart: npm ci in frontend/ failed: the admin UI is not built"
        return 1
    }
}

# Serves the built UI at /ui/ (lighttpd.conf: ANTIGW_VAR/www/ui).
link_ui() {
    local dist=""
    for d in "$top/build/frontend/dist" "$top/frontend/dist"; do
        [ -f "$d/index.html" ] && { dist=$d; break; }
    done
    [ -n "$dist" ] || return 1
    ln -sfn "$dist" "$var/www/ui"
}

check() {
    # The tests start their own gateways; the quickstart's paths must not leak into them.
    unset ANTIGW_VAR ANTIGW_BIND ANTIGW_PORT ANTIGW_BIN ANTIGW_CONFIG
    install_packages $RUN_PKGS $TEST_PKGS
    install_servers $WEB_TEST_PKGS
    install_node
    install_ui_packages || die "the admin UI's packages are needed for its tests"
    cd "$top"
    ./autogen.sh >/dev/null
    local rings_before
    rings_before=$(usage_rings)
    # 1. The normal build and every test.
    rm -rf build-check build-asan
    mkdir -p build-check build-asan
    (cd build-check && ../configure -q --enable-werror && make -s -j"$(nproc)" &&
        make -s -j2 check) || { failures build-check; return 1; }
    # 2. The same suite under AddressSanitizer + UBSan.
    (cd build-asan && ../configure -q --enable-sanitizers &&
        make -s -j"$(nproc)" && make -s -j2 check) ||
        { failures build-asan; return 1; }
    # 3. The parsers under libFuzzer, briefly.
    (cd build-check && make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-15}")
    # 4. The release tarball: builds and passes the suite from a read-only
    #    source tree, installs and uninstalls cleanly.
    #    Its suite runs two at a time, as in 1 (serially it took 10 of 29 min).
    (cd build-check && make -s -j2 distcheck > distcheck.log 2>&1) ||
        { tail -n 60 build-check/distcheck.log; return 1; }
    echo "distcheck: ok"
    summarize build-check plain && summarize build-asan sanitizers || return 1
    # 5. The suites remove the usage rings of the pools they started (a
    #    killed pool leaves its ring in /dev/shm for its next start).
    local left
    left=$(comm -13 <(echo "$rings_before") <(usage_rings))
    [ -z "$left" ] || { echo "the tests left usage rings in /dev/shm:"; ls -l $left; return 1; }
}

# The usage rings in /dev/shm, one path a line, sorted.
usage_rings() {
    local f
    for f in /dev/shm/antigw-*.usage; do
        [ ! -e "$f" ] || echo "$f"
    done
}

# Prints what failed in a test run: each failing test's line with the report
# under it (the "#" lines after "not ok", up to 60 of them), then the log's end.
failures() {
    local log=$1/test-suite.log
    [ -f "$log" ] || return 0
    awk '/^not ok /{n=0; on=1; print; next}
         on && /^# / && n < 60 {n++; print; next}
         {on=0}' "$log"
    tail -n 20 "$log"
}

# Prints the totals of a test run as one "label: N passed, N failed" line.
summarize() {
    local log=$1/test-suite.log pass fail skip
    pass=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
    fail=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
    skip=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
    printf '%s: %s passed, %s failed, %s skipped\n' "$2" "${pass:-0}" "${fail:-0}" "${skip:-0}"
    [ "${fail:-0}" = 0 ]
}

case "$cmd" in
start) start_all ;;
stop) stop_all; say "stopped" ;;
status) status ;;
reload)
    ANTIGW_VAR=$var "$top/deploy/pool.sh" reload
    ANTIGW_VAR=$var admin_pool reload
    ;;
check) check ;;
*) die "usage: deploy/quickstart.sh [start|stop|status|reload|check]" ;;
esac
