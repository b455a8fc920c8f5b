"""How every stage script ends: known problems become one clear line and exit status 1."""

import sys

from ebm.errors import StageError


def run_stage(main):
    try:
        main()
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
