# shellcheck shell=bash
# The remote-cache case of scripts/bench.sh (issue #19), sourced by it.
# A 3-stage Dockerfile whose first stage writes BENCH_RCACHE_MB (default
# 32) MiB of random data and sleeps 3 s, and whose second RUN sleeps 2 s.
# A docker-registry on 127.0.0.1 holds the cache. Phases, each tool in
# an empty store (BuildKit: after `builder prune -af` and `image rm`):
#   cold        no cache flags
#   cache-to    runner A: kiln --cache-to type=registry,ref=R (mode=max);
#               BuildKit: --build-arg BUILDKIT_INLINE_CACHE=1 -t R, then
#               docker push R, timed together (dockerd 20.10 without buildx
#               has only the inline cache: the final image's chain, as
#               mode=min)
#   from-cache  runner B: kiln --cache-from R; BuildKit --cache-from R
# and the bytes runner B pulled: the sum of the registry's blob GET
# responses (its access log), the same measure for both tools.

rcache_mb=${BENCH_RCACHE_MB:-32}
registry_pid=
registry_port=

start_registry() {
    local d=$work/registry
    mkdir -p "$d"
    registry_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/data
http:
  addr: 127.0.0.1:$registry_port
EOF
    env -u REGISTRY_AUTH_FILE docker-registry serve "$d/config.yml" >>"$d/log" 2>&1 &
    registry_pid=$!
    for _ in $(seq 40); do
        curl -sf "http://127.0.0.1:$registry_port/v2/" >/dev/null && return 0
        sleep 0.25
    done
    echo "bench.sh: docker-registry did not start:" >&2
    tail -5 "$d/log" >&2
    exit 1
}
stop_registry() {
    [ -n "$registry_pid" ] || return 0
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=
}

# Bytes of blob GETs the registry answered after line $1 of its log.
registry_bytes_since() {
    tail -n +"$(($1 + 1))" "$work/registry/log" |
        grep 'response completed' | grep 'http.request.method=GET' | grep '/blobs/' |
        grep -o 'http.response.written=[0-9]*' | awk -F= '{s+=$2} END {printf "%d", s}'
}
registry_lines() { wc -l <"$work/registry/log"; }

make_rcache_case() {
    local dir=$1
    mkdir -p "$dir/src"
    for i in $(seq 50); do echo "source $i" >"$dir/src/f$i.txt"; done
    cat >"$dir/Dockerfile" <<EOF
ARG BASE
FROM \${BASE} AS deps
RUN mkdir /deps && for i in \$(seq $((rcache_mb * 2))); do head -c 524288 /dev/urandom > /deps/f\$i; done && sleep 3
FROM \${BASE} AS build
COPY --from=deps /deps /deps
COPY src/ /src/
RUN cat /src/* /deps/f1 | md5sum > /app && sleep 2
FROM \${BASE}
COPY --from=build /app /app
COPY src/ /src/
ENV MODE=prod
RUN wc -c /app /src/f1.txt > /size
EOF
}

rcache_kiln() { # state phase ref
    local flags=()
    case $2 in
    cache-to) flags=(--cache-to "type=registry,ref=$3") ;;
    from-cache) flags=(--cache-from "type=registry,ref=$3") ;;
    esac
    timed "$work/kiln" --root "$1" build --progress=plain --build-arg "BASE=$base_name" \
        "${flags[@]}" -t bench "$work/cases/remote-cache"
}

rcache_buildkit() { # state phase ref
    local flags=()
    case $2 in
    cache-to) flags=(--build-arg BUILDKIT_INLINE_CACHE=1 -t "$3") ;;
    from-cache) flags=(--cache-from "$3") ;;
    esac
    if [ "$2" = cache-to ]; then
        # The build and the push, one timed command.
        # shellcheck disable=SC2016 # expanded by the inner bash
        BUILD_AS=root timed env DOCKER_BUILDKIT=1 bash -c \
            'ref=$1 sock=$2; shift 2; "$@" && /usr/bin/docker -H "$sock" push -q "$ref"' _ \
            "$3" "unix://$work/docker/sock" "${docker[@]}" build --progress=plain --network host \
            --build-arg "BASE=$base_name" "${flags[@]}" "$work/cases/remote-cache"
        return
    fi
    DOCKER_BUILDKIT=1 BUILD_AS=root timed "${docker[@]}" build --progress=plain --network host \
        --build-arg "BASE=$base_name" "${flags[@]}" -t bench "$work/cases/remote-cache"
}

bench_remote_cache() {
    local name=remote-cache phases=(cold cache-to from-cache)
    make_rcache_case "$work/cases/$name"
    chmod -R a+rX "$work"
    start_registry
    for r in $(seq "$runs"); do
        for tool in "${tools[@]}"; do
            [ "$tool" = kiln ] || [ "$tool" = buildkit ] || continue
            local ref=127.0.0.1:$registry_port/bench/$tool-$r:cache
            for phase in "${phases[@]}"; do
                local state=$work/state/$tool-$name-$r-$phase res lines
                mkdir -p "$state" && chown "$user" "$work/state" "$state"
                if [ "$tool" = kiln ]; then
                    kiln_prepare "$state"
                else
                    buildkit_prepare
                    "${docker[@]}" image rm -f "$ref" >/dev/null 2>&1 || true
                fi
                settle
                lines=$(registry_lines)
                res=$("rcache_$tool" "$state" "$phase" "$ref")
                record "$name/$phase/$tool" "${res% *}"
                if [ "$phase" = from-cache ]; then
                    record "$name/pulled/$tool" "$(registry_bytes_since "$lines")"
                    [ "$tool" = kiln ] && record "$name/kiln-note" \
                        "$(grep -o 'cache: [0-9]* steps from --cache-from.*' "$work/time/log" | head -1)"
                fi
                (cd / && "${as[@]}" buildah unshare rm -rf "$state") >/dev/null 2>&1 || true
            done
            [ "$tool" = buildkit ] && buildkit_prepare
        done
    done
    stop_registry
    for phase in "${phases[@]}" pulled; do
        local line k
        line=$(printf '%-17s %-15s' "$name" "$phase")
        k=$(median <<<"${times[$name/$phase/kiln]:-}")
        for tool in "${tools[@]}"; do
            [ "$tool" = kiln ] || [ "$tool" = buildkit ] || continue
            local m
            m=$(median <<<"${times[$name/$phase/$tool]:-}")
            line+=$(printf ' %s %8s (%s)' "$tool" "${m:--}" "$(spread <<<"${times[$name/$phase/$tool]:-}")")
            if [ "$tool" != kiln ] && [ -n "$k" ] && [ -n "$m" ]; then
                line+=$(awk -v p="$m" -v k="$k" 'BEGIN{ if (k>0) printf " %.1fx", p/k }')
            fi
        done
        [ "$phase" = pulled ] && line+=" (bytes)"
        echo "$line"
    done
    # Runner B against a cold build, per tool, from the same runs.
    for tool in "${tools[@]}"; do
        [ "$tool" = kiln ] || [ "$tool" = buildkit ] || continue
        local c b
        c=$(median <<<"${times[$name/cold/$tool]:-}")
        b=$(median <<<"${times[$name/from-cache/$tool]:-}")
        [ -n "$c" ] && [ -n "$b" ] &&
            printf '%-17s %-15s %s from-cache/cold %s\n' "$name" ratio "$tool" \
                "$(awk -v b="$b" -v c="$c" 'BEGIN{ if (c>0) printf "%.2f", b/c }')"
    done
    printf '%-17s %-15s %s\n' "$name" kiln-note "$(head -1 <<<"${times[$name/kiln-note]:-}")"
}
