#!/usr/bin/env bash
# Runs bench/events.lua (native event dispatch vs raw luv callbacks).
set -euo pipefail
"${1:-./build/evo}" "$(dirname "$0")/events.lua" "${2:-200000}"
