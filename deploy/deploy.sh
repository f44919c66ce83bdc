#!/usr/bin/env bash
# deploy/deploy.sh: the one authoritative way to put fanrecall on a Kubernetes cluster
# (csi-driver-host-path's deploy-hostpath.sh habit: every change to how fanrecall is deployed
# belongs here or in deploy/kubernetes/, not in ad-hoc kubectl commands).
#
# It renders an overlay with kustomize (kubectl's built-in), optionally with other images,
# checks what a production deploy needs, applies it with `kubectl apply -k` and waits for the
# DaemonSet's rollout (surge first: see deploy/kubernetes/base/daemonset.yaml).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/deploy.sh [--overlay dev|prod] [--mesh-admin] [--listener-image REF]
                        [--recall-image REF] [--context NAME] [--render] [--no-wait] [--help]

Applies deploy/kubernetes/overlays/OVERLAY with `kubectl apply -k` and waits for the
fanrecall-node DaemonSet to roll out.

  --overlay dev|prod     dev (default): fanrecall + an in-cluster MinIO with public dev keys.
                         prod: your object store; needs FANRECALL_S3_ENDPOINT set in
                         deploy/kubernetes/overlays/prod/recall-service.env and the Secret
                         fanrecall-s3 (keys access-key, secret-key) created beforehand.
  --mesh-admin           also serve the mesh admin API (TLS, client certificates) on port 9443
                         (deploy/kubernetes/components/mesh-admin); needs the Secret
                         fanrecall-mesh-tls (keys tls.crt, tls.key, ca.crt) created beforehand.
  --listener-image REF   image for the listener, prepare and holder containers
                         (default fanrecall/listener:0.1.0; env FANRECALL_LISTENER_IMAGE)
  --recall-image REF     image for the recall-service container
                         (default fanrecall/recall-service:0.1.0; env FANRECALL_RECALL_IMAGE)
  --context NAME         kubeconfig context to use (default: the current one)
  --render               print the manifests that would be applied and exit; needs no cluster
  --no-wait              do not wait for the rollout
  --help                 this text

Before the first deploy: label each node that has the dedicated data filesystem
(kubectl label node NODE fanrecall/data-volume=true) and create the marker file
.fanrecall-volume at the root of that filesystem. See deploy/README.md.
EOF
}

# shellcheck source=deploy/options.sh
source "$(dirname "${BASH_SOURCE[0]}")/options.sh"

overlay=dev
listener_image="${FANRECALL_LISTENER_IMAGE:-}"
recall_image="${FANRECALL_RECALL_IMAGE:-}"
context=""
render=0
wait_rollout=1
mesh_admin=0
declare -A VALUE_OPTIONS=(
  [--overlay]=overlay
  [--listener-image]=listener_image
  [--recall-image]=recall_image
  [--context]=context
)
declare -A FLAG_OPTIONS=([--render]=render=1 [--mesh-admin]=mesh_admin=1 [--no-wait]=wait_rollout=0)
parse_options "$@"

case "$overlay" in
  dev | prod) ;;
  *) die "overlay must be dev or prod, not '$overlay'" ;;
esac
command -v kubectl >/dev/null || die "kubectl is not installed (it renders the kustomization and applies it)"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
overlay_dir="$here/kubernetes/overlays/$overlay"
[[ -f "$overlay_dir/kustomization.yaml" ]] || die "$overlay_dir/kustomization.yaml is missing"

# A throw-away kustomization on top of the overlay carries the image overrides, so the files
# in git are never edited by a deploy. kustomize wants a relative path to the overlay.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $(realpath --relative-to="$work" "$overlay_dir")"
  if ((mesh_admin)); then
    echo "components:"
    echo "  - $(realpath --relative-to="$work" "$here/kubernetes/components/mesh-admin")"
  fi
  if [[ -n "$listener_image$recall_image" ]]; then
    echo "images:"
    for pair in "fanrecall/listener=$listener_image" "fanrecall/recall-service=$recall_image"; do
      name="${pair%%=*}" ref="${pair#*=}"
      [[ -n "$ref" ]] || continue
      # REF is NAME[:TAG] or NAME@DIGEST; a registry port (host:5000/x) is not a tag.
      if [[ "$ref" == *@* ]]; then
        printf '  - name: %s\n    newName: %s\n    digest: %s\n' "$name" "${ref%@*}" "${ref#*@}"
      elif [[ "${ref##*/}" == *:* ]]; then
        printf '  - name: %s\n    newName: %s\n    newTag: "%s"\n' "$name" "${ref%:*}" "${ref##*:}"
      else
        printf '  - name: %s\n    newName: %s\n' "$name" "$ref"
      fi
    done
  fi
} >"$work/kustomization.yaml"

manifests="$(kubectl kustomize "$work")" || die "kustomize could not render $overlay_dir"
if ((render)); then
  printf '%s\n' "$manifests"
  exit 0
fi

kube=(kubectl)
[[ -n "$context" ]] && kube+=(--context "$context")

if [[ "$overlay" == prod ]]; then
  if grep -q 'FANRECALL_S3_ENDPOINT: https://s3.invalid' <<<"$manifests"; then
    die "set FANRECALL_S3_ENDPOINT in $overlay_dir/recall-service.env first"
  fi
  "${kube[@]}" -n fanrecall get secret fanrecall-s3 >/dev/null 2>&1 ||
    die "the Secret fanrecall/fanrecall-s3 does not exist; create it first (see $overlay_dir/kustomization.yaml)"
fi

if ((mesh_admin)); then
  "${kube[@]}" -n fanrecall get secret fanrecall-mesh-tls >/dev/null 2>&1 ||
    die "the Secret fanrecall/fanrecall-mesh-tls does not exist; create it first (see deploy/kubernetes/components/mesh-admin)"
fi

echo "deploy.sh: applying overlay $overlay"
"${kube[@]}" apply -k "$work"
if ((wait_rollout)); then
  "${kube[@]}" -n fanrecall rollout status daemonset/fanrecall-node --timeout=10m
fi
