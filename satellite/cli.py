"""`chargeport satellite --config FILE [--scenario FILE] [--speed N]`."""

from __future__ import annotations

import argparse
import asyncio

from chargeport.config import SatelliteConfig, load_config, prepare_state_dir
from chargeport.errors import ChargeportError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="satellite TOML config")
    parser.add_argument("--scenario", help="simulated EV scenario file (sim hal)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated time speed-up")


def run(args: argparse.Namespace) -> int:
    from satellite.app import run_satellite, with_scenario

    config = with_scenario(load_config(args.config, SatelliteConfig), args.scenario)
    prepare_state_dir(config.board.state_dir, "board.state_dir")  # before anything writes there
    if args.speed <= 0:
        raise ChargeportError(f"--speed: expected a positive number, got {args.speed}")
    return asyncio.run(run_satellite(config, speed=args.speed))
