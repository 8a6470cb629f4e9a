#!/bin/sh
# Prints deploy/nginx/standalone.conf with its @NAME@ words filled in from the
# environment (nginx reads none itself): ANTIGW_VAR, ANTIGW_BIND, ANTIGW_PORT,
# ANTIGW_WEB_USER (default: the current user), ANTIGW_DEPLOY (default: the
# deploy/ folder this script is in).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${ANTIGW_VAR:?}" "${ANTIGW_BIND:?}" "${ANTIGW_PORT:?}"
deploy=${ANTIGW_DEPLOY:-$(dirname "$here")}
user=${ANTIGW_WEB_USER:-$(id -un)}
# sed replacement text: escape \, & and the | delimiter.
esc() { printf '%s' "$1" | sed 's/[\\&|]/\\&/g'; }
sed -e "s|@ANTIGW_VAR@|$(esc "$ANTIGW_VAR")|g" -e "s|@ANTIGW_BIND@|$(esc "$ANTIGW_BIND")|g" \
    -e "s|@ANTIGW_PORT@|$(esc "$ANTIGW_PORT")|g" -e "s|@ANTIGW_DEPLOY@|$(esc "$deploy")|g" \
    -e "s|@ANTIGW_WEB_USER@|$(esc "$user")|g" "$here/standalone.conf"
