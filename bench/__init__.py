"""Benchmarks and reporting: latency, memory and energy measurement, result records, reports and plots."""
