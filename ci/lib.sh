# Shared start-up for the CI checks that run against a live server. Source it
# from a script running under `set -euo pipefail`, then call
# start_outbound_server. It exports OUTBOUND_URL, OUTBOUND_CLIENT_ID,
# OUTBOUND_PROJECT_ID and OUTBOUND_TOKEN (a partner_admin token for that
# client), and sets CI_WORK_DIR, a temporary folder. An EXIT trap stops the
# server, drops the database and removes CI_WORK_DIR.

CI_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Cargo's output folder: CARGO_TARGET_DIR when set (relative to the
# repository, where the checks run cargo), else target/.
CI_TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "$CI_TARGET_DIR" = /* ]] || CI_TARGET_DIR="$CI_REPO_ROOT/$CI_TARGET_DIR"
OUTBOUND_BIN="$CI_TARGET_DIR/debug/outbound"
CI_VENV="$CI_TARGET_DIR/ci-venv"

CI_DATABASE_NAME=""
CI_WORK_DIR=""
OUTBOUND_SERVER_PID=""

# Build the outbound binary unless `cargo test --workspace` already has.
ensure_outbound_binary() {
  if [[ ! -x "$OUTBOUND_BIN" ]]; then
    echo "$OUTBOUND_BIN is missing; building it"
    (cd "$CI_REPO_ROOT" && cargo build -p outbound --quiet)
  fi
}

# Create the virtualenv ci-venv in the target folder when missing and install the pinned
# requirements given as arguments (for example `schemathesis==4.32.5`).
ensure_ci_venv() {
  if [[ ! -x "$CI_VENV/bin/python" ]]; then
    python3 -m venv "$CI_VENV"
  fi
  "$CI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

# Print a free TCP port on 127.0.0.1. Another process could take it before the
# server binds it, in which case the server fails to start and the check fails.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Drop CI_DATABASE_NAME if it exists, closing its connections. PGOPTIONS hides
# the notice that PostgreSQL sends when there is nothing to drop.
drop_ci_database() {
  PGOPTIONS="-c client_min_messages=warning" \
    dropdb --if-exists --force -h 127.0.0.1 -p 5432 -U postgres "$CI_DATABASE_NAME"
}

# EXIT trap: on failure print the end of the server log, then stop the server,
# drop the database and remove CI_WORK_DIR, keeping the script's exit status.
clean_up_ci_run() {
  local status=$?
  if [[ "$status" -ne 0 && -f "$CI_WORK_DIR/server.log" ]]; then
    echo "last lines of the outbound serve log:" >&2
    tail -n 30 "$CI_WORK_DIR/server.log" >&2
  fi
  if [[ -n "$OUTBOUND_SERVER_PID" ]]; then
    kill "$OUTBOUND_SERVER_PID" 2>/dev/null || true
    wait "$OUTBOUND_SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$CI_DATABASE_NAME" ]]; then
    drop_ci_database || true
  fi
  if [[ -n "$CI_WORK_DIR" ]]; then
    rm -rf "$CI_WORK_DIR"
  fi
  return "$status"
}

# Create CI_WORK_DIR and install the EXIT trap, unless done already.
make_ci_work_dir() {
  if [[ -z "$CI_WORK_DIR" ]]; then
    trap clean_up_ci_run EXIT
    CI_WORK_DIR=$(mktemp -d)
  fi
}

# Start `outbound serve --dev` on a new database named `$1_$$`, with one
# partner, client and project and a partner_admin token for them.
start_outbound_server() {
  local database_prefix=$1
  ensure_outbound_binary
  make_ci_work_dir

  CI_DATABASE_NAME="${database_prefix}_$$"
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$CI_DATABASE_NAME"
  # The operator commands and the server create and migrate the database when
  # it is missing, so a leftover from an earlier run with the same pid is
  # dropped first.
  drop_ci_database

  local key_file="$CI_WORK_DIR/keys.json"
  "$OUTBOUND_BIN" keys generate --out "$key_file" >/dev/null

  local partner
  partner=$("$OUTBOUND_BIN" operator create-partner --name "CI Partner")
  OUTBOUND_CLIENT_ID=$("$OUTBOUND_BIN" operator create-client --name "CI Client" --partner "$partner")
  OUTBOUND_PROJECT_ID=$("$OUTBOUND_BIN" operator create-project --client "$OUTBOUND_CLIENT_ID" --name "CI Project")
  OUTBOUND_TOKEN=$("$OUTBOUND_BIN" token mint --role partner_admin --partner "$partner" --client "$OUTBOUND_CLIENT_ID" \
    --key-file "$key_file")

  local port
  port=$(free_port)
  OUTBOUND_URL="http://127.0.0.1:$port"
  "$OUTBOUND_BIN" serve --dev --key-file "$key_file" --listen "127.0.0.1:$port" --rate-limit-per-second 0 \
    >"$CI_WORK_DIR/server.log" 2>&1 &
  OUTBOUND_SERVER_PID=$!

  for _ in $(seq 1 120); do
    if curl --silent --fail --max-time 2 "$OUTBOUND_URL/readyz" >/dev/null; then
      echo "outbound serve is ready at $OUTBOUND_URL (database $CI_DATABASE_NAME)"
      export OUTBOUND_URL OUTBOUND_TOKEN OUTBOUND_CLIENT_ID OUTBOUND_PROJECT_ID
      return 0
    fi
    if ! kill -0 "$OUTBOUND_SERVER_PID" 2>/dev/null; then
      echo "outbound serve exited during start-up" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "outbound serve was not ready at $OUTBOUND_URL/readyz after 60 s" >&2
  return 1
}
