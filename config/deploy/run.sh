#!/usr/bin/env bash
# Start a promptbus topology without a Procfile runner: run.sh rabbitmq|redis
# Ctrl-C stops every process it started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kind=${1:?usage: run.sh rabbitmq|redis}
set -a; . "$here/$kind.env"; set +a
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
while IFS=: read -r name command; do
  case $name in ''|\#*) continue ;; esac
  echo "starting $name:$command"
  # shellcheck disable=SC2086  # the command is meant to split into words
  $command &
  pids+=($!)
done < "$here/$kind.Procfile"
wait
