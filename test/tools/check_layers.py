#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Dependency direction between source folders (README "Layout").

Every source folder under federation/ and module/ holds a `.may_include` file: a comment
paragraph on the folder's purpose, then one pattern a line for what its .c files and the headers
of include/mrtc/<folder>/ may include (shell globs over the include path, e.g. `mrtc/base/*`,
`event2/*`). The C standard library headers are always allowed; a header beside the including
file (`"private.h"`) too. Directives:

  !pure                    the folder does no I/O and uses no libevent: the I/O headers of
                           PURE_FORBIDDEN are refused even if a pattern allows them
  !allow-io <file> <hdr>   a commented exception to !pure for one file and one header
  !cycle <folder>          the edge to <folder> may close a folder cycle: an existing cycle,
                           listed so that the test fails on every new one

The test fails on an include the folder's list does not allow, on federation/ including
module/, on an I/O header in a pure folder, on a folder cycle not covered by a !cycle line, on
a folder without its header comment, on a source file (.c or .h of a folder under federation/
or module/, or of include/mrtc/<folder>/) over MAX_LINES lines (split it by concern), and on an
unchecked string copy in a .c file (UNCHECKED: `snprintf`, `sprintf`, `strcpy`, `strcat`;
formatted copies go through mrtc_format, mrtc_copy or mrtc_format_shown, whose results are
checked or visibly cut).

Usage: check_layers.py <source root>
"""
import fnmatch
import os
import re
import sys

MAX_LINES = 700
LAYER_ROOTS = ("federation", "module")
NOT_SOURCE = {"deploy"}  # operator files, no C

C_STANDARD = {
    "assert.h", "complex.h", "ctype.h", "errno.h", "fenv.h", "float.h", "inttypes.h",
    "iso646.h", "limits.h", "locale.h", "math.h", "setjmp.h", "signal.h", "stdalign.h",
    "stdarg.h", "stdatomic.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h",
    "stdnoreturn.h", "string.h", "tgmath.h", "threads.h", "time.h", "uchar.h", "wchar.h",
    "wctype.h",
}

# Headers that exist to do I/O, run threads, log or drive the event loop.
PURE_FORBIDDEN = [
    "event2/*", "ares.h", "openssl/ssl.h", "openssl/bio.h", "hiredis/*", "sqlite3.h",
    "pthread.h", "sys/socket.h", "sys/stat.h", "netinet/tcp.h", "netdb.h", "unistd.h",
    "fcntl.h", "poll.h", "sys/epoll.h", "syslog.h", "mrtc/core/log.h",
]

# Unchecked copies: a cut string would go unnoticed. vsnprintf stays for the formatters
# themselves, which check its result.
UNCHECKED_RE = re.compile(r"(?<![A-Za-z0-9_])(snprintf|sprintf|vsprintf|strcpy|strcat)\s*\(")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def fail(problems, msg):
    problems.append(msg)


class Folder:
    def __init__(self, name, path):
        self.name = name
        self.path = path  # e.g. federation/base
        self.layer = path.split("/")[0]
        self.patterns = []
        self.pure = False
        self.allow_io = set()  # (file basename, header)
        self.cycle_ok = set()  # folder names
        self.has_comment = False


def parse_may_include(folder, text, problems):
    comment = []
    seen_rule = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            if not seen_rule:
                comment.append(stripped.lstrip("#").strip())
            continue
        line = stripped.split("#", 1)[0].strip()
        if not line:
            continue
        seen_rule = True
        where = f"{folder.path}/.may_include:{lineno}"
        words = line.split()
        if words[0] == "!pure" and len(words) == 1:
            folder.pure = True
        elif words[0] == "!allow-io" and len(words) == 3:
            folder.allow_io.add((words[1], words[2]))
        elif words[0] == "!cycle" and len(words) == 2:
            folder.cycle_ok.add(words[1])
        elif words[0].startswith("!"):
            fail(problems, f"{where}: unknown directive {line!r}")
        else:
            folder.patterns.append(words[0])
    folder.has_comment = len(" ".join(comment).split()) >= 8


def includes_of(path):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = INCLUDE_RE.match(line)
            if m:
                yield lineno, m.group(1), m.group(2)


def unchecked_copies(path):
    """(line number, call) of each unchecked string copy in @path, comments left out."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # Blank out comments and string literals, keeping line numbers.
    text = re.sub(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"",
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    for lineno, line in enumerate(text.splitlines(), 1):
        m = UNCHECKED_RE.search(line)
        if m:
            yield lineno, m.group(1)


def find_cycle(graph):
    """One cycle of @graph (dict folder -> set of folders) as a list, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    stack = []

    def visit(n):
        color[n] = GREY
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if color.get(m, WHITE) == GREY:
                return stack[stack.index(m):] + [m]
            if color.get(m, WHITE) == WHITE:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = BLACK
        return None

    for n in sorted(graph):
        if color[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    problems = []
    warnings = []

    folders = {}
    for top in LAYER_ROOTS:
        for entry in sorted(os.listdir(os.path.join(root, top))):
            path = os.path.join(top, entry)
            if entry in NOT_SOURCE or not os.path.isdir(os.path.join(root, path)):
                continue
            if entry in folders:
                fail(problems, f"{path}: folder name also used by {folders[entry].path}; "
                     "names must be unique so that an include path shows its layer")
                continue
            folder = Folder(entry, path)
            mi = os.path.join(root, path, ".may_include")
            if not os.path.exists(mi):
                fail(problems, f"{path}: no .may_include")
            else:
                with open(mi, encoding="utf-8") as f:
                    parse_may_include(folder, f.read(), problems)
                if not folder.has_comment:
                    fail(problems, f"{path}/.may_include: no header comment on the folder's "
                         "purpose and layer")
            folders[entry] = folder
        for name in sorted(os.listdir(os.path.join(root, top))):
            if name.endswith((".c", ".h")):
                fail(problems, f"{top}/{name}: source outside a layer folder")

    inc_root = os.path.join(root, "include", "mrtc")
    for entry in sorted(os.listdir(inc_root)):
        if not os.path.isdir(os.path.join(inc_root, entry)):
            fail(problems, f"include/mrtc/{entry}: header outside a layer folder")
        elif entry not in folders:
            fail(problems, f"include/mrtc/{entry}/: no source folder of that name")

    graph = {name: set() for name in folders}
    used_cycle = set()
    scanned = 0
    for name, folder in sorted(folders.items()):
        files = []
        for d in (folder.path, os.path.join("include", "mrtc", name)):
            full = os.path.join(root, d)
            if os.path.isdir(full):
                files += [os.path.join(d, f) for f in sorted(os.listdir(full))
                          if f.endswith((".c", ".h"))]
        for rel in files:
            scanned += 1
            full = os.path.join(root, rel)
            with open(full, encoding="utf-8") as f:
                n_lines = sum(1 for _ in f)
            if rel.endswith(".c"):
                for lineno, text in unchecked_copies(full):
                    fail(problems, f"{rel}:{lineno}: unchecked copy {text!r}: use mrtc_format, "
                         "mrtc_copy or mrtc_format_shown")
            if n_lines > MAX_LINES:
                fail(problems, f"{rel}: {n_lines} lines (over {MAX_LINES}): split it by concern")
            base = os.path.basename(rel)
            for lineno, kind, target in includes_of(full):
                where = f"{rel}:{lineno}: #include {kind}{target}{'>' if kind == '<' else kind}"
                if kind == '"' and "/" not in target and \
                        os.path.exists(os.path.join(os.path.dirname(full), target)):
                    continue  # private header beside the file
                m = re.match(r"mrtc/([^/]+)/", target)
                to = m.group(1) if m else None
                if to is not None and to not in folders:
                    fail(problems, f"{where}: no layer folder {to!r}")
                    continue
                if to is not None and to != name:
                    graph[name].add(to)
                    if folder.layer == "federation" and folders[to].layer == "module":
                        fail(problems, f"{where}: federation/ must not include module/")
                if folder.pure and any(fnmatch.fnmatch(target, p) for p in PURE_FORBIDDEN) \
                        and (base, target) not in folder.allow_io:
                    fail(problems, f"{where}: {folder.path} is pure (no I/O, no libevent, "
                         "no logging)")
                    continue
                if to == name or target in C_STANDARD or (base, target) in folder.allow_io:
                    continue
                if not any(fnmatch.fnmatch(target, p) for p in folder.patterns) and \
                        to not in folder.cycle_ok:
                    fail(problems, f"{where}: not allowed by {folder.path}/.may_include")

    # Cycles: the graph without the listed !cycle edges must be acyclic.
    reduced = {}
    for name, targets in graph.items():
        reduced[name] = set()
        for to in targets:
            if to in folders[name].cycle_ok:
                used_cycle.add((name, to))
            else:
                reduced[name].add(to)
    cycle = find_cycle(reduced)
    if cycle:
        fail(problems, "folder cycle: " + " -> ".join(cycle) +
             " (break it, or list an edge with a commented !cycle line)")
    for name, folder in sorted(folders.items()):
        for to in sorted(folder.cycle_ok):
            if (name, to) not in used_cycle:
                warnings.append(f"{folder.path}/.may_include: '!cycle {to}' no longer needed")
            elif not find_cycle_through(graph, name, to):
                warnings.append(f"{folder.path}/.may_include: '!cycle {to}' closes no cycle "
                                "any more; make it an ordinary line")

    known = sorted((a, b) for a, b in used_cycle if find_cycle_through(graph, a, b))
    print(f"layers: {len(folders)} folders, {scanned} files, "
          f"{sum(len(t) for t in graph.values())} folder edges")
    for a, b in known:
        print(f"known cycle edge (listed !cycle): {a} -> {b}")
    for w in warnings:
        print(f"WARNING: {w}")
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        print(f"layers: {len(problems)} problem(s)")
        return 1
    print("layers: OK")
    return 0


def find_cycle_through(graph, a, b):
    """True if the edge a -> b lies on a cycle: b reaches a."""
    seen, todo = set(), [b]
    while todo:
        n = todo.pop()
        if n == a:
            return True
        if n in seen:
            continue
        seen.add(n)
        todo.extend(graph.get(n, ()))
    return False


if __name__ == "__main__":
    sys.exit(main())
