"""The exit statuses of every ``unitoken-eval`` command and module entry point, defined once."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # compare: the candidate is worse than the policy allows
    REGRESSION = 1
    # a usage or input error, reported as one ``error:`` line (argparse uses 2 for usage errors too)
    ERROR = 2
    # compare: the two runs did not measure the same thing
    INCOMPARABLE = 2
    # stopped by Ctrl-C (128 + SIGINT); finished samples are kept
    INTERRUPTED = 130
