#!/usr/bin/env bash
# A real third-party Open Inference Protocol server for advclust's tests: MLServer (Seldon) with
# its scikit-learn runtime, from PyPI, serving a PCA + Gaussian-mixture soft clustering of the
# embedded MNIST test images (scripts/mlserver/fit_victim.py). Idempotent install into a venv.
#
# Usage:
#   eval "$(bash scripts/mlserver.sh start <dir>)"   # fits, starts, waits until ready; exports
#                                                    # ADVCLUST_MLSERVER, ADVCLUST_MLSERVER_METRICS,
#                                                    # ADVCLUST_MLSERVER_CLEAN_NMI
#   bash scripts/mlserver.sh stop <dir>              # stops it (safe to call twice)
# Port: ADVCLUST_MLSERVER_PORT (default 18080; gRPC and metrics on the next two).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${ADVCLUST_CACHE:-$HOME/.cache/advclust}
venv=$cache/mlserver-venv
port=${ADVCLUST_MLSERVER_PORT:-18080}
cmd=${1:?usage: mlserver.sh start|stop <dir>}
dir=${2:?usage: mlserver.sh start|stop <dir>}

case "$cmd" in
  start)
    if [ ! -f "$venv/.complete" ]; then
      [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
      "$venv/bin/pip" install --quiet --disable-pip-version-check \
        mlserver==1.7.1 mlserver-sklearn==1.7.1 scikit-learn==1.9.1 >&2
      touch "$venv/.complete"
    fi
    mkdir -p "$dir"
    assets=crates/advclust-data/assets/mnist
    fit=$("$venv/bin/python" scripts/mlserver/fit_victim.py \
      "$assets/t10k-images-idx3-ubyte.gz" "$assets/t10k-labels-idx1-ubyte.gz" "$dir")
    nmi=$(printf '%s' "$fit" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clean_nmi"])')
    printf '{"host": "127.0.0.1", "http_port": %d, "grpc_port": %d, "metrics_port": %d, "parallel_workers": 0}\n' \
      "$port" $((port + 1)) $((port + 2)) > "$dir/settings.json"
    "$venv/bin/mlserver" start "$dir" > "$dir/mlserver.log" 2>&1 &
    echo $! > "$dir/mlserver.pid"
    for _ in $(seq 1 120); do
      if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v2/models/gmm/ready', timeout=1)" 2>/dev/null; then
        echo "export ADVCLUST_MLSERVER='kserve+http://127.0.0.1:$port/models/gmm?memberships=predict_proba'"
        echo "export ADVCLUST_MLSERVER_METRICS='http://127.0.0.1:$((port + 2))/metrics'"
        echo "export ADVCLUST_MLSERVER_CLEAN_NMI='$nmi'"
        echo "MLServer ready on 127.0.0.1:$port (clean NMI of the served model $nmi)" >&2
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/mlserver.pid")" 2>/dev/null; then break; fi
      sleep 0.5
    done
    echo "MLServer did not become ready; its log:" >&2
    tail -n 40 "$dir/mlserver.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/mlserver.pid" ]; then
      pid=$(cat "$dir/mlserver.pid")
      # mlserver starts worker processes: stop the whole group it leads, then it.
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$dir/mlserver.pid"
    fi
    ;;
  *)
    echo "usage: mlserver.sh start|stop <dir>" >&2
    exit 2
    ;;
esac
