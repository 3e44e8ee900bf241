# shellcheck shell=bash
# The export-big case of scripts/bench.sh (sourced by it; uses its $work,
# $base, $runs, tools, timed, settle, record, median, spread and the
# tools' _prepare/_build functions).
#
# An image of BENCH_EXPORT_MB MiB of random bytes (incompressible) and as
# much log-like text, built untimed; then timed, each on a store that never
# compressed it: the gzip export (kiln `-o type=docker`, buildah `push` to
# an oci-archive, gzip) and the zstd one (kiln `--compression zstd -o
# type=oci`, buildah `push --compression-format zstd`). BuildKit has no
# export of a stored image that compresses (`docker save` writes plain
# tars), so it is left out. The floors: `tar | pigz` and `tar | zstd -T0`
# of the same tree, to a file on the same disk. kiln's times include the
# fully cached build the -o rides on, also shown alone (`unchanged`).

make_export_case() { # dir
    local dir=$1 mb=${BENCH_EXPORT_MB:-512} files i
    files=$(( mb >= 64 ? mb / 64 : 1 ))
    mkdir -p "$dir/random" "$dir/text"
    for i in $(seq "$files"); do
        head -c $(( mb * 1024 * 1024 / files )) /dev/urandom >"$dir/random/r$i"
        # Access-log lines: deflate takes them to ~25 %, like real text.
        awk -v n=$(( mb * 1024 * 1024 / files )) -v seed="$i" 'BEGIN {
            srand(seed); split("GET POST PUT DELETE HEAD", m, " ")
            split("/api/v1/items /api/v1/users /static/app.js /index.html /healthz", p, " ")
            while (b < n) {
                l = sprintf("10.%d.%d.%d - user%04d [07/Dec/2026:%02d:%02d:%02d +0000] \"%s %s/%d HTTP/1.1\" %d %d %.3f\n",
                    int(rand()*4), int(rand()*256), int(rand()*256), int(rand()*5000),
                    int(rand()*24), int(rand()*60), int(rand()*60), m[1+int(rand()*5)],
                    p[1+int(rand()*5)], int(rand()*100000), (rand()<0.9)?200:404,
                    int(rand()*50000), rand()*300)
                printf "%s", l; b += length(l)
            } }' >"$dir/text/t$i"
    done
    printf 'FROM %s\nCOPY random/ /random/\nCOPY text/ /text/\n' "$base" >"$dir/Dockerfile"
}

export_out=
kiln_export() { # state phase
    local c=$work/cases/export-big args=()
    case $2 in
    gzip) args=(-o "type=docker,dest=$export_out/kiln.tar") ;;
    zstd) args=(--compression zstd -o "type=oci,dest=$export_out/kiln-oci.tar") ;;
    unchanged) ;;
    esac
    timed "$work/kiln" --root "$1" build --progress=plain --build-arg "BASE=$base_name" \
        -t bench "${args[@]}" "$c"
}
buildah_export() { # state phase
    local args=()
    [ "$2" = zstd ] && args=(--compression-format zstd)
    timed buildah --root "$1/root" --runroot "$1/run" --storage-driver overlay \
        push -q "${args[@]}" bench "oci-archive:$export_out/buildah-$2.tar"
}
floor_export() { # phase
    local c=$work/cases/export-big cmd
    case $1 in
    gzip) cmd="tar -C '$c' -cf - random text | pigz >'$export_out/floor.tar.gz'" ;;
    zstd) cmd="tar -C '$c' -cf - random text | zstd -q -T0 >'$export_out/floor.tar.zst'" ;;
    esac
    timed bash -c "$cmd"
}

bench_export_big() {
    local name=export-big bytes r tool phase state res
    command -v pigz >/dev/null && command -v zstd >/dev/null \
        || { echo "bench.sh: export-big needs pigz and zstd (scripts/deps.sh)" >&2; exit 1; }
    make_case "$name"
    chmod -R a+rX "$work"
    export_out=$work/export-out
    mkdir -p "$export_out" && chown "$user" "$export_out"
    bytes=$(cat "$work/cases/$name"/random/* "$work/cases/$name"/text/* | wc -c)
    for r in $(seq "$runs"); do
        for tool in "${tools[@]}" floor; do
            case $tool in kiln | buildah) ;; floor) ;; *) continue ;; esac
            state=$work/state/$tool-$name-$r
            if [ "$tool" != floor ]; then
                mkdir -p "$state" && chown "$user" "$work/state" "$state"
                "${tool}_prepare" "$state" || { echo "bench.sh: $tool: preparing its store failed" >&2; exit 1; }
                "${tool}_build" "$name" "$state" >/dev/null
            fi
            for phase in gzip zstd; do
                settle
                if [ "$tool" = floor ]; then res=$(floor_export "$phase"); else res=$("${tool}_export" "$state" "$phase"); fi
                record "$name/$phase/$tool" "${res% *}"
                [ "$tool" = kiln ] && record "$name/rss" "${res#* }"
                rm -f "$export_out"/*
            done
            if [ "$tool" = kiln ]; then
                settle
                res=$(kiln_export "$state" unchanged)
                record "$name/unchanged/kiln" "${res% *}"
            fi
            [ "$tool" = floor ] || (cd / && "${as[@]}" buildah unshare rm -rf "$state") >/dev/null 2>&1 || true
        done
    done
    echo "export-big: $(( bytes >> 20 )) MiB of layer data; MB/s = that / median seconds"
    for phase in gzip zstd unchanged; do
        local line k m
        line=$(printf '%-17s %-15s' "$name" "$phase")
        k=$(median <<<"${times[$name/$phase/kiln]:-}" || true)
        for tool in "${tools[@]}" floor; do
            m=$(median <<<"${times[$name/$phase/$tool]:-}" || true)
            [ -n "$m" ] || continue
            line+=$(printf ' %s %s (%s) %s MB/s' "$tool" "$m" "$(spread <<<"${times[$name/$phase/$tool]}")" \
                "$(awk -v b="$bytes" -v s="$m" 'BEGIN{printf "%.0f", b/1e6/s}')")
            if [ "$tool" != kiln ] && [ -n "$k" ]; then
                line+=$(awk -v p="$m" -v k="$k" 'BEGIN{ if (k>0) printf " %.2fx", p/k }')
            fi
        done
        echo "$line"
    done
    printf '%-17s %-15s kiln %s MiB (max of runs)\n' "$name" "peak-rss" \
        "$(grep -v '^$' <<<"${times[$name/rss]:-}" | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}')"
}
