#!/usr/bin/env python3
"""Fill the {{NAME}} fields of a deploy/ template: `render.py TEMPLATE NAME=value ...` > output.

Standard library only, so it runs before the app is installed. Fails when a field is left
without a value or a value is given for no field.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FIELD = re.compile(r"\{\{([A-Z_]+)\}\}")


def render(template: str, values: dict[str, str]) -> str:
    wanted = set(FIELD.findall(template))
    missing, unknown = wanted - set(values), set(values) - wanted
    if missing or unknown:
        raise SystemExit(f"render: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return FIELD.sub(lambda match: values[match.group(1)], template)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    values = dict(argument.split("=", 1) for argument in argv[2:])
    sys.stdout.write(render(Path(argv[1]).read_text(), values))


if __name__ == "__main__":
    main(sys.argv)
