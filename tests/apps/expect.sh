# The helpers of the CLI end-to-end tests, sourced by test_*.sh: a scratch $dir
# (removed on exit), expect/check that count passes and failures, and finish,
# which prints the harness's summary line and gives the exit status.

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0
failed=0

# What the Khronos validation layer prints ("Validation Error: [ VUID-..."), and
# phivk's relay of its messages ("phivk: validation error: ...").
validation_pattern='Validation (Error|Warning)|VUID-|phivk: validation'

# expect NAME WANT_EXIT CMD...: runs CMD (stdout in $dir/out, stderr in $dir/err),
# checks its exit status and that it printed no validation message (with
# PHIVK_VALIDATE=1 the layer reports what it finds; any report is a failure).
expect() {
    name=$1 want=$2
    shift 2
    "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    if grep -qE "$validation_pattern" "$dir/out" "$dir/err"; then
        failed=$((failed + 1))
        echo "FAIL $name: validation messages"
        grep -hE "$validation_pattern" "$dir/out" "$dir/err" | head -5 | sed 's/^/    /'
    elif [ "$got" -eq "$want" ]; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name: exit $got, want $want"
        sed 's/^/    /' "$dir/err" | head -5
    fi
}

# check NAME CONDITION...: a shell test on what the last command printed.
check() {
    name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/    out: /' "$dir/out" | head -5
        sed 's/^/    err: /' "$dir/err" | head -5
    fi
}

one_line_reason() { [ "$(wc -l <"$dir/err")" -eq 1 ] && [ -s "$dir/err" ]; }

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
