# Shared by the integration suites (sourced). A suite defines test_NAME functions, a
# `leaks` function that prints what a test left behind (nothing when clean), and
# optionally `before_test` (runs in the suite's shell before each test) and
# `after_failure`; it sets $work (where per-test dirs go) and $only (a filter).
# run_test prints:  ok - NAME | not ok - NAME: why | skip - NAME: why (exit 77)

# Wait up to 5 s for processes matching a pattern to go; 0 when none is left.
wait_gone() {
	local i
	for i in $(seq 1 50); do
		pgrep -f -- "$1" >/dev/null || return 0
		sleep 0.1
	done
	return 1
}

run_test() {
	local name=$1 why rc leak
	[ -n "${only:-}" ] && [[ $name != *$only* ]] && return
	T=$work/t.$name
	mkdir -p "$T"
	declare -F before_test >/dev/null && before_test
	why=$("test_$name" 2>&1)
	rc=$?
	leak=$(leaks)
	if [ "$rc" = 77 ]; then
		echo "skip - $name: ${why##*$'\n'}"
	elif [ "$rc" = 0 ] && [ -z "$leak" ]; then
		echo "ok - $name"
	else
		failed=1
		echo "not ok - $name: ${leak:+[leak: $leak] }$(printf '%s' "$why" | tail -5 | tr '\n' '|')"
		declare -F after_failure >/dev/null && after_failure
	fi
	rm -rf "$T"
}

# What a test left in a state root: anything but the template store (kept from test to
# test, as on a host: a suite builds each template once) and the shim's socket dir; in
# the store, a build or a removal in progress. Nothing printed when clean.
state_left() {
	ls -A "$1" 2>/dev/null | grep -v -e '^\.templates$' -e '^\.s$'
	ls -A "$1/.templates" 2>/dev/null | grep -e '^\.build-' -e '^\.trash-' | sed 's|^|.templates/|'
}

# Wait until file $1 contains $2 (up to 60 s).
wait_for() {
	local i
	for i in $(seq 1 600); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1: $(tail -c 300 "$1" 2>/dev/null)"
	return 1
}

# A TCP port free on loopback right now (for servers and -p in tests).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# hull run with the demo rootfs ($HULL, $ROOTFS); stdout/stderr/exit status into
# $T/{out,err,rc}, checked by the expect_ helpers.
hrun() {
	"$HULL" run --rootfs "$ROOTFS" "$@" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
}
rc() { cat "$T/rc"; }
expect_rc() {
	[ "$(rc)" = "$1" ] || { echo "exit status $(rc), want $1; stderr: $(head -c 600 "$T/err")"; return 1; }
}
expect_out() {
	[ "$(cat "$T/out")" = "$1" ] || { echo "stdout '$(head -c 300 "$T/out")', want '$1'"; return 1; }
}
expect_out_has() {
	grep -qF -- "$1" "$T/out" || { echo "stdout lacks '$1': $(head -c 600 "$T/out")"; return 1; }
}
expect_err_has() {
	grep -qF -- "$1" "$T/err" || { echo "stderr lacks '$1': $(head -c 600 "$T/err")"; return 1; }
}

# ---- registries (images.sh, cri.sh) ----

REG_PID=
# A real registry (Debian's docker-registry) on loopback under $T/reg; $1: "htpasswd"
# for basic auth (alice:secret). Needs $PY. Sets REG_PORT.
reg_start() {
	command -v docker-registry >/dev/null && command -v skopeo >/dev/null ||
		{ echo "docker-registry or skopeo is not installed (make deps)"; return 77; }
	REG_PORT=$(free_port)
	mkdir -p "$T/reg"
	{
		printf 'version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
' "$T/reg/data"
		printf 'http:
  addr: 127.0.0.1:%s
' "$REG_PORT"
		if [ "${1:-}" = htpasswd ]; then
			"$PY" -c "import crypt; print('alice:' + crypt.crypt('secret', crypt.mksalt(crypt.METHOD_BLOWFISH)))" 2>/dev/null >"$T/reg/htpasswd"
			printf 'auth:
  htpasswd:
    realm: hull-test
    path: %s
' "$T/reg/htpasswd"
		fi
	} >"$T/reg/config.yml"
	docker-registry serve "$T/reg/config.yml" >"$T/reg/log" 2>&1 &
	REG_PID=$!
	local i
	for i in $(seq 1 100); do
		curl -s -o /dev/null "http://127.0.0.1:$REG_PORT/v2/" && return 0
		sleep 0.1
	done
	echo "the registry did not start: $(tail -3 "$T/reg/log")"
	return 1
}
reg_stop() {
	[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
	REG_PID=
}
