#!/usr/bin/env bash
# The vendored crates as pristine crates.io sources plus Wharf's patches (vendor/NAME/patches/).
#
#   vendor/patches.sh check [NAME...]         pristine + patches == vendor/NAME (all crates by default)
#   vendor/patches.sh regen NAME [NEW.patch]  rewrite NAME's patches from vendor/NAME after editing it;
#                                             files no patch covers yet go to NEW.patch
#   vendor/patches.sh upgrade NAME VERSION    vendor/NAME from NAME-VERSION + the patches, in order;
#                                             hunks that do not apply are left as *.rej files
#
# vendor/NAME/patches/UPSTREAM pins the crate: "NAME VERSION SHA256" (the .crate's checksum, as
# crates.io's index has it). The .crate comes from cargo's cache when it is there, otherwise from
# static.crates.io. Each patch is `diff -u` output relative to the crate root (`patch -p1`), and
# each file belongs to one patch, so a patch can be regenerated from the tree alone.
#
# Not compared (listed in IGNORED below): what cargo adds when it packages or unpacks a crate
# (.cargo_vcs_info.json, Cargo.toml.orig, Cargo.lock, .cargo-ok) and the published tests and
# examples, which Wharf does not ship (their [[test]]/[[example]] entries are removed from
# Cargo.toml by each crate's 0001 patch). Wharf's own files (KEPT below: WHARF-PATCH.md,
# patches/, and the LICENSE-MIT that jaq's repository has but its .crate files do not) are
# not upstream's either.
set -euo pipefail
cd "$(dirname "$0")"

CRATES=(jaq-core jaq-json jaq-std regex-bites)
IGNORED=(.cargo_vcs_info.json Cargo.toml.orig Cargo.lock .cargo-ok tests examples benches)
KEPT=(WHARF-PATCH.md patches LICENSE-MIT)

die() { echo "vendor/patches.sh: $*" >&2; exit 1; }

# Unpacks NAME-VERSION (checked against SHA256 when given) into $2 and removes IGNORED.
pristine() {
  local name=$1 version=$2 sha=$3 into=$4 crate
  crate=$(ls ~/.cargo/registry/cache/*/"$name-$version.crate" 2>/dev/null | head -n 1 || true)
  if [ -z "$crate" ]; then
    crate="$into.crate"
    curl -sfL "https://static.crates.io/crates/$name/$name-$version.crate" -o "$crate" ||
      die "cannot download $name $version from static.crates.io"
  fi
  if [ -n "$sha" ]; then
    echo "$sha  $crate" | sha256sum -c --quiet - || die "$name-$version.crate does not have the pinned checksum"
  fi
  mkdir -p "$into"
  tar -xzf "$crate" -C "$into" --strip-components=1
  for path in "${IGNORED[@]}"; do rm -rf "${into:?}/$path"; done
}

# Applies vendor/$1/patches/*.patch, in order, to the tree $2.
apply() {
  local patch
  for patch in "$1"/patches/*.patch; do
    [ -e "$patch" ] || continue
    patch -s -p1 -d "$2" --no-backup-if-mismatch -i "$PWD/$patch" || return 1
  done
}

upstream() { cat "$1/patches/UPSTREAM"; }

check() {
  local name version sha work status=0
  read -r name version sha < <(upstream "$1")
  work=$(mktemp -d)
  pristine "$name" "$version" "$sha" "$work/tree"
  apply "$1" "$work/tree" || die "$1: the patches do not apply to $name $version"
  # Wharf's own files are taken as they are; a kept file upstream ships (regex-bites'
  # LICENSE-MIT) is compared like any other.
  for path in "${KEPT[@]}"; do
    if [ -e "$1/$path" ] && [ ! -e "$work/tree/$path" ]; then cp -r "$1/$path" "$work/tree/"; fi
  done
  local excludes=()
  for path in "${IGNORED[@]}"; do excludes+=(--exclude="$path"); done
  if ! diff -r "${excludes[@]}" "$work/tree" "$1" >"$work/diff"; then
    echo "$1 differs from $name $version + patches:" >&2
    cat "$work/diff" >&2
    status=1
  fi
  for path in WHARF-PATCH.md; do [ -e "$1/$path" ] || { echo "$1/$path is missing" >&2; status=1; }; done
  rm -rf "$work"
  [ $status -eq 0 ] && echo "$1: $name $version + $(ls "$1"/patches/*.patch | wc -l) patches == vendor/$1"
  return $status
}

regen() {
  local dir=$1 new=${2:-} name version sha work file patch
  read -r name version sha < <(upstream "$dir")
  work=$(mktemp -d)
  pristine "$name" "$version" "$sha" "$work/a"
  local excludes=()
  for path in "${IGNORED[@]}" "${KEPT[@]}"; do excludes+=(--exclude="$path"); done
  local changed
  changed=$(diff -rq "${excludes[@]}" "$work/a" "$dir" | sed -E "s#^Files $work/a/(.*) and .* differ\$#\1#; s#^Only in $work/a/?([^:]*): (.*)\$#\1/\2#; s#^Only in $dir/?([^:]*): (.*)\$#\1/\2#; s#^/##" | sort)
  declare -A owner=()
  for patch in "$dir"/patches/*.patch; do
    [ -e "$patch" ] || continue
    for file in $(sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$patch"); do owner[$file]=$(basename "$patch"); done
  done
  for file in $changed; do
    if [ -z "${owner[$file]:-}" ]; then
      [ -n "$new" ] || die "$dir/$file is changed but in no patch: name a new patch (regen $dir NNNN-topic.patch)"
      owner[$file]=$new
    fi
  done
  rm -f "$dir"/patches/*.patch
  for file in $changed; do
    patch=$dir/patches/${owner[$file]}
    local old=$work/a/$file now=$dir/$file
    [ -e "$old" ] || old=/dev/null
    [ -e "$now" ] || now=/dev/null
    diff -u --label "a/$file" --label "b/$file" "$old" "$now" >>"$patch" || true
  done
  rm -rf "$work"
  check "$dir"
}

upgrade() {
  local dir=$1 version=$2 name work sha
  read -r name _ < <(upstream "$dir")
  work=$(mktemp -d)
  pristine "$name" "$version" "" "$work/tree"
  local crate
  crate=$(ls ~/.cargo/registry/cache/*/"$name-$version.crate" 2>/dev/null | head -n 1 || true)
  sha=$(sha256sum "${crate:-$work/tree.crate}" | cut -d' ' -f1)
  local patch failed=0
  for patch in "$dir"/patches/*.patch; do
    [ -e "$patch" ] || continue
    patch -p1 -d "$work/tree" --no-backup-if-mismatch -i "$PWD/$patch" || failed=1
  done
  for path in "${KEPT[@]}"; do
    if [ -e "$dir/$path" ] && [ ! -e "$work/tree/$path" ]; then cp -r "$dir/$path" "$work/tree/"; fi
  done
  echo "$name $version $sha" >"$work/tree/patches/UPSTREAM"
  rm -rf "$dir" && mv "$work/tree" "$dir" && rm -rf "$work"
  if [ $failed -ne 0 ]; then
    echo "some hunks did not apply: fix the files next to these and delete them:" >&2
    find "$dir" -name '*.rej' >&2
  fi
  echo "next: update WHARF-PATCH.md and the version pins, run the jq conformance tests, then vendor/patches.sh regen $dir"
}

case "${1:-check}" in
  check)
    shift || true
    status=0
    for dir in "${@:-${CRATES[@]}}"; do check "$dir" || status=1; done
    exit $status
    ;;
  regen) [ $# -ge 2 ] || die "usage: regen NAME [NEW.patch]"; regen "$2" "${3:-}" ;;
  upgrade) [ $# -eq 3 ] || die "usage: upgrade NAME VERSION"; upgrade "$2" "$3" ;;
  *) die "usage: check [NAME...] | regen NAME [NEW.patch] | upgrade NAME VERSION" ;;
esac
