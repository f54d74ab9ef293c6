"""OCPP 2.0.1 edge of the station (beside the 1.6J one in `main_node.ocpp`)."""
