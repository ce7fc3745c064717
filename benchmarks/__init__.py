"""Benchmarks: each compares the shop against a baseline measured in the same run (`make bench`)."""
