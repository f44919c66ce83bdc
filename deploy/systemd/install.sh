#!/usr/bin/env bash
# deploy/systemd/install.sh: installs fanrecall's systemd units, its system user and example
# settings. It does not install the code: that is a built checkout at /opt/fanrecall (see
# deploy/README.md). Safe to run again: settings files that exist are never overwritten.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/systemd/install.sh [--root DIR] [--help]

Installs (as root):
  /etc/systemd/system/fanrecall-listener.service, fanrecall-recall.service, fanrecall-holder.service,
    fanrecall-policy.service
  /etc/sysusers.d/fanrecall.conf, and creates the user/group fanrecall (systemd-sysusers)
  /etc/fanrecall/listener.env        (0644, from listener.env.example, if missing;
                                      FANRECALL_RECALL_UID set to fanrecall's uid)
  /etc/fanrecall/recall-service.env  (0600 root:root, from recall-service.env.example,
                                      if missing: put the S3 keys there)
  /etc/fanrecall/policy.env, policy.json (0644, from the examples, if missing)
then runs `systemctl daemon-reload`. It enables nothing; afterwards:
  systemctl enable --now fanrecall-holder.service fanrecall-recall.service fanrecall-listener.service
and, for space management (archive ahead, release past a high watermark),
  systemctl enable --now fanrecall-policy.service

  --root DIR   install into DIR as an alternate root (for images and tests): no systemctl
EOF
}

# shellcheck source=deploy/options.sh
source "$(dirname "${BASH_SOURCE[0]}")/../options.sh"

root=""
declare -A VALUE_OPTIONS=([--root]=root)
declare -A FLAG_OPTIONS=()
parse_options "$@"
if [[ -n "$root" ]]; then
  root="$(realpath "$root")"
elif [[ $(id -u) -ne 0 ]]; then
  die "run as root (or with --root DIR)"
fi
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v systemd-sysusers >/dev/null || die "systemd-sysusers is missing (Debian package systemd)"

install -d -m 0755 "$root/etc/systemd/system" "$root/etc/sysusers.d" "$root/etc/fanrecall"
install -m 0644 "$src/fanrecall-listener.service" "$src/fanrecall-recall.service" "$src/fanrecall-holder.service" \
  "$src/fanrecall-policy.service" "$root/etc/systemd/system/"
install -m 0644 "$src/sysusers.d/fanrecall.conf" "$root/etc/sysusers.d/fanrecall.conf"
if [[ -n "$root" ]]; then
  systemd-sysusers --root="$root" "$root/etc/sysusers.d/fanrecall.conf"
else
  systemd-sysusers /etc/sysusers.d/fanrecall.conf
fi
uid="$(awk -F: '$1 == "fanrecall" { print $3 }' "$root/etc/passwd")"
[[ "$uid" =~ ^[0-9]+$ ]] || die "user fanrecall was not created"

owner=()
[[ $(id -u) -eq 0 ]] && owner=(-o root -g root)
if [[ ! -e "$root/etc/fanrecall/listener.env" ]]; then
  install "${owner[@]}" -m 0644 "$src/listener.env.example" "$root/etc/fanrecall/listener.env"
fi
if grep -q '^FANRECALL_RECALL_UID=$' "$root/etc/fanrecall/listener.env"; then
  sed -i "s/^FANRECALL_RECALL_UID=\$/FANRECALL_RECALL_UID=$uid/" "$root/etc/fanrecall/listener.env"
fi
if [[ ! -e "$root/etc/fanrecall/recall-service.env" ]]; then
  install "${owner[@]}" -m 0600 "$src/recall-service.env.example" "$root/etc/fanrecall/recall-service.env"
fi
for settings in policy.env policy.json; do
  if [[ ! -e "$root/etc/fanrecall/$settings" ]]; then
    install "${owner[@]}" -m 0644 "$src/$settings.example" "$root/etc/fanrecall/$settings"
  fi
done
# The S3 secret key alone (LoadCredential= in fanrecall-recall.service); empty until set.
if [[ ! -e "$root/etc/fanrecall/s3-secret-key" ]]; then
  install "${owner[@]}" -m 0600 /dev/null "$root/etc/fanrecall/s3-secret-key"
fi

if [[ -z "$root" ]]; then
  systemctl daemon-reload
  echo "install.sh: installed; put the S3 settings in /etc/fanrecall/recall-service.env and the"
  echo "  secret key alone in /etc/fanrecall/s3-secret-key, then"
  echo "  systemctl enable --now fanrecall-holder.service fanrecall-recall.service fanrecall-listener.service"
else
  echo "install.sh: installed into $root"
fi
