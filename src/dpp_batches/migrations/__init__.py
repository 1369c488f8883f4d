"""Internals of the migration runner; the public API is :mod:`dpp_batches.migrate`."""
