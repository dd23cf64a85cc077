#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Finish merging a branch made before the layered folders (README "Layout").

Run it in the worktree after `git merge <branch>` stopped on conflicts. git's rename detection
has already carried the branch's edits into the moved files; what conflicts is where the branch
edited next to a line the layout rewrote (an include line, a meson source path). For each
conflicted file this redoes the three-way merge with the layout's path rewrite applied to the
base and to the branch's side first, so only real conflicts are left, and `git add`s the files
that merge cleanly. Then it rewrites the flat includes ("mrtc/x.h") of every tracked C file,
which fixes the lines the branch added. Sources the branch added at the old flat places
(federation/x.c, module/x.c, include/mrtc/x.h) are listed: `git mv` them into a folder and run
this again.

Usage: test/tools/layout_merge.py   (from anywhere inside the worktree)
"""
import os
import re
import subprocess
import sys
import tempfile


def git(*args, text=True, check=True):
    return subprocess.run(["git", *args], capture_output=True, text=text, check=check).stdout


def rewrite_map():
    """Flat path -> layered path, from the tree as it is now."""
    mapping = {}
    for path in git("ls-files", "include/mrtc/*/*.h", "federation/*/*.c", "module/*/*.c").split():
        parts = path.split("/")
        if parts[0] == "include":
            mapping[f'"mrtc/{parts[3]}"'] = f'"mrtc/{parts[2]}/{parts[3]}"'
        else:
            mapping[f"'{parts[0]}/{parts[2]}'"] = f"'{parts[0]}/{parts[1]}/{parts[2]}'"
    return mapping


def apply(mapping, text):
    if not mapping:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: mapping[m.group(0)], text)


def sort_sources(text):
    """Sorts the entries of meson.build's federation_sources and module_sources lists."""
    def sort_block(m):
        entries = sorted(set(m.group(2).splitlines(keepends=True)))
        return m.group(1) + "".join(entries) + m.group(3)
    return re.sub(r"((?:federation|module)_sources = files\(\n)(.*?)(\))", sort_block, text,
                  flags=re.S)


def normalize(mapping, path, text):
    text = apply(mapping, text)
    return sort_sources(text) if path == "meson.build" else text


def stage(n, path):
    r = subprocess.run(["git", "show", f":{n}:{path}"], capture_output=True)
    return r.stdout.decode() if r.returncode == 0 else None


def main():
    os.chdir(git("rev-parse", "--show-toplevel").strip())
    mapping = rewrite_map()
    left = []
    for path in git("diff", "--name-only", "--diff-filter=U").split():
        base, ours, theirs = stage(1, path), stage(2, path), stage(3, path)
        if base is None or ours is None or theirs is None:
            left.append(f"{path}: added or deleted on one side; resolve by hand")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            names = []
            for name, content in (("ours", normalize(mapping, path, ours)),
                                  ("base", normalize(mapping, path, base)),
                                  ("theirs", normalize(mapping, path, theirs))):
                p = os.path.join(tmp, name)
                with open(p, "w") as f:
                    f.write(content)
                names.append(p)
            r = subprocess.run(["git", "merge-file", "-p", "-L", "ours", "-L", "base", "-L",
                                "theirs", *names], capture_output=True, text=True)
        with open(path, "w") as f:
            f.write(r.stdout)
        if r.returncode == 0:
            git("add", path)
            print(f"merged: {path}")
        else:
            left.append(f"{path}: {r.returncode} real conflict(s) left")

    changed = []
    for path in git("ls-files", "*.c", "*.h").split():
        with open(path) as f:
            text = f.read()
        new = apply({k: v for k, v in mapping.items() if k.startswith('"')}, text)
        if new != text:
            with open(path, "w") as f:
                f.write(new)
            changed.append(path)
    with open("meson.build") as f:
        text = f.read()
    if "<<<<<<<" not in text and normalize(mapping, "meson.build", text) != text:
        with open("meson.build", "w") as f:
            f.write(normalize(mapping, "meson.build", text))
        changed.append("meson.build")
    for path in changed:
        print(f"includes rewritten: {path}")

    flat = [p for p in git("ls-files", "federation/*.c", "module/*.c", "include/mrtc/*.h").split()
            if p.count("/") == (2 if p.startswith("include/") else 1)]
    for p in flat:
        left.append(f"{p}: at the old flat place; git mv it into a layer folder, run this again")
    for line in left:
        print(f"TODO: {line}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
