#!/usr/bin/env bash
# swift-s3.sh: OpenStack Swift "all in one" with the s3api middleware, for the e2e tests.
#
# Owns: the Debian Swift packages' installation (`install`), and one Swift instance per
#   directory DIR (`start PORT DIR` / `stop DIR` / `env DIR`): its configs, rings, device dir,
#   logs and pid files all live under DIR. The proxy (S3 endpoint) listens on 127.0.0.1:PORT,
#   the object/container/account servers on 127.0.0.1:PORT+1..PORT+3 (recorded in DIR/ports).
# Must not touch: anything outside DIR except /etc/swift/swift.conf (written only if missing:
#   the servers read it from that fixed path) and, during `install`, /usr/sbin/policy-rc.d
#   (created only if absent, removed again afterwards).
# Processes: `start` leaves 4 servers running, each in its own session/process group (setsid),
#   pids in DIR/run/<kind>.pid; stdin is /dev/null and stdout/stderr go to DIR/logs/<kind>.log,
#   so no caller fd is held open by them. `stop` signals exactly those process groups.
# Every wait is bounded (SWIFT_S3_READY_TIMEOUT, default 30 s; stop: 10 s, then SIGKILL).
set -euo pipefail

readonly PACKAGES=(swift swift-proxy swift-object swift-container swift-account python3-swift)
readonly BACKENDS=(object container account)
readonly SERVERS=(account container object proxy)
# The Debian python that the swift-* entry points use (not whatever python3 is first in PATH).
readonly PY=/usr/bin/python3
readonly READY_TIMEOUT_S=${SWIFT_S3_READY_TIMEOUT:-30}
readonly STOP_TIMEOUT_S=10
readonly ACCESS_KEY='test:tester'
readonly SECRET_KEY='testing'
readonly REGION='us-east-1'

usage() {
  cat <<'EOF'
Usage: swift-s3.sh COMMAND [ARGS]

  install          install the Debian Swift packages (idempotent; root; apt-get)
  start PORT DIR   configure and start a Swift AIO with s3api on 127.0.0.1:PORT
                   (backends on PORT+1..PORT+3), everything under DIR; waits until
                   the S3 API answers (bounded by SWIFT_S3_READY_TIMEOUT, default 30 s)
  stop DIR         stop the servers started by `start` for DIR (data is kept)
  env DIR          print FANRECALL_S3_* settings for the instance in DIR
  --help           this text

S3 credentials: access key test:tester, secret testing, region us-east-1, path-style.
EOF
}

die() {
  echo "swift-s3.sh: $*" >&2
  exit 1
}

# ---------------------------------------------------------------- install

packages_missing() {
  local p status
  for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || return 0
  done
  return 1
}

# Stops Swift servers of the distribution's own setup (configs in /etc/swift), never ours.
stop_distro_services() {
  local units=() pid args
  if [[ -d /run/systemd/system ]]; then
    mapfile -t units < <(systemctl list-units --type=service --state=active --no-legend --plain 'swift*' |
      awk '{print $1}')
    if ((${#units[@]})); then
      systemctl stop "${units[@]}" || true
    fi
  fi
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [[ $args =~ ^[^\ ]*python3[^\ ]*\ /usr/bin/swift-[a-z-]+\ /etc/swift/ ]]; then
      echo "swift-s3.sh: stopping distribution Swift process $pid: $args" >&2
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

cmd_install() {
  if packages_missing; then
    [[ $(id -u) -eq 0 ]] || die "install: the Swift packages are missing and installing them needs root"
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\n# swift-s3.sh: keep package scripts from starting services\nexit 101\n' \
        >/usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      made_policy=1
    fi
    local rc=0
    {
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q &&
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
    } || rc=$?
    if ((made_policy)); then
      rm -f /usr/sbin/policy-rc.d
    fi
    ((rc == 0)) || die "install: apt-get failed (exit $rc)"
  fi
  stop_distro_services
}

# ---------------------------------------------------------------- start

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ensure_swift_conf() {
  [[ -f /etc/swift/swift.conf ]] && return 0
  mkdir -p /etc/swift || die "cannot create /etc/swift (the servers read /etc/swift/swift.conf)"
  cat >/etc/swift/swift.conf <<'EOF'
# written by fanrecall's test/helpers/swift-s3.sh because it was missing
[swift-hash]
swift_hash_path_suffix = fanrecall-test-suffix
swift_hash_path_prefix = fanrecall-test-prefix

[storage-policy:0]
name = Policy-0
default = yes
EOF
}

write_default_section() {
  local dir=$1 port=$2 name=$3
  cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $(id -un)
swift_dir = $dir/swift
devices = $dir/devices
mount_check = false
log_name = $name
log_level = INFO
EOF
}

write_backend_conf() {
  local dir=$1 kind=$2 port=$3
  {
    write_default_section "$dir" "$port" "$kind-server"
    cat <<EOF

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind

[filter:healthcheck]
use = egg:swift#healthcheck

[$kind-replicator]
[$kind-updater]
[$kind-auditor]
EOF
  } >"$dir/swift/$kind-server.conf"
}

write_proxy_conf() {
  local dir=$1 port=$2 f
  {
    write_default_section "$dir" "$port" proxy-server
    cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION
allow_multipart_uploads = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $SECRET_KEY .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11211

[filter:proxy-logging]
use = egg:swift#proxy_logging
EOF
    for f in catch_errors gatekeeper healthcheck listing_formats bulk copy slo dlo versioned_writes symlink; do
      printf '\n[filter:%s]\nuse = egg:swift#%s\n' "$f" "$f"
    done
  } >"$dir/swift/proxy-server.conf"
}

build_ring() {
  local dir=$1 kind=$2 port=$3 rc=0
  local builder="$dir/swift/$kind.builder"
  [[ -f $dir/swift/$kind.ring.gz ]] && return 0
  rm -f "$builder"
  swift-ring-builder "$builder" create 6 1 1 >/dev/null
  swift-ring-builder "$builder" add "r1z1-127.0.0.1:$port/d1" 100 >/dev/null
  # exit 1 is a warning (e.g. balance), 2 an error
  swift-ring-builder "$builder" rebalance >/dev/null || rc=$?
  ((rc <= 1)) || die "swift-ring-builder $kind rebalance failed (exit $rc)"
  [[ -f $dir/swift/$kind.ring.gz ]] || die "no $kind.ring.gz after rebalance"
}

# Port of server KIND from DIR/ports (lines "kind port").
port_of() {
  awk -v k="$2" '$1 == k {print $2}' "$1/ports"
}

# pid recorded for KIND if that process is alive (not a zombie) and runs our config.
live_pid() {
  local dir=$1 kind=$2 pid state
  [[ -f $dir/run/$kind.pid ]] || return 1
  pid=$(<"$dir/run/$kind.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/swift/$kind-server.conf" || return 1
  echo "$pid"
}

logs_tail() {
  local dir=$1 kind
  for kind in "${SERVERS[@]}"; do
    echo "---- $dir/logs/$kind.log (last 15 lines)" >&2
    tail -n 15 "$dir/logs/$kind.log" >&2 2>/dev/null || true
  done
}

# One probe: every backend's /healthcheck is 200 and the proxy answers an S3 request carrying a
# bogus signature with an S3 XML error (an unsigned request would fall through to native Swift).
probe_ready() {
  local dir=$1
  "$PY" - "$(port_of "$dir" proxy)" "$(port_of "$dir" object)" "$(port_of "$dir" container)" \
    "$(port_of "$dir" account)" <<'EOF'
import email.utils, http.client, sys
proxy, *backends = sys.argv[1:]
def get(port, path, headers):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=2)
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
try:
    for p in backends:
        if get(p, "/healthcheck", {})[0] != 200:
            sys.exit(1)
    hdrs = {"Authorization": "AWS test:tester:Ym9ndXM=", "Date": email.utils.formatdate(usegmt=True)}
    status, body = get(proxy, "/", hdrs)
    sys.exit(0 if b"<Code>" in body else 1)
except Exception:
    sys.exit(1)
EOF
}

wait_ready() {
  local dir=$1 kind deadline=$((SECONDS + READY_TIMEOUT_S))
  while :; do
    for kind in "${SERVERS[@]}"; do
      live_pid "$dir" "$kind" >/dev/null || {
        echo "swift-s3.sh: $kind-server exited during start" >&2
        return 1
      }
    done
    probe_ready "$dir" && return 0
    if ((SECONDS >= deadline)); then
      echo "swift-s3.sh: S3 API not ready after ${READY_TIMEOUT_S}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

cmd_start() {
  (($# == 2)) || die "usage: start PORT DIR"
  local port=$1 dir=$2 kind p
  [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65533)) || die "bad port: $port"
  command -v swift-proxy-server >/dev/null || die "Swift is not installed: run '$0 install' first"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/swift" "$dir/devices/d1" "$dir/logs" "$dir/run"
  for kind in "${SERVERS[@]}"; do
    if live_pid "$dir" "$kind" >/dev/null; then die "$kind-server for $dir is already running"; fi
  done
  if [[ -f $dir/ports ]]; then
    p=$(port_of "$dir" proxy)
    [[ $p == "$port" ]] || die "$dir was set up for port $p, not $port"
  else
    printf 'proxy %d\nobject %d\ncontainer %d\naccount %d\n' \
      "$port" $((port + 1)) $((port + 2)) $((port + 3)) >"$dir/ports"
  fi
  for kind in "${SERVERS[@]}"; do
    p=$(port_of "$dir" "$kind")
    if port_in_use "$p"; then die "127.0.0.1:$p ($kind) is already in use"; fi
  done
  ensure_swift_conf
  write_proxy_conf "$dir" "$port"
  local builders=()
  for kind in "${BACKENDS[@]}"; do
    p=$(port_of "$dir" "$kind")
    write_backend_conf "$dir" "$kind" "$p"
    # the three rings in parallel: each swift-ring-builder call is a ~0.3 s python start
    build_ring "$dir" "$kind" "$p" &
    builders+=($!)
  done
  for p in "${builders[@]}"; do
    wait "$p" || die "building the rings failed"
  done
  for kind in "${SERVERS[@]}"; do
    # -v: log to the console too, i.e. into our log file (there may be no syslog here).
    setsid "/usr/bin/swift-$kind-server" "$dir/swift/$kind-server.conf" -v \
      </dev/null >>"$dir/logs/$kind.log" 2>&1 &
    echo $! >"$dir/run/$kind.pid"
  done
  if ! wait_ready "$dir"; then
    logs_tail "$dir"
    cmd_stop "$dir" || true
    exit 1
  fi
}

# ---------------------------------------------------------------- stop / env

cmd_stop() {
  (($# == 1)) || die "usage: stop DIR"
  local dir kind pid pids=() deadline
  [[ -d $1 ]] || die "no such directory: $1"
  dir=$(cd "$1" && pwd)
  for kind in "${SERVERS[@]}"; do
    pid=$(live_pid "$dir" "$kind") || continue
    pids+=("$pid")
    kill -CONT -- "-$pid" 2>/dev/null || true # a paused (SIGSTOPped) server must see the TERM
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  while :; do
    local alive=0
    for kind in "${SERVERS[@]}"; do
      if live_pid "$dir" "$kind" >/dev/null; then alive=1; fi
    done
    ((alive)) || break
    if ((SECONDS >= deadline)); then
      for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
      sleep 0.5
      break
    fi
    sleep 0.1
  done
  for kind in "${SERVERS[@]}"; do
    if live_pid "$dir" "$kind" >/dev/null; then die "$kind-server did not exit"; fi
    rm -f "$dir/run/$kind.pid"
  done
}

cmd_env() {
  (($# == 1)) || die "usage: env DIR"
  [[ -f $1/ports ]] || die "no Swift instance in $1 (no ports file)"
  echo "FANRECALL_S3_ENDPOINT=http://127.0.0.1:$(port_of "$1" proxy)"
  echo "FANRECALL_S3_ACCESS_KEY=$ACCESS_KEY"
  echo "FANRECALL_S3_SECRET_KEY=$SECRET_KEY"
  echo "FANRECALL_S3_REGION=$REGION"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    install) (($# == 0)) || die "usage: install"; cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    env) cmd_env "$@" ;;
    -h | --help | help) usage ;;
    '') usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command: $cmd" ;;
  esac
}

main "$@"
