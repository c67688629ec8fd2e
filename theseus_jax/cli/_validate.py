"""``theseus validate``: predict published measurements and print the error."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="predict every case of a validation file and report the error and MAPE",
        description="Predict every case of a file in the schema of validation_cases.json "
        "(default: the reference file) from hardware specs, under each case's own mapping.",
    )
    p.add_argument("--cases", default=None, help="cases file (default: the reference file)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (each row carries its assumptions and the rules that fired)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="print, under each case, every assumption made in reading it",
    )


def run(args) -> int:
    from ..validate import validate_cases

    try:
        res = validate_cases(args.cases)
    except ValueError as e:  # the file itself cannot be read
        print(f"error: {e}")
        return 2
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"cases: {res['cases_file']}")
    hdr = f"{'case':46s} {'measured':>10s} {'predicted':>10s} {'error':>8s}  unit"
    print(hdr)
    print("-" * len(hdr))
    for r in res["rows"]:
        if r["predicted"] is None:
            meas = "-" if r["measured"] is None else f"{r['measured']:.4g}"
            print(f"{r['id']:46s} {meas:>10s} {'-':>10s} {'-':>8s}  {r['unit']}")
            print(f"{'':46s} unsupported: {r['reason']}")
        else:
            print(
                f"{r['id']:46s} {r['measured']:10.4g} {r['predicted']:10.4g} "
                f"{r['error_pct']:+7.1f}%  {r['unit']}"
                + ("" if r["status"] == "ok" else f"  [{r['status']}]")
            )
        if args.explain:
            for a in r["assumptions"]:
                print(f"{'':46s} - [{a['rule']}] {a['text']}")
    print("-" * len(hdr))
    for k, v in res["mape_pct_by_category"].items():
        print(f"MAPE {k}: {v:.2f} %")
    for k, v in res["mape_pct_by_group"].items():
        print(f"MAPE {k}: {v:.2f} %")
    if args.explain:
        print(
            "rules fired (cases): " + ", ".join(f"{k} {v}" for k, v in res["rules_fired"].items())
        )
    print(
        f"MAPE all supported ({res['n_supported']} cases): {res['mape_pct']:.2f} %; "
        f"unsupported: {res['n_unsupported']}"
    )
    return 0
