"""The ``neurogeom`` command: argument parsing, subcommand registry and error reporting.

Each subcommand lives in its own module in this package and defines ``add_parser(subparsers)``,
which registers a parser whose ``func(args) -> int`` runs the command. Add a module name to
:data:`SUBCOMMANDS` to register a new one. A :class:`~neurogeom.errors.NeurogeomError` becomes a
one-line message on stderr and exit code 2; ``--debug`` shows the traceback instead.

Exit codes: 0 success; 2 bad input, bad parameters or an output that cannot be written (one
line on stderr); 130 interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM); 141 when stdout
is a pipe that was closed early (``neurogeom inspect FILE | head -1``): the output is cut short,
as for a command killed by SIGPIPE, and nothing is printed about it; 1 an unexpected failure.
Interrupted and terminated runs remove their temporary files and leave any existing output
untouched.

This module imports nothing heavy at import time: the signal handlers are installed first
thing in :func:`main`, before numpy, xarray or torch load, so Ctrl-C at any moment is one line.
"""

from __future__ import annotations

import os
import signal
import sys

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ("inspect", "load", "capacity", "align", "compare", "profile",
                                "latents", "batch", "report", "demo")

EXIT_INTERRUPTED = 130      # 128 + SIGINT
EXIT_BROKEN_PIPE = 141      # 128 + SIGPIPE
EXIT_TERMINATED = 143       # 128 + SIGTERM


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that cleanup (temporary files) runs as for
    Ctrl-C; a ``BaseException`` for the same reason ``KeyboardInterrupt`` is one."""


class _Signals:
    """What the handlers of one :func:`main` call saw. While ``deferring`` (the heavy imports)
    a signal is only recorded: an exception raised inside an extension module's import comes
    out mangled (numpy turns it into an ImportError) or is swallowed by optional-import
    guards, so it is raised once the imports are done instead."""

    def __init__(self):
        self.received: list[int] = []
        self.deferring = False
        self.handled = False    # main has caught the signal's exception: no re-send

    def raise_pending(self) -> None:
        self.deferring = False
        if self.received:
            raise _exception_for(self.received[0])


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _resend(signals: _Signals, signum: int) -> None:
    if not signals.handled:
        os.kill(os.getpid(), signum)


def build_parser():
    import argparse

    class Parser(argparse.ArgumentParser):
        """Usage errors in one line, like every other error (the full usage is in --help)."""

        def error(self, message):
            _say(f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)")
            self.exit(2)

    parser = Parser(
        prog="neurogeom",
        description="Neural population geometry: load recordings and model activations into "
                    "labeled assemblies and measure capacity, alignment, predictivity and "
                    "dimensionality.")
    parser.add_argument("--version", action=_version_action(), nargs=0,
                        help="show the version number and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of errors instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    parser.subcommands = sub.choices    # name -> parser, to word errors in its flags
    return parser


def cli_words(message: str, command_parser) -> str:
    """``message`` with the Python keyword arguments it names (``series=``, ``epoch=``) written
    as the command's flags (``--series``, ``--epoch``): the library's errors name the arguments
    of its functions, a shell user types flags."""
    import re

    if command_parser is None:
        return message
    for action in command_parser._actions:
        flags = [o for o in action.option_strings if o.startswith("--")]
        if not flags or action.dest == "help":
            continue
        message = re.sub(rf"(?<![\w.-]){re.escape(action.dest)}=(?=[^=]|$)", flags[0] + " ",
                         message)
        message = message.replace(flags[0] + "  ", flags[0] + " ")
    return re.sub(r"(--[\w-]+) (?=[;,.)]|$)", r"\1", message)


def _version_action():
    import argparse

    class Version(argparse.Action):
        """``--version``, importing neurogeom only when asked (parsing stays light)."""

        def __call__(self, parser, namespace, values, option_string=None):
            from neurogeom import __version__
            print(f"neurogeom {__version__}")
            parser.exit()

    return Version


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module docstring)."""
    signals = _Signals()
    restore = _install_signal_handlers(signals)
    try:
        try:
            code = _run(argv, signals)
        except Exception:
            if not signals.received:
                raise
            # the signal's exception surfaced as another one (an import wrapping it): a signal
            raise _exception_for(signals.received[0]) from None
        finally:
            sys.stdout.flush()      # a closed pipe shows here, not at interpreter exit
        signals.raise_pending()     # swallowed on its way up (an optional-import guard)
        return code
    except KeyboardInterrupt:
        signals.handled = True
        _say("neurogeom: interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        signals.handled = True
        _say("neurogeom: terminated")
        return EXIT_TERMINATED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    finally:
        # as the process entry point (argv None), a signal from here to exit just exits
        restore(exiting=argv is None)


def _run(argv, signals: _Signals) -> int:
    signals.deferring = True
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None):
        import neurogeom  # noqa: F401 - every command needs it: import it while deferring
    signals.raise_pending()
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from neurogeom.errors import NeurogeomError

    command_parser = getattr(parser, "subcommands", {}).get(args.command)
    try:
        with _warnings_in_flags(args.command, command_parser):
            return int(args.func(args) or 0)
    except NeurogeomError as exc:
        if args.debug:
            raise
        words = cli_words(_one_line(exc), command_parser)
        _say(f"neurogeom {args.command}: error: {words}")
        return 2


def _warnings_in_flags(command: str, command_parser):
    """While a command runs, a warning is one line on stderr, ``neurogeom CMD: warning: …``,
    worded in the command's flags (:func:`cli_words`) instead of a Python file:line and
    keyword arguments."""
    import contextlib
    import warnings

    @contextlib.contextmanager
    def scope():
        with warnings.catch_warnings():
            def show(message, category, filename, lineno, file=None, line=None):
                _say(f"neurogeom {command}: warning: "
                     f"{cli_words(_one_line(message), command_parser)}")

            warnings.showwarning = show
            yield

    return scope()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _say(message: str) -> None:
    """One line on stderr; a closed stderr is not worth a traceback."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):   # stdout replaced (tests), no fileno
        pass


def _install_signal_handlers(signals: _Signals):
    """SIGINT raises KeyboardInterrupt and SIGTERM raises :class:`Terminated` (once: a second
    signal exits at once, quietly); returns a function restoring the previous handlers. Only
    the main thread can set handlers: elsewhere this does nothing."""
    def first(signum, frame):
        signals.received.append(signum)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, again)
        if not signals.deferring:
            raise _exception_for(signum)

    def again(signum, frame):
        os._exit(128 + signum)

    def unraisable(info):
        # the handler ran inside a weakref callback or a __del__, where Python prints the
        # exception and drops it: re-arm and signal again a moment later (from a thread: in
        # here it would land in this hook), to raise it from ordinary code
        if isinstance(info.exc_value, (KeyboardInterrupt, Terminated)) and signals.received:
            import threading

            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, first)
            # unless main has caught it meanwhile (the hook can also see an exception that
            # did reach main, e.g. re-raised by a finalizer while it unwinds): a signal
            # re-sent after main returned would land on the interpreter's default handler
            resend = threading.Timer(0.01, _resend, (signals, signals.received.pop()))
            resend.daemon = True
            resend.start()
            return
        previous_hook(info)

    try:
        previous = {s: signal.signal(s, first) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:      # not the main thread
        return lambda exiting=False: None
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable

    def restore(exiting=False):
        sys.unraisablehook = previous_hook
        for s, handler in previous.items():
            signal.signal(s, again if exiting else
                          handler if handler is not None else signal.SIG_DFL)

    return restore


__all__ = ["SUBCOMMANDS", "Terminated", "build_parser", "main"]
