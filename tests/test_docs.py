"""The docs check out (issue 25): README.md and docs/*.md render as written (every code fence is
closed, so no section turns into one code block) and every relative link points at a file that exists
(anchors are not checked)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "RESULTS.md"]
FENCE = re.compile(r"^ {0,12}(`{3,}|~{3,})(.*)$")  # list items indent their fences
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks; raises AssertionError on an unclosed fence."""
    out, open_fence, opened_at = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if open_fence is None:
            if m:
                open_fence, opened_at = m.group(1), number
            else:
                out.append((number, line))
        elif m and m.group(1)[0] == open_fence[0] and len(m.group(1)) >= len(open_fence):
            # a fence naming a language inside a block: a stray fence before it turned the rest inside out
            assert not m.group(2).strip(), (f"line {number}: `{line.strip()}` inside the code block opened at "
                                            f"line {opened_at} (a stray fence?)")
            open_fence = None
    assert open_fence is None, f"code fence opened at line {opened_at} is never closed"
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_fences_are_balanced_and_relative_links_resolve(doc):
    broken = []
    for number, line in prose_lines(doc.read_text()):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # a URL (http:, mailto:) or an anchor in the same page
            path = target.split("#", 1)[0]
            if not (doc.parent / path).exists():
                broken.append(f"line {number}: {target}")
    assert not broken, f"{doc.relative_to(ROOT)}: links to missing files: {broken}"


def test_an_unclosed_fence_is_found():
    with pytest.raises(AssertionError, match="line 3"):
        prose_lines("text\n\n```bash\nweightprog --help\n")
    with pytest.raises(AssertionError, match="line 5: ````bash` inside the code block opened at line 4"):
        prose_lines("```python\nx = 1\n```\n```\n```bash\nls\n```\n")  # README's stray fence of issue 25
    assert [n for n, _ in prose_lines("a\n````\n```\n````\nb\n")] == [1, 5]  # a shorter fence is content
