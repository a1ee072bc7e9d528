"""The release version, set in one place: `[workspace.package] version` in Cargo.toml.

Every crate inherits it (`version.workspace = true`), the Python wheel reads it through
maturin (`dynamic = ["version"]`), and the npm packages carry copies that this script writes
and checks (npm has no way to read it).

    python3 scripts/version.py            # print it
    python3 scripts/version.py --check    # exit 1 if any copy differs (CI runs this)
    python3 scripts/version.py --set 0.2.0
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARGO = ROOT / "Cargo.toml"
NODE = ROOT / "bindings-node"
# The package roots maturin and npm pack from; the per-platform npm folders get theirs when
# scripts/release.sh stages them.
LICENSE_COPIES = [ROOT / "bindings-python" / "LICENSE", NODE / "LICENSE"]
VERSION_RE = re.compile(r'(\[workspace\.package\][^\[]*?\nversion = ")([^"]+)(")', re.S)


def version() -> str:
    m = VERSION_RE.search(CARGO.read_text())
    if not m:
        sys.exit("scripts/version.py: no [workspace.package] version in Cargo.toml")
    return m.group(2)


def npm_manifests() -> list[Path]:
    return [NODE / "package.json", *sorted(NODE.glob("npm/*/package.json"))]


def problems(v: str) -> list[str]:
    out = []
    for p in npm_manifests():
        m = json.loads(p.read_text())
        if m.get("version") != v:
            out.append(f"{p.relative_to(ROOT)}: version {m.get('version')!r}, expected {v!r}")
        for name, want in m.get("optionalDependencies", {}).items():
            if want != v:
                out.append(f"{p.relative_to(ROOT)}: optionalDependencies.{name} {want!r}, expected {v!r}")
    main = json.loads((NODE / "package.json").read_text())
    platforms = {json.loads(p.read_text())["name"] for p in NODE.glob("npm/*/package.json")}
    if set(main.get("optionalDependencies", {})) != platforms:
        out.append(f"bindings-node/package.json: optionalDependencies {sorted(main.get('optionalDependencies', {}))} != npm/ packages {sorted(platforms)}")
    licence = (ROOT / "LICENSE").read_text()
    for copy in LICENSE_COPIES:
        if not copy.exists() or copy.read_text() != licence:
            out.append(f"{copy.relative_to(ROOT)}: missing or not the same as LICENSE")
    if f"## {v}" not in (ROOT / "CHANGELOG.md").read_text():
        out.append(f"CHANGELOG.md has no '## {v}' section")
    return out


def set_version(v: str) -> None:
    CARGO.write_text(VERSION_RE.sub(lambda m: m.group(1) + v + m.group(3), CARGO.read_text(), count=1))
    for p in npm_manifests():
        m = json.loads(p.read_text())
        m["version"] = v
        if "optionalDependencies" in m:
            m["optionalDependencies"] = {k: v for k in m["optionalDependencies"]}
        p.write_text(json.dumps(m, indent=2) + "\n")


def main() -> None:
    args = sys.argv[1:]
    if not args:
        print(version())
    elif args == ["--check"]:
        found = problems(version())
        for p in found:
            print(f"version check: {p}", file=sys.stderr)
        sys.exit(1 if found else 0)
    elif len(args) == 2 and args[0] == "--set":
        set_version(args[1])
        print(f"version set to {args[1]}; add a CHANGELOG.md section and run cargo update -w")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
