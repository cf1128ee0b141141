"""The one error every reader of checkpoint files raises (ours and the public codes').

It lives apart from `checkpoint.py` because the readers of the public formats
(`legacy_pickle.py`, `public_format.py`) raise it and `checkpoint.load_backbone` uses
them; `decathlon.checkpoints.ours.CheckpointError` is this same class.
"""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, unsafe or from another architecture or job."""
