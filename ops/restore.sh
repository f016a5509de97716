#!/usr/bin/env bash
# Restore a MediCore backup. Stop the server first (docs/operations/scenarios/restore-from-backup.md).
#
#   ops/restore.sh ARCHIVE [--force]     a medicore-*.tar.gz / .tar.xz file
#   ops/restore.sh latest [--force]      the newest archive in MEDICORE_BACKUP_DIR
#
# The checksum is verified before anything is touched; a store that holds data is only
# overwritten with --force; counts and the audit chain are checked afterwards.
# Exit codes: 0 restored, 1 failed, 3 refused (store not empty), 4 archive damaged,
# 5 restored data does not match the backup or the audit chain does not verify.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

if [[ $# -lt 1 ]]; then
    sed -n '2,11p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
archive="$1"
shift
if [[ "$archive" == latest ]]; then
    dir="${MEDICORE_BACKUP_DIR:?set MEDICORE_BACKUP_DIR to use latest}"
    archive="$(find "$dir" -maxdepth 1 -name 'medicore-*.tar.[gx]z' -printf '%f\n' \
        | sort | tail -n 1)"
    if [[ -z "$archive" ]]; then
        echo "restore: no medicore-*.tar.gz or .tar.xz archive in $dir" >&2
        exit 1
    fi
    archive="$dir/$archive"
fi
echo "restore: from $archive" >&2
set +e
medicore_cmd restore "$archive" "$@"
status=$?
set -e
if [[ $status -ne 0 ]]; then
    echo "restore: FAILED with exit code $status (see the message above)" >&2
fi
exit "$status"
