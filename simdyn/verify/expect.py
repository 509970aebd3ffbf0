"""``simdyn verify --expect FILE``: compare a run's verdicts with the expected ones.

The expected file is JSON: ``{"scale", "key", "seeds_override", "rules_commit", "rows":
[{"claim", "verdict", "control_verdict"}, ...]}``, one entry per table row (:func:`from_report`
extracts it from a ``report.json``; ``python -m simdyn.verify.expect REPORT.json OUT.json``
writes it). A DEVIATION is any difference: a row whose verdict or whose controls' verdict
differs, a row the run has and the file does not, a row the file has and a full run lacks, or a
scale, key or ``--seeds`` that differs (the same rules give other verdicts at another size or
key). ``simdyn verify --expect`` exits 1 on any deviation and prints each one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simdyn.config import ConfigError

FIELDS = ("verdict", "control_verdict")  # what is compared per row
RUN_FIELDS = ("scale", "key", "seeds_override")  # what is compared per run, where the file has it


def from_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The expected-verdicts record of a report (``report.json``'s content).

    Args:
        report: a parsed ``report.json`` (:func:`simdyn.verify.report.to_json`).

    Returns:
        ``{"scale", "key", "seeds_override", "rules_commit", "rows": [{"claim", "verdict",
        "control_verdict"}]}``.
    """
    meta = report.get("meta", {})
    return {
        "scale": meta.get("scale"),
        "key": meta.get("key"),
        "seeds_override": meta.get("seeds_override"),
        "rules_commit": meta.get("rules_commit"),
        "rows": [{k: row[k] for k in ("claim", *FIELDS)} for row in report["rows"]],
    }


def load(path: str | Path) -> dict[str, Any]:
    """Read and check an expected-verdicts file (or a whole ``report.json``).

    Args:
        path: the file.

    Returns:
        The expected-verdicts record (:func:`from_report` of a report).

    Raises:
        ConfigError: the file is missing, not JSON, or lacks rows with a claim and both verdicts.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"invalid --expect {path}: {err.strerror or err}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"invalid --expect {path}: not JSON ({err})") from err
    if isinstance(data, dict) and "meta" in data:
        data = from_report(data)
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and all(k in r for k in ("claim", *FIELDS)) for r in rows
    ):
        raise ConfigError(
            f"invalid --expect {path}: need {{'rows': [{{'claim', 'verdict', "
            "'control_verdict'}, ...]}"
        )
    return data


def deviations(
    expected: Mapping[str, Any],
    actual: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    partial: bool = False,
) -> list[str]:
    """Every difference between the expected verdicts and a run's, one line each.

    Args:
        expected: from :func:`load`. actual: the run's rows, each with "claim", "verdict" and
            "control_verdict" (``report.json``'s rows). meta: the run's meta (scale, key).
        partial: the run checked only some claims (``--claims``): expected rows it did not run
            are not deviations.

    Returns:
        The deviations (empty when the run matches).
    """
    out = []
    for field in RUN_FIELDS:
        if field in expected and expected[field] != meta.get(field):
            out.append(f"{field}: expected {expected[field]!r}, ran {meta.get(field)!r}")
    want = {r["claim"]: r for r in expected["rows"]}
    got = {r["claim"]: r for r in actual}
    for claim, row in got.items():
        if claim not in want:
            out.append(f"{claim}: not in the expected file (verdict {row['verdict']})")
            continue
        for field in FIELDS:
            if row[field] != want[claim][field]:
                out.append(f"{claim}: {field} {row[field]}, expected {want[claim][field]}")
    if not partial:
        out += [f"{claim}: expected but not run" for claim in want if claim not in got]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simdyn.verify.expect REPORT.json OUT.json``: write the expected file."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m simdyn.verify.expect REPORT.json OUT.json", file=sys.stderr)
        return 2
    record = from_report(json.loads(Path(args[0]).read_text()))
    Path(args[1]).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args[1]}: {len(record['rows'])} rows (scale {record['scale']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
