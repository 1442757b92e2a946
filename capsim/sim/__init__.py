"""The simulation layer: SimPy in the middle, data in and out.

``engine`` (clock, events, random streams, trace), ``network`` (latency, loss, partitions),
``node`` (the protocol base class), ``cluster`` (containers, zones, shards), ``nemesis``
(applies faults), ``workload`` (clients).
"""
