"""Errors that the CLI prints as one line (no traceback): user mistakes and hostile streams."""


class GSCError(Exception):
    """A user-facing problem: bad input file, bad option, missing weights."""


class StreamError(GSCError):
    """A .gsc stream is malformed, truncated, corrupted, or exceeds a documented limit."""


class BudgetError(StreamError):
    """A well-formed stream asks for more decoding work than this receiver's limits allow."""
