"""Contract checks: each rule of a :class:`~watchkeeper.data.Contract` decided on rows or on a
profile, as one :class:`CheckResult` per rule (``check="contract.<kind>"``).

A rule is broken when more than ``1 - mostly`` of the values it checked break it; its status
is then the rule's ``severity`` (``alert`` by default, or ``warn``). A rule that cannot be
decided from what was given (a profile that does not keep what the rule needs, freshness
without ``as_of``, a missing column) is ``insufficient_data`` with the reason, never a
silent pass. Results carry the counts and up to five offending examples in ``details``.
"""

from __future__ import annotations

from typing import Any

from watchkeeper.checks._result import CheckResult, Status

__all__ = ["check_contract", "contract_results"]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.1f}%"


def contract_results(outcomes: Any) -> list[CheckResult]:
    """One result per :class:`~watchkeeper.data.RuleOutcome` (see the module docs)."""
    out: list[CheckResult] = []
    for o in outcomes:
        rule = o.rule
        details: dict[str, Any] = {
            "rule": rule.to_dict(),
            "n_checked": o.n_checked,
            "n_violations": o.n_violations,
            "examples": list(o.examples),
        }
        tolerance = 1.0 - rule.mostly
        check = f"contract.{rule.kind}"
        if o.n_violations is None:
            out.append(
                CheckResult(
                    check, rule.subject, Status.INSUFFICIENT_DATA,
                    f"{rule.describe()}: {o.note}", threshold=tolerance, rule=rule.name,
                    details=details,
                )
            )  # fmt: skip
            continue
        share = o.share
        assert share is not None
        examples = f"; e.g. {', '.join(o.examples)}" if o.examples else ""
        note = f" ({o.note})" if o.note else ""
        if rule.kind in ("row_count", "freshness"):
            measured = o.note or ("broken" if o.n_violations else "holds")
            reason = f"{rule.describe()}: {measured}"
        else:
            allowed = f", {_pct(tolerance)} allowed" if tolerance > 0 else ""
            reason = (
                f"{rule.describe()}: {o.n_violations:,} of {o.n_checked:,} values "
                f"({_pct(share)}) break it{allowed}{note}{examples}"
            )
        status = Status(rule.severity) if o.broken else Status.OK
        out.append(
            CheckResult(
                check, rule.subject, status, reason, value=share, threshold=tolerance,
                rule=rule.name, details=details,
            )
        )  # fmt: skip
    return out


def check_contract(contract: Any, data: Any, *, as_of: Any = None) -> list[CheckResult]:
    """Decide every rule of ``contract`` on ``data``: rows (anything
    :func:`~watchkeeper.data.read_table` reads) exactly, or a
    :class:`~watchkeeper.data.Profile` as far as it allows (see the module docs).

    Parameters
    ----------
    contract
        A :class:`~watchkeeper.data.Contract`, or a :class:`~watchkeeper.data.Schema`
        carrying one.
    data
        The rows or a profile of them.
    as_of
        The time ``freshness`` rules measure the age of the latest timestamp at (e.g. the
        end of the window); without it they are not decided.

    Examples
    --------
    >>> import pandas as pd
    >>> from watchkeeper.data import Contract, Profile, Range, Unique
    >>> contract = Contract((Range(column="x", min=0), Unique(column="id", severity="warn")))
    >>> df = pd.DataFrame({"x": [1.0, -2.0, 3.0], "id": ["a", "b", "a"]})
    >>> [(r.check, r.status.value, r.value) for r in check_contract(contract, df)]
    [('contract.range', 'alert', 0.3333333333333333), ('contract.unique', 'warn', \
0.3333333333333333)]
    >>> print(check_contract(contract, df)[0].reason)
    0 <= x: 1 of 3 values (33.3%) break it; e.g. -2
    """
    from watchkeeper.data import Contract, Profile, Schema
    from watchkeeper.exceptions import InputError

    if isinstance(contract, Schema):
        contract = contract.contract or Contract()
    if not isinstance(contract, Contract):
        raise InputError(
            f"check_contract needs a Contract or a Schema with one, got {type(contract).__name__}"
        )
    if isinstance(data, Profile):
        return contract_results(contract.evaluate_profile(data, as_of=as_of))
    return contract_results(contract.evaluate(data, as_of=as_of))
