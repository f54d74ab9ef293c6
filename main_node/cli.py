"""`chargeport main --config FILE`: run the main board until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import dataclasses

from chargeport.config import MainConfig, load_config, prepare_state_dir
from chargeport.errors import ChargeportError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="main board TOML config")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--scenario", default="", help="simulated EV scenario for the local port")


def run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise ChargeportError(f"--speed: expected a positive number, got {args.speed}")
    config = load_config(args.config, MainConfig)
    prepare_state_dir(config.station.state_dir, "station.state_dir")  # before anything writes there
    if args.scenario:
        port = dataclasses.replace(config.port, scenario=args.scenario)
        config = dataclasses.replace(config, port=port)
    from main_node.app import run_main

    return run_main(config, speed=args.speed)
