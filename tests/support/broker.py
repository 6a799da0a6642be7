"""Tests use the same Mosquitto runner as the demo and the benchmarks."""

from host_tools.mosquitto import BrokerTls, Mosquitto, free_port, mosquitto_binary

__all__ = ["BrokerTls", "Mosquitto", "free_port", "mosquitto_binary"]
