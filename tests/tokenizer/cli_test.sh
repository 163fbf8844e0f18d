#!/bin/sh
# phivk tokenize / detokenize end to end: outputs, round trips through pipes and
# exit codes (0 ok, 1 failure with one line on stderr, 2 bad usage).
# usage: cli_test.sh PHIVK_BINARY   (test data: $PHIVK_TESTDATA)
phivk=$1
td=${PHIVK_TESTDATA:?set PHIVK_TESTDATA}
phi3=$td/vocab/ggml-vocab-phi-3.gguf
gpt2=$td/vocab/ggml-vocab-gpt-2.gguf
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }

# expect NAME WANT_STDOUT CMD... : exit 0 and exactly this stdout
expect() {
    name=$1 want=$2
    shift 2
    got=$("$@" 2>"$tmp/err"; echo "rc=$?")
    if [ "$got" = "$want
rc=0" ] || [ "$got" = "${want}rc=0" ]; then ok "$name"; else bad "$name: got '$got' want '$want'"; cat "$tmp/err"; fi
}

# expect_rc NAME RC CMD... : that exit status and one line on stderr
expect_rc() {
    name=$1 want=$2
    shift 2
    "$@" >/dev/null 2>"$tmp/err" </dev/null
    rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" = "$want" ] && { [ "$want" = 2 ] || [ "$lines" = 1 ]; }; then ok "$name"
    else bad "$name: exit $rc (want $want), stderr:"; cat "$tmp/err"; fi
}

expect "tokenize adds BOS as the file says" "1 15043 3186" "$phivk" tokenize "$phi3" "Hello world"
expect "--no-bos" "15043 3186" "$phivk" tokenize "$phi3" --no-bos "Hello world"
expect "options after the text" "15043 3186" "$phivk" tokenize "$phi3" "Hello world" --no-bos
expect "gpt2 vocabulary adds no BOS" "15496 995" "$phivk" tokenize "$gpt2" "Hello world"
expect "text from stdin keeps its newline" "15043 3186 13" sh -c "printf 'Hello world\n' | '$phivk' tokenize '$phi3' --no-bos"
tab=$(printf '\t')
expect "--pieces" "15043${tab}▁Hello
3186${tab}▁world" "$phivk" tokenize "$phi3" --no-bos --pieces "Hello world"
expect "markup is plain text by default" "529 29989 1792 29989 29958" "$phivk" tokenize "$phi3" --no-bos "<|user|>"
user_hi=$(printf '<|user|>\nHi<|end|>')
got=$("$phivk" tokenize "$phi3" --no-bos --special "$user_hi")
case "$got" in
"32010 "*" 32007") case "$got" in *" 13 "*) bad "--special kept the newline: $got" ;; *) ok "--special parses control tokens" ;; esac ;;
*) bad "--special: $got" ;;
esac
expect "-- before a text that starts with --" "1192 29916" "$phivk" tokenize "$phi3" --no-bos -- "--x"

expect "detokenize ids from arguments" "Hello world" "$phivk" detokenize "$phi3" 15043 3186
expect "detokenize ids from stdin" "Hello world" sh -c "echo '1 15043 3186' | '$phivk' detokenize '$phi3'"
expect "detokenize --special" "<s><|user|> Hi" "$phivk" detokenize "$phi3" --special 1 32010 6324

for v in phi-3 llama-spm gpt-2; do
    inp=$td/vocab/ggml-vocab-$v.gguf.inp
    "$phivk" tokenize "$td/vocab/ggml-vocab-$v.gguf" <"$inp" >"$tmp/ids" &&
        "$phivk" detokenize "$td/vocab/ggml-vocab-$v.gguf" <"$tmp/ids" >"$tmp/back" &&
        cmp -s "$inp" "$tmp/back" && ok "$v: the whole vector file round-trips through both commands" ||
        bad "$v: round trip through tokenize | detokenize"
done

expect_rc "missing file" 1 "$phivk" tokenize "$tmp/nope.gguf" "x"
expect_rc "not a GGUF file" 1 "$phivk" tokenize "$td/README.md" "x"
expect_rc "invalid UTF-8" 1 sh -c "printf 'ab\377' | '$phivk' tokenize '$phi3'"
if sh -c "printf 'ab\377' | '$phivk' tokenize '$phi3'" 2>&1 | grep -q "invalid UTF-8 at byte 2"; then ok "UTF-8 message names the byte"
else bad "UTF-8 message"; fi
expect_rc "id out of range" 1 "$phivk" detokenize "$phi3" 15043 32064
expect_rc "id that is not a number" 1 "$phivk" detokenize "$phi3" 15043 x7
expect_rc "no model" 2 "$phivk" tokenize
expect_rc "unknown option" 2 "$phivk" tokenize "$phi3" --frobnicate "x"
expect_rc "two texts" 2 "$phivk" tokenize "$phi3" "a" "b"
expect_rc "detokenize without model" 2 "$phivk" detokenize
expect_rc "detokenize unknown option" 2 "$phivk" detokenize "$phi3" --bos 1

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
