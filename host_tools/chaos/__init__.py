"""Fault injection for the local region (issue 14): network faults between a kiosk and its
broker in network namespaces (:mod:`host_tools.chaos.netns`, :mod:`host_tools.chaos.link`)."""
