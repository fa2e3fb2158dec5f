"""Device backends: the same runtime drives the emulated device, the RTL co-simulation and the board."""
