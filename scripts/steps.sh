# Sourced by the set-up scripts: `step NAME COMMAND...` runs COMMAND between two lines that name
# it and give its time; with MODELYARD_STEP_LOG set (scripts/fresh-check), "NAME<TAB>SECONDS" is
# appended there too.
step() {
  local name=$1 start=$SECONDS
  shift
  echo "==> $name" >&2
  "$@"
  local took=$((SECONDS - start))
  echo "==> $name: done in $((took / 60)) min $((took % 60)) s" >&2
  if [ -n "${MODELYARD_STEP_LOG:-}" ]; then
    printf '%s\t%s\n' "$name" "$took" >>"$MODELYARD_STEP_LOG"
  fi
}
