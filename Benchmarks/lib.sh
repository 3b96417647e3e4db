# Shell helpers the benchmark scripts share (sourced, not run).

# field NAME LINE: the number after " NAME=" in a benchmark's result line.
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# callgrind FUNCTION-GLOB OUTFILE COMMAND...: runs COMMAND under callgrind collecting only inside
# the function; sets $total (instructions) and $arc (instructions inside retain/release/alloc/
# malloc/free: 0 is the proof that the loop does neither).
callgrind() {
  local glob=$1 file=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$file" --toggle-collect="$glob" "$@" >/dev/null 2>&1
  report=$(callgrind_annotate --auto=no --threshold=100 "$file" 2>/dev/null)
  total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' <<<"$report")
  arc=$( { grep -E ':(swift_retain|swift_release|swift_allocObject|swift_deallocObject|swift_bridgeObjectRetain|swift_bridgeObjectRelease|malloc|__libc_malloc|free|__libc_free)( |$)' <<<"$report" || true; } \
        | awk '{gsub(",", "", $1); s += $1} END {print s + 0}')
}
