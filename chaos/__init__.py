"""Proof under load and faults: a bank workload, fault injection, and invariant checks."""
