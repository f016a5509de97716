# shellcheck shell=bash
# Shared by the ops scripts: how to call medicore, and how to raise an alert.
#
#   MEDICORE_CMD            the medicore command line (default: medicore), e.g.
#                           "/opt/medicore/.venv/bin/medicore" or "python3 -m fhir_server.cli"
#   MEDICORE_ALERT_COMMAND  run with the alert text on stdin and MEDICORE_ALERT_SUBJECT set,
#                           e.g. 'mail -s "$MEDICORE_ALERT_SUBJECT" oncall@hospital.example'
#                           or a pager webhook with curl. Default: stderr only.

medicore_cmd() {
    local -a cmd
    read -r -a cmd <<< "${MEDICORE_CMD:-medicore}"
    "${cmd[@]}" "$@"
}

# alert SUBJECT TEXT: always printed to stderr; also piped to MEDICORE_ALERT_COMMAND if set.
alert() {
    local subject="$1" text="$2"
    printf 'ALERT: %s\n%s\n' "$subject" "$text" >&2
    if [[ -n "${MEDICORE_ALERT_COMMAND:-}" ]]; then
        if ! printf '%s\n' "$text" | MEDICORE_ALERT_SUBJECT="$subject" sh -c "$MEDICORE_ALERT_COMMAND"; then
            printf 'ALERT: the alert command itself failed: %s\n' "$MEDICORE_ALERT_COMMAND" >&2
        fi
    fi
}
