"""`python3 dev.py mutate`: mutation testing of source_callvolume/ with mutmut 3, against the unit tests.

mutmut's settings are setup.cfg's [mutmut] section: it mutates every module of source_callvolume/ and runs
unit_tests/ (the fast in-process tests; the integration tests run the installed command in subprocesses,
which never see a mutant), each test stopped after TEST_TIMEOUT_SECONDS (pytest-timeout) so that a mutant that
makes one wait or loop fails at once. A run starts afresh: mutants/ (git-ignored) is removed, the rest of the
working tree as git sees it (tracked and untracked files, not ignored ones) is copied into it for the tests
to find, and `mutmut run` copies the package in, mutated.

`--again [NAME ...]` builds on the last run instead, for the loop of killing survivors: it copies the working
tree in again (and removes what git no longer lists) and lets mutmut test the mutants it has no verdict for
(those of functions changed since: mutmut drops their verdicts); then it tests again, against today's tests,
those of the last run's survivors that match the NAMEs (mutmut's names or globs; '*' for all: each survivor
that is still one costs a whole run of its tests). A killed verdict is kept, so a score after `--again` is only
as good as the tests that earned it: after removing or weakening a test, run afresh.

Then this prints, from what mutmut left in mutants/:

- the outcome of every mutant, counted;
- the score: killed / all mutants, and the same without the *message mutants*: those that only change
  the text of a log line or an error message (a string inside a `raise`, a logger or warnings call, an
  exception's constructor, or a `message=`-like argument). Tests rarely pin such wording on purpose, so a
  surviving one seldom means a missing test; they are counted apart, not hidden.
- each surviving mutant with its diff (what `mutmut show NAME` prints), message mutants last, and the
  functions whose mutants no unit test reaches ("no tests").

The same report is written to mutants/report.txt. `mutmut show NAME` and `mutmut browse`, run from the
repository root with .venv's mutmut, look at one mutant afterwards. Exit status: mutmut's when it fails,
else 0 (the score informs; it is not a gate).
"""

from __future__ import annotations

import argparse
import ast
import codecs
import difflib
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "source_callvolume"
MUTANTS = ROOT / "mutants"
MUTMUT = Path(sys.executable).with_name("mutmut")
TEST_TIMEOUT_SECONDS = 30
# Outcomes in which the tests stopped the mutant.
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log"}
# How mutmut names a method's mutants: xǁClassǁmethod__mutmut_3 (a function's: x_function__mutmut_3).
CLASS_SEPARATOR = "ǁ"
# What a run leaves in mutants/ beside this tool's copies of the working tree (and mutmut-* files).
MUTMUT_OWN = {"report.txt", ".pytest_cache", ".mypy_cache", ".coverage"}
MESSAGE_KEYWORDS = {"message", "internal_message", "failure_message", "msg", "reason", "error_message", "detail"}


@dataclass
class Mutant:
    name: str
    path: str
    status: str
    diff: str
    message_only: bool


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py mutate", description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, help="mutants tested at once (mutmut's default: the CPU count)")
    parser.add_argument(
        "--again", action="store_true", help="build on the last run: test what it has no verdict for, then survivors"
    )
    parser.add_argument(
        "survivors", nargs="*", metavar="NAME",
        help="with --again, the last run's survivors to test again: mutmut's names or globs ('*' for all)",
    )
    arguments = parser.parse_args(argv)
    if arguments.survivors and not arguments.again:
        parser.error("NAMEs are the survivors to test again: they go with --again")
    os.chdir(ROOT)
    started = time.monotonic()
    again = arguments.again and MUTANTS.joinpath(PACKAGE).is_dir()
    if arguments.again and not again:
        print("mutate: no earlier run in mutants/ to build on: starting afresh", flush=True)
    last_survivors = {mutant.name for mutant in load_mutants() if mutant.status == "survived"} if again else set()
    copy_tree_beside_the_package(afresh=not again)
    command = [str(MUTMUT), "run"]
    if arguments.max_children:
        command += ["--max-children", str(arguments.max_children)]
    # PYTHONPATH (dev.py sets it to the repository) would put the unmutated package within the tests' reach.
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # pytest-timeout's: a unit test takes 4 s at most; one a mutant holds for longer fails (killing it) at once.
    environment["PYTEST_TIMEOUT"] = str(TEST_TIMEOUT_SECONDS)
    print(f"mutate: {' '.join([MUTMUT.name, *command[1:]])} over {PACKAGE}/ against unit_tests/", flush=True)
    status = run_mutmut(command, environment)
    # Of the last run's survivors that the NAMEs match, those still surviving (mutmut has just tested again the
    # mutants of the functions changed since; one of them may be tested twice).
    retest = sorted(
        mutant.name for mutant in load_mutants()
        if mutant.status == "survived" and mutant.name in last_survivors
        and any(fnmatch.fnmatch(mutant.name, pattern) for pattern in arguments.survivors)
    )
    if status == 0 and retest:
        print(f"mutate: testing the last run's {len(retest)} survivors again", flush=True)
        status = run_mutmut([*command, *retest], environment)
    if status != 0:
        print(f"mutate: mutmut exited {status}", file=sys.stderr)
        return status
    report = build_report(load_mutants(), time.monotonic() - started)
    print(report)
    (MUTANTS / "report.txt").write_text(report + "\n")
    print(f"mutate: this report is also in {(MUTANTS / 'report.txt').relative_to(ROOT)}")
    return 0


def run_mutmut(command: list[str], environment: dict[str, str]) -> int:
    """Runs mutmut; away from a terminal, its progress line (redrawn per mutant) is printed every 15 s only."""
    if sys.stdout.isatty():
        return subprocess.run(command, env=environment, stdin=subprocess.DEVNULL).returncode
    process = subprocess.Popen(
        command, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    shown_at, pending = 0.0, ""
    for chunk in iter(lambda: os.read(process.stdout.fileno(), 4096), b""):  # type: ignore[union-attr]
        pending += decoder.decode(chunk)
        *pieces, pending = re.split(r"(\r|\n)", pending)
        for piece in pieces:
            if piece in ("\r", "\n") or not piece.strip():
                continue
            progress = re.match(r"[\u2800-\u28ff]", piece.lstrip())  # a line mutmut redraws behind a spinner
            if not progress or time.monotonic() - shown_at >= 15:
                print(piece.rstrip(), flush=True)
                shown_at = time.monotonic() if progress else shown_at
    if pending.strip():
        print(pending.rstrip())
    return process.wait()


def copy_tree_beside_the_package(afresh: bool) -> None:
    """mutants/ holding the working tree as git sees it, but the package's modules (mutmut copies those).

    Afresh, mutants/ is emptied first. Otherwise the files copied by an earlier run that git no longer lists
    are removed (a deleted test must not run), mutmut's stats are dropped (it collects them again), and its
    mutants and verdicts are left alone.
    """
    if afresh:
        shutil.rmtree(MUTANTS, ignore_errors=True)
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    # The package's modules mutmut copies (and mutates) itself, but only once: its other files (the manifest)
    # are copied here every time, so that a run builds on the manifest of today.
    names = {name for name in listing.split("\0") if name and not (name.startswith(f"{PACKAGE}/") and name.endswith(".py"))}
    names = {name for name in names if (ROOT / name).is_file()}
    for name in sorted(names):
        target = MUTANTS / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    if not afresh:
        # Which tests reach which function: mutmut collects it again only for tests of a new name, so a test
        # changed to kill a survivor would not be run against it. Its verdicts are kept in the .meta files.
        MUTANTS.joinpath("mutmut-stats.json").unlink(missing_ok=True)
        for stale in sorted(MUTANTS.rglob("*")):
            name = stale.relative_to(MUTANTS).as_posix()
            if stale.is_file() and _copied_from_the_tree(name) and name not in names:
                stale.unlink()


def _copied_from_the_tree(name: str) -> bool:
    """Whether mutants/NAME is one of this tool's copies, not mutmut's own (the package, its stats, caches)."""
    parts = name.split("/")
    if parts[0] == PACKAGE:
        return not name.endswith((".py", ".meta", ".spans")) and "__pycache__" not in parts
    return not (parts[0] in MUTMUT_OWN or parts[0].startswith("mutmut") or "__pycache__" in parts)


def load_mutants() -> list[Mutant]:
    from mutmut.stats import status_by_exit_code

    mutants = []
    for meta in sorted(MUTANTS.joinpath(PACKAGE).rglob("*.py.meta")):
        path = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        sources = _FunctionSources(path)
        for name, exit_code in sorted(exit_codes.items()):
            original, mutated = sources.of(name)
            # The diff `mutmut show NAME` prints.
            diff = "\n".join(
                difflib.unified_diff(
                    original.strip().split("\n"), mutated.strip().split("\n"), fromfile=path, tofile=path, lineterm=""
                )
            )
            mutants.append(Mutant(name, path, status_by_exit_code[exit_code], diff, _changes_only_a_message(original, mutated)))
    return mutants


def build_report(mutants: list[Mutant], seconds: float) -> str:
    counts = Counter(mutant.status for mutant in mutants)
    total = len(mutants)
    killed = sum(1 for mutant in mutants if mutant.status in KILLED)
    messages = [mutant for mutant in mutants if mutant.message_only]
    killed_messages = sum(1 for mutant in messages if mutant.status in KILLED)
    lines = [
        "",
        f"mutate: {total} mutants of {PACKAGE}/ in {seconds / 60:.1f} min; "
        + ", ".join(f"{count} {status}" for status, count in counts.most_common()),
        f"mutate: score {killed}/{total} killed = {_percent(killed, total)}",
        f"mutate: without the {len(messages)} mutants that only change a log or error message "
        f"({killed_messages} of them killed): {killed - killed_messages}/{total - len(messages)} killed = "
        f"{_percent(killed - killed_messages, total - len(messages))}",
    ]
    survivors = [mutant for mutant in mutants if mutant.status == "survived"]
    survivors.sort(key=lambda mutant: (mutant.message_only, mutant.path, mutant.name))
    lines += ["", f"surviving mutants ({len(survivors)}; `mutmut show NAME` shows one again):"]
    for mutant in survivors:
        lines += ["", f"# {mutant.name}{'  [message only]' if mutant.message_only else ''}", mutant.diff]
    untested = defaultdict(int)
    for mutant in mutants:
        if mutant.status == "no tests":
            untested[mutant.name.rsplit("__mutmut_", 1)[0]] += 1
    if untested:
        lines += ["", "functions no unit test reaches (their mutants count as not killed):"]
        lines += [f"  {function}: {count} mutants" for function, count in sorted(untested.items())]
    others = [mutant for mutant in mutants if mutant.status not in KILLED | {"survived", "no tests"}]
    if others:
        lines += ["", "mutants with another outcome:"] + [f"  {mutant.name}: {mutant.status}" for mutant in others]
    return "\n".join(lines)


class _FunctionSources:
    """The original and the mutated function of each mutant of one file, read from mutmut's mutated copy.

    mutmut keeps, beside each function, its unmutated copy (`<key>__mutmut_orig`) and each mutant
    (`<key>__mutmut_<n>`); both are read with `ast` (libcst, which mutmut's `show` uses, takes seconds per
    mutant on these files) and named back after the function, so that their diff shows only the mutation.
    """

    def __init__(self, path: str) -> None:
        text = (MUTANTS / path).read_text()
        lines = text.splitlines()
        self._sources = {}
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name:
                self._sources[node.name] = textwrap.dedent("\n".join(lines[node.lineno - 1 : node.end_lineno]))

    def of(self, name: str) -> tuple[str, str]:
        generated = name.rpartition(".")[2]
        key = generated.rpartition("__mutmut_")[0]
        function = key.rpartition(CLASS_SEPARATOR)[2] if CLASS_SEPARATOR in key else key.removeprefix("x_")
        original, mutated = (self._sources.get(f"{key}__mutmut_orig", ""), self._sources.get(generated, ""))
        return tuple(  # type: ignore[return-value]
            re.sub(rf"\bdef\s+{re.escape(defined)}\b", f"def {function}", source, count=1)
            for defined, source in ((f"{key}__mutmut_orig", original), (generated, mutated))
        )


def _changes_only_a_message(original: str, mutated: str) -> bool:
    """Whether the mutant changes nothing but the text of log or error messages."""
    try:
        differences = _differences(ast.parse(original), ast.parse(mutated), ())
    except SyntaxError:
        return False
    return bool(differences) and all(_within_a_message(old, ancestors) for ancestors, old, _ in differences)


def _differences(old: object, new: object, ancestors: tuple) -> list[tuple[tuple, object, object]]:
    """The innermost pairs of nodes where two trees differ, each with the nodes above it."""
    if type(old) is not type(new):
        return [(ancestors, old, new)]
    if isinstance(old, ast.Constant):
        return [] if (type(old.value), old.value) == (type(new.value), new.value) else [(ancestors, old, new)]
    if isinstance(old, ast.AST):
        found = []
        for field in old._fields:
            found += _differences(getattr(old, field, None), getattr(new, field, None), (*ancestors, old))
        return found
    if isinstance(old, list):
        if len(old) != len(new):  # type: ignore[arg-type]
            return [(ancestors, old, new)]
        return [difference for pair in zip(old, new) for difference in _differences(*pair, ancestors)]  # type: ignore[arg-type]
    return [] if old == new else [(ancestors, old, new)]


def _within_a_message(node: object, ancestors: tuple) -> bool:
    """A string, or a part of an f-string, that is a message: said in a `raise`, a logger or warnings call, an
    exception's constructor or a `message=`-like argument, or prose (three words or more)."""
    strings = [
        candidate for candidate in (*ancestors, node)
        if isinstance(candidate, ast.JoinedStr) or (isinstance(candidate, ast.Constant) and isinstance(candidate.value, str))
    ]
    if not strings:
        return False
    outermost = strings[0]
    return _in_message_context(ancestors[: ancestors.index(outermost)] if outermost in ancestors else ancestors) or (
        len(_literal_text(outermost).split()) >= 3
    )


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value for part in node.values if isinstance(part, ast.Constant) and isinstance(part.value, str))
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


def _in_message_context(ancestors: tuple) -> bool:
    for node in ancestors:
        if isinstance(node, ast.Raise):
            return True
        if isinstance(node, ast.keyword) and node.arg in MESSAGE_KEYWORDS:
            return True
        if isinstance(node, ast.Call):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if called in LOG_METHODS or called.endswith(("Error", "Exception", "Warning")):
                return True
    return False


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
