#!/usr/bin/env bash
# Single-node Ceph RADOS Gateway (S3) on 127.0.0.1 for integration tests (started by test/harness/s3.ts).
# From the measured recipe in shared/specs/ceph-s3.md, plus rgw-stop/rgw-start for outage tests.
# Debian 12 packages: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
#   (no ceph-mgr, no systemd, no block device, no root needed; everything lives in $DIR)
#
# usage: ceph-s3.sh start|stop|destroy|rgw-stop|rgw-start
#   start      first time: create cluster + S3 user, then run; later: restart on the same data
#   stop       TERM radosgw, osd, mon (in that order) and wait; data is kept for the next start
#   destroy    stop, then rm -rf $DIR
#   rgw-stop   TERM only radosgw (an S3 outage for tests; mon and osd keep the data in memory)
#   rgw-start  start radosgw again on the running mon and osd, and wait until it answers
# env: DIR (state dir), RGW_PORT (S3 port, HTTP), TLS_PORT (S3 port, HTTPS with a self-signed certificate in
#      $DIR/tls.crt), MON_PORT (mon port; OSD takes 4 free ports in
#      6800-7300 by itself), OSD_STORE (memstore: data in RAM, written to $DIR/osd.0 at a clean
#      stop only; bluestore: data in a sparse 10 GiB file, survives kill -9, ~5 s cold start),
#      MEMSTORE_BYTES (memstore's capacity, default 4 GiB; the S3 bench stores several GB),
#      ACCESS_KEY, SECRET_KEY.
# S3 client settings: endpoint http://127.0.0.1:$RGW_PORT, path-style, any region (e.g. us-east-1).
set -euo pipefail
DIR=${DIR:-/tmp/ceph-s3}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
TLS_PORT=${TLS_PORT:-7443}
OSD_STORE=${OSD_STORE:-memstore}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-4294967296}
ACCESS_KEY=${ACCESS_KEY:-testaccesskey}
SECRET_KEY=${SECRET_KEY:-testsecretkey}
export CEPH_CONF=$DIR/ceph.conf   # used by ceph, ceph-mon, ceph-osd, radosgw, radosgw-admin

log() { echo "[$(date +%T.%N | cut -c1-12)] $*" >&2; }

write_conf() {
  cat > "$CEPH_CONF" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok

[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log
# RGW creates ~8 pools, one osdmap change each; the default 1 s batching costs ~10 s
paxos propose interval = 0.01
paxos min wait = 0.01

[osd]
osd data = $DIR/osd.\$id
osd objectstore = $OSD_STORE
memstore device bytes = $MEMSTORE_BYTES
# memstore saves its data only in a clean umount, which fast shutdown skips
osd fast shutdown = false
bluestore block create = true
bluestore block size = 10737418240

[client]
# radosgw-admin and radosgw may start before the osd is up: re-ask for the osdmap every
# 0.5 s instead of every 5 s
objecter tick interval = 0.5

[client.rgw.0]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$TLS_PORT ssl_certificate=$DIR/tls.crt ssl_private_key=$DIR/tls.key
# walden's tests send a few requests at a time; the default 512 threads only cost memory
rgw thread pool size = 16
# the lifecycle worker sleeps in 5 s steps and delays shutdown by ~10 s
rgw enable lc threads = false
# free deleted/overwritten data after 1 min instead of 2 h (memstore keeps it in RAM)
rgw gc obj min wait = 60
rgw gc processor period = 60
# SSE-KMS through Ceph's 'testing' key backend (a random key kept in this file), so tests can check that
# repoN-s3-kms-key-id reaches the gateway; allowed over plain HTTP here, as nothing but tests uses this gateway.
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = walden-test-key=$(head -c 32 /dev/urandom | base64)
rgw crypt require ssl = false
EOF
}

run_bg() { # name cmd... : run in the foreground mode (-f), backgrounded, pid in run/NAME.fgpid
  local name=$1; shift
  "$@" >> "$DIR/log/$name.stdout" 2>&1 &
  echo $! > "$DIR/run/$name.fgpid"
}

alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }

wait_s3() {
  local i
  for i in $(seq 1 300); do   # 30 s
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RGW_PORT/")" = 200 ] && return 0
    alive "$(cat "$DIR/run/rgw.0.fgpid")" || break
    sleep 0.1
  done
  log "radosgw not ready; see $DIR/log"; tail -n 20 "$DIR/log/client.rgw.0.log" >&2 || true
  return 1
}

start() {
  local n
  for n in mon.a osd.0 rgw.0; do
    if [ -f "$DIR/run/$n.fgpid" ] && alive "$(cat "$DIR/run/$n.fgpid")"; then
      log "$n already running in $DIR"; return 1
    fi
  done
  mkdir -p "$DIR/run" "$DIR/log" "$DIR/crash"
  if [ ! -f "$CEPH_CONF" ]; then
    local fsid uuid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    uuid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid"
    # A self-signed certificate for the HTTPS endpoint (TLS_PORT): tests of repoN-storage-verify-tls and -ca-file.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=127.0.0.1 \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
    monmaptool --create --fsid "$fsid" --addv a "v2:127.0.0.1:$MON_PORT" "$DIR/monmap" >/dev/null
    ceph-mon --mkfs -i a --monmap "$DIR/monmap"
    run_bg mon.a ceph-mon -f -i a
    ceph osd new "$uuid" >/dev/null                      # waits for the mon; prints the id, 0
    mkdir -p "$DIR/osd.0"
    ceph-osd -i 0 --mkfs --osd-uuid "$uuid" >> "$DIR/log/osd-mkfs.stdout" 2>&1
    run_bg osd.0 ceph-osd -f -i 0
    # creates the zone and its pools (waits for the osd), then the S3 user
    radosgw-admin user create --uid=test --display-name=test \
      --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  else
    run_bg mon.a ceph-mon -f -i a
    run_bg osd.0 ceph-osd -f -i 0
  fi
  run_bg rgw.0 radosgw -f -n client.rgw.0
  wait_s3
  log "S3 ready: http://127.0.0.1:$RGW_PORT (key $ACCESS_KEY)"
}

stop_daemon() { # name : TERM it and wait (SIGKILL after 30 s)
  local n=$1 p
  [ -f "$DIR/run/$n.fgpid" ] || return 0
  p=$(cat "$DIR/run/$n.fgpid")
  if alive "$p"; then
    kill -TERM "$p"
    for _ in $(seq 1 600); do alive "$p" || break; sleep 0.05; done   # 30 s
    alive "$p" && { log "$n did not stop, SIGKILL"; kill -KILL "$p"; }
  fi
  rm -f "$DIR/run/$n.fgpid"
}

rgw_start() {
  if [ -f "$DIR/run/rgw.0.fgpid" ] && alive "$(cat "$DIR/run/rgw.0.fgpid")"; then
    log "rgw.0 already running in $DIR"; return 1
  fi
  run_bg rgw.0 radosgw -f -n client.rgw.0
  wait_s3
}

stop() {
  local n
  for n in rgw.0 osd.0 mon.a; do stop_daemon "$n"; done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  destroy) stop; rm -rf "$DIR" ;;
  rgw-stop) stop_daemon rgw.0 ;;
  rgw-start) rgw_start ;;
  *) echo "usage: $0 start|stop|destroy|rgw-stop|rgw-start" >&2; exit 2 ;;
esac
