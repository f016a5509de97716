#!/usr/bin/env bash
# Nightly online backup of the MediCore store, for cron. Exits non-zero and alerts on failure.
#
#   MEDICORE_BACKUP_DIR        where archives go (required), e.g. /var/backups/medicore
#   MEDICORE_BACKUP_COPY_TO    a second location (another disk or a mounted remote share)
#   MEDICORE_BACKUP_KEEP_DAYS  age after which archives are deleted (default 30)
#   MEDICORE_BACKUP_COMPRESS   gzip (default) or xz
#   MEDICORE_STORE             the store URI, as for `medicore serve`
#   plus MEDICORE_CMD and MEDICORE_ALERT_COMMAND (see lib.sh)
#
# crontab:  15 2 * * *  MEDICORE_BACKUP_DIR=/var/backups/medicore /opt/medicore/ops/backup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

host="$(hostname 2>/dev/null || echo unknown-host)"
if [[ -z "${MEDICORE_BACKUP_DIR:-}" ]]; then
    alert "MediCore backup FAILED on $host" "MEDICORE_BACKUP_DIR is not set: nothing was backed up."
    exit 2
fi

args=(backup --to "$MEDICORE_BACKUP_DIR" --keep-days "${MEDICORE_BACKUP_KEEP_DAYS:-30}"
      --compress "${MEDICORE_BACKUP_COMPRESS:-gzip}")
if [[ -n "${MEDICORE_BACKUP_COPY_TO:-}" ]]; then
    args+=(--copy-to "$MEDICORE_BACKUP_COPY_TO")
fi

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
set +e
medicore_cmd "${args[@]}" 2>"$errors"
status=$?
set -e
cat "$errors" >&2
if [[ $status -eq 0 ]]; then
    exit 0
fi
alert "MediCore backup FAILED on $host" \
    "medicore backup exited $status: $(tail -n 5 "$errors")
See docs/operations/scenarios/restore-from-backup.md and the backup section of the runbook."
exit "$status"
