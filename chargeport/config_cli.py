"""`chargeport config check FILE`: validate a main or satellite config without starting anything.

The kind is told by the file's tables (`[board]` or `[agent]` = satellite, otherwise main) or
given with `--kind`. Beyond the keys and values `load_config` checks, the files the config
names must exist: the PKI a board will load, firmware keys, scenarios, the link key."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from chargeport.config import ConfigError, MainConfig, SatelliteConfig, load_config

__all__ = ["add_arguments", "check", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `chargeport config`."""
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check_parser = sub.add_parser("check", help="validate a config file; exit 78 if it is wrong")
    check_parser.add_argument("file", metavar="FILE", help="a main or satellite .toml")
    check_parser.add_argument(
        "--kind", choices=("main", "satellite"), help="default: told by the file's tables"
    )


def _kind(path: Path) -> str:
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "main"  # load_config says what is wrong with the file itself
    return "satellite" if {"board", "agent"} & set(tables) else "main"


def _need(path: str, key: str, fix: str) -> None:
    if path and not Path(path).exists():
        raise ConfigError(f"{key}: {path} does not exist; {fix}")


def check(path: Path, kind: str | None = None) -> str:
    """Validate `path`; the one-line summary of a good config, `ConfigError` otherwise."""
    kind = kind or _kind(path)
    if kind == "satellite":
        sat = load_config(path, SatelliteConfig)
        _check_common(path, sat.link.insecure, sat.link.pki_dir, sat.firmware.trusted_keys)
        pki = Path(sat.link.pki_dir)
        if not sat.link.insecure:
            for suffix in ("pem", "key"):
                _need(
                    str(pki / f"satellite-{sat.board.serial}.{suffix}"),
                    f"{path}: link.pki_dir",
                    f"issue it with `chargeport pki init --satellite {sat.board.serial}`",
                )
        _check_port(path, sat.port.scenario, sat.port.link_key_file)
        return f"{path}: OK (satellite {sat.board.serial}, listens on {sat.agent.listen})"
    main = load_config(path, MainConfig)
    _check_common(path, main.link.insecure, main.link.pki_dir, main.firmware.trusted_keys)
    if not main.link.insecure:
        for name in ("main.pem", "main.key"):
            _need(
                str(Path(main.link.pki_dir) / name),
                f"{path}: link.pki_dir",
                "create it with `chargeport pki init`",
            )
    _check_port(path, main.port.scenario, main.port.link_key_file)
    csms = main.ocpp.csms_url or "no CSMS"
    return (
        f"{path}: OK (main of station {main.station.id}, {1 + len(main.satellites)} connectors, "
        f"{csms})"
    )


def _check_common(path: Path, insecure: bool, pki_dir: str, trusted_keys: list[str]) -> None:
    if not insecure:
        _need(
            str(Path(pki_dir) / "ca.pem"),
            f"{path}: link.pki_dir",
            "copy the station CA there or run `chargeport pki init`",
        )
    for i, key in enumerate(trusted_keys):
        _need(key, f"{path}: firmware.trusted_keys[{i}]", "copy the signing key's .pub there")


def _check_port(path: Path, scenario: str, link_key_file: str) -> None:
    _need(scenario, f"{path}: port.scenario", "give an existing scenario file")
    _need(link_key_file, f"{path}: port.link_key_file", "provision the board's MCU link key")


def run(args: argparse.Namespace) -> int:
    """`config check`: print the summary line; ConfigError reaches the CLI (exit 78)."""
    print(check(Path(args.file), args.kind))
    return 0
