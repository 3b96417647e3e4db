#!/usr/bin/env python3
"""Checks that the Makefile's one build list (BUILD_PACKAGES) covers what building needs, so that
any public make target works as the first command on a fresh machine.

  1. Every public make target (its .PHONY list, but `clean` and the deps-* installers) depends,
     directly or through other targets, on deps-build.
  2. Every `.apt([...])` provider in Package.swift is in BUILD_PACKAGES.
  3. Every library the package links (module maps' `link "x"`, `.linkedLibrary("x")`) and every
     system header its C targets include is installed by a package that BUILD_PACKAGES brings in
     (the packages themselves and what they depend on), or by libc6-dev, which every machine of
     this kind has because the Swift toolchain needs it.

Run after `make deps-build` (make test does): headers and libraries are found with dpkg.
  check-build-deps.py [--makefile FILE] [--self-test]
--self-test also runs the check on a copy of the Makefile with deps-build taken out of `demo`
and expects it to fail: a check that cannot fail proves nothing.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Targets that do not build: removing build output, and the installers themselves.
NON_BUILDING = re.compile(r"^(clean|deps-.*)$")
# Libraries of the C runtime itself: no -dev package beyond libc6-dev to name.
LIBC_LIBRARIES = {"c", "m", "pthread", "dl", "rt"}
BASE_PACKAGES = ["libc6-dev"]
SYSTEM_INCLUDE_DIRS = ["/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/local/include"]
LIBRARY_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib", "/lib/x86_64-linux-gnu"]


def make_database(makefile):
    """Variables and rules as make itself reads them (no recipe runs: -q asks, -n would print)."""
    out = subprocess.run(["make", "-pRrq", "-f", makefile, "-C", ROOT, "--no-print-directory", "__no_such_goal__"],
                         capture_output=True, text=True).stdout
    variables, rules = {}, {}
    in_files = False
    for line in out.splitlines():
        if line.startswith("# Files"):
            in_files = True
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*) :?= ?(.*)$", line)
        if m and not in_files:
            variables[m.group(1)] = m.group(2).split()
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+):(?!=)\s*(.*)$", line)
        if m and in_files and not line.startswith("\t"):
            prereqs = m.group(2).split("|")[0].split()
            rules.setdefault(m.group(1), []).extend(prereqs)
    return variables, rules


def check_targets(makefile, errors):
    variables, rules = make_database(makefile)
    build = variables.get("BUILD_PACKAGES")
    if build is None:
        errors.append(f"{makefile}: no BUILD_PACKAGES list (the one list of what building needs)")
    if "deps-build" not in rules:
        errors.append(f"{makefile}: no deps-build target (installing BUILD_PACKAGES)")
    for target in rules.get(".PHONY", []):
        if NON_BUILDING.match(target):
            continue
        seen, stack = set(), [target]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            stack.extend(rules.get(t, []))
        if "deps-build" not in seen:
            errors.append(f"make {target}: does not depend on deps-build, so as a first command on a fresh "
                          f"machine it builds without the build's packages")
    return build or []


def dpkg(*args):
    r = subprocess.run(["dpkg-query", *args], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def package_closure(packages):
    """The packages named, and everything they depend on, as installed (first alternative taken)."""
    closure, stack = set(), list(packages)
    while stack:
        p = stack.pop().split(":")[0]
        if p in closure:
            continue
        closure.add(p)
        status = dpkg("-W", "-f=${Status}\t${Depends},${Pre-Depends}\t${Provides}", p)
        if not status or "installed" not in status.split("\t")[0]:
            continue
        _, depends, _ = status.split("\t")
        for alt in depends.split(","):
            name = alt.strip().split("|")[0].split(" ")[0].split(":")[0]
            if name:
                stack.append(name)
    return closure


def owner(path):
    out = dpkg("-S", os.path.realpath(path)) or dpkg("-S", path)
    if not out:
        return None
    return out.split(":")[0].split(",")[0].strip()


def package_targets():
    text = open(os.path.join(ROOT, "Package.swift")).read()
    providers = re.findall(r"\.apt\(\[([^\]]*)\]\)", text)
    apt = [p.strip().strip('"') for group in providers for p in group.split(",") if p.strip()]
    linked = re.findall(r'\.linkedLibrary\("([^"]+)"', text)
    paths = sorted(set(re.findall(r'path:\s*"([^"]+)"', text)))
    return apt, linked, paths


def c_files(paths):
    for p in paths:
        for dirpath, _, files in os.walk(os.path.join(ROOT, p)):
            for f in files:
                if f.endswith((".h", ".c", ".modulemap")):
                    yield os.path.join(dirpath, f)


def check_sources(build_packages, errors):
    apt, linked, paths = package_targets()
    for p in apt:
        if p not in build_packages:
            errors.append(f"Package.swift names the apt provider {p}, which BUILD_PACKAGES lacks")
    allowed = package_closure(build_packages + BASE_PACKAGES)
    libraries = set(linked)
    headers = {}
    for f in c_files(paths):
        text = open(f, errors="replace").read()
        rel = os.path.relpath(f, ROOT)
        libraries.update(re.findall(r'^\s*link\s+"([^"]+)"', text, re.M))
        for h in re.findall(r'^\s*#\s*include\s*<([^>]+)>', text, re.M):
            headers.setdefault(h, rel)
    for lib in sorted(libraries - LIBC_LIBRARIES):
        candidates = [os.path.join(d, f"lib{lib}.so") for d in LIBRARY_DIRS]
        found = [c for c in candidates if os.path.exists(c)]
        if not found:
            errors.append(f"library {lib}: no lib{lib}.so installed; add the -dev package that has it to BUILD_PACKAGES")
            continue
        pkg = owner(found[0])
        if pkg not in allowed:
            errors.append(f"library {lib}: lib{lib}.so comes from {pkg}, which BUILD_PACKAGES does not bring in")
    compiler_dirs = compiler_include_dirs()
    # System directories a target adds with -I (DPDK's headers live under /usr/include/dpdk).
    package_text = open(os.path.join(ROOT, "Package.swift")).read()
    include_dirs = SYSTEM_INCLUDE_DIRS + sorted(set(re.findall(r'"-I(/[^"]+)"', package_text)))
    for h, where in sorted(headers.items()):
        found = [os.path.join(d, h) for d in include_dirs if os.path.exists(os.path.join(d, h))]
        if not found:
            if any(os.path.exists(os.path.join(d, h)) for d in compiler_dirs):
                continue  # the compiler's own (stddef.h, stdint.h, ...)
            errors.append(f"{where}: <{h}> is not installed; add the -dev package that has it to BUILD_PACKAGES")
            continue
        pkg = owner(found[0])
        if pkg not in allowed:
            errors.append(f"{where}: <{h}> comes from {pkg}, which BUILD_PACKAGES does not bring in")
    return len(libraries - LIBC_LIBRARIES), len(headers)


def compiler_include_dirs():
    """The Swift toolchain's clang resource headers (what Swift's C importer uses)."""
    try:
        swiftc = subprocess.run(["sh", "-c", "command -v swiftc"], capture_output=True, text=True).stdout.strip()
        base = os.path.join(os.path.dirname(os.path.realpath(swiftc)), "..", "lib", "swift", "clang", "include")
        return [os.path.normpath(base)]
    except OSError:
        return []


def run(makefile):
    errors = []
    build = check_targets(makefile, errors)
    libs, headers = check_sources(build, errors) if build else (0, 0)
    return errors, build, libs, headers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--makefile", default=os.path.join(ROOT, "Makefile"))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    errors, build, libs, headers = run(args.makefile)
    for e in errors:
        print(f"check-build-deps: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check-build-deps: BUILD_PACKAGES ({' '.join(build)}) cover every public target, "
          f"{libs} linked libraries and {headers} included headers")
    if args.self_test:
        text = open(args.makefile).read()
        broken, n = re.subn(r"^demo:(.*)$", lambda m: "demo:" + m.group(1).replace("deps-build", "").replace("deps-demo", ""),
                            text, flags=re.M)
        if n != 1:
            print("check-build-deps: self-test: no `demo:` rule to break", file=sys.stderr)
            return 1
        with tempfile.NamedTemporaryFile("w", suffix=".mk", delete=False) as f:
            f.write(broken)
        try:
            bad, _, _, _ = run(f.name)
        finally:
            os.unlink(f.name)
        if not any(e.startswith("make demo:") for e in bad):
            print("check-build-deps: self-test: a demo without deps-build was not caught", file=sys.stderr)
            return 1
        print("check-build-deps: self-test: a demo without deps-build is caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
