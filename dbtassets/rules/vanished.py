"""Checks that went away: declared in the YAML but not in the manifest, or run here and no longer declared.

A check the manifest lacks is never run, so nothing about it could fail: :func:`with_vanished` puts it
back on its asset's status. One the YAML still declares (dbt's partial parse lost it, see
:mod:`dbtassets.model.declared`) is ``missing`` and fails ``check`` until a full parse brings it back.
One the state store has results of but nobody declares any more was deleted on purpose: it is
``removed``, a note (never a failure) shown until its asset is next built, so it is said, not said forever.
A pure function, like :mod:`dbtassets.rules.staleness`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from dbtassets.model.declared import MissingCheck
from dbtassets.model.manifest import Check, CheckKind, UniqueId
from dbtassets.rules.checks import CheckState, CheckStatus
from dbtassets.rules.statuses import AssetStatus, Reason, ReasonCode
from dbtassets.state.records import StateView

_FIX = "it does not run; run `dbt parse --no-partial-parse` (dbtassets does after its own parses)"


def with_vanished(statuses: Mapping[UniqueId, AssetStatus], missing: Sequence[MissingCheck], state: StateView,
                  known: Collection[UniqueId]) -> dict[UniqueId, AssetStatus]:
    """``statuses`` with the checks that went away added to their assets, and a reason for each.

    Args:
        missing: the declared tests the manifest lacks.
        state: the state store's view (each check's last run on each asset, each asset's last build).
        known: the checks the manifest holds.
    """
    out = dict(statuses)
    lost: dict[UniqueId, list[CheckStatus]] = {}
    for m in missing:
        kind = CheckKind.UNIT_TEST if m.unit_test else CheckKind.DATA_TEST
        check = Check(UniqueId(""), m.label, kind, (m.asset,), "")
        lost.setdefault(m.asset, []).append(CheckStatus(check, CheckState.MISSING,
                                                        f"is declared in {m.file} but not in the manifest: {_FIX}"))
    for uid, by_check in state.check_results.items():
        for check_id, result in sorted(by_check.items()):
            if uid not in out or check_id in known:
                continue
            check = Check(check_id, _name(check_id), _kind(check_id), (uid,), result.code_version)
            if uid in lost:  # its asset's YAML still declares tests the manifest lacks: this is one of them
                lost[uid].append(CheckStatus(check, CheckState.MISSING, f"is not in the manifest any more: {_FIX}"))
            elif uid in state.last_success and result.materialization_id == state.last_success[uid].id:
                lost.setdefault(uid, []).append(CheckStatus(
                    check, CheckState.REMOVED, f"was removed (no longer declared; it last ran at {result.finished_at}, "
                    f"{result.status}): said until the asset is next built", result.finished_at))
    for uid, found in lost.items():
        if uid not in out:
            continue
        code = {CheckState.MISSING: ReasonCode.CHECK_MISSING, CheckState.REMOVED: ReasonCode.CHECK_REMOVED}
        reasons = tuple(Reason(code[c.state], c.describe()) for c in found)
        out[uid] = replace(out[uid], checks=out[uid].checks + tuple(found), reasons=out[uid].reasons + reasons)
    return out


def _name(check_id: str) -> str:
    """``unique_stg_orders_order_id`` for ``test.shop.unique_stg_orders_order_id.e3b8``; a unit test's last part."""
    parts = check_id.split(".")
    return parts[2] if parts[0] == "test" and len(parts) > 2 else parts[-1]


def _kind(check_id: str) -> CheckKind:
    return CheckKind.UNIT_TEST if check_id.startswith("unit_test.") else CheckKind.DATA_TEST
