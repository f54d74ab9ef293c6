"""The `chargeport` command. Each subcommand lives in the package that owns it.

A subcommand module exposes `add_arguments(parser)` and `run(args) -> int`; it is imported
only when needed, so `chargeport pki` does not pay for grpc or numpy.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

import chargeport
from chargeport.config import ConfigError
from chargeport.errors import ChargeportError

__all__ = ["EX_CONFIG", "main"]

EX_CONFIG = 78  # sysexits.h: a configuration error; systemd shows it as such

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "main": ("main_node.cli", "run the main board (OCPP, energy manager, satellites)"),
    "satellite": ("satellite.cli", "run a satellite board (agent, port, advertiser)"),
    "sim": ("simulation.cli", "run a complete 4-gun station on this host"),
    "discover": ("main_node.discover_cli", "list the boards seen over mDNS"),
    "pki": ("chargeport.pki_cli", "create the station CA and board certificates"),
    "fw": ("system_aggregator.fw_cli", "firmware bundles: keygen, sign, verify"),
    "diag": ("main_node.diag_cli", "collect a combined diagnostics archive"),
    "config": ("chargeport.config_cli", "check a main or satellite config file"),
    "rollout": ("main_node.rollout_cli", "roll firmware out to a running station, with progress"),
    "meter": ("evse.meter_cli", "metering key and OCMF signed-reading checks"),
    "hal": ("hal.cli", "board hardware: provision the MCU link key"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chargeport", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version", action="version", version=f"chargeport {chargeport.__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Only the chosen subcommand's module is imported (and `--help` shows just names).
        if name == wanted:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC's C core logs every failed connection attempt on stderr; our own log says why,
    # once. `GRPC_VERBOSITY=debug chargeport ...` brings the C core's lines back.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = importlib.import_module(args._module).run(args)
        return result
    except ConfigError as exc:
        print(f"chargeport {args.command}: {exc}", file=sys.stderr)
        return EX_CONFIG
    except ChargeportError as exc:
        print(f"chargeport {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
