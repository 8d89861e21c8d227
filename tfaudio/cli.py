"""The ``tfaudio`` command. Each sub-command lives in ``tfaudio/commands/<name>.py`` and defines
``add_parser(subparsers)`` (returning its parser) and ``run(args) -> int``."""
from __future__ import annotations

import argparse
import importlib
import sys

#: Sub-command modules, in the order ``tfaudio --help`` lists them.
COMMANDS = ["tag", "train", "cv", "evaluate", "predict", "embed", "export", "info", "demo", "esc50_demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfaudio", description="Audio classification with Keras/TensorFlow: tag, train, cross-validate, export.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tfaudio.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"tfaudio.commands.{name}":
                continue  # not built yet
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_pipeline_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pipeline_args = extra  # Beam jobs (embed, predict --runner) pass unknown options to Beam
    from tfaudio.errors import TfaudioError

    try:
        return int(args._run(args) or 0)
    except TfaudioError as err:
        print(f"tfaudio {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
