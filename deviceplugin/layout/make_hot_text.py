#!/usr/bin/env python3
"""Writes hot_text.ld: the linker script that puts a binary's hot code first.

Used for kmm-device-plugin (deviceplugin/layout/profile.sh) and kmm-loader
(loader/layout/profile.sh).

The kernel maps a file page together with the 64 KiB around it (fault-around), so hot code
scattered over the whole text makes all of the text resident. This script lists every input
section a profile saw executed at the start of .text, ahead of the rest, so the code a
process runs fills as few 64 KiB windows as possible.

Inputs, each with the link map (-Map) of the very binary profiled:
  callgrind profiles (--dump-instr=yes --compress-pos=no): every executed instruction;
  page-fault addresses (perf record -e page-faults -d): code the kernel faulted in, which
  catches what valgrind's serialised threads never run (lock contention paths).
--keep merges the sections of an existing hot_text.ld, so a profile of a binary already
laid out adds what it still found outside the hot part. See profile.sh.

gRPC, abseil and protobuf come from Debian's archives without -ffunction-sections, so for
them the unit is a whole object file's .text. Read-only data is left alone: most of what a
process reads there are strings, which the linker merges across objects.
"""
import argparse
import bisect
import os
import re
import sys
import textwrap

# Section names many objects share: their lines name the object file too.
GENERIC = re.compile(r"^\.text(\.(startup|hot|unlikely|exit))?$")
# The rest of .text, as in the default script of GNU ld 2.40 (ld --verbose).
REST = "/* The rest, as GNU ld's default script orders it. */"
DEFAULT_TEXT = """\
    *(.text.unlikely .text.*_unlikely .text.unlikely.*)
    *(.text.exit .text.exit.*)
    *(.text.startup .text.startup.*)
    *(.text.hot .text.hot.*)
    *(SORT(.text.sorted.*))
    *(.text .stub .text.* .gnu.linkonce.t.*)
    *(.gnu.warning)
"""


class LinkMap:
    """Input sections of a GNU ld map: (start, size, name, file, output section)."""

    def __init__(self, path):
        self.sections = []
        lines = open(path).read().split("\n")
        begin = next(i for i, l in enumerate(lines) if l.startswith("Linker script and memory map"))
        row = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
        output = None
        for i in range(begin, len(lines)):
            line = lines[i]
            top = re.match(r"^(\S+)", line)
            if top:
                output = top.group(1)
                continue
            m = re.match(r"^ (\S+)(.*)$", line)
            if not m or m.group(1).startswith("*") or m.group(1).startswith("0x"):
                continue
            # A long section name is followed by its address on the next line.
            rest = m.group(2) if m.group(2).strip() else lines[i + 1] if i + 1 < len(lines) else ""
            r = row.match(rest if rest.startswith(" ") else " " + rest)
            if r and int(r.group(1), 16) > 0 and int(r.group(2), 16) > 0:
                self.sections.append(
                    (int(r.group(1), 16), int(r.group(2), 16), m.group(1), r.group(3), output))
        self.sections.sort()
        self.starts = [s[0] for s in self.sections]

    def at(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.sections[i][0] + self.sections[i][1]:
            return self.sections[i]
        return None


# Code the linker puts in output sections of its own name (abseil's low-level allocator);
# they go right before .text, whole, keeping their __start_/__stop_ symbols.
NAMED_CODE = {"malloc_hook"}


def is_code(output):
    return output == ".text" or output in NAMED_CODE


def file_pattern(path):
    """A linker-script file pattern: `*libfoo.a:member.o`, or `*dir/file.o` outside archives."""
    m = re.match(r"^(.*)\((.*)\)$", path)
    if m:
        return "*%s:%s" % (os.path.basename(m.group(1)), m.group(2))
    return "*" + "/".join(path.split("/")[-2:])


def pattern(name, path):
    return "%s(%s)" % (file_pattern(path), name) if GENERIC.match(name) else "*(%s)" % name


def callgrind_addresses(profile, binary):
    """Instruction addresses callgrind saw executed inside `binary` (a file name)."""
    addresses, in_binary = set(), False
    with open(profile) as f:
        for line in f:
            if line.startswith("ob="):
                in_binary = os.path.basename(line[3:].strip()) == binary
            elif in_binary and line.startswith("0x"):
                addresses.add(int(line.split()[0], 16))
    return addresses


def kept_lines(script):
    """The input section lines and the named sections of an existing hot_text.ld."""
    kept, named = [], []
    for line in open(script):
        m = re.match(r"^  (\S+) : \{ \*\((\S+)\) \}", line)
        if m:
            named.append(m.group(2))
        elif line.strip() == REST:
            break
        elif line.startswith("    "):
            kept.append(line.strip())
    return kept, named


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--map", required=True, help="link map of the profiled binary")
    parser.add_argument("--binary", default="kmm-device-plugin")
    parser.add_argument("--callgrind", nargs="*", default=[], help="callgrind output files")
    parser.add_argument("--faults", nargs="*", default=[],
                        help="files of page-fault addresses (hex, one a line)")
    parser.add_argument("--keep", help="an existing hot_text.ld whose sections stay hot")
    parser.add_argument("--profiled", default="the bench (deviceplugin/layout/profile.sh)",
                        help="what the profiles ran, for the script's header comment")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    link_map = LinkMap(args.map)
    addresses = set()
    for profile in args.callgrind:
        addresses |= callgrind_addresses(profile, args.binary)
    for faults in args.faults:
        addresses |= {int(l.split()[0], 16) for l in open(faults) if l.strip()}

    lines, extra_code = kept_lines(args.keep) if args.keep else ([], [])
    found = 0
    for address in sorted(addresses):
        section = link_map.at(address)
        if not section:
            continue
        _, _, name, path, output = section
        if not is_code(output):
            continue
        found += 1
        if output == ".text":
            lines.append(pattern(name, path))
        elif output not in extra_code:
            extra_code.append(output)
    if found == 0:
        sys.exit("no executed code of %s in the map: wrong map or profile?" % args.binary)

    text = list(dict.fromkeys(lines))
    named = "".join("  %s : { *(%s) }\n" % (n, n) for n in extra_code)
    header = textwrap.fill(
        "Generated by deviceplugin/layout/make_hot_text.py from profiles of %s: the code %s "
        "runs, gathered at the start of .text. A section missing here still links and runs; it "
        "only lands among the cold pages. This .text takes every input section GNU ld's default "
        "script would, so that one stays empty and is dropped: one .text, as tools that look for "
        "it by name (valgrind) expect." % (args.profiled, args.binary),
        width=90, initial_indent="/* ", subsequent_indent="   ") + " */\n"
    with open(args.output, "w") as out:
        out.write(
            "%sSECTIONS\n{\n%s  .text :\n  {\n%s\n    %s\n%s  }\n}\nINSERT BEFORE .text;\n"
            % (header, named, "\n".join("    " + line for line in text), REST, DEFAULT_TEXT))
    print("%s: %d input sections of code, %d named sections" % (args.output, len(text),
                                                                len(extra_code)))


if __name__ == "__main__":
    main()
