#!/bin/sh
# The check a machine with a real GPU runs (under 8 minutes): brings the Vulkan
# loader where the machine lacks it, builds release, runs the GPU correctness tests
# with the validation layer on, benchmarks phi3-mini Q4_0 and Q4_K_M and the 150M
# shape, prints the top kernels of one decode token, and writes a JSON and a
# Markdown summary (device, driver, commit, date) for docs/perf/.
#
# A machine without the loader: download Debian's packages beforehand into a folder
# of the checkout (on a machine that has apt):
#   mkdir -p .gl && cd .gl && apt-get download libvulkan1 vulkan-validationlayers
# The script unpacks every .deb there with dpkg -x into a local prefix,
# build-vulkan-loader/ (ignored by git; nothing is installed system-wide), and points
# LD_LIBRARY_PATH and VK_LAYER_PATH at it. The build tools are not brought that way:
# where they are missing, the script names the packages to install.
set -u

usage() {
    cat <<EOF
usage: scripts/gpu-check.sh [OPTIONS] [OUT_DIR]

  OUT_DIR          where the summary goes (default docs/perf): DATE-DEVICE.json and .md
  --quick          the 150M shape only, short runs and two test binaries (a lavapipe check)
  --dry-run        print the steps without running them
  --debs DIR       Debian packages to unpack when the loader is missing (default .gl)
  --build DIR      build directory (default build-release; an existing one is reused as it is)
  -h, --help       this text
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0 dry=0 debs=$root/.gl build=$root/build-release out=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --dry-run) dry=1 ;;
    --debs | --build)
        if [ $# -lt 2 ] || [ -z "$2" ]; then echo "gpu-check: $1 needs a directory" >&2; usage >&2; exit 2; fi
        case $1 in --debs) debs=$2 ;; *) build=$2 ;; esac
        shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; usage >&2; exit 2 ;;
    *)
        [ -z "$out" ] || { echo "gpu-check: one output directory, not \"$out\" and \"$1\"" >&2; exit 2; }
        out=$1 ;;
    esac
    shift
done
[ -n "$out" ] || out=$root/docs/perf
start=$(date +%s)
step() { echo "== $* ($(($(date +%s) - start)) s)"; }
# run CMD...: runs it, or under --dry-run prints it (on the script's stderr, kept as
# fd 3: the command's own output may be going to a file).
exec 3>&2
run() {
    if [ $dry -eq 1 ]; then
        { printf '   would run:'; printf " '%s'" "$@"; echo; } >&3
        return 0
    fi
    "$@"
}

# ------------------------------------------------------------------ the loader
step "Vulkan loader"
if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 ' || [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ]; then
    echo "   the system's libvulkan.so.1"
else
    prefix=$root/build-vulkan-loader
    set -- "$debs"/*.deb
    [ -e "$1" ] || { echo "gpu-check: no libvulkan.so.1 on this machine and no .deb in $debs: on a machine with apt," \
        "run 'apt-get download libvulkan1 vulkan-validationlayers' in $debs, copy it here and rerun" >&2; exit 1; }
    for deb in "$@"; do run dpkg -x "$deb" "$prefix" || { echo "gpu-check: cannot unpack $deb" >&2; exit 1; }; done
    lib=$prefix/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    [ -d "$prefix/usr/share/vulkan/explicit_layer.d" ] && export VK_LAYER_PATH="$prefix/usr/share/vulkan/explicit_layer.d"
    echo "   unpacked into $prefix (LD_LIBRARY_PATH=$lib)"
fi
# Containers with the NVIDIA driver mounted have its ICD outside the loader's search path.
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
        /etc/vulkan/icd.d/nvidia_icd.json; do
        [ -f "$icd" ] || continue
        export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"   # the second for loaders before 1.3.207
        for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
            [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        done
        echo "   NVIDIA driver: $icd"
        break
    done
fi

# ----------------------------------------------------------------------- build
step "release build in $build"
missing=
for tool in meson ninja glslc pkg-config python3 cc; do command -v $tool >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then
    echo "gpu-check: missing$missing: install them (Debian: sh scripts/deps.sh, or apt-get install meson" \
        "ninja-build glslc pkg-config python3 build-essential libvulkan-dev libcjson-dev libpcre2-dev)" >&2
    exit 1
fi
if [ ! -d "$build" ]; then
    run meson setup "$build" "$root" -Dbuildtype=release >/dev/null || { echo "gpu-check: meson setup failed" >&2; exit 1; }
fi
run meson compile -C "$build" >/dev/null || { echo "gpu-check: the build failed (meson compile -C $build)" >&2; exit 1; }
phivk=$build/apps/phivk

# ----------------------------------------------------------------------- tests
# The GPU correctness tests: every kernel family and the whole models against the
# CPU reference, validation layer on (a message fails the test).
if [ $quick -eq 1 ]; then
    tests="'runtime on the default device' 'model-level kernels match CPU references'"
else
    tests="'runtime on the default device' 'kernels match CPU reference (texel, subgroup)' \
'kernels match CPU reference (storage buffers)' 'int8 activations and the integer-dot matvec match the references' \
'tiled matmul multiplies in fp16 within its bound' 'model-level kernels match CPU references' \
'the tiled matmul on cooperative matrices matches the reference where the device has them' \
'forward pass vs references'"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step "correctness tests (PHIVK_VALIDATE=1)"
eval "set -- $tests"
tests_ok=1
if [ $dry -eq 0 ]; then
    PHIVK_VALIDATE=1 meson test -C "$build" "$@" --print-errorlogs >"$tmp/tests.log" 2>&1 || tests_ok=0
    grep -E '^ *[0-9]+/[0-9]+ ' "$tmp/tests.log" | sed 's/^/   /'
else
    run meson test -C "$build" "$@"
fi

# ---------------------------------------------------------------------- benches
if [ $quick -eq 1 ]; then
    benches="150m:f16" bench_args="-p 64 -n 16 -r 2 --copy-mib 64" prof_model="150m:f16"
else
    benches="phi3-mini:q4_0 phi3-mini:q4_k_m 150m:f16" bench_args="" prof_model="phi3-mini:q4_0"
fi
i=0
for b in $benches; do
    i=$((i + 1))
    step "phivk bench --shape ${b%%:*} --type ${b#*:} $bench_args"
    # shellcheck disable=SC2086  # bench_args is a list of words
    run "$phivk" bench --json --shape "${b%%:*}" --type "${b#*:}" $bench_args >"$tmp/bench$i.json" 2>"$tmp/bench$i.err" ||
        { cat "$tmp/bench$i.err" >&2; echo "gpu-check: the bench failed" >&2; exit 1; }
done
# Sequences decoding together (phivk_decode_batch, what `phivk serve` runs): aggregate
# tokens/s at 1, 4 and 8, the weights read once per step for all of them.
i=$((i + 1))
step "phivk bench --shape ${prof_model%%:*} --type ${prof_model#*:} -p 0 -n 32 -r 2 --parallel 1,4,8"
run "$phivk" bench --json --shape "${prof_model%%:*}" --type "${prof_model#*:}" -p 0 -n 32 -r 2 --parallel 1,4,8 \
    >"$tmp/bench$i.json" 2>"$tmp/bench$i.err" ||
    { cat "$tmp/bench$i.err" >&2; echo "gpu-check: the parallel bench failed" >&2; exit 1; }
step "top kernels of one decode token (PHIVK_PROFILE=1, ${prof_model%%:*} ${prof_model#*:})"
if [ $dry -eq 0 ]; then
    PHIVK_PROFILE=1 "$phivk" bench --shape "${prof_model%%:*}" --type "${prof_model#*:}" -p 0 -n 1 -r 1 --copy-mib 16 \
        >/dev/null 2>"$tmp/profile.err" || { cat "$tmp/profile.err" >&2; echo "gpu-check: the profile run failed" >&2; exit 1; }
    # The last submit is the decode token: its per-shader totals, most expensive first.
    awk '/^phivk profile: +0 / { n = 0 } /^phivk profile: total/ { t[n++] = $0 } END { for (i = 0; i < n && i < 12; i++) print t[i] }' \
        "$tmp/profile.err" | sed 's/^phivk profile: total //' >"$tmp/profile.txt"
    sed 's/^/   /' "$tmp/profile.txt"
else
    run env PHIVK_PROFILE=1 "$phivk" bench --shape "${prof_model%%:*}" --type "${prof_model#*:}" -p 0 -n 1 -r 1
fi

# ---------------------------------------------------------------------- summary
if [ $dry -eq 1 ]; then step "would write the summary into $out"; exit 0; fi
"$phivk" devices --json >"$tmp/devices.json" 2>/dev/null || echo '[]' >"$tmp/devices.json"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
mkdir -p "$out" || { echo "gpu-check: cannot make $out" >&2; exit 1; }
python3 - "$tmp" "$out" "$commit" "$quick" "$tests_ok" "$(($(date +%s) - start))" <<'EOF' || exit 1
import datetime, glob, json, os, re, sys
tmp, out, commit, quick, tests_ok, secs = sys.argv[1:7]
rows = []
for f in sorted(glob.glob(os.path.join(tmp, "bench*.json"))):
    rows += json.load(open(f))
device = rows[0]["device"] if rows else "unknown"
dev = next((d for d in json.load(open(os.path.join(tmp, "devices.json"))) if d.get("name") == device), {})
driver = dev.get("driver", "")
# The cooperative-matrix shapes the driver lists: which form of the tiled matmul could run.
cm = [f"{s['extension']} {s['m']}x{s['n']}x{s['k']} {s['a']}.{s['b']}.{s['c']}.{s['result']} {s['scope']}"
      for s in dev.get("coopmat_shapes", [])]
tests = [l.strip() for l in open(os.path.join(tmp, "tests.log")) if re.match(r"\s*\d+/\d+ ", l)]
top = [l.rstrip("\n") for l in open(os.path.join(tmp, "profile.txt"))]
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
summary = {"device": device, "driver": driver, "commit": commit, "date": date, "quick": quick == "1",
           "seconds": int(secs), "tests_passed": tests_ok == "1", "tests": tests, "bench": rows,
           "decode_top_kernels": top, "coopmat": dev.get("coopmat", False),
           "coopmat_nv": dev.get("coopmat_nv", False), "coopmat_shapes": cm}
name = date + "-" + (re.sub(r"[^A-Za-z0-9]+", "-", device).strip("-").lower() or "device")
with open(os.path.join(out, name + ".json"), "w") as f:
    json.dump(summary, f, indent=2)
with open(os.path.join(out, name + ".md"), "w") as f:
    f.write(f"# {device}, {date}\n\ndriver {driver}; commit {commit}; `scripts/gpu-check.sh{' --quick' if quick == '1' else ''}`"
            f" ({secs} s)\n\n| model | test | t/s | decode reads (weights + KV) | of read bw | per token: dispatches, barriers, host |\n"
            "|---|---|---|---|---|---|\n")
    for r in rows:
        gbps = f"{r['decode_gbps']:.1f} GB/s" if "decode_gbps" in r else ""
        frac = f"{100 * r['read_fraction']:.0f}% of {r['read_gbps']:.0f} GB/s" if "read_fraction" in r else ""
        cnt = (f"{r['token_dispatches']:.0f}, {r['token_barriers']:.0f}, {r['token_host_ms']:.2f} ms "
               f"({100 * r['token_host_fraction']:.1f}%)" if "token_dispatches" in r else "")
        f.write(f"| {r['model_name']} {r['model_type']} | {r['test']} | {r['avg_ts']:.2f} ± {r['stddev_ts']:.2f} | {gbps} | {frac} | {cnt} |\n")
    f.write(f"\nCooperative matrices: KHR {'yes' if dev.get('coopmat') else 'no'}, NV {'yes' if dev.get('coopmat_nv') else 'no'}"
            f"; shapes: {', '.join(cm) or 'none'}\n")
    f.write("\nCorrectness tests (PHIVK_VALIDATE=1): " + ("all passed" if tests_ok == "1" else "FAILURES") + "\n\n")
    f.writelines(f"    {t}\n" for t in tests)
    f.write("\nOne decode token, per shader (PHIVK_PROFILE=1):\n\n")
    f.writelines(f"    {t}\n" for t in top)
print(f"== summary: {os.path.join(out, name)}.json and .md")
EOF
[ $tests_ok -eq 1 ] || { echo "gpu-check: correctness tests failed (see the summary)" >&2; exit 1; }
