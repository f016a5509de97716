#!/usr/bin/env bash
# Health check for cron (e.g. every minute): readiness, store, disk, memory, HL7 dead letters.
# Prints "OK ..." and exits 0, or raises ONE alert listing every problem and exits 1.
#
#   MEDICORE_URL                   server base (default http://127.0.0.1:8080)
#   MEDICORE_HC_TIMEOUT            seconds per HTTP call (default 5)
#   MEDICORE_HC_DISK_PATH          filesystem to watch (default /data if present, else .)
#   MEDICORE_HC_DISK_MIN_FREE_PCT  alert below this % free (default 10)
#   MEDICORE_HC_MEM_MIN_AVAIL_PCT  alert below this % of memory available (default 10)
#   MEDICORE_HC_DEAD_LETTER_MAX    alert above this many failed HL7 messages (default 0)
#   plus MEDICORE_ALERT_COMMAND (see lib.sh)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

url="${MEDICORE_URL:-http://127.0.0.1:8080}"
timeout="${MEDICORE_HC_TIMEOUT:-5}"
disk_path="${MEDICORE_HC_DISK_PATH:-}"
if [[ -z "$disk_path" ]]; then
    if [[ -d /data ]]; then disk_path=/data; else disk_path=.; fi
fi
problems=()
notes=()
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

# http_get URL: body into $body, prints the HTTP status (000 when nothing answered).
http_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -s -o "$body" -w '%{http_code}' --max-time "$timeout" "$1" || true
    else
        python3 - "$1" "$body" "$timeout" <<'PY' || echo 000
import sys, urllib.request, urllib.error
url, out, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
try:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data, code = r.read(), r.status
except urllib.error.HTTPError as e:
    data, code = e.read(), e.code
except Exception:
    print("000"); sys.exit(0)
open(out, "wb").write(data); print(code)
PY
    fi
}

# 1. readiness (store reachable and writable, disk, MLLP: whatever the server checks)
code="$(http_get "$url/health/ready")"
case "$code" in
    200) notes+=("ready") ;;
    000) problems+=("server not answering at $url/health/ready (down, or port blocked)") ;;
    *)
        failing="$(python3 -c '
import json, sys
try:
    checks = json.load(open(sys.argv[1])).get("checks", {})
except Exception:
    checks = {}
print(", ".join(f"{n}: {c.get(\"message\", c.get(\"status\"))}"
                for n, c in sorted(checks.items()) if c.get("status") == "fail") or "unknown")
' "$body")"
        problems+=("readiness HTTP $code: $failing")
        if [[ "$failing" == *"store: "* ]]; then
            problems+=("STORE UNREACHABLE: see docs/operations/scenarios/store-down.md")
        fi
        ;;
esac

# 2. disk space where the data lives
free_pct="$(df -P "$disk_path" 2>/dev/null | awk 'NR==2 { gsub("%", "", $5); print 100 - $5 }')"
if [[ -z "$free_pct" ]]; then
    problems+=("cannot read disk usage of $disk_path")
elif (( free_pct < ${MEDICORE_HC_DISK_MIN_FREE_PCT:-10} )); then
    problems+=("disk $disk_path only ${free_pct}% free (threshold ${MEDICORE_HC_DISK_MIN_FREE_PCT:-10}%): see docs/operations/scenarios/disk-full.md")
else
    notes+=("disk ${free_pct}% free")
fi

# 3. memory available on this host
if [[ -r /proc/meminfo ]]; then
    mem_pct="$(awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END { if (t > 0) print int(a * 100 / t) }' /proc/meminfo)"
    if [[ -n "$mem_pct" ]] && (( mem_pct < ${MEDICORE_HC_MEM_MIN_AVAIL_PCT:-10} )); then
        problems+=("memory only ${mem_pct}% available (threshold ${MEDICORE_HC_MEM_MIN_AVAIL_PCT:-10}%)")
    elif [[ -n "$mem_pct" ]]; then
        notes+=("memory ${mem_pct}% available")
    fi
fi

# 4. HL7 dead letters (messages that were not applied and wait for reprocessing)
code="$(http_get "$url/metrics")"
if [[ "$code" == 200 ]]; then
    depth="$(awk '/^medicore_hl7_dead_letter_depth / { print int($2) }' "$body")"
    if [[ -n "$depth" ]] && (( depth > ${MEDICORE_HC_DEAD_LETTER_MAX:-0} )); then
        problems+=("$depth HL7 message(s) failed and wait for reprocessing: see docs/operations/scenarios/lab-results-not-arriving.md")
    elif [[ -n "$depth" ]]; then
        notes+=("dead letters $depth")
    fi
elif [[ "$code" != 000 ]]; then
    problems+=("/metrics answered HTTP $code")
fi

if (( ${#problems[@]} )); then
    text="$(printf '%s\n' "${problems[@]}")"
    alert "MediCore health check FAILED on $(hostname 2>/dev/null || echo host) ($url)" "$text"
    exit 1
fi
echo "OK $url: $(IFS=','; echo "${notes[*]}")"
