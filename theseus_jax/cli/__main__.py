"""``theseus`` command line: one subcommand per file of this package."""

from __future__ import annotations

import argparse
import sys

from . import _eval, _explore, _report, _sim, _sweep, _validate

SUBCOMMANDS = {
    "explore": _explore,
    "eval": _eval,
    "sweep": _sweep,
    "validate": _validate,
    "sim": _sim,
    "report": _report,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="theseus",
        description="Design-space exploration of wafer-scale chips and GPU clusters for LLMs.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for _name, mod in SUBCOMMANDS.items():
        mod.add_parser(sub)
    return p


def main(argv=None) -> int:
    from ..dse.store import RunBusy

    args = build_parser().parse_args(argv)
    try:
        return int(SUBCOMMANDS[args.command].run(args) or 0)
    except KeyboardInterrupt:  # what is stored stays; say how to continue
        hint = getattr(SUBCOMMANDS[args.command], "resume_hint", None)
        print(
            f"theseus {args.command}: interrupted" + (f"; {hint(args)}" if hint else ""),
            file=sys.stderr,
        )
        return 130
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        RunBusy,
    ) as e:  # bad input: one clear line, no traceback
        print(f"theseus {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
