"""How every stage script ends: known problems become one clear line and exit status 1."""

import sys

from ebm.params import ParamsError


def run_stage(main):
    from ebm.data import DataError

    try:
        main()
    except (ParamsError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
