"""Serial link to a board's safety MCU: codec, transport, simulated MCU, Board."""
