"""system_aggregator package."""
