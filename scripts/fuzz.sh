#!/usr/bin/env bash
# The libFuzzer targets of Fuzz/ (a package over the root's libraries), built with the fuzzer and
# address sanitizers, each run for FUZZ_SECONDS from its committed seeds (Fuzz/Corpus/<name>/):
#   wire              any bytes as frames: the wire views and HostStack.receive
#   kv-server         the KV server's whole receive path, frames in, replies out
#   memcached         the memcached request parser and engine on any datagram
#   virtio-used-ring  a fuzzed device writing VirtioNet's used ring
# Prints executions, executions per second and crashes per target; exits 1 on any crash (or a
# fuzzer that did not run), leaving the crashing inputs in the run's folder, which it names.
#   scripts/fuzz.sh [target...]        (default: all four)
# Environment: FUZZ_SECONDS (60 per target); FUZZ_RUNS (optional: stop a target after this many
# executions, FUZZ_SECONDS still bounding it); FUZZ_WORKERS (1: processes per target, sharing its
# working corpus, which libFuzzer re-reads every second; FUZZ_RUNS split among them, executions and
# rates summed); FUZZ_OUT (.build-fuzz/runs/<date-time>): the run's
# logs and crash inputs. The working corpora (seeds plus what the fuzzers found) live in
# .build-fuzz/corpus/<name>/ and carry over from run to run; the committed seeds are only read.
# A crash input is replayed with `.build-fuzz/release/<name> FILE`; kept as a regression seed, it
# goes into Fuzz/Corpus/<name>/ (named for what it found).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
all=(wire kv-server memcached virtio-used-ring)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: no fuzzer named $t (there are: ${all[*]})" >&2; exit 2; }
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
  exit 2
fi
workers=${FUZZ_WORKERS:-1}
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: FUZZ_WORKERS must be a whole number of processes, not '$workers'" >&2; exit 2; }
runs=()
if [ -n "${FUZZ_RUNS:-}" ]; then
  [[ "$FUZZ_RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: FUZZ_RUNS must be a whole number of executions, not '$FUZZ_RUNS'" >&2; exit 2; }
  runs=(-runs="$(( (FUZZ_RUNS + workers - 1) / workers ))")
fi
scratch=.build-fuzz
out=${FUZZ_OUT:-$scratch/runs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

# One build folder for all of them. gold warns on every link about ASan's spill area: noise.
echo "fuzz: building ${#all[@]} fuzzers (swift build -c release --package-path Fuzz, -sanitize=fuzzer,address)"
start=$(date +%s)
status=0
# The fuzz package's graph is the root's: the root's pins (Package.resolved) hold for it too.
cp Package.resolved Fuzz/Package.resolved
swift build -c release --package-path Fuzz --scratch-path "$scratch" \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >"$out/build.log" 2>&1 || status=$?
grep -v "Cannot export local symbol '__asan_extra_spill_area'" "$out/build.log" | grep -E "error|warning: " || true
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAIL: the build failed (status $status); its log: $out/build.log"
  tail -20 "$out/build.log"
  exit 1
fi
echo "fuzz: built in $(( $(date +%s) - start )) s"

# fuzz_one LOG: one process of target $t on its working corpus $work, crashes into $crashes.
# Swift's own backtracer would print after libFuzzer's report and wait for symbols: off.
fuzz_one() {
  SWIFT_BACKTRACE=enable=no timeout --kill-after=30 $(( seconds + 120 )) \
    "$scratch/release/$t" -max_total_time="$seconds" "${runs[@]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/" "$work" "Fuzz/Corpus/$t" >"$1" 2>&1
}
failed=0
summary=()
for t in "${targets[@]}"; do
  work=$scratch/corpus/$t crashes=$out/crashes/$t log=$out/$t.log
  mkdir -p "$work" "$crashes"
  echo "fuzz: $t for ${seconds} s (seeds Fuzz/Corpus/$t, working corpus $work)"
  status=0
  logs=("$log") others=()
  for w in $(seq 2 "$workers"); do
    logs+=("$out/$t.worker$w.log")
    fuzz_one "$out/$t.worker$w.log" & others+=($!)
  done
  fuzz_one "$log" || status=$?
  for p in "${others[@]}"; do
    wait "$p" || { worker_status=$?; [ "$status" -ne 0 ] || status=$worker_status; }
  done
  # Every process's final statistics, summed (a process without them leaves the sum empty).
  executions=$(awk '/^stat::number_of_executed_units:/ { s += $2; n++ } END { if (n == '"$workers"') print s }' "${logs[@]}")
  rate=$(awk '/^stat::average_exec_per_sec:/ { s += $2 } END { print s + 0 }' "${logs[@]}")
  found=$(find "$crashes" -type f | wc -l)
  corpus=$(find "$work" -type f | wc -l)
  if [ -z "$executions" ]; then
    echo "fuzz: FAIL: $t ended (status $status) without its final statistics; its logs: ${logs[*]}"
    tail -20 "${logs[@]}"
    failed=1
    executions=0 rate=0
  fi
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    failed=1
    echo "fuzz: FAIL: $t did not end in time (status $status): a hang? Its log: $log"
  elif [ "$found" -ne 0 ] || [ "$status" -ne 0 ]; then
    failed=1
    [ "$found" -ne 0 ] || found="?"
    echo "fuzz: FAIL: $t crashed (status $status): inputs in $crashes/, the report in ${logs[*]}:"
    grep -hE "Fatal error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY|Test unit written" "${logs[@]}" | head -8 | sed 's/^/  | /'
  fi
  summary+=("$(printf '%-17s %12s executions %8s/s %6s crashes  (corpus %s inputs)' "$t" "$executions" "$rate" "$found" "$corpus")")
done

echo "fuzz: ${seconds} s per target; logs and crash inputs in $out/"
printf '  %s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAIL: crashes above (replay one: $scratch/release/<name> FILE)"
  exit 1
fi
echo "fuzz: no crashes"
