"""Print the values tests recorded with ``record_property`` in a JUnit XML file.

``make test`` writes ``.test-results.xml``; the reliability tests record what they
measured there (reconnect times, exit time, soak growth...), so a CI run's numbers can
be read back without re-running anything:

    .venv/bin/python scripts/measured.py [.test-results.xml]
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else ".test-results.xml")
    if not path.is_file():
        print(f"error: {path} not found (run `make test` first)", file=sys.stderr)
        return 2
    for case in ET.parse(path).getroot().iter("testcase"):
        props = case.find("properties")
        if props is None:
            continue
        outcome = "failed" if case.find("failure") is not None else "passed"
        if case.find("skipped") is not None:
            outcome = "skipped"
        print(f"{case.get('classname')}::{case.get('name')} ({outcome}, {case.get('time')} s)")
        for p in props.iter("property"):
            print(f"    {p.get('name')}: {p.get('value')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
