"""The one family of known problems: each is one line that names the problem and its remedy.

`ebm.stage.run_stage` prints any StageError as `error: <message>` and exits with status 1;
anything else is a bug and keeps its traceback.
"""


class StageError(Exception):
    """A known problem a stage cannot work around: bad input, a missing or corrupt file, a
    training that did not finish."""


class ParamsError(StageError, ValueError):
    """A wrong, missing or unknown value in params.yaml."""


class DataError(StageError, RuntimeError):
    """A file a stage needs (the digits, a download feeding them, a checkpoint) is missing, corrupt
    or inconsistent, or an output could not be written."""


class NoTrainedModel(DataError):
    """A stage needs a finished training whose checkpoint or record is missing, or whose
    training did not end ok."""
