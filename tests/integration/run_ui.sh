#!/bin/sh
# make check entry point for the admin web UI suite (TAP on stdout).
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON3:-python3}" "$here/test_ui.py"
