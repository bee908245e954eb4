"""The baseline job of bench/drain.py: nothing, in a module that imports nothing, so that RQ's
forking worker is timed on its own cost per job (a work horse imports the job's module)."""


def noop(*_args) -> None:
    return None
