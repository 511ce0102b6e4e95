"""The docs stay honest: quoted commands parse, relative links resolve, the README stays short.

Every ``python -m utils ...`` command line of README.md and docs/*.md (code blocks and inline
code) is checked against the parsers of the current command line: the command and its
subcommands must exist, and every ``--option`` must be one of that (sub)command's options.
The parsers' shape is kept in pytest's cache until a file of src/utils changes.
"""

import argparse
import hashlib
import re
import shlex
from pathlib import Path

import pytest

from utils.cli import COMMANDS, command_module

REPO = Path(__file__).resolve().parents[1]
COMMAND_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK_DOCS = [*COMMAND_DOCS, REPO / "kernels" / "README.md"]
README_MAX_LINES = 210

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`([^`]+)`")
# `python -m utils`, `.venv/bin/python -m utils`, `$(BIN)/python -m utils`, `torchrun ... -m utils`
INVOCATION = re.compile(r"(?:^|\s)-m utils(?=\s|$)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# a word that stands for one the reader fills in: COMMAND, NN, <weights>, ...
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*|<[^>]*>|\.\.\.)$")
SHELL_STOPS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&"}
TOP_OPTIONS = {"-h", "--help"}  # `python -m utils` itself takes only these
CACHE_KEY = "test_docs/cli_shape"


def _split(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """A Markdown file as (line, code line) of its fenced blocks and (line, prose) paragraphs."""
    code, prose, fenced, paragraph, start = [], [], False, [], 0
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            if paragraph:
                prose.append((start, "\n".join(paragraph)))
                paragraph = []
            fenced = not fenced
        elif fenced:
            code.append((number, line))
        elif line.strip():
            if not paragraph:
                start = number
            paragraph.append(line)
        elif paragraph:
            prose.append((start, "\n".join(paragraph)))
            paragraph = []
    if paragraph:
        prose.append((start, "\n".join(paragraph)))
    return code, prose


def _shell_lines(code: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Code lines without `# comments`, joined where a line ends with a backslash."""
    joined, pending, start = [], "", 0
    for number, line in code:
        line = re.sub(r"(^|\s)#.*$", "", line).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending = ""
    if pending:
        joined.append((start, pending))
    return joined


def quoted_commands(text: str) -> list[tuple[int, str]]:
    """(line, arguments after `-m utils`) of every command line quoted in a Markdown text."""
    code, prose = _split(text)
    candidates = _shell_lines(code)
    for start, paragraph in prose:
        for match in INLINE_CODE.finditer(paragraph):
            line = start + paragraph.count("\n", 0, match.start())
            candidates.append((line, match.group(1).replace("\n", " ")))
    found = []
    for line, candidate in candidates:
        for match in INVOCATION.finditer(candidate):
            found.append((line, candidate[match.end() :]))
    return sorted(found)


def _tokens(arguments: str) -> list[str]:
    try:
        words = shlex.split(arguments)
    except ValueError:
        words = arguments.split()
    tokens = []
    for word in words:
        if word in SHELL_STOPS:
            break
        word = word.strip("[]")
        if word:
            tokens.append(word)
    return tokens


def shape(parser: argparse.ArgumentParser) -> dict:
    """A parser as plain data: ``{"options": {flag: nargs}, "subcommands": {name: shape}}``."""
    options, subcommands = {}, {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands = {name: shape(sub) for name, sub in action.choices.items()}
        for flag in action.option_strings:
            options[flag] = action.nargs  # None (one value), 0, "?", "*", "+" or a count
    return {"options": options, "subcommands": subcommands}


def cli_shape() -> dict[str, dict]:
    """Every command's parser (`utils.cli.COMMANDS`), as `shape` gives it."""
    return {name: shape(command_module(name).parser()) for name in COMMANDS}


def _source_key() -> str:
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "utils").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def cli(pytestconfig) -> dict[str, dict]:
    """The command line's shape; kept in pytest's cache while no file of src/utils changes.

    Building it imports every command's module, torch included (seconds on a small machine).
    """
    cache, key = getattr(pytestconfig, "cache", None), _source_key()
    saved = cache.get(CACHE_KEY, None) if cache is not None else None
    if saved and saved.get("key") == key:
        return saved["shape"]
    built = cli_shape()
    if cache is not None:
        cache.set(CACHE_KEY, {"key": key, "shape": built})
    return built


def check_command(arguments: str, cli: dict[str, dict]) -> list[str]:
    """Problems of `python -m utils ARGUMENTS` against the command line's shape ([] if none)."""
    tokens = _tokens(arguments)
    if not tokens:
        return []  # the command line named as a whole: "every `python -m utils` command"
    name, rest = tokens[0], tokens[1:]
    if name.startswith("-"):
        return [] if name in TOP_OPTIONS else [f"`python -m utils` has no option {name}"]
    if PLACEHOLDER.match(name):  # `python -m utils COMMAND --help`
        flags = [t for t in rest if t.startswith("-") and t not in TOP_OPTIONS]
        return [f"{flag} is not an option of every command" for flag in flags]
    if name not in cli:
        return [f"unknown command {name!r}"]
    node, path, problems = cli[name], name, []
    wants_subcommand = bool(node["subcommands"])
    index = 0
    while index < len(rest):
        token = rest[index]
        index += 1
        if token.startswith("--") or re.fullmatch(r"-[A-Za-z]", token):
            flag, has_value = token.split("=", 1)[0], "=" in token
            if flag not in node["options"]:
                problems.append(f"`{path}` has no option {flag}")
                continue
            nargs = node["options"][flag]
            if nargs is None and not has_value:
                index += 1  # its value, even one like `-1`
            elif nargs != 0 and not has_value:
                while index < len(rest) and not rest[index].startswith("-"):
                    index += 1
                    if nargs == "?":
                        break
        elif wants_subcommand:
            wants_subcommand = False
            if PLACEHOLDER.match(token):
                break  # `kernels COMMAND ...`: nothing more to check
            if token not in node["subcommands"]:
                problems.append(f"`{path}` has no subcommand {token!r}")
                break
            node, path = node["subcommands"][token], f"{path} {token}"
            wants_subcommand = bool(node["subcommands"])
    return problems


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_the_docs_quote_commands():
    assert (REPO / "docs").is_dir()
    counts = {p.name: len(quoted_commands(p.read_text())) for p in COMMAND_DOCS}
    assert counts["README.md"] >= 5, counts


def test_every_quoted_command_parses(cli):
    problems = []
    for path in COMMAND_DOCS:
        for line, arguments in quoted_commands(path.read_text()):
            for problem in check_command(arguments, cli):
                problems.append(f"{_where(path, line)}: python -m utils{arguments}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (" recognize --gallery my_gallery/ --no-such-option", "has no option --no-such-option"),
        (" no-such-command --help", "unknown command 'no-such-command'"),
        (" bench no-such-bench --sizes 10", "`bench` has no subcommand 'no-such-bench'"),
        (" kernels push NN --no-such-option", "`kernels push` has no option --no-such-option"),
        (" kernels dryrun --only 07,08 --tiny", "`kernels dryrun` has no option --tiny"),
    ],
)
def test_the_checker_rejects_what_the_cli_lacks(cli, arguments, expected):
    problems = check_command(arguments, cli)
    assert any(expected in p for p in problems), problems


def test_the_checker_reads_markdown_as_written(cli):
    text = "\n".join(
        [
            "Try `python -m utils kernels",
            "dryrun --only 07` first.",
            "",
            "```bash",
            ".venv/bin/python -m utils recognize --gallery DIR \\",
            "    --queries my_photos/ --out p.csv   # a comment --not-an-option",
            "$(BIN)/python -m utils pipeline --profile tiny --only 01,02",
            "python -m utils kernels params NN --set NAME=VALUE > params.json",
            "```",
        ]
    )
    found = quoted_commands(text)
    assert [line for line, _ in found] == [1, 5, 7, 8]
    assert all(check_command(arguments, cli) == [] for _, arguments in found), found
    assert "--not-an-option" not in found[1][1]


def _links(text: str) -> list[tuple[int, str]]:
    """(line, target) of the Markdown links and images outside code."""
    _, prose = _split(text)
    found = []
    for start, paragraph in prose:
        paragraph = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), paragraph)
        for match in LINK.finditer(paragraph):
            found.append((start + paragraph.count("\n", 0, match.start()), match.group(1)))
    return found


def test_relative_links_resolve():
    broken = []
    for path in LINK_DOCS:
        for line, target in _links(path.read_text()):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            file = target.split("#", 1)[0]
            if not (path.parent / file).exists():
                broken.append(f"{_where(path, line)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_finder_sees_links_and_images():
    text = "See [data](docs/data.md#manifests) and ![x](docs/x.jpg), not `[a](b)`."
    assert [t for _, t in _links(text)] == ["docs/data.md#manifests", "docs/x.jpg"]


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
