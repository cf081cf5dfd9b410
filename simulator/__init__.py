"""Test double of the Kore.ai AgentAssist call-volume API; see `simulator.server`."""

from simulator.server import Faults, Simulator

__all__ = ["Faults", "Simulator"]
