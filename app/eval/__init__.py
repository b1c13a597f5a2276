"""Experiments on a private stack: the latency sweep and the replica crash experiment."""
