"""main_node package."""
