#!/usr/bin/env bash
# Long fuzz runs: every fuzz target (ferry_common::fuzz) for MINUTES in all,
# split evenly, in release builds (overflow checks on, as in debug, so an
# arithmetic overflow is a crash and not a silent wrong value).
#   bench/fuzz.sh 60          # one hour
#   FERRY_FUZZ_SEED=N bench/fuzz.sh 1   # replay a run
#   FUZZ_SKIP_GRPC=1 / FUZZ_SKIP_PARSERS=1  # a part only (the totals cover it)
# Prints each target's cases and crashes, then the totals; exits 1 on any
# crash. Runs one target at a time (the numbers are per target).
set -euo pipefail
MINUTES=${1:?usage: bench/fuzz.sh MINUTES}
cd "$(dirname "$0")/.."
TARGETS=8 # 4 in ferry-common, 3 in ferry-worker, 1 against a coordinator
export FERRY_FUZZ_SECONDS=$(python3 -c "print(max(1.0, $MINUTES * 60 / $TARGETS))")
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
LOG=$(mktemp /tmp/ferry-fuzz-XXXX.log)
echo "fuzzing $TARGETS targets, $FERRY_FUZZ_SECONDS s each; log: $LOG"
run() { cargo test -q "$@" -- --test-threads=1 --nocapture 2>&1 | tee -a "$LOG" | grep -E "^fuzz |crash:" || true; }
# The parsers in release (overflow checks on): cases per second count.
[ -z "${FUZZ_SKIP_PARSERS:-}" ] && run --release -p ferry-common --test fuzz
[ -z "${FUZZ_SKIP_PARSERS:-}" ] && run --release -p ferry-worker fuzz_
# The coordinator in the debug build the tests use: its round trips, not
# its CPU, bound the rate, and a release RocksDB build would cost more time
# than the run.
if [ -z "${FUZZ_SKIP_GRPC:-}" ]; then
  cargo build --workspace --bins -q
  run -p ferry-tests --test e2e fuzz_grpc::
fi
python3 - "$LOG" <<'PY'
import re, sys
cases = crashes = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"fuzz (\S+): (\d+) cases, (\d+) crashes", line)
    if m and m.group(1) != "planted":
        cases += int(m.group(2)); crashes += int(m.group(3))
print(f"total: {cases} cases, {crashes} crashes")
sys.exit(1 if crashes else 0)
PY
