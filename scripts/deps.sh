#!/bin/sh
# deps.sh — installs the Debian packages apr needs to build and test, when any is missing, and says so.
#   scripts/deps.sh                       the native build (make, make test)
#   scripts/deps.sh aarch64 SYSROOT       the aarch64 cross build (make aarch64, make check-aarch64):
#                                         the cross compiler and qemu-user, and the arm64 hwloc/cJSON/PCRE2
#                                         packages unpacked (not installed) into SYSROOT
set -eu
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

# Prints the packages of $* that are not installed.
missing_of() {
    m=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || m="$m $p"
    done
    echo "$m"
}

if [ "${1:-}" = "aarch64" ]; then
    sysroot="${2:?usage: deps.sh aarch64 SYSROOT}"
    need="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
    # The arm64 builds of the libraries libapr/libaprllm link; libudev1 is libhwloc15's one dependency
    # beyond libc (which comes with the cross compiler).
    debs="libhwloc15 libhwloc-dev libudev1 libcjson1 libcjson-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev"
    missing=$(missing_of $need)
    # apt only fetches arm64 packages once the architecture is known to dpkg; nothing arm64 is installed.
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "apr: adding the arm64 architecture to dpkg (for apt-get download of arm64 libraries)" >&2
        $sudo dpkg --add-architecture arm64
        fresh=1
    else
        fresh=0
    fi
    if [ -n "$missing" ] || [ "$fresh" = 1 ] || ! apt-cache show libhwloc15:arm64 >/dev/null 2>&1; then
        $sudo apt-get update -qq >&2
    fi
    if [ -n "$missing" ]; then
        echo "apr: installing missing Debian packages:$missing" >&2
        $sudo apt-get install -y -qq --no-install-recommends $missing >&2
    fi
    # the stamp lists the packages unpacked, so a sysroot from before a package was added is refilled
    [ -f "$sysroot/.complete" ] && [ "$(cat "$sysroot/.complete")" = "$debs" ] && exit 0
    echo "apr: unpacking arm64 libraries into $sysroot:" $debs >&2
    mkdir -p "$sysroot/debs"
    arm=""
    for p in $debs; do arm="$arm $p:arm64"; done
    (cd "$sysroot/debs" && apt-get download -o APT::Sandbox::User=root $arm >&2)
    for d in "$sysroot"/debs/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
    echo "$debs" > "$sysroot/.complete"
    echo "apr: arm64 sysroot ready" >&2
    exit 0
fi

need="make gcc pkg-config libcjson-dev libhwloc-dev libcriterion-dev libpcre2-dev libutf8proc-dev"
# The tokenizer tests check the normalizers against Unicode's own data files (NormalizationTest.txt.bz2).
need="$need unicode-data bzip2"
# The vulkan plugin: Vulkan headers and the loader, glslc for its shaders, and Mesa's lavapipe (a
# Vulkan driver on the CPU) so that its tests run on machines without a GPU.
need="$need libvulkan-dev glslc mesa-vulkan-drivers"
# The default model's corpus, the King James Bible (public domain; the `bible` program prints it), which
# `make default-model` trains on and the BPE vocabulary test reads.
need="$need bible-kjv"
# OpenBLAS is optional: apr-bench compares against it when present.
want="libopenblas0"
missing=$(missing_of $need $want)
[ -z "$missing" ] && exit 0
echo "apr: installing missing Debian packages:$missing" >&2
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
echo "apr: packages installed" >&2
