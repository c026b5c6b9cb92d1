"""Checks: the data tests and unit tests on an asset, and whether each has run on what is there now.

A check is *pending* until its current code version has run against the asset's current
materialization, then it *passes*, *warns* (dbt's ``severity: warn``) or *fails*. A new or
changed test is pending, and so is every test of an asset that was just rebuilt; ``sync`` runs
the pending ones. A pure function of the checks, the last materializations and the recorded
results, like :mod:`dbtassets.rules.staleness`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from dbtassets.clock import shown
from dbtassets.model.manifest import Check, UniqueId
from dbtassets.state.records import CheckResult


class CheckState(str, Enum):
    PENDING = "pending"
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    MISSING = "missing"  # the YAML declares it, the manifest lacks it (dbt's partial parse lost it): never runs
    REMOVED = "removed"  # it ran here, and is no longer declared: said until its asset is next built

    @property
    def failing(self) -> bool:
        return self in (CheckState.FAIL, CheckState.MISSING)


# dbt's test and unit test statuses, as recorded; "error" (the test itself could not run) fails too.
RECORDED = {"pass": CheckState.PASS, "warn": CheckState.WARN, "fail": CheckState.FAIL, "error": CheckState.FAIL}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(message: str, limit: int = 300) -> str:
    """A message as one plain line for a table or a log: colour codes stripped, whitespace folded, cut.

    dbt's messages span many lines and unit test diffs come coloured; the cut keeps ``limit``
    characters, the last an ellipsis. The one definition: recording and the reports use it.
    """
    if len(message) <= limit and message.isprintable() and "  " not in message and message.strip(" ") == message:
        return message  # already one plain line (no escape, no whitespace but single inner spaces): most are
    text = " ".join((_ANSI.sub("", message) if "\x1b" in message else message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class CheckStatus:
    check: Check
    state: CheckState
    message: str = ""
    at: str | None = None

    def describe(self) -> str:
        """One line for reasons: ``data test accepted_values_orders_status failed at …: Got 1 result``."""
        name = self.check.describe()
        if self.state in (CheckState.PENDING, CheckState.MISSING, CheckState.REMOVED):
            return f"{name} {self.message}"
        verb = {CheckState.PASS: "passed", CheckState.WARN: "warned", CheckState.FAIL: "failed"}[self.state]
        return f"{name} {verb} at {shown(self.at or '-')}" + (f": {self.message}" if self.message else "")

    def to_json(self) -> dict[str, str | None]:
        return {"unique_id": self.check.unique_id or None, "name": self.check.name, "kind": self.check.kind.value,
                "state": self.state.value, "message": self.message or None, "at": self.at}


def check_statuses(checks: Sequence[Check], materialization_id: int,
                   results: Mapping[UniqueId, CheckResult]) -> tuple[CheckStatus, ...]:
    """The state of each of an asset's ``checks``, given its current materialization and its check ``results``."""
    out = []
    for check in checks:
        result = results.get(check.unique_id)
        if result is None:
            out.append(CheckStatus(check, CheckState.PENDING, "has never run (a new test)"))
        elif result.code_version != check.code_version:
            out.append(CheckStatus(check, CheckState.PENDING, f"changed since it ran at {shown(result.finished_at)}"))
        elif result.materialization_id != materialization_id:
            out.append(CheckStatus(check, CheckState.PENDING, "has not run on the latest build"))
        else:
            out.append(CheckStatus(check, RECORDED.get(result.status, CheckState.FAIL), result.message,
                                   result.finished_at))
    return tuple(out)
