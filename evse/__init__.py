"""evse package."""
