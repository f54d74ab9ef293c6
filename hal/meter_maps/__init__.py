"""Register maps of the Modbus meters `hal.modbus_meter` reads, one TOML file per model."""
