"""The `chargeport` command: the top of the package layers, above every node it starts.

Subcommands live in the packages that own them and are imported by name only when chosen;
being on top, this package may import any of them (chargeport < hal < evse < satellite,
system_aggregator < main_node < simulation < chargeport_cli).
"""
