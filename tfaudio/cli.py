"""The ``tfaudio`` command. Each sub-command lives in ``tfaudio/commands/<name>.py`` and defines
``add_parser(subparsers)`` (returning its parser) and ``run(args) -> int``.

The boundary: every error reaches the user as one line, ``tfaudio <command>: error: <what> Fix: <how>``
(exit status 2); ``--debug`` shows the traceback instead. TensorFlow's start-up log lines are hidden
unless ``--verbose``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: Sub-commands, in the order ``tfaudio --help`` lists them.
COMMANDS = ["tag", "train", "finetune", "cv", "tune", "evaluate", "predict", "detect", "embed", "export", "info", "demo", "esc50_demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfaudio", description="Audio classification with Keras/TensorFlow: tag, "
                                                                 "train, cross-validate, export.")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"tfaudio.commands.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def _global_flags(argv: list[str]) -> tuple[bool, bool]:
    """``--verbose`` / ``--debug`` anywhere on the line (before TensorFlow is imported)."""
    return "--verbose" in argv, "--debug" in argv


def _one_line(err: BaseException) -> str:
    """An unexpected exception as one line naming its kind."""
    text = " ".join(str(err).split()) or "(no message)"
    return f"{type(err).__name__}: {text[:800]}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose, debug = _global_flags(argv)
    argv = [a for a in argv if a not in ("--verbose", "--debug")]
    from tfaudio.log import cli_handler, native_stderr_silenced, quiet_tensorflow

    quiet_tensorflow(verbose)
    cli_handler()
    if not verbose and not {"-h", "--help"} & set(argv):
        # TensorFlow >= 2.19 writes "Could not find cuda drivers" at import whatever the log level
        # (tensorflow/tensorflow#100442): import it here with its native stderr hidden. Import errors
        # still arrive as exceptions.
        with native_stderr_silenced():
            import tensorflow  # noqa: F401
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_pipeline_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pipeline_args = extra  # Beam jobs (embed, predict --runner) pass unknown options to Beam
    args.verbose, args.debug = verbose, debug
    from tfaudio.errors import TfaudioError

    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"tfaudio {args.command}: interrupted", file=sys.stderr)
        return 130
    except TfaudioError as err:
        if debug:
            raise
        print(f"tfaudio {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the boundary: one clear line, never a traceback
        if debug:
            raise
        print(f"tfaudio {args.command}: error: {_one_line(err)}. This is unexpected; run it again with --debug "
              f"for the traceback and report it.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
