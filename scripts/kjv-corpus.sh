#!/bin/sh
# kjv-corpus.sh — writes the King James Bible as plain text, one verse a line without its reference, to $1:
# the corpus apr's default model is trained on (`make default-model`). The text comes from Debian's
# bible-kjv-text (public domain; see /usr/share/doc/bible-kjv-text/copyright) through the `bible` program
# of bible-kjv, which scripts/deps.sh installs.
set -eu
out="${1:?usage: kjv-corpus.sh OUT.txt}"
if ! command -v bible >/dev/null 2>&1; then
    echo "kjv-corpus.sh: the 'bible' program is missing: run scripts/deps.sh (Debian package bible-kjv)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
# "Ge1:1 In the beginning ..." -> "In the beginning ..."; written whole or not at all
bible -f Gen1:1-Rev22:21 | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$out.tmp"
lines=$(wc -l < "$out.tmp")
if [ "$lines" -ne 31102 ]; then
    echo "kjv-corpus.sh: bible printed $lines verses, not the 31102 of the King James Bible" >&2
    rm -f "$out.tmp"
    exit 1
fi
mv "$out.tmp" "$out"
