"""Chaos runs: random faults under concurrent shoppers, then a checker over what everyone saw.

``history`` records every request, reply and fault as JSON lines; ``faults`` injects them;
``disks`` gives the replicas real disks of their own to fill up or lose; ``runner`` starts the
store and drives it; ``checker`` judges the history against the final state of the replicas'
logs, the catalog and the cache. See docs/reliability.md.
"""
