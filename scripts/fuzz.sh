#!/usr/bin/env bash
# Runs every libFuzzer target of Fuzz/ for a time budget each, starting from the committed corpus, and prints what
# each run tried. Usage: scripts/fuzz.sh SECONDS [TARGET...]. The binary must be built (make fuzz builds it).
#   FUZZ_UPDATE_CORPUS=1  keeps the new inputs that reached new code in Fuzz/corpus, minimised (libFuzzer -merge),
#                         with the seed-* inputs kept by name, to commit.
# Exits 1 when any target crashed; the input is kept in Fuzz/crashes/ and becomes a regression input.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spiffe-id selector pem x509 jwt jwt-claims bundle cgroup pod-list config engine-answer)
binary=Fuzz/.build/debug/lanyard-fuzz
[ -x "$binary" ] || { echo "build it first: make fuzz"; exit 2; }
export LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp"
export LANYARD_FUZZ_DIR="$PWD/Fuzz"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p Fuzz/crashes
failed=0
printf '%-10s %8s %12s %10s %9s %s\n' target seconds executions "per sec" accepted result
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "Fuzz/corpus/$target" "Fuzz/regressions/$target"
    log="$scratch/$target.log"
    # Known crash inputs first: each must now run clean.
    if compgen -G "Fuzz/regressions/$target/*" >/dev/null; then
        if ! LANYARD_FUZZ_TARGET=$target "$binary" Fuzz/regressions/"$target"/* >"$log.regressions" 2>&1; then
            echo "$target: a regression input crashes again:"; tail -20 "$log.regressions"; failed=1; continue
        fi
    fi
    # libFuzzer adds what reaches new code to the first folder: a scratch one unless the corpus is to be updated.
    first="$scratch/$target"
    [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ] && first="Fuzz/corpus/$target"
    LANYARD_FUZZ_TARGET=$target "$binary" "$first" "Fuzz/corpus/$target" \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="Fuzz/crashes/$target-" >"$log" 2>&1
    status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    accepted=$(sed -n "s/^lanyard-fuzz $target: [0-9]* inputs, \([0-9]*\) accepted/\1/p" "$log" | tail -1)
    result=ok
    if [ $status -ne 0 ]; then
        result="CRASH (see Fuzz/crashes/$target-*)"
        failed=1
        grep -E "ERROR|Fatal error|SUMMARY|property broken" "$log" | head -5
    fi
    printf '%-10s %8s %12s %10s %9s %s\n' "$target" "$seconds" "${executions:-?}" "${rate:-?}" "${accepted:-?}" "$result"
    if [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ] && [ $status -eq 0 ]; then
        merged="$scratch/merged-$target"
        mkdir -p "$merged"
        if LANYARD_FUZZ_TARGET=$target "$binary" -merge=1 "$merged" "Fuzz/corpus/$target" >"$log.merge" 2>&1 &&
            compgen -G "$merged/*" >/dev/null; then
            find "Fuzz/corpus/$target" -type f ! -name 'seed-*' -delete
            cp -n "$merged"/* "Fuzz/corpus/$target/"
        fi
    fi
done
exit $failed
