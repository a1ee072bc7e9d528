"""Checks what scripts/release.sh put in dist/, as a registry and an installer would see it.

    python3 scripts/check-artifacts.py dist 0.1.0

Wheels: the file name's tags (cp39-abi3, manylinux_2_28 on the right architecture) agree
with the WHEEL metadata; the licence is in the dist-info; the native module has no debug
sections and links against nothing but the C library. sdist: the licence, pyproject.toml
and the core's sources (pip can build it). npm: the main package carries no binary and no
install script and lists every platform package at the same version; each platform package
carries its stripped binary, the licence and os/cpu (and libc) fields. Prints each
artifact's size (the README quotes them). Exit 1 on any problem.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

ARCH = {"x86_64": 62, "aarch64": 183}  # ELF e_machine
problems: list[str] = []


def fail(msg: str) -> None:
    problems.append(msg)


def elf_sections(data: bytes) -> tuple[int, list[str], list[str]]:
    """(e_machine, section names, DT_NEEDED libraries) of a 64-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF")
    machine = struct.unpack_from("<H", data, 18)[0]
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = heads[shstrndx]
    def name(off: int, tab: tuple) -> str:  # noqa: E306
        start = tab[4] + off
        return data[start:data.index(b"\0", start)].decode()
    names = [name(h[0], strtab) for h in heads]
    needed: list[str] = []
    dyn = next((h for h, n in zip(heads, names) if n == ".dynamic"), None)
    dynstr = next((h for h, n in zip(heads, names) if n == ".dynstr"), None)
    if dyn and dynstr:
        for i in range(dyn[5] // 16):
            tag, val = struct.unpack_from("<qQ", data, dyn[4] + i * 16)
            if tag == 1:  # DT_NEEDED
                needed.append(name(val, dynstr))
    return machine, names, needed


def check_binary(label: str, data: bytes, arch: str) -> None:
    try:
        machine, names, needed = elf_sections(data)
    except (ValueError, struct.error) as e:
        return fail(f"{label}: {e}")
    if machine != ARCH[arch]:
        fail(f"{label}: ELF machine {machine}, expected {arch}")
    debug = [n for n in names if n.startswith(".debug")]
    if debug:
        fail(f"{label}: debug sections {debug}")
    libc_only = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2",
                 "ld-linux-aarch64.so.1", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"}
    extra = [n for n in needed if n not in libc_only]
    if extra:
        fail(f"{label}: links against {extra} (a user's machine may not have them)")


def check_wheel(path: Path, version: str) -> None:
    parts = path.stem.split("-")
    if len(parts) != 5 or parts[:2] != ["polyroute", version]:
        return fail(f"{path.name}: not polyroute-{version}-<tags>.whl")
    py, abi, plat = parts[2:]
    if (py, abi) != ("cp39", "abi3"):
        fail(f"{path.name}: tags {py}-{abi}, expected cp39-abi3 (one wheel for CPython 3.9+)")
    arch = next((a for a in ARCH if plat.endswith(a)), None)
    if not plat.startswith("manylinux_2_28_") or arch is None:
        return fail(f"{path.name}: platform tag {plat}, expected manylinux_2_28_<arch>")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        info = f"polyroute-{version}.dist-info"
        wheel = z.read(f"{info}/WHEEL").decode()
        if f"Tag: {py}-{abi}-{plat}" not in wheel:
            fail(f"{path.name}: WHEEL metadata does not say Tag: {py}-{abi}-{plat}:\n{wheel}")
        if not any(n.startswith(f"{info}/licenses/") and n.endswith("LICENSE") for n in names):
            fail(f"{path.name}: no LICENSE under {info}/licenses/ ({names})")
        native = [n for n in names if n.startswith("polyroute/_native") and n.endswith(".so")]
        if len(native) != 1:
            return fail(f"{path.name}: expected one polyroute/_native*.so, found {native}")
        for needed in ("polyroute/__init__.py", "polyroute/py.typed", "polyroute/_native.pyi"):
            if needed not in names:
                fail(f"{path.name}: {needed} missing")
        check_binary(f"{path.name}:{native[0]}", z.read(native[0]), arch)


def check_sdist(path: Path, version: str) -> None:
    with tarfile.open(path) as t:
        names = t.getnames()
    root = f"polyroute-{version}/"
    for needed in ("LICENSE", "pyproject.toml", "PKG-INFO"):
        if not any(n.startswith(root) and n.endswith("/" + needed) or n == root + needed for n in names):
            fail(f"{path.name}: no {needed}")
    if not any("/core/src/router/" in n for n in names):
        fail(f"{path.name}: the core's sources are missing (pip could not build it)")


def npm_manifest(t: tarfile.TarFile) -> dict:
    f = t.extractfile("package/package.json")
    assert f is not None
    return json.load(f)


def check_npm(dist: Path, version: str) -> None:
    main_path = dist / f"polyroute-{version}.tgz"
    if not main_path.exists():
        return fail(f"{main_path.name} missing")
    with tarfile.open(main_path) as t:
        m = npm_manifest(t)
        names = t.getnames()
    if any(n.endswith(".node") for n in names):
        fail(f"{main_path.name}: carries a binary ({[n for n in names if n.endswith('.node')]}); binaries live in platform packages")
    if any(k in m.get("scripts", {}) for k in ("install", "preinstall", "postinstall")):
        fail(f"{main_path.name}: has an install script (blocked by default in recent npm)")
    if "package/LICENSE" not in names:
        fail(f"{main_path.name}: no LICENSE")
    opt = m.get("optionalDependencies", {})
    if not opt or any(v != version for v in opt.values()):
        fail(f"{main_path.name}: optionalDependencies {opt} must all be {version}")
    for p in sorted(dist.glob("polyroute-*.tgz")):
        if p == main_path:
            continue
        with tarfile.open(p) as t:
            pm = npm_manifest(t)
            names = t.getnames()
            if pm["name"] not in opt:
                fail(f"{p.name}: {pm['name']} is not in the main package's optionalDependencies")
            if pm.get("version") != version or not pm.get("os") or not pm.get("cpu"):
                fail(f"{p.name}: version/os/cpu fields: {pm}")
            binary = f"package/{pm['main']}"
            if binary not in names or "package/LICENSE" not in names:
                fail(f"{p.name}: needs {binary} and LICENSE, has {names}")
                continue
            f = t.extractfile(binary)
            assert f is not None
            arch = "aarch64" if "arm64" in pm["name"] else "x86_64"
            check_binary(f"{p.name}:{pm['main']}", f.read(), arch)


def main() -> None:
    dist, version = Path(sys.argv[1]), sys.argv[2]
    wheels = sorted((dist / "python").glob("*.whl"))
    sdists = sorted((dist / "python").glob("*.tar.gz"))
    if not wheels or len(sdists) != 1:
        fail(f"expected wheels and one sdist in {dist / 'python'}: {wheels} {sdists}")
    for w in wheels:
        check_wheel(w, version)
    for s in sdists:
        check_sdist(s, version)
    check_npm(dist / "npm", version)
    for p in sorted(dist.rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(dist)}: {p.stat().st_size / 1e6:.1f} MB")
    for p in problems:
        print(f"artifact check: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
