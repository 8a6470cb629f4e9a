#!/bin/sh
# make check entry point for the Kiro accounts suite (TAP on stdout).
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON3:-python3}" "$here/test_kiro_accounts.py"
