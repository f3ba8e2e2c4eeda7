#!/usr/bin/env python3
"""The fenced shell blocks of Markdown docs, for run-doc-blocks and check-doc-blocks.

  doc_blocks.py script SUITE DOC...   the bash script that runs SUITE's blocks of the DOCs
  doc_blocks.py vars SUITE DOC...     the placeholder variables of the DOCs SUITE runs blocks of
  doc_blocks.py check REPO            README.md, manifests/README.md, docs/**/*.md and the
                                      examples' READMEs (manifests/examples/*/README.md): every
                                      shell block has a known info string and its doc is in
                                      test/docs/docs.list; every relative link leads somewhere

The convention is at the top of run-doc-blocks and in docs/README.md.
"""
import pathlib
import re
import sys



def run_spec(info):
    """(suites, on_node) for a block the tests run, None for one they do not run, "bad" for a
    shell block with an info string the convention does not know. `sh` alone is `sh cluster`;
    `sh cluster node` runs in both suites; `sh on-node` runs in the node suite, on the node."""
    words = info.split()
    if not words or words[0] != "sh":
        return "bad" if SHELLISH.match(info) else None
    rest = words[1:] or ["cluster"]
    if rest == ["on-node"]:
        return ({"node"}, True)
    if len(set(rest)) == len(rest) and set(rest) <= {"cluster", "node"}:
        return (set(rest), False)
    return "bad"


SHELLISH = re.compile(r"^(sh|bash|shell|console|zsh)\b")
FENCE = re.compile(r"^( {0,3}|\s*)(`{3,}|~{3,})(.*)$")
VARS = re.compile(r"^<!--\s*doc-vars:(.*?)-->\s*$")
DELIMITER = "KMM_DOC_BLOCK"


def blocks(path):
    """(line, info, text) of every fenced block of the Markdown file at path."""
    out, lines = [], pathlib.Path(path).read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), " ".join(m.group(3).split())
        start, body = i + 1, []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if len(close) >= len(fence) and close == fence[0] * len(close):
                break
            # A block indented in a list item: drop that indentation, and no more.
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        else:
            sys.exit(f"{path}:{start}: a fenced block is not closed")
        out.append((start, info, "\n".join(body) + "\n"))
        i += 1
    return out


def problems_of(path):
    """Shell blocks whose info string the convention does not know."""
    return [f"{path}:{line}: info string {info!r}: a command block is ```sh (or ```sh cluster), "
            f"```sh node, ```sh cluster node or ```sh on-node (all run by a test); output is "
            f"```text" for line, info, _ in blocks(path) if run_spec(info) == "bad"]


def declared_vars(paths, suite=None):
    """The doc-vars of the docs at paths; with a suite, only of those with blocks it runs."""
    names = []
    for path in paths:
        if suite and not any(isinstance(run_spec(info), tuple) and suite in run_spec(info)[0]
                             for _, info, _ in blocks(path)):
            continue
        for text in pathlib.Path(path).read_text().splitlines():
            m = VARS.match(text.strip())
            if m:
                names += [n for n in m.group(1).split() if n not in names]
    return names


def script(suite, paths):
    problems = [p for path in paths for p in problems_of(path)]
    if problems:
        sys.exit("\n".join(problems))
    names = declared_vars(paths, suite)
    out = []
    for path in paths:
        for line, info, text in blocks(path):
            spec = run_spec(info)
            if not isinstance(spec, tuple) or suite not in spec[0]:
                continue
            if DELIMITER in text:
                sys.exit(f"{path}:{line}: a block may not contain {DELIMITER}")
            on_node = spec[1]
            where = f"{path}:{line}" + (" (on the node)" if on_node else "")
            shown = "".join(f"$ {l}\n" for l in text.splitlines())
            out.append(f"# {'on-node ' if on_node else ''}{where}")
            out.append(f"printf '\\n--- %s\\n' '{where}'")
            out.append(f"cat <<'{DELIMITER}'\n{shown}{DELIMITER}")
            if on_node:
                exports = f"declare -p {' '.join(names)}; " if names else ""
                out.append(f"{{ {exports}echo 'set -euo pipefail'; cat <<'{DELIMITER}'\n"
                           f"{text}{DELIMITER}\n}} | $KMM_DOC_ON_NODE bash -s")
            else:
                out.append(text.rstrip("\n"))
    return "\n".join(out)


def anchors(path):
    """GitHub's anchors for the headings of a Markdown file."""
    text = re.sub(r"^```.*?^```", "", pathlib.Path(path).read_text(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def link_problems(repo, doc):
    """Relative links of doc whose file or heading does not exist."""
    problems = []
    text = re.sub(r"^\s*```.*?^\s*```", "", doc.read_text(), flags=re.S | re.M)
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        link = m.group(1)
        if re.match(r"^[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        rel = doc.relative_to(repo)
        if not target.exists():
            problems.append(f"{rel}: link {link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            problems.append(f"{rel}: link {link}: no such heading")
    return problems


def check(repo):
    repo = pathlib.Path(repo)
    listed = [l.strip() for l in (repo / "test/docs/docs.list").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    problems = [f"test/docs/docs.list: {doc} does not exist"
                for doc in listed if not (repo / doc).is_file()]
    docs = [repo / "README.md", repo / "manifests/README.md"] + sorted((repo / "docs").rglob("*.md"))
    # The platform examples' READMEs: test/cluster/examples-test.sh runs the cluster blocks of
    # every one of them, on kwok nodes with that platform's kernels.
    examples = sorted((repo / "manifests/examples").glob("*/README.md"))
    docs = [doc for doc in docs + examples if doc.is_file()]
    for doc in docs:
        rel = str(doc.relative_to(repo))
        problems += [p.replace(str(doc), rel) for p in problems_of(doc)]
        problems += link_problems(repo, doc)
        runs = [line for line, info, _ in blocks(doc) if isinstance(run_spec(info), tuple)]
        if doc in examples:
            node_runs = [line for line, info, _ in blocks(doc)
                         if isinstance(run_spec(info), tuple) and "cluster" not in run_spec(info)[0]]
            if node_runs:
                problems.append(f"{rel}:{node_runs[0]}: only cluster blocks are run for the "
                                "examples (test/cluster/examples-test.sh)")
        elif runs and rel not in listed:
            problems.append(f"{rel}: has shell blocks (line {runs[0]}) but is not in "
                            "test/docs/docs.list, so no test runs them")
        for line, info, text in blocks(doc):
            if isinstance(run_spec(info), tuple) and DELIMITER in text:
                problems.append(f"{rel}:{line}: a block may not contain {DELIMITER}")
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "script":
        print(script(args[0], args[1:]))
    elif mode == "vars":
        print(" ".join(declared_vars(args[1:], args[0])))
    elif mode == "check":
        sys.exit(check(args[0]))
    else:
        sys.exit(__doc__)
