#!/usr/bin/env bash
# Run every test: cmocka unit tests, fuzz corpus replays (under ASan/UBSan), integration
# tests with real QEMU. Ends with one line: "N passed, N failed, N skipped".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
cd "$top"
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

section() { printf '\n== %s ==\n' "$1"; }

if [ "${HULL_TEST_ONLY:-}" = "" ] || [ "${HULL_TEST_ONLY}" = unit ]; then
	section "unit tests (cmocka)"
	# The suites the makefile names (a binary left by a removed test is not run).
	units=${HULL_UNIT_TESTS:-$(cd "$BUILD/tests" 2>/dev/null && ls test-* | grep -v '\.d$' | sed 's/^test-//')}
	for u in $units; do
		t=$BUILD/tests/test-$u
		[ -x "$t" ] || { failed=$((failed + 1)); echo "test-$u: not built"; continue; }
		timeout 300 "$t" >"$log" 2>&1
		rc=$?
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		p=${p:-0} f=${f:-0}
		if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi # crashed or hung
		passed=$((passed + p)) failed=$((failed + f))
		printf '%-28s %s passed, %s failed\n' "$(basename "$t")" "$p" "$f"
		[ "$f" = 0 ] || cat "$log"
	done

	section "format (.clang-format)"
	if ! command -v clang-format >/dev/null; then
		skipped=$((skipped + 1))
		echo "format: skipped: clang-format not installed (make deps)"
	elif files=$(git ls-files '*.c' '*.h' 2>/dev/null) && [ -n "$files" ] &&
		clang-format --dry-run --Werror $files >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "format: ok ($(echo "$files" | wc -l) files)"
	else
		failed=$((failed + 1))
		echo "format: FAILED (run make format)"
		head -20 "$log"
	fi

	section "fuzz corpus replays (ASan/UBSan)"
	fuzzers=${HULL_FUZZERS:-$(cd "$BUILD/fuzz" 2>/dev/null && ls replay-* | grep -v '\.d$' | sed 's/^replay-//')}
	for name in $fuzzers; do
		r=$BUILD/fuzz/replay-$name
		[ -x "$r" ] || { failed=$((failed + 1)); echo "replay-$name: not built"; continue; }
		if timeout 300 "$r" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
			passed=$((passed + 1))
			printf '%-28s ok (%s)\n' "replay-$name" "$(tail -1 "$log")"
		else
			failed=$((failed + 1))
			printf '%-28s FAILED\n' "replay-$name"
			tail -20 "$log"
		fi
	done
fi

if [ "${HULL_TEST_ONLY:-}" = "" ] || [ "${HULL_TEST_ONLY}" = integration ]; then
	# A suite prints "ok - ", "not ok - " or "skip - " lines; count them.
	suite() {
		section "$1"
		"$2" >"$log" 2>&1
		cat "$log"
		passed=$((passed + $(grep -c '^ok - ' "$log")))
		failed=$((failed + $(grep -c '^not ok - ' "$log")))
		skipped=$((skipped + $(grep -c '^skip - ' "$log")))
	}
	suite "integration tests (real QEMU, clones of templates)" tests/integration/run.sh
	# The same with every VM booted: the fallback a template cannot serve stays honest.
	HULL_TEMPLATE=false suite "integration tests again, cold boots (HULL_TEMPLATE=false)" tests/integration/run.sh
	suite "templates (build, clone, damage, trust domains)" tests/integration/template.sh
	suite "images (store, load, hull run IMAGE)" tests/integration/images.sh
	suite "networking (netns, CNI bridge, real QEMU)" tests/integration/net.sh
	suite "containerd shim (real containerd: ctr and CRI)" tests/integration/containerd.sh
	suite "hull-cri (kubelet's CRI straight to hull: grpcio client, real shims)" tests/integration/cri.sh
	suite "hostile guest (evil agent under hull run, run -d and the shim)" tests/integration/hostile.sh
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
