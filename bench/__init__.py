"""The benchmark: the real bot against loopback stand-ins, next to a naive baseline."""
