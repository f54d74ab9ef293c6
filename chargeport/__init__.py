"""chargeport: several single-port EV charger boards acting as one charging station."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "__version__"]
