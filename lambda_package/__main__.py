"""``make package``: build the Lambda zip and template, audit the zip, print its figures.

Exits 1, saying why, when the build fails or the zip would not run on Lambda.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lambda_package import ARCHITECTURES
from lambda_package.audit import audit_zip
from lambda_package.build import BuildError, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_package", description=__doc__)
    parser.add_argument("--out", default="build/lambda", help="directory for deployment.zip and sam.json")
    parser.add_argument("--arch", default="x86_64", choices=sorted(ARCHITECTURES))
    parser.add_argument("--stage", default="dev", help="Chalice stage")
    args = parser.parse_args(argv)
    try:
        bundle = build(Path(args.out), architecture=args.arch, stage_name=args.stage)
    except BuildError as error:
        print(f"make package: {error}", file=sys.stderr)
        return 1
    report = audit_zip(str(bundle), architecture=args.arch)
    print(json.dumps({"zip": str(bundle), **report.summary()}, indent=2))
    if report.problems:
        print(f"make package: {bundle} would fail on Lambda: "
              f"{len(report.problems)} problems (listed above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
