"""The ``featperm`` command: ``info``, ``keys new|derive|show``, ``demo``, ``bench``, ``attack-features``,
``protect``, ``serve``, ``extract``.

Every command has ``--help``. A bad argument or a bad file gets one line on stderr and exit status
2, never a traceback (``FEATPERM_TRACEBACK=1`` shows it, for debugging featperm). ``keys`` works
where the compiled library is not built; ``info``, ``demo`` and ``bench`` load it. Key material is
written only into key files (mode 0o600) and never printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import stat
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

import torch

from featperm import attack_features, bench, protect_command, serve_command
from featperm._version import __version__
from featperm.bench import cpu_model
from featperm.errors import FeatpermError
from featperm.keys import (
    BitKey,
    BlockKey,
    FFXKey,
    NPKey,
    generate_secret,
    load_key,
    load_secret,
    save_key,
)
from featperm.keys.files import Key, kind_of

__all__ = ["main", "build_parser"]

KINDS = ("secret", "bit", "block", "np", "ffx")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class UsageError(Exception):
    """A bad combination of arguments found after parsing."""


# -- info --------------------------------------------------------------------------------------


def _build_config() -> Dict[str, Any]:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return dict(json.load(fh))
    except (OSError, ValueError):
        return {"note": "no build record (featperm/_build.json): built before it was written"}


def _ops() -> Any:
    # The compiled ops load only for the commands that use them: `featperm keys` works where the
    # extension is not built (then `info` and `demo` fail with one line naming the fix).
    return importlib.import_module("featperm.ops")


def info_lines() -> List[str]:
    ops = _ops()
    lines = [
        f"featperm {__version__}",
        f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda})",
        f"build: {json.dumps(_build_config(), sort_keys=True)}",
        f"CUDA kernels built: {ops.has_cuda_kernels()}",
    ]
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    lines.append(f"visible GPUs: {', '.join(gpus) if gpus else 'none'}")
    lines.append(f"CPU: {cpu_model()}")
    available, active = ops.cpu_kernel_variants(), ops.cpu_kernels()
    for kernel, variants in available.items():
        lines.append(f"  {kernel:<14} runs {active[kernel]:<17} (this CPU supports: {', '.join(variants)})")
    return lines


def _info(args: argparse.Namespace) -> int:
    print("\n".join(info_lines()))
    return 0


# -- keys ----------------------------------------------------------------------------------------


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise UsageError(f"--kind {args.kind} needs {' and '.join(missing)}")


def _new_key(args: argparse.Namespace) -> Key:
    if args.kind == "secret":
        return generate_secret(args.bytes)
    if args.kind == "bit":
        return BitKey.generate(args.bits, samples=args.samples)
    _need(args, "channels", "block_size")
    if args.kind == "block":
        return BlockKey.generate(channels=args.channels, block_size=args.block_size)
    if args.kind == "np":
        return NPKey.generate(channels=args.channels, block_size=args.block_size)
    return FFXKey.generate(channels=args.channels, block_size=args.block_size)


def _derived_key(args: argparse.Namespace) -> Key:
    secret = load_secret(args.secret)
    label, context = args.label, args.context
    if args.kind == "secret":
        raise UsageError("--kind secret cannot be derived; use `featperm keys new --kind secret`")
    if args.kind == "bit":
        return BitKey.derive(secret, label, context, bits=args.bits, samples=args.samples)
    _need(args, "channels", "block_size")
    if args.kind == "block":
        return BlockKey.derive(secret, label, context, channels=args.channels, block_size=args.block_size)
    if args.kind == "np":
        return NPKey.derive(secret, label, context, channels=args.channels, block_size=args.block_size)
    return FFXKey.derive(secret, label, context, channels=args.channels, block_size=args.block_size)


def describe(key: Key) -> str:
    """What a key is, without its material."""
    kind = kind_of(key, "featperm keys show")
    if isinstance(key, (bytes, bytearray)):
        return f"master secret of {len(key)} bytes ({8 * len(key)} bits)"
    if isinstance(key, BitKey):
        rows = f", one row per sample: {key.samples} rows" if key.samples is not None else ""
        return f"BitKey: a permutation of the {key.bits} bit positions of a {key.bits}-bit word{rows}"
    if isinstance(key, FFXKey):
        return f"FFXKey: channels={key.channels}, block_size={key.block_size}, rounds={key.rounds}"
    assert isinstance(key, (BlockKey, NPKey))
    n = key.channels * key.block_size**2
    return f"{kind}: channels={key.channels}, block_size={key.block_size} ({n} positions per block)"


def _write_key(args: argparse.Namespace, key: Key) -> int:
    save_key(args.out, key, overwrite=args.overwrite)
    print(f"wrote {describe(key)} to {args.out} (mode 0600)")
    return 0


def _keys_new(args: argparse.Namespace) -> int:
    return _write_key(args, _new_key(args))


def _keys_derive(args: argparse.Namespace) -> int:
    return _write_key(args, _derived_key(args))


def _keys_show(args: argparse.Namespace) -> int:
    key = load_key(args.file)
    mode = stat.S_IMODE(os.stat(args.file).st_mode)
    print(f"{args.file}: {describe(key)}; featperm key file, checksum ok, mode {mode:04o}")
    if mode & 0o077:
        print(f"warning: {args.file} is readable by others (mode {mode:04o}); chmod 600 it", file=sys.stderr)
    return 0


def _add_key_shape(parser: argparse.ArgumentParser, *, secret_bytes: bool) -> None:
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="bit",
        help="secret (a master secret), bit (ShuffleBits BitKey), block (BlockKey), "
        "np (NPKey), ffx (FFXKey); default: bit",
    )
    parser.add_argument("--bits", type=int, default=32, help="BitKey word width: 8, 16, 32 or 64 (default 32)")
    parser.add_argument("--samples", type=int, help="BitKey: one row per sample, this many rows")
    parser.add_argument("--channels", type=int, help="block, np, ffx: channels C")
    parser.add_argument("--block-size", type=int, help="block, np, ffx: block size M")
    if secret_bytes:
        parser.add_argument("--bytes", type=int, default=32, help="secret: length in bytes (default 32, at least 16)")
    parser.add_argument("--out", required=True, help="key file to write (mode 0600)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="featperm", description="Keyed encryption and protection of deep features.")
    parser.add_argument("--version", action="version", version=f"featperm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    info = commands.add_parser("info", help="version, build, CPU features and the kernel each op uses, GPUs")
    info.set_defaults(run=_info)

    keys = commands.add_parser("keys", help="make, derive and inspect key files")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", parser_class=_Parser)
    key_commands.required = True
    new = key_commands.add_parser("new", help="a fresh key from the OS CSPRNG, written to a key file")
    _add_key_shape(new, secret_bytes=True)
    new.set_defaults(run=_keys_new)
    derive = key_commands.add_parser("derive", help="a key derived (HKDF-SHA256) from a master secret file")
    derive.add_argument("--secret", required=True, help="key file holding a master secret")
    derive.add_argument("--label", required=True, help="the key's purpose, e.g. features/layer3")
    derive.add_argument("--context", default="", help="e.g. a request id or layer name (default empty)")
    _add_key_shape(derive, secret_bytes=False)
    derive.set_defaults(run=_keys_derive)
    show = key_commands.add_parser("show", help="what a key file holds (never its key material)")
    show.add_argument("file", help="a featperm key file")
    show.set_defaults(run=_keys_show)

    demo_parser = commands.add_parser(
        "demo",
        help="the main job: attack plain, ShuffleBits and sealed features, protect a CNN, time the ops; "
        "one report (built-in data, no download)",
    )
    # featperm.demo imports only light modules; it loads the experiments and ops when it runs.
    demo_command = importlib.import_module("featperm.demo")
    demo_command.add_arguments(demo_parser)
    demo_parser.set_defaults(run=demo_command.run)

    bench_parser = commands.add_parser("bench", help="run the benchmark suite for this device, write results")
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(run=bench.run)

    attack_parser = commands.add_parser(
        "attack-features",
        help="attribute inference, reconstruction and cryptanalysis on plain, ShuffleBits and sealed features",
    )
    attack_features.add_arguments(attack_parser)
    attack_parser.set_defaults(run=attack_features.run)

    protect_parser = commands.add_parser(
        "protect", help="train a block-shuffle-protected ResNet-18, evaluate it, attack it (Tables I-III)"
    )
    protect_command.add_arguments(protect_parser)
    protect_parser.set_defaults(run=protect_command.run)

    serve_parser = commands.add_parser(
        "serve", help="an HTTP feature API answering each request encrypted under its own key (FastAPI + uvicorn)"
    )
    serve_command.add_serve_arguments(serve_parser)
    serve_parser.set_defaults(run=serve_command.run_serve)

    extract_parser = commands.add_parser(
        "extract", help="features of image files from a featperm serve server, decrypted here, to an .npz"
    )
    serve_command.add_extract_arguments(extract_parser)
    extract_parser.set_defaults(run=serve_command.run_extract)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (UsageError, FeatpermError, ValueError, TypeError, OSError, ImportError) as err:
        if os.environ.get("FEATPERM_TRACEBACK") == "1":
            raise  # for debugging featperm itself: the whole traceback
        # One line, no traceback: the error names what was wrong.
        message = str(err) if not isinstance(err, OSError) or not err.filename else f"{err.strerror}: {err.filename}"
        print(f"featperm: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
