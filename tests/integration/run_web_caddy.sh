#!/bin/sh
# make check entry point: the web-server subset behind caddy (TAP on stdout).
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON3:-python3}" "$here/test_web.py" caddy
