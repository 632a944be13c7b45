#!/usr/bin/env bash
# Refresh the vendored jsPsych browser files of the quiz page (dcf_teach/assets/jspsych/) from npm.
# Not part of `make setup`: the files are committed, so a build works offline; run `make jspsych` to update them.
set -euo pipefail
DEST=${1:-dcf_teach/assets/jspsych}
PKGS=(jspsych@8.3.0 @jspsych/plugin-html-button-response@2.1.0 @jspsych/plugin-html-keyboard-response@2.2.0
      @jspsych/plugin-image-button-response@2.2.0 @jspsych/plugin-preload@2.1.0 @jspsych/plugin-survey-text@2.1.1)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$DEST"
: > "$tmp/VERSIONS"
for p in "${PKGS[@]}"; do
  (cd "$tmp" && npm pack "$p" --silent >/dev/null)
done
for t in "$tmp"/*.tgz; do
  d="$tmp/x"; rm -rf "$d"; mkdir "$d"; tar xzf "$t" -C "$d"
  name=$(node -p "require('$d/package/package.json').name"); ver=$(node -p "require('$d/package/package.json').version")
  out=$(basename "$name").min.js
  # drop the source-map comment: it names unpkg.com, and the page must not refer to the network
  grep -v '^//# sourceMappingURL=' "$d/package/dist/index.browser.min.js" > "$DEST/$out"
  echo "$name $ver $out" >> "$tmp/VERSIONS"
done
sort "$tmp/VERSIONS" > "$DEST/VERSIONS"
cat "$DEST/VERSIONS"
