"""One error base per package (STYLE.md 7): every exception a package defines derives from its
package's base, and every base from ChargeportError, so a caller can catch one package's
failures, and the CLI can print any of them as one line. Internal control-flow signals that
never leave their module are listed, with the reason."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from chargeport.errors import ChargeportError
from evse.errors import EvseError
from hal.base import HalError
from main_node.errors import MainNodeError
from satellite.errors import SatelliteError
from system_aggregator.errors import AggregatorError

REPO = Path(__file__).resolve().parents[2]

BASES: dict[str, type[Exception]] = {
    "chargeport": ChargeportError,
    "hal": HalError,
    "evse": EvseError,
    "satellite": SatelliteError,
    "system_aggregator": AggregatorError,
    "main_node": MainNodeError,
}

# Signals that end a loop or a wait inside one module; never shown to anyone.
INTERNAL = {
    "chargeport.tasks.TaskGaveUp": "a supervised task's budget ran out: the supervisor exits",
    "main_node.satellite_link._SilentSatellite": "ends the session's task group",
    "main_node.ocpp.session_ops.Offline": "a CALL that waits for the journal",
    "main_node.ocpp201.session.Offline": "same, 2.0.1",
    "main_node.ocpp.framing.FrameRejected": "carries the CALLERROR for a frame",
    "main_node.ocpp201.rpc.FrameRejected": "same, 2.0.1",
    "main_node.ocpp201.rpc.CallRefused": "carries a 2.0.1 CALLERROR to send",
    "main_node.ocpp201.rpc.MessageTypeNotSupportedError": "an ocpp package OCPPError (wire)",
    "main_node.ocpp201.rpc.RpcFrameworkError": "an ocpp package OCPPError (wire)",
}


def defined_exceptions(package: str) -> list[type[BaseException]]:
    found = []
    root = REPO / package  # not __file__: tests/evse can shadow evse as a namespace portion
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if "v1" in parts or parts[-1] in ("__main__", "__init__"):
            continue
        name = ".".join(parts)
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found.append(obj)
    return found


@pytest.mark.parametrize("package", list(BASES))
def test_every_exception_derives_from_its_package_base(package: str) -> None:
    base = BASES[package]
    assert issubclass(base, ChargeportError)
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in defined_exceptions(package)
        if not issubclass(cls, base) and f"{cls.__module__}.{cls.__qualname__}" not in INTERNAL
    ]
    assert strays == []
