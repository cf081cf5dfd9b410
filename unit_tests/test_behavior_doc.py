"""Pins that BEHAVIOR.md names real tests: every `test_…` it cites is defined in unit_tests/ or integration_tests/,
and every bullet and table row of its behaviour sections cites at least one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "BEHAVIOR.md").read_text()
DEFINED = {
    name
    for folder in ("unit_tests", "integration_tests")
    for path in (ROOT / folder).glob("test_*.py")
    for name in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)
}
# Sections that explain rather than claim behaviour of their own.
UNCITED_SECTIONS = {"Units"}


def test_every_test_the_document_names_exists() -> None:
    cited = {name for name in re.findall(r"`(test_\w+)", DOC) if not name.endswith("_")}
    missing = sorted(cited - DEFINED)

    assert cited and not missing, missing


def test_every_claim_of_the_document_names_its_test() -> None:
    uncited = []
    for section in re.split(r"^## ", DOC, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        if title in UNCITED_SECTIONS:
            continue
        claims = re.split(r"\n(?=- |\| )", body)
        for claim in claims:
            if claim.startswith(("- ", "| ")) and not claim.startswith(("| what", "| the server", "|---")):
                if "test_" not in claim and "[same test]" not in claim and "(bound only)" not in claim:
                    uncited.append(f"{title}: {claim[:80]}")

    assert not uncited, uncited
