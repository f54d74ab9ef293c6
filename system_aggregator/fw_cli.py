"""`chargeport fw`: make a signing key, sign a firmware payload into a bundle, verify a bundle."""

from __future__ import annotations

import argparse
import sys

from chargeport.bundle import (
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_bundle,
    verify_file,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `keygen`, `sign` and `verify`."""
    sub = parser.add_subparsers(dest="fw_command", required=True, metavar="ACTION")
    keygen = sub.add_parser("keygen", help="write an ed25519 key pair (KEY and KEY.pub, PEM)")
    keygen.add_argument("--out", required=True, metavar="KEY", help="private key file to write")
    sign = sub.add_parser("sign", help="sign a payload into a firmware bundle")
    sign.add_argument("--key", required=True, help="ed25519 private key (PEM)")
    sign.add_argument("--version", required=True, help="firmware version, e.g. 1.2.0")
    sign.add_argument("--target", required=True, help="board target, e.g. chargeport-board")
    sign.add_argument("payload", metavar="PAYLOAD", help="firmware image to sign")
    sign.add_argument("-o", "--out", required=True, metavar="BUNDLE", help="bundle to write")
    sign.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="sign the bundle as installable over a newer version (anti-rollback exception)",
    )
    verify = sub.add_parser("verify", help="check a bundle's signature, target and payload")
    verify.add_argument("--pub", required=True, action="append", help="trusted public key")
    verify.add_argument("--target", default=None, help="refuse bundles for another target")
    verify.add_argument("bundle", metavar="BUNDLE")


def run(args: argparse.Namespace) -> int:
    """Run one action; bundle errors propagate as one-line `ChargeportError`s (exit 2)."""
    try:
        print(_run(args))
    except OSError as exc:
        print(f"chargeport fw: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> str:
    if args.fw_command == "keygen":
        pub = generate_keypair(args.out)
        return f"wrote {args.out} and {pub}"
    if args.fw_command == "sign":
        key = load_private_key(args.key)
        m = sign_bundle(
            args.payload, key, args.version, args.target, args.out,
            allow_downgrade=args.allow_downgrade,
        )  # fmt: skip
        downgrade = ", downgrade permitted" if m.allow_downgrade else ""
        return f"signed {args.out}: {m.target} {m.version} ({m.size} bytes{downgrade})"
    keys = [load_public_key(p) for p in args.pub]
    m = verify_file(args.bundle, keys, args.target)
    downgrade = ", downgrade permitted" if m.allow_downgrade else ""
    return (
        f"ok {args.bundle}: {m.target} {m.version} ({m.size} bytes, sha256 {m.sha256}{downgrade})"
    )
