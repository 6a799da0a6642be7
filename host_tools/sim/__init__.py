"""Simulators: the document scanner (:mod:`host_tools.sim.scanner`); the fleet simulator."""
