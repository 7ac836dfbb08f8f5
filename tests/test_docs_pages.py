"""The documentation pages: a README a newcomer reads in five minutes that
maps every page under docs/, relative links that lead somewhere, and a CLI
reference (docs/cli.md) in step with what `tenantdb ... --help` shows.

Nothing here needs a database."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import ROOT

from tenantdb import cli as cli_module
from tenantdb import errors

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_REFERENCE = DOCS / "cli.md"
README_LIMIT = 15_000  # bytes

# -- Markdown, read as GitHub renders it -----------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def without_code_spans(line: str) -> str:
    """Inline code holds no links: `[a](b)` in backticks is text."""
    return CODE_SPAN.sub(lambda m: "code", line)


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link, inline or reference."""
    found = []
    for number, line in prose_lines(text):
        line = without_code_spans(line)
        found += [(number, m.group(2)) for m in LINK.finditer(line)]
        ref = REFERENCE.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered (no link targets,
    code marks or emphasis), lower-cased, every character but letters,
    digits, underscores, hyphens and spaces dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page has: its headings' slugs (a repeated one gets
    -1, -2, ... as on GitHub) and explicit <a id/name> anchors."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/ (docs/schema included)."""
    return [README] + sorted(DOCS.rglob("*.md"))


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("//")


# -- (a) the README ---------------------------------------------------------

def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size:,} bytes; at most {README_LIMIT:,}: move the rest to a page under docs/"


def test_the_readme_speaks_of_the_product_not_of_the_design_documents() -> None:
    text = README.read_text(encoding="utf-8")
    for pattern in (r"\bseeds?\s+0", r"\bseeds?\s+\d{3}\b", r"design[ -]documents?"):
        hits = [line for line in text.splitlines() if re.search(pattern, line, re.I)]
        assert not hits, f"README.md mentions {pattern!r}: {hits} (the mapping belongs in docs/design-appendix.md)"


# -- (b) every page is reachable from the README ------------------------------

def mapped_pages() -> list[Path]:
    """The pages the README must link: every .md under docs/, but of the
    generated docs/schema/ only its index."""
    schema = DOCS / "schema"
    return [p for p in sorted(DOCS.rglob("*.md")) if schema not in p.parents or p == schema / "README.md"]


def test_every_page_under_docs_is_linked_from_the_readme() -> None:
    linked = set()
    for _, target in links(README.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if path and relative(path):
            linked.add((ROOT / path).resolve())
    missing = [str(p.relative_to(ROOT)) for p in mapped_pages() if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


# -- (c) no broken relative link --------------------------------------------

@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if not target or not relative(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where}: no such file")
        elif anchor:
            if dest.is_dir() or dest.suffix != ".md":
                broken.append(f"{where}: an anchor into a file that has no headings")
            elif anchor not in anchors(dest):
                broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    """The checker's own negative control: a missing file and a missing
    heading are found; a heading with code, punctuation and a repeat is not
    missed."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## The `client_services` schema: views, again\n\n## Again\n\n## Again\n\n"
                    "```\n[in a fence](nowhere.md)\n```\n`[in code](nowhere.md)`\n")
    assert anchors(page) == {"title", "the-client_services-schema-views-again", "again", "again-1"}
    text = "[a](page.md#again-1) [b](gone.md) [c](page.md#gone) [d](https://example.com/x.md) [e](#title)"
    assert links(text) == [(1, "page.md#again-1"), (1, "gone.md"), (1, "page.md#gone"), (1, "https://example.com/x.md"),
                           (1, "#title")]
    assert links(page.read_text()) == []


# -- (d) the CLI reference is in step with --help ------------------------------

OPTION_LINE = re.compile(r"^  (-[^\s].*?)(?:\s{2,}|$)")
OPTION_NAME = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def commands(group: click.Group = cli_module.cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path: () for tenantdb itself, then each command and subcommand."""
    found = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += commands(command, path + (name,))
        else:
            found.append(path + (name,))
    return found


def help_options(path: tuple[str, ...]) -> set[str]:
    """The --options that `tenantdb <path> --help` shows."""
    result = CliRunner().invoke(cli_module.cli, [*path, "--help"], prog_name="tenantdb")
    assert result.exit_code == 0, result.output
    options, in_options = set(), False
    for line in result.output.splitlines():
        if line.strip() == "Options:":
            in_options = True
            continue
        if in_options and line and not line.startswith(" "):
            in_options = False
        if in_options:
            spec = OPTION_LINE.match(line)
            if spec:
                options.update(OPTION_NAME.findall(spec.group(1)))
    assert "--help" in options, f"could not read the options of tenantdb {' '.join(path)} --help"
    return options


def section_title(path: tuple[str, ...]) -> str:
    return " ".join(("tenantdb",) + path) if path else "Global options"


def sections() -> dict[str, str]:
    """docs/cli.md's level-2 sections by title (code blocks included in their text)."""
    found: dict[str, list[str]] = {}
    current, fenced = None, False
    for line in CLI_REFERENCE.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            current = line[3:].strip().strip("`")
            assert current not in found, f"docs/cli.md has two sections {current!r}"
            found[current] = []
            continue
        if current is not None:
            found[current].append(line)
    return {title: "\n".join(body) for title, body in found.items()}


COMMAND_PATHS = commands()


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "tenantdb")
def test_the_cli_reference_lists_every_option_of_each_command(path: tuple[str, ...]) -> None:
    title = section_title(path)
    documented = sections()
    assert title in documented, f"docs/cli.md has no section '## {title}'"
    shown = help_options(path)
    named = set(OPTION_NAME.findall(documented[title]))
    assert not shown - named, f"docs/cli.md '## {title}' does not mention {sorted(shown - named)} (its --help shows them)"
    assert not named - shown, f"docs/cli.md '## {title}' names {sorted(named - shown)}, which its --help does not show"


def test_the_cli_reference_has_no_section_for_a_command_that_does_not_exist() -> None:
    known = {section_title(p) for p in COMMAND_PATHS}
    stale = [t for t in sections() if t.startswith("tenantdb ") and t not in known]
    assert not stale, f"docs/cli.md documents commands tenantdb does not have: {stale}"


def test_the_cli_reference_lists_every_exit_code() -> None:
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")} | {cli_module.EXIT_INTERRUPTED}
    table = sections()["Errors and exit codes"]
    listed = {int(m) for m in re.findall(r"^\|\s*(\d+)\s*\|", table, re.M)}
    assert listed == codes, f"exit codes in docs/cli.md {sorted(listed)}, in the code {sorted(codes)}"
