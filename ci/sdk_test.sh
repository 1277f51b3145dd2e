#!/usr/bin/env bash
# Generate a Python client from openapi/openapi.json with openapi-python-client,
# install it, and run ci/sdk_workflow.py with it against a live server.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

OPENAPI_PYTHON_CLIENT_VERSION=0.29.1

ensure_ci_venv "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION"
# The generator formats its output with ruff, which it looks up on PATH.
export PATH="$CI_VENV/bin:$PATH"
make_ci_work_dir

client_dir="$CI_WORK_DIR/outbound-client"
generator_config="$CI_WORK_DIR/generator.yaml"
cat >"$generator_config" <<'EOF'
project_name_override: outbound-client
package_name_override: outbound_client
EOF

# The generator prints its warnings about the document and still exits 0. It
# exits 1, listing what it rejected, when it cannot parse the document.
echo "== openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION: generating from openapi/openapi.json =="
openapi-python-client generate --path openapi/openapi.json --output-path "$client_dir" \
  --meta setup --config "$generator_config"

# Remove a client that an earlier run installed, so this run tests the one
# generated now even though both carry version 0.1.0.
"$CI_VENV/bin/python" -m pip uninstall --quiet --yes outbound-client 2>/dev/null || true
"$CI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$client_dir"

start_outbound_server outbound_sdk
"$CI_VENV/bin/python" ci/sdk_workflow.py
