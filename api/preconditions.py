"""If-Match on the staff realm's versioned resources (accounts, limits): the ETag names the
version a change expects, so a stale read cannot overwrite a newer write."""

from __future__ import annotations

import re

from api.problems import Problem

_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')


def expected_version(if_match: str | None) -> int:
    """The version an If-Match names.

    Raises:
        Problem: 428 precondition_required (missing), 412 version_conflict (not one of our ETags).
    """
    if if_match is None or not if_match.strip():
        raise Problem(
            428, "precondition_required", "Precondition required", 'Send If-Match with the ETag you read ("<version>").'
        )
    match = _ETAG.match(if_match)
    if match is None:
        raise Problem(412, "version_conflict", "Version conflict", "If-Match does not name a current version.")
    return int(match.group(1))
