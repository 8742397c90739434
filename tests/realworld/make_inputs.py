"""Write the seeded input batch of a corpus model factory to an ``.npz``.

    python -m tests.realworld.make_inputs tests.realworld.models.mtcnn:pnet /tmp/pnet.npz
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2 or ":" not in argv[0]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    module_name, _, factory = argv[0].partition(":")
    module = importlib.import_module(module_name)
    print(module.write_inputs(argv[1], factory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
