#!/bin/sh
# make check entry point for the Kiro data-path suite (TAP on stdout).
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON3:-python3}" "$here/test_kiro.py"
