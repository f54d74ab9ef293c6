"""The station's OCPP 1.6J charge point: one charge point, connectors 1..N are the ports."""

__all__: list[str] = []
